//! The two strategies the engine cannot run, computed in a loop here with the same core
//! functions the engine uses (`draw_attempt`, `best_passing`, QA `evaluate`) and the simulated
//! backend's `simulate()`:
//! - `always_best_of_n` pays for N attempts of every segment and keeps the best passing one
//!   (retake's `best_of_n` only continues after a first failure);
//! - `oracle` knows from the simulation which segments a retry can rescue at all, which arm
//!   rescues each scene type best, and which attempt first passes: it spends nothing on hopeless
//!   segments and stops at the first pass.

use super::corpus::{Corpus, SceneSetup, SegmentSpec};
use super::outcome::{AttemptOutcome, SegmentOutcome};
use retake_core::rng::{draw_attempt, DrawInput};
use retake_core::select::best_passing;
use retake_core::{evaluate, Arm, AttemptStatus, AttemptView, QaVerdict, RetryPolicy};
use retake_engine::backends::simulated::simulate;
use std::collections::BTreeMap;

/// One attempt, judged exactly as the store would judge it.
pub(super) fn judge(
    scene: &SceneSetup,
    spec: &SegmentSpec,
    number: u32,
    seed: u64,
    params: &retake_core::Parameters,
    arm: Option<Arm>,
) -> (AttemptOutcome, AttemptView) {
    let sim = simulate(&scene.profile, &scene.checks, spec.rng_seed, seed, params);
    let verdict = QaVerdict {
        scores: sim.scores,
        error: None,
        source: "simulated".into(),
    };
    let q = evaluate(&verdict, &scene.checks)
        .expect("the simulated backend scores every enabled check");
    let passed = q.passed();
    let outcome = AttemptOutcome {
        number,
        gpu_seconds: sim.gpu_seconds,
        passed,
        judged: true,
        overall: Some(q.overall),
        failed_checks: q.failed_checks().into_iter().map(str::to_owned).collect(),
        arm,
    };
    let view = AttemptView {
        attempt_number: number,
        seed,
        status: if passed {
            AttemptStatus::Passed
        } else {
            AttemptStatus::Failed
        },
        scores: Some(q),
        gpu_seconds: sim.gpu_seconds,
        arm,
        workflow_error: false,
        round: 1,
    };
    (outcome, view)
}

pub(super) fn first_attempt(
    scene: &SceneSetup,
    spec: &SegmentSpec,
) -> (AttemptOutcome, AttemptView) {
    let seed = spec
        .parameters
        .seed()
        .expect("corpus segments carry attempt 1's seed");
    judge(scene, spec, 1, seed, &spec.parameters, None)
}

/// The retries of a segment as the engine would draw them with one arm: attempt number, seed
/// and parameters of attempts 2..=`max_attempts`, each seed recorded before the next draw.
pub(super) fn draws<'a>(
    policy: &'a RetryPolicy,
    spec: &'a SegmentSpec,
    first_seed: u64,
    arm: Arm,
) -> impl Iterator<Item = (u32, u64, retake_core::Parameters)> + 'a {
    let domains = BTreeMap::new();
    let mut seeds = vec![first_seed];
    (2..=policy.max_attempts as u32).map(move |n| {
        let (seed, params, _) = draw_attempt(&DrawInput {
            policy,
            original: &spec.parameters,
            rng_seed: spec.rng_seed,
            attempt_number: n,
            previous_seeds: &seeds,
            arm,
            domains: &domains,
        });
        seeds.push(seed);
        (n, seed, params)
    })
}

/// Attempts 2..=`max_attempts` drawn with one arm, stopping after the first pass when
/// `stop_at_pass`.
fn retries(
    policy: &RetryPolicy,
    scene: &SceneSetup,
    spec: &SegmentSpec,
    first: &AttemptView,
    arm: Arm,
    stop_at_pass: bool,
) -> Vec<(AttemptOutcome, AttemptView)> {
    let mut out = Vec::new();
    for (n, seed, params) in draws(policy, spec, first.seed, arm) {
        let judged = judge(scene, spec, n, seed, &params, Some(arm));
        let passed = judged.0.passed;
        out.push(judged);
        if passed && stop_at_pass {
            break;
        }
    }
    out
}

pub(super) fn segment(
    spec: &SegmentSpec,
    judged: Vec<(AttemptOutcome, AttemptView)>,
    selected: Option<u32>,
) -> SegmentOutcome {
    let passed = selected.is_some();
    SegmentOutcome {
        index: spec.index,
        scene: spec.scene,
        systematic: spec.systematic,
        attempts: judged.into_iter().map(|j| j.0).collect(),
        passed,
        selected,
        review_reason: if passed {
            None
        } else {
            Some("all_attempts_failed".into())
        },
    }
}

/// Every segment gets `max_attempts` attempts (new seed + jitter); the best passing one is kept.
pub fn always_best_of_n(corpus: &Corpus, policy: &RetryPolicy) -> Vec<SegmentOutcome> {
    corpus
        .segments
        .iter()
        .map(|spec| {
            let scene = &corpus.scenes[spec.scene];
            let first = first_attempt(scene, spec);
            let mut judged = vec![first.clone()];
            judged.extend(retries(policy, scene, spec, &first.1, Arm::Jitter, false));
            let views: Vec<AttemptView> = judged.iter().map(|j| j.1.clone()).collect();
            let selected = best_passing(&views).map(|b| b.attempt_number);
            segment(spec, judged, selected)
        })
        .collect()
}

/// The oracle's choice for one scene type.
#[derive(Debug, Clone)]
pub struct OracleArm {
    pub arm: Arm,
    pub rescuable: usize,
    /// What plain jitter would have rescued with the same foresight.
    pub rescuable_with_jitter: usize,
    pub failed: usize,
}

/// One failed segment's retries under each arm: the attempts up to the first pass (or all).
type ArmPlans = BTreeMap<Arm, Vec<(AttemptOutcome, AttemptView)>>;

/// Per scene type, the arm that rescues the most segments (then at the least GPU), chosen with
/// foresight over the whole corpus; per segment, only the attempts up to the first pass, and
/// none at all for a segment that arm cannot rescue within `max_attempts`.
pub fn oracle(corpus: &Corpus, policy: &RetryPolicy) -> (Vec<SegmentOutcome>, Vec<OracleArm>) {
    // segment → arm → attempts up to the first pass (or all, when none passes).
    let mut plans: Vec<Option<ArmPlans>> = Vec::with_capacity(corpus.segments.len());
    let mut firsts = Vec::with_capacity(corpus.segments.len());
    for spec in &corpus.segments {
        let scene = &corpus.scenes[spec.scene];
        let first = first_attempt(scene, spec);
        if first.0.passed {
            plans.push(None);
        } else {
            let by_arm = Arm::ALL
                .iter()
                .map(|arm| (*arm, retries(policy, scene, spec, &first.1, *arm, true)))
                .collect();
            plans.push(Some(by_arm));
        }
        firsts.push(first);
    }
    let mut arms = Vec::new();
    for scene in 0..corpus.scenes.len() {
        let mut best: Option<(Arm, usize, f64)> = None;
        let mut failed = 0;
        let mut with_jitter = 0;
        // The default arm first, so that it wins ties (every arm draws the same seeds; without a
        // parameter sensitivity they all give the same outcomes).
        let order =
            std::iter::once(Arm::Jitter).chain(Arm::ALL.into_iter().filter(|a| *a != Arm::Jitter));
        for arm in order {
            let (mut rescued, mut gpu) = (0usize, 0.0f64);
            failed = 0;
            for (spec, plan) in corpus.segments.iter().zip(&plans) {
                let (true, Some(plan)) = (spec.scene == scene, plan) else {
                    continue;
                };
                failed += 1;
                let attempts = &plan[&arm];
                if attempts.last().is_some_and(|a| a.0.passed) {
                    rescued += 1;
                    gpu += attempts.iter().map(|a| a.0.gpu_seconds).sum::<f64>();
                }
            }
            if arm == Arm::Jitter {
                with_jitter = rescued;
            }
            let better = match best {
                None => true,
                Some((_, r, g)) => rescued > r || (rescued == r && gpu < g),
            };
            if better {
                best = Some((arm, rescued, gpu));
            }
        }
        let (arm, rescuable, _) = best.unwrap_or((Arm::Jitter, 0, 0.0));
        arms.push(OracleArm {
            arm,
            rescuable,
            rescuable_with_jitter: with_jitter,
            failed,
        });
    }
    let outcomes = corpus
        .segments
        .iter()
        .zip(plans)
        .zip(firsts)
        .map(|((spec, plan), first)| match plan {
            None => segment(spec, vec![first], Some(1)),
            Some(mut by_arm) => {
                let attempts = by_arm.remove(&arms[spec.scene].arm).unwrap_or_default();
                match attempts.last().filter(|a| a.0.passed).map(|a| a.0.number) {
                    Some(n) => {
                        let mut judged = vec![first];
                        judged.extend(attempts);
                        segment(spec, judged, Some(n))
                    }
                    // Hopeless under the oracle's arm: it does not try.
                    None => segment(spec, vec![first], None),
                }
            }
        })
        .collect();
    (outcomes, arms)
}

/// Attempt 1 of every segment, computed here: the check that every engine run judged the same
/// attempts the local strategies did.
pub fn first_attempts(corpus: &Corpus) -> Vec<AttemptOutcome> {
    corpus
        .segments
        .iter()
        .map(|spec| first_attempt(&corpus.scenes[spec.scene], spec).0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use retake_engine::backends::Scenario;

    #[test]
    fn the_oracle_skips_broken_segments_and_stops_at_the_first_pass() {
        let corpus = super::super::corpus::build(&Scenario::demo(), 400, 3);
        let policy = RetryPolicy {
            enabled: true,
            max_attempts: 4,
            ..RetryPolicy::default()
        };
        let (oracle, _) = oracle(&corpus, &policy);
        assert!(
            oracle.iter().any(|s| s.systematic),
            "the corpus has broken segments"
        );
        for s in &oracle {
            if s.systematic {
                assert_eq!(
                    s.attempts.len(),
                    1,
                    "segment {}: nothing spent on a broken segment",
                    s.index
                );
            }
            if s.passed {
                assert_eq!(s.attempts.iter().filter(|a| a.passed).count(), 1);
                assert_eq!(
                    s.selected,
                    s.attempts.last().map(|a| a.number),
                    "stops at the first pass"
                );
            }
        }
        let best = always_best_of_n(&corpus, &policy);
        assert!(
            best.iter().all(|s| s.attempts.len() == 4),
            "always pays for N attempts"
        );
        assert!(best
            .iter()
            .filter(|s| s.passed)
            .all(|s| s.selected_attempt().is_some_and(|a| a.passed)));
    }
}
