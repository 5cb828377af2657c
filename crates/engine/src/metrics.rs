//! Process-wide counters the HTTP server exposes at `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the decision-latency histogram buckets.
pub const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// A cumulative Prometheus-style histogram.
pub struct Histogram {
    counts: [AtomicU64; 10],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Self {
            counts: [const { AtomicU64::new(0) }; 10],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// (cumulative bucket counts, total count, sum in seconds)
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let buckets = BUCKETS
            .iter()
            .enumerate()
            .map(|(i, b)| (*b, self.counts[i].load(Ordering::Relaxed)))
            .collect();
        (
            buckets,
            self.count.load(Ordering::Relaxed),
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        )
    }
}

/// Time to judge a delivered verdict and apply the retry decision (one store transaction).
pub static DECISION_LATENCY: Histogram = Histogram::new();

/// Completion batches written, and the completions in them.
pub static COMPLETION_BATCHES: AtomicU64 = AtomicU64::new(0);
pub static COMPLETIONS: AtomicU64 = AtomicU64::new(0);

pub fn record_completion_batch(size: usize) {
    COMPLETION_BATCHES.fetch_add(1, Ordering::Relaxed);
    COMPLETIONS.fetch_add(size as u64, Ordering::Relaxed);
}
