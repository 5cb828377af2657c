//! The numbers each strategy is judged by, from its segments' outcomes, and the simulated wall
//! time of running the corpus on a pool of GPUs.

use super::corpus::Corpus;
use super::outcome::SegmentOutcome;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub name: String,
    /// `engine` (the real engine and store) or `bench-local` (a loop over the core functions).
    pub runs_on: &'static str,
    pub segments: usize,
    /// Segments whose attempt 1 failed QA.
    pub failed_first: usize,
    /// Of those, segments that ended passed.
    pub rescued: usize,
    /// rescued / failed_first.
    pub rescue_rate: f64,
    /// The same, over segments whose attempt 1 failed trigger checks only (what a scene type
    /// asks retake to retry).
    pub rescue_rate_trigger_failures: f64,
    /// GPU-seconds of every attempt numbered 2 or more, on any segment.
    pub retry_gpu_s: f64,
    pub total_gpu_s: f64,
    /// retry_gpu_s / rescued (`null` when nothing was rescued).
    pub gpu_s_per_rescued: Option<f64>,
    pub systematic_segments: usize,
    /// Retry GPU-seconds spent on segments the simulation broke whatever the seed.
    pub wasted_gpu_s_systematic: f64,
    /// Retries (attempts numbered 2 or more) per systematically broken segment.
    pub wasted_attempts_per_systematic: f64,
    /// Mean `overall` of the selected attempts (every passed segment).
    pub mean_selected_overall: Option<f64>,
    /// Mean `overall` of the selected attempts of rescued segments.
    pub mean_rescued_overall: Option<f64>,
    /// Segments on which attempts ran after the first passing one.
    pub best_of_n_searches: usize,
    /// Of those, segments whose selected attempt beat the first passing one.
    pub best_of_n_beat_first_pass: usize,
    /// best_of_n_beat_first_pass / best_of_n_searches (0 when no search ran).
    pub best_of_n_beat_first_pass_rate: f64,
    pub escalations: BTreeMap<String, usize>,
    /// Segments escalated as `systematic_failure`.
    pub systematic_escalations: usize,
    /// Of those, segments the simulation had not broken (a retry could have rescued them).
    pub false_systematic_escalations: usize,
    /// Share of retries per variation arm.
    pub arms: BTreeMap<String, f64>,
    pub gpus: usize,
    /// Makespan of the corpus on `gpus` GPUs, one attempt per GPU at a time, retries of one
    /// segment one after another.
    pub wall_s: f64,
    /// Mean critical path of the segments that were retried: the sum over their rounds of the
    /// longest attempt in the round (time to a final answer on an idle pool).
    pub retried_latency_s: Option<f64>,
    pub parallelism: usize,
    /// The same with up to `parallelism` retries of a segment at once.
    pub wall_s_parallel: Option<f64>,
    pub retried_latency_s_parallel: Option<f64>,
    /// Parallel retries change what is spent: rescue rate and GPU per rescue of that run.
    pub rescue_rate_parallel: Option<f64>,
    pub gpu_s_per_rescued_parallel: Option<f64>,
    pub wasted_attempts_per_systematic_parallel: Option<f64>,
    pub false_systematic_escalations_parallel: Option<usize>,
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (mut s, mut n) = (0.0, 0usize);
    for x in xs {
        s += x;
        n += 1;
    }
    (n > 0).then(|| s / n as f64)
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

pub fn trigger_failure(corpus: &Corpus, o: &SegmentOutcome) -> bool {
    o.first().is_some_and(|a| {
        a.judged
            && !a.passed
            && a.failed_checks
                .iter()
                .all(|c| corpus.scenes[o.scene].triggers.contains(c))
    })
}

pub fn measure(
    name: &str,
    runs_on: &'static str,
    corpus: &Corpus,
    outcomes: &[SegmentOutcome],
    gpus: usize,
    parallelism: usize,
) -> Metrics {
    let failed_first = outcomes.iter().filter(|o| o.failed_first()).count();
    let rescued = outcomes.iter().filter(|o| o.rescued()).count();
    let trig: Vec<&SegmentOutcome> = outcomes
        .iter()
        .filter(|o| trigger_failure(corpus, o))
        .collect();
    let retry_gpu_s: f64 = outcomes.iter().map(SegmentOutcome::retry_gpu).sum();
    let total_gpu_s: f64 = outcomes
        .iter()
        .flat_map(|o| o.attempts.iter().map(|a| a.gpu_seconds))
        .sum();
    let sys: Vec<&SegmentOutcome> = outcomes.iter().filter(|o| o.systematic).collect();
    let searches = outcomes.iter().filter(|o| o.searched_after_pass()).count();
    let beat = outcomes
        .iter()
        .filter(|o| o.searched_after_pass() && o.best_of_n_beat_first_pass())
        .count();
    let mut escalations = BTreeMap::new();
    for r in outcomes.iter().filter_map(|o| o.review_reason.as_ref()) {
        *escalations.entry(r.clone()).or_insert(0) += 1;
    }
    let mut arm_counts: BTreeMap<String, usize> = BTreeMap::new();
    for a in outcomes
        .iter()
        .flat_map(|o| o.attempts.iter().filter(|a| a.number >= 2))
    {
        *arm_counts
            .entry(a.arm.map(|a| a.as_str()).unwrap_or("none").to_owned())
            .or_insert(0) += 1;
    }
    let retries: usize = arm_counts.values().sum();
    let arms = arm_counts
        .into_iter()
        .map(|(k, v)| (k, round(ratio(v, retries), 4)))
        .collect();
    // Engine strategies and the oracle wait for attempt 1 before retrying; always-best-of-N
    // knows from the start that it will run N.
    let first_alone = name != "always_best_of_n";
    let (wall_s, retried_latency_s) = schedule(outcomes, gpus, 1, first_alone);
    let sys_flags: Vec<&SegmentOutcome> = outcomes
        .iter()
        .filter(|o| o.review_reason.as_deref() == Some("systematic_failure"))
        .collect();
    Metrics {
        name: name.to_owned(),
        runs_on,
        segments: outcomes.len(),
        failed_first,
        rescued,
        rescue_rate: round(ratio(rescued, failed_first), 4),
        rescue_rate_trigger_failures: round(
            ratio(trig.iter().filter(|o| o.passed).count(), trig.len()),
            4,
        ),
        retry_gpu_s: round(retry_gpu_s, 1),
        total_gpu_s: round(total_gpu_s, 1),
        gpu_s_per_rescued: (rescued > 0).then(|| round(retry_gpu_s / rescued as f64, 2)),
        systematic_segments: sys.len(),
        wasted_gpu_s_systematic: round(sys.iter().map(|o| o.retry_gpu()).sum(), 1),
        wasted_attempts_per_systematic: round(
            ratio(sys.iter().map(|o| o.retries()).sum(), sys.len()),
            3,
        ),
        mean_selected_overall: mean(
            outcomes
                .iter()
                .filter_map(|o| o.selected_attempt().and_then(|a| a.overall)),
        )
        .map(|x| round(x, 4)),
        mean_rescued_overall: mean(
            outcomes
                .iter()
                .filter(|o| o.rescued())
                .filter_map(|o| o.selected_attempt().and_then(|a| a.overall)),
        )
        .map(|x| round(x, 4)),
        best_of_n_searches: searches,
        best_of_n_beat_first_pass: beat,
        best_of_n_beat_first_pass_rate: round(ratio(beat, searches), 4),
        escalations,
        systematic_escalations: sys_flags.len(),
        false_systematic_escalations: sys_flags.iter().filter(|o| !o.systematic).count(),
        arms,
        gpus,
        wall_s: round(wall_s, 1),
        retried_latency_s: retried_latency_s.map(|x| round(x, 1)),
        parallelism,
        wall_s_parallel: None,
        retried_latency_s_parallel: None,
        rescue_rate_parallel: None,
        gpu_s_per_rescued_parallel: None,
        wasted_attempts_per_systematic_parallel: None,
        false_systematic_escalations_parallel: None,
    }
}

/// Fill the parallel columns from the outcomes of a run with `parallelism` retries at once
/// (the engine strategies run again; the bench-local ones overlap the same attempts).
pub fn add_parallel(m: &mut Metrics, outcomes: &[SegmentOutcome]) {
    let first_alone = m.name != "always_best_of_n";
    let (wall, cp) = schedule(outcomes, m.gpus, m.parallelism, first_alone);
    m.wall_s_parallel = Some(round(wall, 1));
    m.retried_latency_s_parallel = cp.map(|x| round(x, 1));
    let failed = outcomes.iter().filter(|o| o.failed_first()).count();
    let rescued = outcomes.iter().filter(|o| o.rescued()).count();
    let retry: f64 = outcomes.iter().map(SegmentOutcome::retry_gpu).sum();
    m.rescue_rate_parallel = Some(round(ratio(rescued, failed), 4));
    m.gpu_s_per_rescued_parallel = (rescued > 0).then(|| round(retry / rescued as f64, 2));
    let sys: Vec<&SegmentOutcome> = outcomes.iter().filter(|o| o.systematic).collect();
    m.wasted_attempts_per_systematic_parallel = Some(round(
        ratio(sys.iter().map(|o| o.retries()).sum(), sys.len()),
        3,
    ));
    m.false_systematic_escalations_parallel = Some(
        outcomes
            .iter()
            .filter(|o| !o.systematic && o.review_reason.as_deref() == Some("systematic_failure"))
            .count(),
    );
}

/// One strategy run within a fixed GPU budget: what it got done before the money ran out.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetMetrics {
    pub name: String,
    pub budget_gpu_s: f64,
    pub spent_gpu_s: f64,
    /// Segments whose attempt 1 ran and failed QA, and that ended passed.
    pub rescued: usize,
    /// The same, over segments whose attempt 1 failed trigger checks only.
    pub rescued_trigger: usize,
    /// Segments that ended passed.
    pub passed: usize,
    /// Segments whose attempt 1 ran and was judged.
    pub judged_first: usize,
    /// Segments escalated because the budget could not pay for an attempt.
    pub budget_exhausted: usize,
}

pub fn measure_budget(
    name: &str,
    budget: f64,
    corpus: &Corpus,
    outcomes: &[SegmentOutcome],
) -> BudgetMetrics {
    BudgetMetrics {
        name: name.to_owned(),
        budget_gpu_s: round(budget, 1),
        spent_gpu_s: round(
            outcomes
                .iter()
                .flat_map(|o| o.attempts.iter().map(|a| a.gpu_seconds))
                .sum(),
            1,
        ),
        rescued: outcomes.iter().filter(|o| o.rescued()).count(),
        rescued_trigger: outcomes
            .iter()
            .filter(|o| o.passed && trigger_failure(corpus, o))
            .count(),
        passed: outcomes.iter().filter(|o| o.passed).count(),
        judged_first: outcomes
            .iter()
            .filter(|o| o.first().is_some_and(|a| a.judged))
            .count(),
        budget_exhausted: outcomes
            .iter()
            .filter(|o| o.review_reason.as_deref() == Some("budget_exhausted"))
            .count(),
    }
}

/// A bench-local strategy's outcomes cut at a budget: attempts run in segment order (a segment's
/// retries before the next segment) until the next one does not fit.
pub fn within_budget(outcomes: &mut [SegmentOutcome], budget: f64) -> Vec<SegmentOutcome> {
    let mut left = budget;
    let mut out = Vec::with_capacity(outcomes.len());
    for o in outcomes.iter() {
        let mut kept = o.clone();
        kept.attempts.clear();
        for a in &o.attempts {
            if a.gpu_seconds > left {
                break;
            }
            left -= a.gpu_seconds;
            kept.attempts.push(a.clone());
        }
        if kept.attempts.len() < o.attempts.len() {
            kept.passed = kept.attempts.last().is_some_and(|a| a.passed);
            kept.selected = kept.passed.then_some(kept.attempts.len() as u32);
            kept.review_reason = (!kept.passed).then(|| "budget_exhausted".to_owned());
        }
        out.push(kept);
    }
    out
}

/// Rounded to `digits` decimals; never `-0` (an empty `f64` sum is `-0.0`).
pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f + 0.0
}

/// A time on the schedule, ordered by `f64::total_cmp`.
struct Time(f64);
impl PartialEq for Time {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Time {}
impl PartialOrd for Time {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Time {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// List-schedule every segment's rounds of attempts on `gpus` GPUs. All segments are queued at
/// time 0; a free GPU takes the ready attempt of the earliest segment (so a segment's retries go
/// before later segments' first attempts); a round becomes ready when the previous one has
/// finished. Returns (makespan, mean critical path of the retried segments).
pub fn schedule(
    outcomes: &[SegmentOutcome],
    gpus: usize,
    k: usize,
    first_alone: bool,
) -> (f64, Option<f64>) {
    let waves: Vec<Vec<Vec<f64>>> = outcomes.iter().map(|o| o.waves(k, first_alone)).collect();
    let critical = mean(
        outcomes
            .iter()
            .zip(&waves)
            .filter(|(o, _)| o.retries() > 0)
            .map(|(_, w)| {
                w.iter()
                    .map(|r| r.iter().copied().fold(0.0, f64::max))
                    .sum()
            }),
    );
    // Ready attempts by (segment, position); rounds not ready yet by ready time.
    let mut ready: BinaryHeap<Reverse<(usize, usize)>> = BinaryHeap::new();
    let mut pending: BinaryHeap<Reverse<(Time, usize)>> = BinaryHeap::new();
    let mut next_round = vec![0usize; outcomes.len()];
    let mut left_in_round = vec![0usize; outcomes.len()];
    let mut round_end = vec![0.0f64; outcomes.len()];
    let mut durations: Vec<Vec<f64>> = vec![Vec::new(); outcomes.len()];
    let release = |s: usize,
                   ready: &mut BinaryHeap<Reverse<(usize, usize)>>,
                   next_round: &mut [usize],
                   left: &mut [usize],
                   durations: &mut [Vec<f64>]| {
        let r = next_round[s];
        if let Some(round) = waves[s].get(r) {
            next_round[s] += 1;
            left[s] = round.len();
            durations[s] = round.clone();
            for i in 0..round.len() {
                ready.push(Reverse((s, i)));
            }
        }
    };
    for s in 0..outcomes.len() {
        release(
            s,
            &mut ready,
            &mut next_round,
            &mut left_in_round,
            &mut durations,
        );
    }
    let mut free: BinaryHeap<Reverse<Time>> =
        (0..gpus.max(1)).map(|_| Reverse(Time(0.0))).collect();
    let mut makespan: f64 = 0.0;
    loop {
        let Reverse(Time(t)) = free.pop().expect("at least one GPU");
        while let Some(Reverse((Time(at), s))) = pending.peek() {
            if *at > t {
                break;
            }
            let s = *s;
            pending.pop();
            release(
                s,
                &mut ready,
                &mut next_round,
                &mut left_in_round,
                &mut durations,
            );
        }
        if ready.is_empty() {
            // Idle until the next round is ready; other GPUs may get there first.
            match pending.peek() {
                Some(Reverse((Time(at), _))) => {
                    free.push(Reverse(Time(*at)));
                    continue;
                }
                None => break,
            }
        }
        let Reverse((s, i)) = ready.pop().expect("a ready attempt");
        let end = t + durations[s][i];
        makespan = makespan.max(end);
        round_end[s] = round_end[s].max(end);
        left_in_round[s] -= 1;
        if left_in_round[s] == 0 {
            pending.push(Reverse((Time(round_end[s]), s)));
        }
        free.push(Reverse(Time(end)));
    }
    (makespan, critical)
}

/// Rescue rate over a rolling window of `window` failed segments, in segment order:
/// (segment index at the window's end, rate).
pub fn rolling_rescue_rate(outcomes: &[SegmentOutcome], window: usize) -> Vec<(f64, f64)> {
    let failed: Vec<&SegmentOutcome> = outcomes.iter().filter(|o| o.failed_first()).collect();
    let window = window.max(1);
    let mut out = Vec::new();
    let mut in_window = 0usize;
    for (i, o) in failed.iter().enumerate() {
        in_window += o.passed as usize;
        if i >= window {
            in_window -= failed[i - window].passed as usize;
        }
        if i + 1 >= window {
            out.push((o.index as f64, in_window as f64 / window as f64));
        }
    }
    out
}

/// Rolling share of a scene type's retries (attempts 2+, in segment order) that used `arm`:
/// (segment index, share).
pub fn rolling_arm_share(
    outcomes: &[SegmentOutcome],
    scene: usize,
    arm: retake_core::Arm,
    window: usize,
) -> Vec<(f64, f64)> {
    let retries: Vec<(usize, bool)> = outcomes
        .iter()
        .filter(|o| o.scene == scene)
        .flat_map(|o| {
            o.attempts
                .iter()
                .filter(|a| a.number >= 2)
                .map(move |a| (o.index, a.arm == Some(arm)))
        })
        .collect();
    let window = window.max(1);
    let mut out = Vec::new();
    let mut hits = 0usize;
    for (i, (index, hit)) in retries.iter().enumerate() {
        hits += *hit as usize;
        if i >= window {
            hits -= retries[i - window].1 as usize;
        }
        if i + 1 >= window {
            out.push((*index as f64, hits as f64 / window as f64));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::rescue::outcome::AttemptOutcome;

    fn seg(index: usize, gpu: &[f64]) -> SegmentOutcome {
        SegmentOutcome {
            index,
            scene: 0,
            systematic: false,
            attempts: gpu
                .iter()
                .enumerate()
                .map(|(i, g)| AttemptOutcome {
                    number: i as u32 + 1,
                    gpu_seconds: *g,
                    passed: i + 1 == gpu.len(),
                    judged: true,
                    overall: Some(0.8),
                    failed_checks: vec![],
                    arm: None,
                })
                .collect(),
            passed: true,
            selected: Some(gpu.len() as u32),
            review_reason: None,
        }
    }

    #[test]
    fn one_gpu_runs_everything_back_to_back() {
        let o = [seg(0, &[10.0, 5.0, 5.0]), seg(1, &[10.0])];
        let (wall, cp) = schedule(&o, 1, 1, true);
        assert_eq!(wall, 30.0);
        assert_eq!(cp, Some(20.0));
    }

    #[test]
    fn parallel_retries_shorten_the_critical_path() {
        let o = [seg(0, &[10.0, 5.0, 7.0, 6.0])];
        assert_eq!(schedule(&o, 4, 1, true), (28.0, Some(28.0)));
        assert_eq!(schedule(&o, 4, 3, true), (17.0, Some(17.0)));
        // With fewer GPUs than parallel retries, the round waits for a GPU.
        assert_eq!(schedule(&o, 2, 3, true).0, 21.0);
    }

    #[test]
    fn a_budget_cuts_attempts_in_segment_order() {
        let mut o = [seg(0, &[10.0, 5.0, 5.0]), seg(1, &[10.0])];
        let cut = within_budget(&mut o, 22.0);
        assert_eq!(cut[0].attempts.len(), 3);
        assert!(cut[0].passed);
        assert!(cut[1].attempts.is_empty());
        assert!(!cut[1].passed);
        assert_eq!(cut[1].review_reason.as_deref(), Some("budget_exhausted"));
    }

    #[test]
    fn rolling_window_counts_only_failed_segments() {
        let mut a = seg(0, &[10.0, 5.0]);
        let b = seg(1, &[10.0]);
        let mut c = seg(2, &[10.0, 5.0]);
        c.passed = false;
        a.passed = true;
        let r = rolling_rescue_rate(&[a, b, c], 2);
        assert_eq!(r, vec![(2.0, 0.5)]);
    }
}
