//! The opt-in strategies that make retries cheaper: systematic-failure detection, adaptive
//! variation (a Thompson-sampling bandit over [`Arm`]s), and cost-aware stopping. Each returns its
//! reasoning as text so it can be recorded on the attempt or segment it influences.

use crate::decide::AttemptView;
use crate::policy::RetryPolicy;
use crate::rng::{attempt_rng, Arm};
use crate::status::AttemptStatus;
use rand::Rng;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A scene type's record for one check: how often it was judged and failed, and how often a
/// segment that failed it was rescued by a retry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckStats {
    pub attempts: u32,
    pub failures: u32,
    pub rescues: u32,
}

/// How often retries with one arm, after a failure of one check, passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArmStats {
    pub tries: u32,
    pub rescues: u32,
}

/// What a scene type has learnt, loaded by the store before each decision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SceneStats {
    pub checks: BTreeMap<String, CheckStats>,
    /// check → arm → outcomes.
    pub arms: BTreeMap<String, BTreeMap<Arm, ArmStats>>,
    /// Recent `overall` scores of passing attempts of this scene type.
    pub passing_overall: Vec<f64>,
    /// Recent share of attempts that pass (0..=1), when known.
    pub pass_rate: Option<f64>,
    /// Decayed evidence of the stopping rule (`min_rescue_probability`), per check.
    pub rescue: crate::rescue::RescueHistory,
}

/// Judged attempts of a check before its failure rate can call a workflow broken.
pub const BROKEN_MIN_ATTEMPTS: u32 = 20;
/// Failure share at or above which a check is called broken for the scene type.
pub const BROKEN_FAILURE_RATE: f64 = 0.9;
/// Share of retries drawn uniformly, whatever the posteriors say.
pub const EXPLORATION_FLOOR: f64 = 0.1;

#[derive(Debug, Clone, PartialEq)]
pub struct SystematicEvidence {
    pub check: String,
    pub rule: &'static str,
    pub scores: Vec<f64>,
    pub why: String,
}

impl SystematicEvidence {
    pub fn to_json(&self) -> Value {
        json!({"check": self.check, "rule": self.rule, "scores": self.scores, "explanation": self.why})
    }
}

/// Evidence that a new seed will not help, or `None`.
///
/// - `stuck_scores`: the same check failed on two or more seeds of this segment and its scores
///   spread no more than `systematic_max_spread`.
/// - `broken_workflow`: over the scene type's recent attempts, the check fails at least 90% of the
///   time (with at least 20 judged).
pub fn systematic_evidence(
    policy: &RetryPolicy,
    attempts: &[AttemptView],
    stats: &SceneStats,
) -> Option<SystematicEvidence> {
    let failed: Vec<&AttemptView> = attempts
        .iter()
        .filter(|a| a.status == AttemptStatus::Failed)
        .collect();
    let mut per_check: BTreeMap<&str, Vec<(u64, f64)>> = BTreeMap::new();
    for a in &failed {
        if let Some(s) = &a.scores {
            for (check, r) in &s.checks {
                if r.verdict == crate::qa::Verdict::Fail {
                    per_check.entry(check).or_default().push((a.seed, r.score));
                }
            }
        }
    }
    for (check, rows) in &per_check {
        let mut seeds: Vec<u64> = rows.iter().map(|r| r.0).collect();
        seeds.sort_unstable();
        seeds.dedup();
        if seeds.len() >= 2 {
            let lo = rows.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
            let hi = rows.iter().map(|r| r.1).fold(f64::NEG_INFINITY, f64::max);
            if hi - lo <= policy.systematic_max_spread {
                let scores: Vec<f64> = rows.iter().map(|r| r.1).collect();
                return Some(SystematicEvidence {
                    check: check.to_string(),
                    rule: "stuck_scores",
                    why: format!(
                        "{check} failed on {} different seeds with scores within {:.3} of each other ({}); a new seed is not moving it",
                        seeds.len(),
                        hi - lo,
                        scores.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(", ")
                    ),
                    scores,
                });
            }
        }
    }
    for (check, rows) in &per_check {
        if let Some(cs) = stats.checks.get(*check) {
            if cs.attempts >= BROKEN_MIN_ATTEMPTS {
                let rate = cs.failures as f64 / cs.attempts as f64;
                if rate >= BROKEN_FAILURE_RATE {
                    return Some(SystematicEvidence {
                        check: check.to_string(),
                        rule: "broken_workflow",
                        scores: rows.iter().map(|r| r.1).collect(),
                        why: format!(
                            "{check} failed {} of the scene type's last {} attempts ({:.0}%): the workflow looks broken, not unlucky",
                            cs.failures,
                            cs.attempts,
                            rate * 100.0
                        ),
                    });
                }
            }
        }
    }
    None
}

/// Pick the variation arm for retry `attempt_number` by Thompson sampling on Beta(1 + rescues,
/// 1 + misses) posteriors for the failed check, with a uniform exploration floor. Deterministic
/// for a given segment RNG seed, attempt number and statistics.
pub fn choose_arm(
    rng_seed: u64,
    attempt_number: u32,
    check: Option<&str>,
    stats: &SceneStats,
) -> (Arm, String) {
    // A separate stream from the attempt's own draws, so the choice does not shift the jitter.
    let mut rng = attempt_rng(rng_seed, attempt_number + 1_000_000);
    let check = check.unwrap_or("overall");
    let table = stats.arms.get(check);
    let explore: f64 = rng.random();
    let samples: Vec<(Arm, f64, ArmStats)> = Arm::ALL
        .iter()
        .map(|arm| {
            let s = table.and_then(|t| t.get(arm)).copied().unwrap_or_default();
            let beta = Beta::new(
                1.0 + s.rescues as f64,
                1.0 + (s.tries - s.rescues.min(s.tries)) as f64,
            )
            .expect("positive Beta parameters");
            (*arm, beta.sample(&mut rng), s)
        })
        .collect();
    if explore < EXPLORATION_FLOOR {
        let i = rng.random_range(0..Arm::ALL.len());
        let (arm, _, s) = samples[i];
        return (
            arm,
            format!(
                "{}: exploring (uniform pick, {:.0}% floor); so far rescued {} of {} {check} failures in this scene type",
                arm.as_str(),
                EXPLORATION_FLOOR * 100.0,
                s.rescues,
                s.tries
            ),
        );
    }
    let (arm, draw, s) = samples
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("arms are not empty");
    (
        arm,
        format!(
            "{}: rescued {} of {} {check} failures in this scene type (Thompson draw {:.2})",
            arm.as_str(),
            s.rescues,
            s.tries,
            draw
        ),
    )
}

/// In best-of-N, stop once the expected gain in `overall` of one more attempt, per GPU-second,
/// falls below `min_gain`. The gain is E[max(X − best, 0)] · P(pass) over the scene type's recent
/// passing scores X. With fewer than 5 scores there is no evidence and the search goes on.
pub fn cost_aware_stop(
    best: &AttemptView,
    min_gain: f64,
    estimate_gpu_seconds: f64,
    stats: &SceneStats,
) -> Option<String> {
    let xs = &stats.passing_overall;
    if xs.len() < 5 || estimate_gpu_seconds <= 0.0 {
        return None;
    }
    let b = best.overall().unwrap_or(0.0);
    let p_pass = stats.pass_rate.unwrap_or(1.0);
    let ei = xs.iter().map(|x| (x - b).max(0.0)).sum::<f64>() / xs.len() as f64 * p_pass;
    let per_s = ei / estimate_gpu_seconds;
    if per_s < min_gain {
        Some(format!(
            "cost-aware stop: attempt {} (overall {b:.2}) kept; one more attempt is expected to gain {ei:.4} overall for ~{estimate_gpu_seconds:.1} GPU-s ({per_s:.5}/s < {min_gain})",
            best.attempt_number
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa::{CheckResult, QualityScores, Verdict};

    fn failed(n: u32, seed: u64, face: f64) -> AttemptView {
        let mut checks = BTreeMap::new();
        checks.insert(
            "face_confidence".to_owned(),
            CheckResult {
                score: face,
                warn: 0.7,
                fail: 0.5,
                verdict: Verdict::Fail,
                details: Value::Null,
            },
        );
        AttemptView {
            attempt_number: n,
            seed,
            status: AttemptStatus::Failed,
            scores: Some(QualityScores {
                overall: face,
                checks,
            }),
            gpu_seconds: 10.0,
            arm: None,
            workflow_error: false,
            round: 1,
        }
    }

    #[test]
    fn stuck_scores_fire_but_moving_scores_do_not() {
        let p = RetryPolicy {
            systematic_detection: true,
            ..RetryPolicy::default()
        };
        let stats = SceneStats::default();
        let stuck = [failed(1, 1, 0.31), failed(2, 2, 0.33)];
        assert!(systematic_evidence(&p, &stuck, &stats).is_some());
        let unlucky = [failed(1, 1, 0.12), failed(2, 2, 0.41)];
        assert!(systematic_evidence(&p, &unlucky, &stats).is_none());
        let one = [failed(1, 1, 0.3)];
        assert!(systematic_evidence(&p, &one, &stats).is_none());
    }

    #[test]
    fn broken_history_fires() {
        let p = RetryPolicy {
            systematic_detection: true,
            ..RetryPolicy::default()
        };
        let mut stats = SceneStats::default();
        stats.checks.insert(
            "face_confidence".into(),
            CheckStats {
                attempts: 40,
                failures: 39,
                rescues: 0,
            },
        );
        let ev = systematic_evidence(&p, &[failed(1, 1, 0.2)], &stats).unwrap();
        assert_eq!(ev.rule, "broken_workflow");
    }

    #[test]
    fn bandit_prefers_the_arm_that_rescues() {
        let mut stats = SceneStats::default();
        let mut t = BTreeMap::new();
        for arm in Arm::ALL {
            t.insert(
                arm,
                ArmStats {
                    tries: 30,
                    rescues: if arm == Arm::CfgDown { 27 } else { 3 },
                },
            );
        }
        stats.arms.insert("face_confidence".into(), t);
        let picks = (0..500u64)
            .filter(|s| choose_arm(*s, 2, Some("face_confidence"), &stats).0 == Arm::CfgDown)
            .count();
        assert!(picks > 400, "cfg_down chosen {picks} of 500");
        let (_, why) = choose_arm(3, 2, Some("face_confidence"), &stats);
        assert!(why.contains("face_confidence failures"), "{why}");
    }

    #[test]
    fn cost_aware_stops_when_better_is_unlikely() {
        let stats = SceneStats {
            passing_overall: vec![0.80, 0.82, 0.81, 0.79, 0.83, 0.80],
            ..SceneStats::default()
        };
        let mut best = failed(2, 2, 0.84);
        best.status = AttemptStatus::Passed;
        assert!(cost_aware_stop(&best, 0.0001, 10.0, &stats).is_some());
        best.scores.as_mut().unwrap().overall = 0.5;
        assert!(cost_aware_stop(&best, 0.0001, 10.0, &stats).is_none());
    }
}
