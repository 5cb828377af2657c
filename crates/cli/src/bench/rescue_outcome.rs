//! What happened to one segment under one strategy, whichever way it was run (engine or
//! bench-local), in the shape the metrics need.

use retake_core::Arm;

#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    pub number: u32,
    pub gpu_seconds: f64,
    pub passed: bool,
    /// QA judged it (not refused by the budget or lost to an error).
    pub judged: bool,
    pub overall: Option<f64>,
    pub failed_checks: Vec<String>,
    pub arm: Option<Arm>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SegmentOutcome {
    pub index: usize,
    pub scene: usize,
    /// Broken whatever the seed, according to the simulation.
    pub systematic: bool,
    /// Attempts in attempt-number order.
    pub attempts: Vec<AttemptOutcome>,
    pub passed: bool,
    pub selected: Option<u32>,
    pub review_reason: Option<String>,
}

impl SegmentOutcome {
    pub fn first(&self) -> Option<&AttemptOutcome> {
        self.attempts.first()
    }

    pub fn failed_first(&self) -> bool {
        self.first().is_some_and(|a| a.judged && !a.passed)
    }

    pub fn rescued(&self) -> bool {
        self.failed_first() && self.passed
    }

    pub fn retry_gpu(&self) -> f64 {
        self.attempts
            .iter()
            .filter(|a| a.number >= 2)
            .map(|a| a.gpu_seconds)
            .sum()
    }

    pub fn retries(&self) -> usize {
        self.attempts.iter().filter(|a| a.number >= 2).count()
    }

    pub fn selected_attempt(&self) -> Option<&AttemptOutcome> {
        self.selected
            .and_then(|n| self.attempts.iter().find(|a| a.number == n))
    }

    pub fn first_passing(&self) -> Option<&AttemptOutcome> {
        self.attempts.iter().find(|a| a.passed)
    }

    /// Attempts ran after the first passing one (a best-of-N search happened).
    pub fn searched_after_pass(&self) -> bool {
        match self.first_passing() {
            Some(f) => self.attempts.iter().any(|a| a.number > f.number),
            None => false,
        }
    }

    /// The selected attempt is a later, better one than the first that passed.
    pub fn best_of_n_beat_first_pass(&self) -> bool {
        match (self.selected, self.first_passing()) {
            (Some(s), Some(f)) => s != f.number,
            _ => false,
        }
    }

    /// Groups of attempts that run at the same time: attempt 1 alone, then the retries `k` at a
    /// time (what `decide` plans with `parallelism` k and budget to spare). Durations per group.
    pub fn waves(&self, k: usize, first_alone: bool) -> Vec<Vec<f64>> {
        let k = k.max(1);
        let mut out: Vec<Vec<f64>> = Vec::new();
        let mut rest = self.attempts.as_slice();
        if first_alone {
            if let Some((a, tail)) = rest.split_first() {
                out.push(vec![a.gpu_seconds]);
                rest = tail;
            }
        }
        for chunk in rest.chunks(k) {
            out.push(chunk.iter().map(|a| a.gpu_seconds).collect());
        }
        out
    }
}
