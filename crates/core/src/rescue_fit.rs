//! Fitting the stopping rule's model to one scene type × check's decayed counts: a mixture of
//! kinds of failed segment — hopeless (no seed passes them) and rescuable ones at each pass rate
//! of [`PASS_RATE_GRID`] (summed as flaky, passing few retries, and ok, passing most) — and the
//! failing-score densities of hopeless vs rescuable segments.
//!
//! One pass rate per scene type × check made a flaky segment that failed three retries look
//! hopeless; a spread of rates lets its misses count against the ok kinds, not only for
//! hopelessness. Pure: the counts in, the model out.

use super::{bin, RescueCounts, RETRY_SLOTS, SCORE_BINS};
use crate::rng::Arm;
use std::collections::BTreeMap;

/// Scores of rescued segments needed before their own density replaces the uniform one over the
/// failing range (see `score_density`).
pub const MIN_SCORES: f64 = 10.0;
/// Hopeless segments' scores (in signal-to-noise terms) needed before failing scores count as
/// evidence at all. Fewer than [`MIN_SCORES`]: the density is shrunk towards all failing scores
/// anyway, and a scene type with few hopeless segments would otherwise never use their scores.
pub const MIN_HOPELESS_SCORES: f64 = 5.0;
/// A single score can make hopelessness at most this many times likelier…
pub const MAX_SCORE_RATIO: f64 = 8.0;
/// …and a rescue at most this many times likelier (a score where hopeless segments never fail
/// is strong evidence, and a wrong "rescuable" only costs one more attempt).
pub const MAX_RESCUABLE_SCORE_RATIO: f64 = 12.0;
/// Pseudo-scores pulling each score density towards all failing scores of the check.
pub const SCORE_PRIOR: f64 = 10.0;

const MAX_PASS_RATE: f64 = 0.95;
const MIN_PASS_RATE: f64 = 0.02;
/// Retries of the pooled rate an arm's own rate is shrunk towards.
const ARM_PRIOR: f64 = 20.0;

/// Rescuable segments of one kind (flaky or ok): their share of failed segments and their mean
/// pass rate per retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateClass {
    pub share: f64,
    pub pass_rate: f64,
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
    /// Shares of failed segments by kind: hopeless, then each rate of [`PASS_RATE_GRID`].
    pub kinds: [f64; KINDS],
    /// The rescuable kinds summed: flaky (rates below [`FLAKY_BELOW`]) and ok.
    pub flaky: RateClass,
    pub ok: RateClass,
    /// Mean per-attempt pass rate of a rescuable segment (all arms).
    pub pass_rate: f64,
    /// Each arm's pass share relative to all arms', for arms with retries on record.
    pub arm_factor: BTreeMap<Arm, f64>,
    /// `pass_rate` × the arm's factor.
    pub arm_pass_rate: BTreeMap<Arm, f64>,
    /// Failing-score densities by bin (sum 1) of rescued and of hopeless segments, when there are
    /// enough scores of both.
    pub score_density: Option<([f64; SCORE_BINS], [f64; SCORE_BINS])>,
}

/// Rescued segments by retries made (the passing one included), slot 0 unused. Counts written
/// before the histogram existed only have the total and the sum of retries: they are spread
/// as a geometric distribution with their mean over the retries segments were given (up to the
/// most an unrescued segment got).
fn rescued_by_retries(c: &RescueCounts) -> [f64; RETRY_SLOTS] {
    let mut r = c.rescued_after;
    r[0] = 0.0;
    let known: f64 = r.iter().sum();
    let rest = c.rescued - known;
    if rest > 1e-9 {
        let known_retries: f64 = r.iter().enumerate().map(|(k, x)| k as f64 * x).sum();
        let p = (rest / (c.rescued_retries - known_retries).max(rest)).clamp(0.05, 1.0);
        let most = (1..RETRY_SLOTS)
            .rev()
            .find(|k| c.unrescued[*k] > 0.0)
            .unwrap_or(RETRY_SLOTS - 1);
        let weights: Vec<f64> = (1..=most)
            .map(|k| (1.0 - p).powi(k as i32 - 1) * p)
            .collect();
        let total: f64 = weights.iter().sum();
        for (k, w) in (1..=most).zip(weights) {
            r[k] += rest * w / total;
        }
    }
    r
}

/// The pass rates a rescuable segment may have: the fit learns how failed segments spread over
/// them (and over "hopeless"), not the rates themselves, so it has one best answer (the shares'
/// EM is convex) and cannot fold two kinds into one. Rates below [`FLAKY_BELOW`] are "flaky".
pub const PASS_RATE_GRID: [f64; 5] = [0.4, 0.55, 0.7, 0.85, 0.95];
pub const FLAKY_BELOW: f64 = 0.6;
/// Pseudo-segments per kind (hopeless and each rate) in the shares' Dirichlet prior.
const SHARE_PRIOR: f64 = 0.2;
const KINDS: usize = PASS_RATE_GRID.len() + 1;

/// Pass rate of kind `j`: 0 for hopeless (kind 0), else the grid's.
fn kind_rate(j: usize) -> f64 {
    if j == 0 {
        0.0
    } else {
        PASS_RATE_GRID[j - 1]
    }
}

struct Mixture {
    /// Hopeless, then one share per rate of [`PASS_RATE_GRID`].
    share: [f64; KINDS],
    /// Per unrescued slot: P(rescuable | ended unrescued after k retries).
    rescuable_unrescued: [f64; RETRY_SLOTS],
}

/// Unrescued segments as `(retries, likelihood ratio of their scores, count)`: the ones the rule
/// stopped with the ratio it stopped them on, the rest with 1 (their scores not weighed).
fn unrescued_cells(c: &RescueCounts) -> Vec<(usize, f64, f64)> {
    let mut cells = Vec::new();
    for k in 0..RETRY_SLOTS {
        let mut plain = c.unrescued[k];
        for (_, b, x) in c
            .unrescued_lr
            .range((k, i32::MIN)..=(k, i32::MAX))
            .map(|((k, b), x)| (k, b, x))
        {
            let x = x.min(plain.max(0.0));
            plain -= x;
            cells.push((k, 2f64.powi(*b), x));
        }
        cells.push((k, 1.0, plain.max(0.0)));
    }
    cells
}

/// P(kind | ended unrescued after `k` retries, scores with likelihood ratio `lr`).
fn unrescued_posterior(share: &[f64; KINDS], k: usize, lr: f64) -> [f64; KINDS] {
    let mut l = [0.0; KINDS];
    for (j, x) in l.iter_mut().enumerate() {
        // A hopeless segment always misses; a rescuable one missed k times.
        *x = if j == 0 {
            share[0] * lr
        } else {
            share[j] * (1.0 - kind_rate(j)).powi(k as i32)
        };
    }
    let t: f64 = l.iter().sum::<f64>().max(1e-300);
    l.map(|x| x / t)
}

/// EM over the latent kind of each failed segment (the shares only; the rates are the grid's).
fn mixture(rescued: &[f64; RETRY_SLOTS], unrescued: &[(usize, f64, f64)]) -> Mixture {
    let n: f64 = rescued.iter().sum::<f64>() + unrescued.iter().map(|c| c.2).sum::<f64>();
    let mut share = [1.0 / KINDS as f64; KINDS];
    for _ in 0..3000 {
        let mut mass = [SHARE_PRIOR; KINDS];
        for &(k, lr, x) in unrescued {
            let p = unrescued_posterior(&share, k, lr);
            for j in 0..KINDS {
                mass[j] += x * p[j];
            }
        }
        for (k, &x) in rescued.iter().enumerate().skip(1) {
            if x <= 0.0 {
                continue;
            }
            let mut l = [0.0; KINDS];
            for (j, y) in l.iter_mut().enumerate().skip(1) {
                let q = kind_rate(j);
                *y = share[j] * (1.0 - q).powi(k as i32 - 1) * q;
            }
            let t: f64 = l.iter().sum::<f64>().max(1e-300);
            for j in 1..KINDS {
                mass[j] += x * l[j] / t;
            }
        }
        let total = n + SHARE_PRIOR * KINDS as f64;
        let next = mass.map(|m| m / total);
        let change: f64 = (0..KINDS).map(|j| (next[j] - share[j]).abs()).sum();
        share = next;
        if change < 1e-9 {
            break;
        }
    }
    let mut rescuable_unrescued = [0.0; RETRY_SLOTS];
    let mut count = [0.0; RETRY_SLOTS];
    for &(k, lr, x) in unrescued {
        let p = unrescued_posterior(&share, k, lr);
        rescuable_unrescued[k] += x * (1.0 - p[0]);
        count[k] += x;
    }
    for k in 0..RETRY_SLOTS {
        if count[k] > 0.0 {
            rescuable_unrescued[k] /= count[k];
        }
    }
    Mixture {
        share,
        rescuable_unrescued,
    }
}

/// Fit the model to decayed counts.
pub fn fit(c: &RescueCounts) -> RescueModel {
    let rescued = rescued_by_retries(c);
    let mix = mixture(&rescued, &unrescued_cells(c));
    let summary = |flaky: bool| {
        let (mut share, mut rate) = (0.0, 0.0);
        for (j, q) in PASS_RATE_GRID.iter().enumerate() {
            if (*q < FLAKY_BELOW) == flaky {
                share += mix.share[j + 1];
                rate += mix.share[j + 1] * q;
            }
        }
        RateClass {
            share,
            pass_rate: if share > 0.0 { rate / share } else { 0.0 },
        }
    };
    let (flaky, ok) = (summary(true), summary(false));
    let h = mix.share[0];
    let pass_rate = (flaky.share * flaky.pass_rate + ok.share * ok.pass_rate) / (1.0 - h);
    // Arms: every arm's raw pass share is diluted by tries on hopeless segments in the same way,
    // so an arm's share (shrunk towards the pooled one) relative to the pooled share says how
    // much better or worse it does on rescuable segments.
    let tries: f64 = c.arm_tries.values().sum();
    let passes: f64 = c.arm_passes.values().sum();
    let mut arm_factor = BTreeMap::new();
    let mut arm_pass_rate = BTreeMap::new();
    if tries > 0.0 && passes > 0.0 {
        let pooled = passes / tries;
        for (arm, t) in &c.arm_tries {
            let p = c.arm_passes.get(arm).copied().unwrap_or(0.0);
            let f = (p + ARM_PRIOR * pooled) / (t + ARM_PRIOR) / pooled;
            arm_factor.insert(*arm, f);
            arm_pass_rate.insert(*arm, (pass_rate * f).clamp(MIN_PASS_RATE, MAX_PASS_RATE));
        }
    }
    RescueModel {
        evidence: c.informative(),
        segments: c.segments(),
        hopeless_share: h,
        kinds: mix.share,
        flaky,
        ok,
        pass_rate,
        arm_factor,
        arm_pass_rate,
        score_density: score_density(c, &mix.rescuable_unrescued),
    }
}

/// Failing-score densities of rescued and hopeless segments. Unrescued segments' scores mix
/// hopeless and unlucky rescuable ones; the unlucky ones score like rescued segments' failures,
/// so their expected share is taken out.
fn score_density(
    c: &RescueCounts,
    rescuable_unrescued: &[f64; RETRY_SLOTS],
) -> Option<([f64; SCORE_BINS], [f64; SCORE_BINS])> {
    let rescued_scores: f64 = c.scores_rescued.iter().sum();
    let unresc_scores: f64 = c.scores_unrescued.iter().sum();
    let attempts_unresc: f64 = (0..RETRY_SLOTS)
        .map(|k| c.unrescued[k] * (k + 1) as f64)
        .sum();
    let attempts_rescuable: f64 = (0..RETRY_SLOTS)
        .map(|k| c.unrescued[k] * rescuable_unrescued[k] * (k + 1) as f64)
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
    if hopeless_weight < MIN_HOPELESS_SCORES {
        return None;
    }
    let pooled_total = rescued_scores + unresc_scores;
    let pooled: Vec<f64> = (0..SCORE_BINS)
        .map(|b| (c.scores_rescued[b] + c.scores_unrescued[b]) / pooled_total)
        .collect();
    let mut fr = [0.0; SCORE_BINS];
    let scarce = rescued_scores < MIN_SCORES;
    if scarce {
        // Too few rescues to know how rescuable segments fail (a scene type where the rule stops
        // most failures learns them slowly): assume they fail anywhere in the range failing
        // scores are seen in, with what rescues there are as evidence. The hopeless segments'
        // own density still says where *they* fail, so a score outside it reads as rescuable.
        // Some bin has scores: the hopeless ones that passed the check above.
        let lo = pooled.iter().position(|p| *p > 0.0).unwrap_or(0);
        let hi = pooled
            .iter()
            .rposition(|p| *p > 0.0)
            .unwrap_or(SCORE_BINS - 1);
        let width = (hi - lo + 1) as f64;
        for (b, x) in fr.iter_mut().enumerate() {
            let prior = if (lo..=hi).contains(&b) {
                1.0 / width
            } else {
                0.0
            };
            *x = (c.scores_rescued[b] + SCORE_PRIOR * prior) / (rescued_scores + SCORE_PRIOR);
        }
    } else {
        for (b, x) in fr.iter_mut().enumerate() {
            *x = c.scores_rescued[b] / rescued_scores;
        }
    }
    let mut fh = [0.0; SCORE_BINS];
    for b in 0..SCORE_BINS {
        fh[b] = (c.scores_unrescued[b] - unresc_scores * share_rescuable * fr[b]).max(0.0);
    }
    // Both densities shrink towards the pooled failing scores (SCORE_PRIOR pseudo-scores), then
    // get a little uniform mass: when few segments are hopeless, what is left after taking the
    // unlucky ones out is mostly noise, and it must not read as evidence. (The rescued density
    // built from the range above has its prior already.)
    let shrink = |v: &mut [f64; SCORE_BINS], n: f64, prior: bool| {
        let total: f64 = v.iter().sum::<f64>().max(1e-12);
        for (b, x) in v.iter_mut().enumerate() {
            let own = *x / total;
            let p = if prior {
                (n * own + SCORE_PRIOR * pooled[b]) / (n + SCORE_PRIOR)
            } else {
                own
            };
            *x = 0.97 * p + 0.03 / SCORE_BINS as f64;
        }
    };
    shrink(&mut fr, rescued_scores, !scarce);
    shrink(&mut fh, hopeless_weight, true);
    Some((fr, fh))
}

impl RescueModel {
    /// The mean rescuable pass rate of `arm`.
    pub fn pass_rate_of(&self, arm: Arm) -> f64 {
        self.arm_pass_rate
            .get(&arm)
            .copied()
            .unwrap_or(self.pass_rate)
    }

    /// A rescuable kind's pass rate with `arm`.
    pub fn class_rate(&self, class: &RateClass, arm: Arm) -> f64 {
        self.rate_with(class.pass_rate, arm)
    }

    /// A pass rate on all arms, scaled to `arm`.
    pub fn rate_with(&self, rate: f64, arm: Arm) -> f64 {
        (rate * self.arm_factor.get(&arm).copied().unwrap_or(1.0))
            .clamp(MIN_PASS_RATE, MAX_PASS_RATE)
    }

    /// How much likelier a failing score is from a hopeless segment than from a rescuable one.
    pub fn score_ratio(&self, score: f64) -> f64 {
        match &self.score_density {
            Some((fr, fh)) => (fh[bin(score)] / fr[bin(score)])
                .clamp(1.0 / MAX_RESCUABLE_SCORE_RATIO, MAX_SCORE_RATIO),
            None => 1.0,
        }
    }
}
