//! The informed bound: how well *any* stopping rule without foresight can do on a scenario.
//!
//! It is given what no deployed policy has — the simulation's own model of every scene type:
//! its class shares (or share of broken segments), each class's failure probabilities with their
//! parameter sensitivities, its score ranges, and the oracle's arm per scene type — but not a
//! segment's class nor the outcome of an attempt before it runs. For each failed segment it keeps
//! the exact posterior over the segment's class given every attempt's scores and parameters, and
//! retries while the next attempt's expected gain covers its cost (`Rule`): a one-step look-ahead
//! rule, the optimal stopping rule of such a problem when further failures only lower the chance
//! of a pass (the usual case; a failing score outside the hopeless range raises it). Swept over
//! thresholds, its rows show which targets a policy that knew the simulation could meet
//! together — a reference for what evidence without foresight can buy.

use super::corpus::{Corpus, SceneSetup, SegmentSpec};
use super::local::{draws, first_attempt, judge, segment, OracleArm};
use super::outcome::{AttemptOutcome, SegmentOutcome};
use retake_core::{AttemptView, Parameters, RetryPolicy};
use retake_engine::backends::scenario::{Profile, SegmentClass};

/// When the informed rule retries a failed segment. Both are one-step look-ahead rules: a retry
/// goes ahead while what it is expected to gain covers what it is expected to cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// P(next attempt passes) ≥ t: every attempt costs the same (GPU, retries).
    PerAttempt,
    /// P(next attempt passes) ≥ t × P(the segment is hopeless): only an attempt spent on a
    /// hopeless segment costs (the "retries per broken segment" target).
    PerHopelessRetry,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::PerAttempt => "P(pass next) ≥ t",
            Rule::PerHopelessRetry => "P(pass next) ≥ t × P(hopeless)",
        }
    }

    /// The thresholds each rule is swept over, ascending (stricter to the right).
    pub fn thresholds(self) -> &'static [f64] {
        match self {
            Rule::PerAttempt => &[
                0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
            ],
            Rule::PerHopelessRetry => &[
                0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0,
            ],
        }
    }
}

/// One thing a segment may be under its profile, with its prior share.
struct Hypothesis<'a> {
    prior: f64,
    class: Option<&'a SegmentClass>,
    /// Fails its broken checks on every attempt.
    broken: bool,
}

fn hypotheses(p: &Profile) -> Vec<Hypothesis<'_>> {
    if p.classes.is_empty() {
        return vec![
            Hypothesis {
                prior: 1.0 - p.systematic_fraction,
                class: None,
                broken: false,
            },
            Hypothesis {
                prior: p.systematic_fraction,
                class: None,
                broken: true,
            },
        ];
    }
    p.classes
        .iter()
        .map(|c| Hypothesis {
            prior: c.share,
            class: Some(c),
            broken: c.hopeless,
        })
        .collect()
}

/// The density of a uniform score range at `x`, for scores the simulation rounds to 0.001.
fn uniform_density(r: [f64; 2], x: f64) -> f64 {
    const HALF_STEP: f64 = 0.0005 + 1e-9;
    if x < r[0] - HALF_STEP || x > r[1] + HALF_STEP {
        0.0
    } else {
        1.0 / (r[1] - r[0]).max(0.001)
    }
}

/// What the model says about one check of one attempt under one hypothesis.
struct CheckModel {
    fail_probability: f64,
    fail_score: [f64; 2],
    pass_score: [f64; 2],
    /// Always fails, with scores in `fail_score`.
    broken: bool,
}

fn check_model(
    p: &Profile,
    h: &Hypothesis<'_>,
    check: &str,
    params: &Parameters,
) -> Option<CheckModel> {
    let cp = p.check_for(check, h.class)?;
    let broken = h.broken && p.broken_checks(h.class).contains(&check);
    let mut fail = cp.fail_probability;
    for s in &cp.sensitivity {
        if let Some(v) = params.get_f64(&s.param) {
            fail += s.per_unit * (v - s.optimum).abs();
        }
    }
    Some(CheckModel {
        fail_probability: fail.clamp(0.0, 1.0),
        fail_score: if broken {
            cp.systematic_score
        } else {
            cp.fail_score
        },
        pass_score: cp.pass_score,
        broken,
    })
}

/// ln P(this attempt's scores | hypothesis, its parameters).
fn log_likelihood(
    scene: &SceneSetup,
    h: &Hypothesis<'_>,
    view: &AttemptView,
    params: &Parameters,
) -> f64 {
    let Some(scores) = &view.scores else {
        return 0.0;
    };
    let mut ll = 0.0;
    for (check, result) in &scores.checks {
        let Some(m) = check_model(&scene.profile, h, check, params) else {
            continue;
        };
        let density = if m.broken {
            uniform_density(m.fail_score, result.score)
        } else {
            m.fail_probability * uniform_density(m.fail_score, result.score)
                + (1.0 - m.fail_probability) * uniform_density(m.pass_score, result.score)
        };
        ll += density.max(1e-300).ln();
    }
    ll
}

/// P(an attempt with these parameters passes every check | hypothesis).
fn pass_probability(scene: &SceneSetup, h: &Hypothesis<'_>, params: &Parameters) -> f64 {
    scene
        .checks
        .iter()
        .filter(|c| c.enabled)
        .filter_map(|c| check_model(&scene.profile, h, &c.check, params))
        .map(|m| {
            if m.broken {
                0.0
            } else {
                1.0 - m.fail_probability
            }
        })
        .product()
}

/// (P(next attempt passes), P(the segment is hopeless)) from log-posterior weights.
fn predictive(
    scene: &SceneSetup,
    hs: &[Hypothesis<'_>],
    log_w: &[f64],
    params: &Parameters,
) -> (f64, f64) {
    let top = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !top.is_finite() {
        return (0.0, 1.0);
    }
    let (mut pass, mut hopeless, mut total) = (0.0, 0.0, 0.0);
    for (h, lw) in hs.iter().zip(log_w) {
        let w = (lw - top).exp();
        pass += w * pass_probability(scene, h, params);
        if h.broken {
            hopeless += w;
        }
        total += w;
    }
    (pass / total, hopeless / total)
}

/// One segment under the informed rule at `threshold`.
fn run_segment(
    policy: &RetryPolicy,
    scene: &SceneSetup,
    spec: &SegmentSpec,
    arm: retake_core::Arm,
    rule: Rule,
    threshold: f64,
) -> SegmentOutcome {
    let first = first_attempt(scene, spec);
    if first.0.passed {
        return segment(spec, vec![first], Some(1));
    }
    let hs = hypotheses(&scene.profile);
    let mut log_w: Vec<f64> = hs
        .iter()
        .map(|h| h.prior.max(0.0).ln() + log_likelihood(scene, h, &first.1, &spec.parameters))
        .collect();
    let first_seed = first.1.seed;
    let mut judged: Vec<(AttemptOutcome, AttemptView)> = vec![first];
    for (n, seed, params) in draws(policy, spec, first_seed, arm) {
        let (pass, hopeless) = predictive(scene, &hs, &log_w, &params);
        let bar = match rule {
            Rule::PerAttempt => threshold,
            Rule::PerHopelessRetry => threshold * hopeless,
        };
        if pass < bar || pass == 0.0 {
            break;
        }
        let attempt = judge(scene, spec, n, seed, &params, Some(arm));
        if attempt.0.passed {
            judged.push(attempt);
            return segment(spec, judged, Some(n));
        }
        for (lw, h) in log_w.iter_mut().zip(&hs) {
            *lw += log_likelihood(scene, h, &attempt.1, &params);
        }
        judged.push(attempt);
    }
    segment(spec, judged, None)
}

/// Every segment of the corpus under the informed `rule` at `threshold`, with the oracle's arm
/// per scene type; every failure is retried, as naive fixed-N does.
pub fn informed(
    corpus: &Corpus,
    policy: &RetryPolicy,
    arms: &[OracleArm],
    rule: Rule,
    threshold: f64,
) -> Vec<SegmentOutcome> {
    corpus
        .segments
        .iter()
        .map(|spec| {
            let arm = arms
                .get(spec.scene)
                .map(|a| a.arm)
                .unwrap_or(retake_core::Arm::Jitter);
            run_segment(
                policy,
                &corpus.scenes[spec.scene],
                spec,
                arm,
                rule,
                threshold,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::corpus;
    use super::super::local::oracle;
    use super::*;
    use retake_engine::backends::Scenario;

    fn shipped(name: &str) -> Scenario {
        Scenario::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../../examples/scenarios/{name}.toml")),
        )
        .unwrap()
    }

    #[test]
    fn a_zero_threshold_is_fixed_n_and_a_higher_one_stops_broken_segments_first() {
        // Broken segments fail in a narrow band (0.30..0.33) inside the failing range.
        let scenario = shipped("rescue-stochastic");
        let c = corpus::build(&scenario, 800, 9);
        let policy = RetryPolicy {
            enabled: true,
            max_attempts: 4,
            ..RetryPolicy::default()
        };
        let (_, arms) = oracle(&c, &policy);
        let all = informed(&c, &policy, &arms, Rule::PerAttempt, 0.0);
        for o in all.iter().filter(|o| o.failed_first() && !o.passed) {
            assert_eq!(
                o.attempts.len(),
                4,
                "segment {}: threshold 0 retries on",
                o.index
            );
        }
        let strict = informed(&c, &policy, &arms, Rule::PerAttempt, 0.03);
        let broken_retries = |v: &[SegmentOutcome]| -> usize {
            v.iter().filter(|o| o.systematic).map(|o| o.retries()).sum()
        };
        assert!(
            c.segments.iter().any(|s| s.systematic),
            "the corpus has broken segments"
        );
        assert!(
            broken_retries(&strict) * 2 < broken_retries(&all),
            "{} vs {}",
            broken_retries(&strict),
            broken_retries(&all)
        );
        // Stopping hopeless segments costs few rescues: the posterior tells them apart.
        let rescued = |v: &[SegmentOutcome]| v.iter().filter(|o| o.rescued()).count();
        assert!(
            rescued(&strict) * 100 >= rescued(&all) * 97,
            "{} vs {}",
            rescued(&strict),
            rescued(&all)
        );
        assert!(strict.iter().filter(|o| o.systematic).all(|o| !o.passed));
    }

    #[test]
    fn the_posterior_follows_the_scores() {
        let scenario = shipped("rescue-classes");
        let c = corpus::build(&scenario, 50, 1);
        let at_scene = c
            .scenes
            .iter()
            .position(|s| s.name == "establishing")
            .unwrap();
        let scene = &c.scenes[at_scene];
        let spec = c.segments.iter().find(|g| g.scene == at_scene).unwrap();
        let hs = hypotheses(&scene.profile);
        let hopeless = hs.iter().position(|h| h.broken).unwrap();
        let params = Parameters::new();
        let at = |score: f64| {
            let mut view = first_attempt(scene, spec).1;
            let q = view.scores.as_mut().unwrap();
            q.checks.get_mut("sharpness").unwrap().score = score;
            let lw: Vec<f64> = hs
                .iter()
                .map(|h| h.prior.ln() + log_likelihood(scene, h, &view, &params))
                .collect();
            let top = lw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = lw.iter().map(|l| (l - top).exp()).sum();
            (lw[hopeless] - top).exp() / z
        };
        // A failing score outside the hopeless band [0.15, 0.32] rules it out; inside, the
        // hopeless class is more likely than its 15% share (its band is narrower).
        assert!(at(0.36) < 1e-12, "{}", at(0.36));
        let inside = at(0.25);
        assert!(inside > 0.15 && inside < 1.0, "{inside}");
    }
}
