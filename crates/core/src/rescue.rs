//! The evidence-based stopping rule (`min_rescue_probability`): will the next attempt of a failed
//! segment pass?
//!
//! Per scene type and per check, the store keeps what finished segments taught (a [`RescueRecord`]
//! per segment whose attempt 1 failed, folded into [`RescueCounts`] buckets). [`fit`] turns the
//! decayed counts into a [`RescueModel`]: the share of failed segments that are hopeless (no seed
//! passes them), the per-attempt pass rate of the rescuable ones (overall and per variation arm),
//! and the failing-score distributions of hopeless vs rescued segments. [`assess`] combines the
//! model with one segment's own failures and scores into P(pass next).
//!
//! Hopelessness is never observed directly: a segment that ended without passing may have been
//! unlucky. The fit treats it as a latent class (a two-class mixture fitted by EM over the counts
//! of unrescued segments by how many retries they got), so a policy that stops early does not
//! bias what it learns. Pure: no I/O, no clock; the store passes the counts in.

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
pub const MIN_EVIDENCE: f64 = 20.0;
/// Share of failed segments (chosen from the segment's `rng_seed`) retried like fixed-N whatever
/// the model says, so the evidence keeps coming when the model would stop everything.
pub const EXPLORATION_SHARE: f64 = 0.05;
/// Scores of each kind needed before failing scores count as evidence.
pub const MIN_SCORES: f64 = 20.0;
/// A single score can shift the odds by at most this factor either way.
pub const MAX_SCORE_RATIO: f64 = 6.0;
/// Pseudo-scores pulling each score density towards all failing scores of the check.
pub const SCORE_PRIOR: f64 = 60.0;

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
        })
    }
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
    /// Failed segments that ended without passing, by retries made.
    pub unrescued: [f64; RETRY_SLOTS],
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
        } else {
            self.unrescued[(r.retries as usize).min(RETRY_SLOTS - 1)] += 1.0;
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

    /// The non-zero counts as `(key, value)`: `rescued`, `rescued_retries`, `unrescued:K`,
    /// `score_rescued:B`, `score_unrescued:B`, `arm_tries:ARM`, `arm_passes:ARM`.
    pub fn entries(&self) -> Vec<(String, f64)> {
        let mut v = vec![
            ("rescued".to_owned(), self.rescued),
            ("rescued_retries".to_owned(), self.rescued_retries),
        ];
        for (k, x) in self.unrescued.iter().enumerate() {
            v.push((format!("unrescued:{k}"), *x));
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
            ("unrescued", i) => match slot(i, RETRY_SLOTS) {
                Some(k) => self.unrescued[k] += value,
                None => return false,
            },
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
            self.unrescued[k] += w * o.unrescued[k];
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

/// The fitted model for one scene type and check.
#[derive(Debug, Clone, PartialEq)]
pub struct RescueModel {
    /// Weighted informative segments behind the fit (see [`RescueCounts::informative`]).
    pub evidence: f64,
    /// Weighted failed segments behind the fit.
    pub segments: f64,
    /// Share of failed segments that are hopeless.
    pub hopeless_share: f64,
    /// Per-attempt pass rate of a rescuable segment (all arms).
    pub pass_rate: f64,
    /// The same per arm, for arms with retries on record.
    pub arm_pass_rate: BTreeMap<Arm, f64>,
    /// Failing-score densities by bin (sum 1) of rescued and of hopeless segments, when there are
    /// enough scores of both.
    pub score_density: Option<([f64; SCORE_BINS], [f64; SCORE_BINS])>,
}

const MAX_PASS_RATE: f64 = 0.95;
/// The largest pass rate a failed retry is judged against (see [`assess`]).
const PAST_PASS_RATE_CAP: f64 = 0.85;
/// Retries of the pooled rate an arm's own rate is shrunk towards.
const ARM_PRIOR: f64 = 20.0;
const MIN_PASS_RATE: f64 = 0.02;

/// Fit the two-class model to decayed counts (EM over the latent "hopeless" class, with a
/// Beta(1, 1) prior on both rates).
pub fn fit(c: &RescueCounts) -> RescueModel {
    let (mut h, mut q) = (0.5f64, 0.5f64);
    let unresc: f64 = c.unrescued.iter().sum();
    let mut w = [0.0f64; RETRY_SLOTS];
    for _ in 0..200 {
        for (k, wk) in w.iter_mut().enumerate() {
            let stay = (1.0 - h) * (1.0 - q).powi(k as i32);
            *wk = h / (h + stay);
        }
        let hopeless: f64 = (0..RETRY_SLOTS).map(|k| c.unrescued[k] * w[k]).sum();
        let tries_rescuable: f64 = c.rescued_retries
            + (0..RETRY_SLOTS)
                .map(|k| c.unrescued[k] * (1.0 - w[k]) * k as f64)
                .sum::<f64>();
        let h2 = (hopeless + 1.0) / (c.rescued + unresc + 2.0);
        let q2 = ((c.rescued + 1.0) / (tries_rescuable + 2.0)).clamp(MIN_PASS_RATE, MAX_PASS_RATE);
        let done = (h2 - h).abs() < 1e-9 && (q2 - q).abs() < 1e-9;
        h = h2;
        q = q2;
        if done {
            break;
        }
    }
    // Arms: every arm's raw pass share is diluted by tries on hopeless segments in the same way,
    // so scale each arm's share (shrunk towards the pooled one) by the pooled dilution.
    let tries: f64 = c.arm_tries.values().sum();
    let passes: f64 = c.arm_passes.values().sum();
    let mut arm_pass_rate = BTreeMap::new();
    if tries > 0.0 && passes > 0.0 {
        let pooled = passes / tries;
        for (arm, t) in &c.arm_tries {
            let p = c.arm_passes.get(arm).copied().unwrap_or(0.0);
            let shrunk = (p + ARM_PRIOR * pooled) / (t + ARM_PRIOR);
            arm_pass_rate.insert(
                *arm,
                (q * shrunk / pooled).clamp(MIN_PASS_RATE, MAX_PASS_RATE),
            );
        }
    }
    // Scores: unrescued segments' scores mix hopeless and unlucky rescuable ones; the unlucky
    // ones score like rescued segments' failures, so take their expected share out.
    let rescued_scores: f64 = c.scores_rescued.iter().sum();
    let unresc_scores: f64 = c.scores_unrescued.iter().sum();
    let attempts_unresc: f64 = (0..RETRY_SLOTS)
        .map(|k| c.unrescued[k] * (k + 1) as f64)
        .sum();
    let attempts_rescuable: f64 = (0..RETRY_SLOTS)
        .map(|k| c.unrescued[k] * (1.0 - w[k]) * (k + 1) as f64)
        .sum();
    let share_rescuable = if attempts_unresc > 0.0 {
        attempts_rescuable / attempts_unresc
    } else {
        0.0
    };
    let hopeless_scores = unresc_scores * (1.0 - share_rescuable);
    // The residual's noise comes from all unrescued scores, not only the hopeless ones: its
    // worth in scores is its signal-to-noise (hopeless² / unrescued).
    let hopeless_weight = hopeless_scores * hopeless_scores / unresc_scores.max(1.0);
    let score_density =
        (rescued_scores >= MIN_SCORES && hopeless_weight >= MIN_SCORES).then(|| {
            let mut fr = [0.0; SCORE_BINS];
            let mut fh = [0.0; SCORE_BINS];
            for b in 0..SCORE_BINS {
                let r = c.scores_rescued[b] / rescued_scores;
                fr[b] = r;
                fh[b] = (c.scores_unrescued[b] - unresc_scores * share_rescuable * r).max(0.0);
            }
            // Both densities shrink towards the pooled failing scores (SCORE_PRIOR pseudo-scores),
            // then get a little uniform mass: when few segments are hopeless, what is left after
            // taking the unlucky ones out is mostly noise, and it must not read as evidence.
            let pooled_total = rescued_scores + unresc_scores;
            let pooled: Vec<f64> = (0..SCORE_BINS)
                .map(|b| (c.scores_rescued[b] + c.scores_unrescued[b]) / pooled_total)
                .collect();
            let shrink = |v: &mut [f64; SCORE_BINS], n: f64| {
                let total: f64 = v.iter().sum::<f64>().max(1e-12);
                for (b, x) in v.iter_mut().enumerate() {
                    let own = *x / total;
                    let p = (n * own + SCORE_PRIOR * pooled[b]) / (n + SCORE_PRIOR);
                    *x = 0.95 * p + 0.05 / SCORE_BINS as f64;
                }
            };
            shrink(&mut fr, rescued_scores);
            // The residual's noise comes from all unrescued scores, not only the hopeless ones:
            // weigh it by its signal-to-noise (hopeless² / unrescued).
            shrink(
                &mut fh,
                hopeless_scores * hopeless_scores / unresc_scores.max(1.0),
            );
            (fr, fh)
        });
    RescueModel {
        evidence: c.informative(),
        segments: c.segments(),
        hopeless_share: h,
        pass_rate: q,
        arm_pass_rate,
        score_density,
    }
}

impl RescueModel {
    pub fn pass_rate_of(&self, arm: Arm) -> f64 {
        self.arm_pass_rate
            .get(&arm)
            .copied()
            .unwrap_or(self.pass_rate)
    }

    /// How much likelier a failing score is from a hopeless segment than from a rescuable one.
    pub fn score_ratio(&self, score: f64) -> f64 {
        match &self.score_density {
            Some((fr, fh)) => {
                (fh[bin(score)] / fr[bin(score)]).clamp(1.0 / MAX_SCORE_RATIO, MAX_SCORE_RATIO)
            }
            None => 1.0,
        }
    }
}

/// The stopping rule's verdict on one failed segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub check: String,
    /// P(the next attempt passes).
    pub p_pass: f64,
    /// P(this segment is hopeless), given its own failures and scores.
    pub p_hopeless: f64,
    pub next_arm: Arm,
    /// The next arm's pass rate on rescuable segments.
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
    pub fn stop(&self) -> bool {
        self.retry_anyway.is_none() && self.p_pass < self.threshold
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
        let head = format!(
            "P(pass next) {:.2} {cmp} {:.2}: {} failure{} of {} (score{} {scores}){ratio}; {:.0}% of this scene type's {} failed segments were hopeless and rescuable ones pass {:.0}% of {} retries (evidence {:.0} segments) → P(hopeless) {:.2}",
            self.p_pass,
            self.threshold,
            self.failures,
            if self.failures == 1 { "" } else { "s" },
            self.check,
            if self.scores.len() == 1 { "" } else { "s" },
            m.hopeless_share * 100.0,
            self.check,
            self.arm_pass_rate * 100.0,
            self.next_arm.as_str(),
            m.evidence,
            self.p_hopeless,
        );
        match self.retry_anyway {
            Some(why) => format!("{head}; retrying anyway: {why}"),
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
    // Odds hopeless : rescuable. Each failed retry was a miss a rescuable segment makes with
    // probability 1 − (pass rate); a hopeless one always misses. The pooled rate, capped, not
    // the arm's: an arm's rate rests on fewer retries, and an optimistic one would turn two
    // unlucky misses into near-certainty.
    let miss = 1.0 - model.pass_rate.min(PAST_PASS_RATE_CAP);
    let mut odds = model.hopeless_share / (1.0 - model.hopeless_share) * score_ratio;
    let failed_retries = failed.iter().filter(|a| a.attempt_number >= 2).count();
    odds /= miss.powi(failed_retries as i32);
    let p_hopeless = odds / (1.0 + odds);
    let arm_pass_rate = model.pass_rate_of(next_arm);
    let p_pass = (1.0 - p_hopeless) * arm_pass_rate;
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
