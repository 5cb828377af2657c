//! The retry decision: what happens to a segment after one of its attempts reaches a terminal
//! state. One pure function, [`decide`], used by the engine, the review "re-run" action and the
//! benchmarks alike.

use crate::budget::BudgetView;
use crate::params::{ParamDomain, Parameters};
use crate::policy::{RetryPolicy, SelectionMode};
use crate::qa::QualityScores;
use crate::rescue;
use crate::rng::{draw_attempt, Arm, DrawInput, JitterProvenance};
use crate::select::{best_passing, first_passing};
use crate::status::{AttemptStatus, ReviewReason};
use crate::strategy::{self, SceneStats};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// What the decision needs to know about one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptView {
    pub attempt_number: u32,
    pub seed: u64,
    pub status: AttemptStatus,
    pub scores: Option<QualityScores>,
    pub gpu_seconds: f64,
    pub arm: Option<Arm>,
    /// An infrastructure error that is the workflow's fault (the server refused it).
    pub workflow_error: bool,
    /// 1 for the automatic attempts after submission; each human re-run starts the next round.
    /// Only the latest round's attempts decide what happens next.
    pub round: u32,
}

impl AttemptView {
    pub fn overall(&self) -> Option<f64> {
        self.scores.as_ref().map(|s| s.overall)
    }
}

pub struct DecisionInput<'a> {
    pub policy: &'a RetryPolicy,
    /// The segment's submitted parameters (attempt 1's).
    pub original: &'a Parameters,
    /// The segment's recorded RNG seed.
    pub rng_seed: u64,
    /// Every attempt of the segment so far, any order.
    pub attempts: &'a [AttemptView],
    pub budget: BudgetView,
    /// GPU seconds one more attempt reserves.
    pub estimate_gpu_seconds: f64,
    /// Parameter domains narrowed by the generation server; empty uses the defaults.
    pub domains: &'a BTreeMap<String, ParamDomain>,
    /// What the scene type has learnt so far (used by the opt-in strategies).
    pub stats: &'a SceneStats,
}

/// One attempt the decision asks the store to queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedAttempt {
    pub attempt_number: u32,
    pub seed: u64,
    pub parameters: Parameters,
    pub jitter: JitterProvenance,
    /// Why this variation was chosen (the adaptive strategy's reasoning, or the default).
    pub why: String,
    /// The round it belongs to: the current one for an automatic retry, the next for a re-run.
    #[serde(default = "first_round")]
    pub round: u32,
}

fn first_round() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Queue these attempts (one, or up to `parallelism`).
    Retry {
        attempts: Vec<PlannedAttempt>,
        why: String,
        /// The stopping rule's numbers when it was consulted (`Null` otherwise), for replay.
        evidence: Value,
    },
    /// The segment passes with this attempt as its output.
    Select { attempt_number: u32, why: String },
    /// Send the segment to a human.
    Escalate {
        reason: ReviewReason,
        why: String,
        evidence: Value,
    },
    /// Attempts are still in flight; decide again when they finish.
    Wait { why: String },
}

impl Decision {
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::Retry { .. } => "retry_scheduled",
            Decision::Select { .. } => "selected",
            Decision::Escalate { .. } => "escalated",
            Decision::Wait { .. } => "waiting",
        }
    }

    pub fn why(&self) -> &str {
        match self {
            Decision::Retry { why, .. }
            | Decision::Select { why, .. }
            | Decision::Escalate { why, .. }
            | Decision::Wait { why } => why,
        }
    }
}

/// Whether an attempt of the segment before `before` passed `check`: a later failure of it is
/// then the seed's, not the workflow's (`retry_regressions`).
fn passed_before(attempts: &[AttemptView], before: u32, check: &str) -> bool {
    attempts.iter().any(|a| {
        a.attempt_number < before
            && a.scores
                .as_ref()
                .and_then(|s| s.checks.get(check))
                .is_some_and(|r| r.verdict != crate::qa::Verdict::Fail)
    })
}

fn describe_failures(a: &AttemptView) -> String {
    let Some(s) = &a.scores else {
        return format!("attempt {} has no scores", a.attempt_number);
    };
    let parts: Vec<String> = s
        .checks
        .iter()
        .filter(|(_, r)| r.verdict == crate::qa::Verdict::Fail)
        .map(|(k, r)| format!("{k} {:.2} < fail {:.2}", r.score, r.fail))
        .collect();
    parts.join(", ")
}

/// Decide what happens next. See ARCHITECTURE.md for the rules in prose.
pub fn decide(input: &DecisionInput<'_>) -> Decision {
    let policy = input.policy;
    if let Some(a) = input.attempts.iter().find(|a| a.status.is_in_flight()) {
        return Decision::Wait {
            why: format!("attempt {} is still {}", a.attempt_number, a.status),
        };
    }
    // A human re-run starts a new round: what happened before it was already judged by a person,
    // so only the current round's attempts count towards the limits and the escalations.
    let round = current_round(input.attempts);
    let mut attempts: Vec<&AttemptView> =
        input.attempts.iter().filter(|a| a.round == round).collect();
    attempts.sort_by_key(|a| a.attempt_number);
    let owned: Vec<AttemptView> = attempts.iter().map(|a| (*a).clone()).collect();
    let Some(latest) = attempts.last() else {
        return Decision::Wait {
            why: "no attempt has run yet".into(),
        };
    };
    // Attempts of this round so far; `max_attempts` bounds each round.
    let count = attempts.len() as u32;
    let round_prefix = if round > 1 {
        format!("round {round}: ")
    } else {
        String::new()
    };

    if let Some(a) = attempts
        .iter()
        .rev()
        .find(|a| a.status == AttemptStatus::QaError)
    {
        return Decision::Escalate {
            reason: ReviewReason::QaError,
            why: format!(
                "QA could not score attempt {}; a QA error is never retried or passed",
                a.attempt_number
            ),
            evidence: json!({"attempt_number": a.attempt_number}),
        };
    }

    if let Some(a) = attempts
        .iter()
        .rev()
        .find(|a| a.status == AttemptStatus::InfraError)
    {
        let (reason, why) = if a.workflow_error {
            (
                ReviewReason::WorkflowError,
                format!(
                    "the generation server refused attempt {}'s workflow; a new seed cannot fix it",
                    a.attempt_number
                ),
            )
        } else {
            (
                ReviewReason::InfraError,
                format!(
                    "attempt {} kept failing for infrastructure reasons",
                    a.attempt_number
                ),
            )
        };
        return Decision::Escalate {
            reason,
            why,
            evidence: json!({"attempt_number": a.attempt_number}),
        };
    }

    if latest.status == AttemptStatus::Cancelled {
        if let Some(b) = best_passing(&owned) {
            return select(policy, &owned, b.attempt_number, count);
        }
        return Decision::Escalate {
            reason: ReviewReason::BudgetExhausted,
            why: format!(
                "attempt {} was refused or stopped by the project's GPU budget",
                latest.attempt_number
            ),
            evidence: json!({"attempt_number": latest.attempt_number}),
        };
    }

    let retrying = attempts.iter().any(|a| a.status == AttemptStatus::Failed);
    let best = best_passing(&owned);

    // Stop with a winner where the selection mode says so.
    if let Some(b) = best {
        let stop = match policy.selection_mode {
            SelectionMode::FirstPass => true,
            _ if !retrying || !policy.enabled => true,
            SelectionMode::TargetScore => {
                b.overall().unwrap_or(0.0) >= policy.target_score.unwrap_or(1.0)
            }
            SelectionMode::BestOfN => false,
        };
        if stop {
            return select(policy, &owned, b.attempt_number, count);
        }
    }

    let failed_latest = latest.status == AttemptStatus::Failed;
    let mut regressed: Vec<String> = Vec::new();
    if failed_latest && best.is_none() {
        if !policy.enabled {
            return Decision::Escalate {
                reason: ReviewReason::RetryDisabled,
                why: format!(
                    "attempt {} failed ({}) and auto-retry is off for this scene type",
                    latest.attempt_number,
                    describe_failures(latest)
                ),
                evidence: json!({"failed_checks": latest.scores.as_ref().map(|s| s.failed_checks())}),
            };
        }
        let failed = latest
            .scores
            .as_ref()
            .map(|s| s.failed_checks())
            .unwrap_or_default();
        let non_trigger: Vec<&str> = failed
            .iter()
            .copied()
            .filter(|c| !policy.trigger_checks.contains(*c))
            .collect();
        let regressions = policy.retry_regressions
            && !non_trigger.is_empty()
            && non_trigger
                .iter()
                .all(|c| passed_before(&owned, latest.attempt_number, c));
        if regressions {
            regressed = non_trigger.iter().map(|c| c.to_string()).collect();
        }
        if !non_trigger.is_empty() && !regressions {
            return Decision::Escalate {
                reason: ReviewReason::NonRetriableCheck,
                why: format!(
                    "attempt {} failed {} which {} not among the trigger checks [{}]",
                    latest.attempt_number,
                    non_trigger.join(", "),
                    if non_trigger.len() == 1 { "is" } else { "are" },
                    policy
                        .trigger_checks
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                evidence: json!({"non_trigger_checks": non_trigger, "failed_checks": failed}),
            };
        }
    }

    if count >= policy.max_attempts as u32 {
        return match best {
            Some(b) => select(policy, &owned, b.attempt_number, count),
            None => Decision::Escalate {
                reason: ReviewReason::AllAttemptsFailed,
                why: format!(
                    "{round_prefix}all {count} attempts failed (max_attempts {} counts the {}); last: {}",
                    policy.max_attempts,
                    if round > 1 { "re-run" } else { "original" },
                    describe_failures(latest)
                ),
                evidence: json!({"attempts": count, "round": round}),
            },
        };
    }

    if policy.systematic_detection && best.is_none() {
        if let Some(ev) = strategy::systematic_evidence(policy, &owned, input.stats) {
            return Decision::Escalate {
                reason: ReviewReason::SystematicFailure,
                why: ev.why.clone(),
                evidence: ev.to_json(),
            };
        }
    }

    if let (Some(b), Some(min_gain)) = (best, policy.min_gain_per_gpu_second) {
        if let Some(stop) =
            strategy::cost_aware_stop(b, min_gain, input.estimate_gpu_seconds, input.stats)
        {
            return Decision::Select {
                attempt_number: b.attempt_number,
                why: stop,
            };
        }
    }

    // Seeds stay unique over the whole segment, every round included; numbers continue.
    let mut seeds: Vec<u64> = input.attempts.iter().map(|a| a.seed).collect();
    let next_number = input
        .attempts
        .iter()
        .map(|a| a.attempt_number)
        .max()
        .unwrap_or(0)
        + 1;
    let failed_check = latest
        .scores
        .as_ref()
        .and_then(|s| s.failed_checks().first().map(|c| c.to_string()));
    let arm_for = |n: u32| {
        if policy.adaptive_variation {
            strategy::choose_arm(input.rng_seed, n, failed_check.as_deref(), input.stats)
        } else {
            (
                Arm::Jitter,
                "default: new seed and uniform jitter within the configured ranges".to_owned(),
            )
        }
    };
    let first_arm = arm_for(next_number);

    // The stopping rule: go on only while the next attempt is likely enough to pass.
    let mut assessment = None;
    if let (Some(min_p), None) = (policy.min_rescue_probability, best) {
        if let Some(a) = rescue::assess(
            &input.stats.rescue,
            &owned,
            input.rng_seed,
            first_arm.0,
            min_p,
        ) {
            if a.stop() {
                return Decision::Escalate {
                    reason: ReviewReason::SystematicFailure,
                    why: format!(
                        "stopping: {}; one more attempt (~{:.1} GPU-s) is not worth it",
                        a.explain(),
                        input.estimate_gpu_seconds
                    ),
                    evidence: a.to_json(),
                };
            }
            assessment = Some(a);
        }
    }

    let wanted = (policy.parallelism as u32).min(policy.max_attempts as u32 - count);
    let affordable = input.budget.affordable(input.estimate_gpu_seconds, wanted);
    if affordable == 0 {
        let remaining = input.budget.remaining().unwrap_or(f64::INFINITY);
        let why = format!(
            "one more attempt needs an estimated {:.1} GPU-s but only {:.1} remain in the project's budget",
            input.estimate_gpu_seconds, remaining
        );
        return match best {
            Some(b) => Decision::Select {
                attempt_number: b.attempt_number,
                why: format!("best passing attempt kept: {why}"),
            },
            None => Decision::Escalate {
                reason: ReviewReason::BudgetExhausted,
                why,
                evidence: json!({"estimate_gpu_seconds": input.estimate_gpu_seconds, "remaining_gpu_seconds": remaining}),
            },
        };
    }

    let mut planned = Vec::new();
    for i in 0..affordable {
        let n = next_number + i;
        let (arm, arm_why) = if i == 0 {
            first_arm.clone()
        } else {
            arm_for(n)
        };
        let (seed, parameters, jitter) = draw_attempt(&DrawInput {
            policy,
            original: input.original,
            rng_seed: input.rng_seed,
            attempt_number: n,
            previous_seeds: &seeds,
            arm,
            domains: input.domains,
        });
        seeds.push(seed);
        planned.push(PlannedAttempt {
            attempt_number: n,
            seed,
            parameters,
            jitter,
            why: arm_why,
            round,
        });
    }
    let reason = if let Some(b) = best {
        format!(
            "best of N: attempt {} passed with overall {:.2}; trying for better",
            b.attempt_number,
            b.overall().unwrap_or(0.0)
        )
    } else {
        format!(
            "attempt {} failed ({})",
            latest.attempt_number,
            describe_failures(latest)
        )
    };
    let reason = if regressed.is_empty() {
        reason
    } else {
        format!(
            "{reason}; {} passed on an earlier attempt, so retried as the seed's luck (retry_regressions)",
            regressed.join(", ")
        )
    };
    let reason = match &assessment {
        Some(a) => format!("{reason}; {}", a.explain()),
        None => reason,
    };
    let numbers: Vec<String> = planned
        .iter()
        .map(|p| p.attempt_number.to_string())
        .collect();
    let changes: Vec<String> = planned
        .iter()
        .map(|p| describe_change(p, input.original))
        .collect();
    let scheduling = if round > 1 {
        let retries: Vec<String> = (0..planned.len() as u32)
            .map(|i| (count + i).to_string())
            .collect();
        format!(
            "scheduling attempt {} (round {round}: retry {} of up to {})",
            numbers.join(", "),
            retries.join(", "),
            policy.max_attempts - 1
        )
    } else {
        format!(
            "scheduling attempt {} of up to {}",
            numbers.join(", "),
            policy.max_attempts
        )
    };
    Decision::Retry {
        why: format!("{reason}; {scheduling} ({})", changes.join("; ")),
        attempts: planned,
        evidence: retry_evidence(assessment.map(|a| a.to_json()), &regressed),
    }
}

/// A retry's recorded numbers: the stopping rule's, and the regressed checks it retried.
fn retry_evidence(assessment: Option<Value>, regressed: &[String]) -> Value {
    match (assessment, regressed.is_empty()) {
        (a, true) => a.unwrap_or(Value::Null),
        (Some(Value::Object(mut m)), false) => {
            m.insert("retried_regressions".into(), json!(regressed));
            Value::Object(m)
        }
        (_, false) => json!({ "retried_regressions": regressed }),
    }
}

/// The round the latest attempt belongs to (1 when there are none).
pub fn current_round(attempts: &[AttemptView]) -> u32 {
    attempts.iter().map(|a| a.round).max().unwrap_or(1).max(1)
}

/// Where a segment stands within its current round, for "round 2: retries 1 of up to 3".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundCount {
    pub round: u32,
    /// Attempts of the round (the original or the re-run included).
    pub attempts: u32,
    /// Automatic retries of the round: its attempts beyond the first.
    pub retries: u32,
}

impl RoundCount {
    pub fn of(attempts: &[AttemptView]) -> RoundCount {
        let round = current_round(attempts);
        let n = attempts.iter().filter(|a| a.round == round).count() as u32;
        RoundCount {
            round,
            attempts: n,
            retries: n.saturating_sub(1),
        }
    }

    /// "retries 2 of up to 3", with "round 2: " in front after a human re-run.
    pub fn describe(&self, max_attempts: u32) -> String {
        let core = format!(
            "retries {} of up to {}",
            self.retries,
            max_attempts.saturating_sub(1)
        );
        if self.round > 1 {
            format!("round {}: {core}", self.round)
        } else {
            core
        }
    }
}

fn select(policy: &RetryPolicy, attempts: &[AttemptView], n: u32, count: u32) -> Decision {
    let a = attempts
        .iter()
        .find(|a| a.attempt_number == n)
        .expect("selected attempt exists");
    let overall = a.overall().unwrap_or(0.0);
    let why = match policy.selection_mode {
        _ if count == 1 => format!("attempt {n} passed (overall {overall:.2})"),
        SelectionMode::FirstPass => {
            format!("attempt {n} is the first to pass (overall {overall:.2})")
        }
        SelectionMode::TargetScore if overall >= policy.target_score.unwrap_or(1.0) => {
            format!(
                "attempt {n} reached the target score {:.2} (overall {overall:.2})",
                policy.target_score.unwrap_or(1.0)
            )
        }
        _ => {
            let first = first_passing(attempts)
                .map(|f| f.attempt_number)
                .unwrap_or(n);
            if first == n {
                format!("attempt {n} has the best overall ({overall:.2}) of {count} attempts")
            } else {
                format!(
                    "best of N: attempt {n} (overall {overall:.2}) beat the first passing attempt {first} ({:.2})",
                    attempts.iter().find(|a| a.attempt_number == first).and_then(AttemptView::overall).unwrap_or(0.0)
                )
            }
        }
    };
    Decision::Select {
        attempt_number: n,
        why,
    }
}

/// "attempt 3: seed 123, cfg_scale 7 → 7.32".
pub fn describe_change(p: &PlannedAttempt, original: &Parameters) -> String {
    let mut parts = vec![format!("seed {}", p.seed)];
    for (k, (before, after)) in p.parameters.diff(original) {
        if k != "seed" {
            parts.push(format!("{k} {before} → {after}"));
        }
    }
    format!("attempt {}: {}", p.attempt_number, parts.join(", "))
}

/// Why a human re-run cannot be scheduled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RerunError {
    #[error("jitter_scale must be a number in 1..=4; got {0}")]
    JitterScale(f64),
    #[error("one more attempt needs an estimated {estimate:.1} GPU-s but only {remaining:.1} remain in the project's budget")]
    Budget { estimate: f64, remaining: f64 },
    #[error("{0} (field {1})")]
    Parameter(String, String),
}

/// Plan the attempt a reviewer asks for: the segment's parameters with the reviewer's values laid
/// over them, a new seed and jitter scaled by `jitter_scale`. It counts against the budget like any
/// attempt and may go beyond `max_attempts`, since a human asked for it.
pub fn plan_rerun(
    input: &DecisionInput<'_>,
    parameter_overrides: Option<&Parameters>,
    jitter_scale: Option<f64>,
) -> Result<PlannedAttempt, RerunError> {
    let scale = jitter_scale.unwrap_or(1.0);
    let (lo, hi) = crate::limits::JITTER_SCALE;
    if !(scale.is_finite() && (lo..=hi).contains(&scale)) {
        return Err(RerunError::JitterScale(scale));
    }
    if input.budget.affordable(input.estimate_gpu_seconds, 1) == 0 {
        return Err(RerunError::Budget {
            estimate: input.estimate_gpu_seconds,
            remaining: input.budget.remaining().unwrap_or(0.0),
        });
    }
    let mut base = input.original.clone();
    if let Some(o) = parameter_overrides {
        o.validate_for_scene(input.original, input.domains)
            .map_err(|(f, m)| RerunError::Parameter(m, f))?;
        for (k, v) in &o.0 {
            base.set(k, v.clone());
        }
    }
    let mut policy = input.policy.clone();
    policy.seed_variation = true;
    policy.cfg_jitter *= scale;
    policy.denoise_jitter *= scale;
    for v in policy.extra_jitter.values_mut() {
        *v *= scale;
    }
    let n = input
        .attempts
        .iter()
        .map(|a| a.attempt_number)
        .max()
        .unwrap_or(0)
        + 1;
    let seeds: Vec<u64> = input.attempts.iter().map(|a| a.seed).collect();
    let (seed, parameters, jitter) = draw_attempt(&DrawInput {
        policy: &policy,
        original: &base,
        rng_seed: input.rng_seed,
        attempt_number: n,
        previous_seeds: &seeds,
        arm: Arm::Jitter,
        domains: input.domains,
    });
    Ok(PlannedAttempt {
        attempt_number: n,
        seed,
        parameters,
        jitter,
        why: format!("re-run requested in review (jitter ×{scale})"),
        round: current_round(input.attempts) + 1,
    })
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
