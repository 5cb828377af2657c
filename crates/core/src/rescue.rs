//! The evidence-based stopping rule (`min_rescue_probability`): will the next attempt of a failed
//! segment pass, and could it be rescued at all?
//!
//! Per scene type and per check, the store keeps what finished segments taught (a [`RescueRecord`]
//! per segment whose attempt 1 failed, folded into [`RescueCounts`] buckets). [`fit`] turns the
//! decayed counts into a [`RescueModel`] (`rescue_fit.rs`): how failed segments spread over
//! "hopeless" (no seed passes them) and a grid of per-retry pass rates (flaky segments pass few
//! retries, ok ones most), scaled per variation arm, and the failing-score distributions of
//! hopeless vs rescued segments. [`assess`] combines the model with one segment's own failures
//! and scores into a posterior over those kinds, P(pass next) and P(hopeless).
//!
//! Hopelessness is never observed directly: a segment that ended without passing may have been
//! unlucky. The fit treats the kind as latent (a mixture fitted by EM over the counts of segments
//! by how many retries they got, rescued or not); a segment the rule stopped is counted with the
//! score ratio it was stopped on, so stopping early on scores does not bias what the rule learns.
//! The rule stops a segment only when both P(pass next) and P(rescuable) are small, the latter
//! scaled to how many segments the scene type's rule stops ([`Assessment::max_p_rescuable`]).
//! Pure: no I/O, no clock; the store passes the counts in.

use crate::decide::AttemptView;
use crate::qa::Verdict;
use crate::rng::Arm;
use crate::status::AttemptStatus;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Failing scores are counted in this many equal bins over 0..=1.
pub const SCORE_BINS: usize = 32;
/// Unrescued segments are counted by retries made, 0..=9 (`max_attempts` ≤ 10).
pub const RETRY_SLOTS: usize = 10;
/// Evidence halves in weight for every this many newer failed segments of the same scene type
/// and check, so a workflow that was fixed recovers its retries.
pub const HALF_LIFE_SEGMENTS: f64 = 200.0;
/// Weighted segments that retried at least once (or were rescued) before the rule may stop a
/// segment; below it the policy retries like fixed-N.
pub const MIN_EVIDENCE: f64 = 10.0;
/// Share of failed segments (chosen from the segment's `rng_seed`) retried like fixed-N whatever
/// the model says, so the evidence keeps coming when the model would stop everything.
pub const EXPLORATION_SHARE: f64 = 0.05;
/// Rescues the rule may give up, per failed segment, as a share of its threshold (see
/// [`Assessment::max_p_rescuable`]). P(rescuable) at a stop averages about half its bound, so at
/// the preset's threshold 0.1 the rule gives up about one rescue per hundred failed segments —
/// the most the preset may lose against fixed-N. (0.3 gave up 1.3 points on one bench mix.)
pub const LOSS_SHARE: f64 = 0.2;
/// The largest pass rate a failed retry is judged against (see [`assess`]).
const PAST_PASS_RATE_CAP: f64 = 0.85;

#[path = "rescue_fit.rs"]
mod model;
pub use model::{
    fit, RateClass, RescueModel, FLAKY_BELOW, MAX_RESCUABLE_SCORE_RATIO, MAX_SCORE_RATIO,
    MIN_SCORES, PASS_RATE_GRID, SCORE_PRIOR,
};

/// What one finished segment whose attempt 1 failed contributes.
#[derive(Debug, Clone, PartialEq)]
pub struct RescueRecord {
    /// The check the segment is learnt under: the first failed check of attempt 1.
    pub check: String,
    pub rescued: bool,
    /// Judged attempts after attempt 1 (the passing one included).
    pub retries: u32,
    /// The check's score on each attempt that failed it.
    pub failing_scores: Vec<f64>,
    /// Each judged retry's arm and whether it passed.
    pub arms: Vec<(Arm, bool)>,
    /// When the stopping rule stopped the segment: its failing scores' likelihood ratio
    /// (hopeless : rescuable) at the stop. The fit weighs the segment with it, so segments the
    /// rule stopped early on their scores are not taken for unlucky rescuable ones.
    pub score_ratio: Option<f64>,
}

fn judged(a: &AttemptView) -> bool {
    matches!(a.status, AttemptStatus::Passed | AttemptStatus::Failed) && a.scores.is_some()
}

/// The first failed check of attempt 1, when attempt 1 failed QA.
pub fn primary_check(attempts: &[AttemptView]) -> Option<String> {
    let first = attempts.iter().find(|a| a.attempt_number == 1)?;
    if first.status != AttemptStatus::Failed {
        return None;
    }
    first
        .scores
        .as_ref()?
        .failed_checks()
        .first()
        .map(|c| c.to_string())
}

fn failing_scores(check: &str, attempts: &[AttemptView]) -> Vec<f64> {
    let mut v: Vec<(u32, f64)> = attempts
        .iter()
        .filter(|a| a.status == AttemptStatus::Failed)
        .filter_map(|a| {
            let r = a.scores.as_ref()?.checks.get(check)?;
            (r.verdict == Verdict::Fail).then_some((a.attempt_number, r.score))
        })
        .collect();
    v.sort_by_key(|x| x.0);
    v.into_iter().map(|x| x.1).collect()
}

impl RescueRecord {
    /// The record of a segment that just ended (`rescued`: it ended passed), or `None` when its
    /// attempt 1 did not fail QA.
    pub fn from_attempts(attempts: &[AttemptView], rescued: bool) -> Option<RescueRecord> {
        let check = primary_check(attempts)?;
        let retries: Vec<&AttemptView> = attempts
            .iter()
            .filter(|a| a.attempt_number >= 2 && judged(a))
            .collect();
        Some(RescueRecord {
            failing_scores: failing_scores(&check, attempts),
            check,
            rescued,
            retries: retries.len() as u32,
            arms: retries
                .iter()
                .map(|a| {
                    (
                        a.arm.unwrap_or(Arm::Jitter),
                        a.status == AttemptStatus::Passed,
                    )
                })
                .collect(),
            score_ratio: None,
        })
    }

    /// The same, remembering the stopping rule's evidence when it stopped the segment (the
    /// segment's `review_evidence`; anything else is ignored).
    pub fn with_stop_evidence(mut self, evidence: &Value) -> RescueRecord {
        if !self.rescued && evidence["rule"] == "rescue_model" {
            self.score_ratio = evidence["score_ratio"]
                .as_f64()
                .filter(|r| r.is_finite() && *r > 0.0);
        }
        self
    }
}

/// Likelihood ratios of stopped segments are counted by the nearest power of two, 2^-8..=2^8.
const LR_BINS: i32 = 8;

fn lr_bin(ratio: f64) -> i32 {
    (ratio.log2().round() as i32).clamp(-LR_BINS, LR_BINS)
}

fn bin(score: f64) -> usize {
    ((score.clamp(0.0, 1.0) * SCORE_BINS as f64) as usize).min(SCORE_BINS - 1)
}

/// Weighted counts of finished failed segments for one scene type and check (one bucket, or the
/// decayed sum of all of them). Stored as `(key, value)` rows; see [`RescueCounts::entries`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RescueCounts {
    /// Failed segments that ended passed.
    pub rescued: f64,
    /// Retries those segments ran, the passing one included.
    pub rescued_retries: f64,
    /// The same segments by retries ran (slot 0 unused): how fast rescuable segments pass.
    pub rescued_after: [f64; RETRY_SLOTS],
    /// Failed segments that ended without passing, by retries made.
    pub unrescued: [f64; RETRY_SLOTS],
    /// Of those, the ones the stopping rule stopped, by (retries made, power of two of their
    /// scores' likelihood ratio).
    pub unrescued_lr: BTreeMap<(usize, i32), f64>,
    /// Failing scores (of the check) of rescued segments, by bin.
    pub scores_rescued: [f64; SCORE_BINS],
    /// Failing scores of unrescued segments, by bin.
    pub scores_unrescued: [f64; SCORE_BINS],
    /// Retries per arm, and how many of them passed.
    pub arm_tries: BTreeMap<Arm, f64>,
    pub arm_passes: BTreeMap<Arm, f64>,
}

impl RescueCounts {
    pub fn add(&mut self, r: &RescueRecord) {
        if r.rescued {
            self.rescued += 1.0;
            self.rescued_retries += r.retries as f64;
            self.rescued_after[(r.retries as usize).clamp(1, RETRY_SLOTS - 1)] += 1.0;
        } else {
            let k = (r.retries as usize).min(RETRY_SLOTS - 1);
            self.unrescued[k] += 1.0;
            if let Some(ratio) = r.score_ratio {
                *self.unrescued_lr.entry((k, lr_bin(ratio))).or_default() += 1.0;
            }
        }
        let hist = if r.rescued {
            &mut self.scores_rescued
        } else {
            &mut self.scores_unrescued
        };
        for s in &r.failing_scores {
            hist[bin(*s)] += 1.0;
        }
        for (arm, passed) in &r.arms {
            *self.arm_tries.entry(*arm).or_default() += 1.0;
            *self.arm_passes.entry(*arm).or_default() += *passed as u8 as f64;
        }
    }

    /// Segments counted (failed segments that ended).
    pub fn segments(&self) -> f64 {
        self.rescued + self.unrescued.iter().sum::<f64>()
    }

    /// Segments that say something about hopelessness: rescued, or retried at least once.
    pub fn informative(&self) -> f64 {
        self.rescued + self.unrescued[1..].iter().sum::<f64>()
    }

    /// The non-zero counts as `(key, value)`: `rescued`, `rescued_retries`, `rescued_after:K`,
    /// `unrescued:K`, `unrescued_lr:K:B`, `score_rescued:B`, `score_unrescued:B`, `arm_tries:ARM`,
    /// `arm_passes:ARM`.
    pub fn entries(&self) -> Vec<(String, f64)> {
        let mut v = vec![
            ("rescued".to_owned(), self.rescued),
            ("rescued_retries".to_owned(), self.rescued_retries),
        ];
        for (k, x) in self.rescued_after.iter().enumerate() {
            v.push((format!("rescued_after:{k}"), *x));
        }
        for (k, x) in self.unrescued.iter().enumerate() {
            v.push((format!("unrescued:{k}"), *x));
        }
        for ((k, b), x) in &self.unrescued_lr {
            v.push((format!("unrescued_lr:{k}:{b}"), *x));
        }
        for (b, x) in self.scores_rescued.iter().enumerate() {
            v.push((format!("score_rescued:{b}"), *x));
        }
        for (b, x) in self.scores_unrescued.iter().enumerate() {
            v.push((format!("score_unrescued:{b}"), *x));
        }
        for (a, x) in &self.arm_tries {
            v.push((format!("arm_tries:{}", a.as_str()), *x));
        }
        for (a, x) in &self.arm_passes {
            v.push((format!("arm_passes:{}", a.as_str()), *x));
        }
        v.retain(|(_, x)| *x != 0.0);
        v
    }

    /// Add one stored row back; unknown keys are ignored (returns false).
    pub fn add_entry(&mut self, key: &str, value: f64) -> bool {
        let (name, index) = match key.split_once(':') {
            Some((n, i)) => (n, Some(i)),
            None => (key, None),
        };
        let slot = |i: Option<&str>, len: usize| {
            i.and_then(|i| i.parse::<usize>().ok()).filter(|i| *i < len)
        };
        match (name, index) {
            ("rescued", None) => self.rescued += value,
            ("rescued_retries", None) => self.rescued_retries += value,
            ("rescued_after", i) => match slot(i, RETRY_SLOTS) {
                Some(k) => self.rescued_after[k] += value,
                None => return false,
            },
            ("unrescued", i) => match slot(i, RETRY_SLOTS) {
                Some(k) => self.unrescued[k] += value,
                None => return false,
            },
            ("unrescued_lr", i) => {
                let kb = i.and_then(|i| i.split_once(':')).and_then(|(k, b)| {
                    let k = k.parse::<usize>().ok().filter(|k| *k < RETRY_SLOTS)?;
                    let b = b.parse::<i32>().ok().filter(|b| b.abs() <= LR_BINS)?;
                    Some((k, b))
                });
                match kb {
                    Some(kb) => *self.unrescued_lr.entry(kb).or_default() += value,
                    None => return false,
                }
            }
            ("score_rescued", i) => match slot(i, SCORE_BINS) {
                Some(b) => self.scores_rescued[b] += value,
                None => return false,
            },
            ("score_unrescued", i) => match slot(i, SCORE_BINS) {
                Some(b) => self.scores_unrescued[b] += value,
                None => return false,
            },
            ("arm_tries", Some(a)) => match Arm::parse(a) {
                Some(a) => *self.arm_tries.entry(a).or_default() += value,
                None => return false,
            },
            ("arm_passes", Some(a)) => match Arm::parse(a) {
                Some(a) => *self.arm_passes.entry(a).or_default() += value,
                None => return false,
            },
            _ => return false,
        }
        true
    }

    fn add_scaled(&mut self, o: &RescueCounts, w: f64) {
        self.rescued += w * o.rescued;
        self.rescued_retries += w * o.rescued_retries;
        for k in 0..RETRY_SLOTS {
            self.rescued_after[k] += w * o.rescued_after[k];
            self.unrescued[k] += w * o.unrescued[k];
        }
        for (kb, x) in &o.unrescued_lr {
            *self.unrescued_lr.entry(*kb).or_default() += w * x;
        }
        for b in 0..SCORE_BINS {
            self.scores_rescued[b] += w * o.scores_rescued[b];
            self.scores_unrescued[b] += w * o.scores_unrescued[b];
        }
        for (a, x) in &o.arm_tries {
            *self.arm_tries.entry(*a).or_default() += w * x;
        }
        for (a, x) in &o.arm_passes {
            *self.arm_passes.entry(*a).or_default() += w * x;
        }
    }
}

/// Buckets of counts for one scene type and check, in any order: `(bucket, counts)` where a
/// larger bucket is newer. The weight of a bucket is ½ per [`HALF_LIFE_SEGMENTS`] failed segments
/// counted in newer buckets (half of its own count too, so a bucket decays within itself).
pub fn decayed(buckets: &[(i64, RescueCounts)]) -> RescueCounts {
    let mut order: Vec<&(i64, RescueCounts)> = buckets.iter().collect();
    order.sort_by_key(|b| std::cmp::Reverse(b.0));
    let mut out = RescueCounts::default();
    let mut newer = 0.0;
    for (_, c) in order {
        let n = c.segments();
        let w = 0.5f64.powf((newer + n / 2.0) / HALF_LIFE_SEGMENTS);
        out.add_scaled(c, w);
        newer += n;
    }
    out
}

/// What a scene type has learnt about rescuing segments, per check (the decayed counts).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RescueHistory {
    pub checks: BTreeMap<String, RescueCounts>,
}

/// The stopping rule's verdict on one failed segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub check: String,
    /// P(the next attempt passes).
    pub p_pass: f64,
    /// P(this segment is hopeless), given its own failures and scores.
    pub p_hopeless: f64,
    /// P(this segment is of the flaky kind), likewise.
    pub p_flaky: f64,
    pub next_arm: Arm,
    /// The next arm's pass rate on this segment if it is rescuable (its kinds weighed by the
    /// posterior).
    pub arm_pass_rate: f64,
    pub failures: u32,
    pub scores: Vec<f64>,
    /// Product of the scores' likelihood ratios (hopeless : rescuable).
    pub score_ratio: f64,
    pub model: RescueModel,
    /// Retry whatever P says: too little evidence, or this segment explores.
    pub retry_anyway: Option<&'static str>,
    pub threshold: f64,
}

impl Assessment {
    /// Stop when the next attempt passes with probability below the threshold *and* the
    /// segment is rescuable at all with probability below it too: a rescuable segment that
    /// passes few retries is not stopped on its pass rate alone (its stop would be a false
    /// systematic flag).
    pub fn stop(&self) -> bool {
        self.retry_anyway.is_none() && self.p_pass < self.threshold && !self.maybe_rescuable()
    }

    /// P(rescuable) = 1 − P(hopeless) is still at or above [`Assessment::max_p_rescuable`].
    fn maybe_rescuable(&self) -> bool {
        1.0 - self.p_hopeless >= self.max_p_rescuable()
    }

    /// The largest P(rescuable) at which the rule stops a segment: the threshold, scaled down
    /// where most failed segments are hopeless. The rule stops about as many segments as are
    /// hopeless, so the rescues it gives up per failed segment are about (hopeless share) ×
    /// P(rescuable at the stop); this keeps them under [`LOSS_SHARE`] × the threshold.
    pub fn max_p_rescuable(&self) -> f64 {
        self.threshold * (LOSS_SHARE / self.model.hopeless_share.max(1e-9)).min(1.0)
    }

    /// "P(pass next) 0.08 < 0.15: 2 failures of face_confidence (scores 0.31, 0.33) …".
    pub fn explain(&self) -> String {
        let m = &self.model;
        let scores = self
            .scores
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        let ratio = if m.score_density.is_some() && !self.scores.is_empty() {
            if self.score_ratio >= 1.0 {
                format!(
                    "; such scores are {:.1}× likelier from hopeless segments",
                    self.score_ratio
                )
            } else {
                format!(
                    "; such scores are {:.1}× likelier from rescued segments",
                    1.0 / self.score_ratio
                )
            }
        } else {
            String::new()
        };
        let cmp = if self.p_pass < self.threshold {
            "<"
        } else {
            "≥"
        };
        let arm = self.next_arm.as_str();
        let head = format!(
            "P(pass next) {:.2} {cmp} {:.2}: {} failure{} of {} (score{} {scores}){ratio}; {:.0}% of this scene type's {} failed segments were hopeless, {:.0}% flaky (passing {:.0}% of {arm} retries) and {:.0}% ok (passing {:.0}%), so a rescuable one passes {:.0}% of {arm} retries (evidence {:.0} segments) → P(hopeless) {:.2}, P(flaky) {:.2}",
            self.p_pass,
            self.threshold,
            self.failures,
            if self.failures == 1 { "" } else { "s" },
            self.check,
            if self.scores.len() == 1 { "" } else { "s" },
            m.hopeless_share * 100.0,
            self.check,
            m.flaky.share * 100.0,
            m.class_rate(&m.flaky, self.next_arm) * 100.0,
            m.ok.share * 100.0,
            m.class_rate(&m.ok, self.next_arm) * 100.0,
            m.pass_rate_of(self.next_arm) * 100.0,
            m.evidence,
            self.p_hopeless,
            self.p_flaky,
        );
        match self.retry_anyway {
            Some(why) => format!("{head}; retrying anyway: {why}"),
            None if self.p_pass < self.threshold && self.maybe_rescuable() => format!(
                "{head}; retrying: it may still be rescuable (P(rescuable) {:.3} ≥ {:.3})",
                1.0 - self.p_hopeless,
                self.max_p_rescuable()
            ),
            None => head,
        }
    }

    /// The numbers behind the decision, for the event and for replay.
    pub fn to_json(&self) -> Value {
        let m = &self.model;
        json!({
            "rule": "rescue_model",
            "check": self.check,
            "p_pass_next": round(self.p_pass),
            "threshold": self.threshold,
            "p_hopeless": round(self.p_hopeless),
            "p_flaky": round(self.p_flaky),
            "max_p_rescuable": round(self.max_p_rescuable()),
            "failures": self.failures,
            "scores": self.scores,
            "score_ratio": round(self.score_ratio),
            "next_arm": self.next_arm.as_str(),
            "arm_pass_rate": round(self.arm_pass_rate),
            "retry_anyway": self.retry_anyway,
            "model": {
                "evidence_segments": round(m.evidence),
                "failed_segments": round(m.segments),
                "hopeless_share": round(m.hopeless_share),
                "flaky": {"share": round(m.flaky.share), "pass_rate": round(m.flaky.pass_rate)},
                "ok": {"share": round(m.ok.share), "pass_rate": round(m.ok.pass_rate)},
                "pass_rate": round(m.pass_rate),
                "arm_pass_rate": m.arm_pass_rate.iter().map(|(a, p)| (a.as_str().to_owned(), json!(round(*p)))).collect::<serde_json::Map<_, _>>(),
                "score_evidence": m.score_density.is_some(),
            },
            "explanation": self.explain(),
        })
    }
}

fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Whether this segment is one of the [`EXPLORATION_SHARE`] retried like fixed-N whatever the
/// model says (a fixed function of its `rng_seed`).
pub fn explores(rng_seed: u64) -> bool {
    let mut z = rng_seed ^ 0xE7F1_0A5E_0000_0001;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 <= EXPLORATION_SHARE
}

/// P(pass next) for a segment whose attempts so far all failed, retried next with `next_arm`.
/// `None` when attempt 1 did not fail QA (nothing to assess).
pub fn assess(
    history: &RescueHistory,
    attempts: &[AttemptView],
    rng_seed: u64,
    next_arm: Arm,
    threshold: f64,
) -> Option<Assessment> {
    let check = primary_check(attempts)?;
    let counts = history.checks.get(&check).cloned().unwrap_or_default();
    let model = fit(&counts);
    let scores = failing_scores(&check, attempts);
    let failed: Vec<&AttemptView> = attempts
        .iter()
        .filter(|a| a.status == AttemptStatus::Failed)
        .collect();
    let score_ratio: f64 = scores.iter().map(|s| model.score_ratio(*s)).product();
    // Posterior over the kinds. Each failed retry was a miss a rescuable kind makes with
    // probability 1 − (its pass rate, capped); a hopeless segment always misses. The kinds'
    // rates over all arms, not the next arm's: an arm's rate rests on fewer retries.
    let failed_retries = failed.iter().filter(|a| a.attempt_number >= 2).count() as i32;
    let mut w = model.kinds;
    w[0] *= score_ratio;
    for (j, q) in PASS_RATE_GRID.iter().enumerate() {
        w[j + 1] *= (1.0 - q.min(PAST_PASS_RATE_CAP)).powi(failed_retries);
    }
    let total = w.iter().sum::<f64>().max(1e-300);
    let p_hopeless = w[0] / total;
    let (mut p_flaky, mut p_pass) = (0.0, 0.0);
    for (j, q) in PASS_RATE_GRID.iter().enumerate() {
        let p = w[j + 1] / total;
        if *q < FLAKY_BELOW {
            p_flaky += p;
        }
        p_pass += p * model.rate_with(*q, next_arm);
    }
    let arm_pass_rate = if p_hopeless < 1.0 {
        p_pass / (1.0 - p_hopeless)
    } else {
        model.pass_rate_of(next_arm)
    };
    let retry_anyway = if model.evidence < MIN_EVIDENCE {
        Some("too little evidence yet, retrying like fixed-N")
    } else if explores(rng_seed) {
        Some("this segment is one of the 5% retried like fixed-N to keep learning")
    } else {
        None
    };
    Some(Assessment {
        check,
        p_pass,
        p_hopeless,
        p_flaky,
        next_arm,
        arm_pass_rate,
        failures: failed.len() as u32,
        scores,
        score_ratio,
        model,
        retry_anyway,
        threshold,
    })
}

#[cfg(test)]
#[path = "rescue_tests.rs"]
mod tests;
