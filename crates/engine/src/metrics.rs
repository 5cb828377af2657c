//! What the engine measures, through the `metrics` facade. Whichever process runs the engine
//! exports it: `retake serve` at `/metrics`, `retake worker --metrics-listen ADDR` on its own
//! port, so every replica is scraped. Without an installed recorder (tests, benches) the calls
//! cost next to nothing.
//!
//! Names are constants here so the exporter's descriptions, the Grafana dashboard in
//! `examples/grafana/` and its test all agree.

use retake_store::{Applied, Completion};
use std::time::Duration;

/// Histogram: judging a verdict and applying the retry decision (one completion batch).
pub const DECISION_LATENCY: Latency = Latency(DECISION_LATENCY_NAME);
pub const DECISION_LATENCY_NAME: &str = "retake_decision_latency_seconds";
/// Histogram: an attempt's wait from ready (queued, past any backoff) to claimed, by `kind`
/// (`retry` or `original`). For a retry this is "QA failure → next attempt dispatched".
pub const DISPATCH_LATENCY: &str = "retake_dispatch_latency_seconds";
/// Counter: attempts this process finished (a terminal verdict, a budget stop or an
/// infrastructure failure), by `outcome`.
pub const ATTEMPTS_FINISHED: &str = "retake_attempts_finished_total";
/// Counter: attempts this process claimed.
pub const ATTEMPTS_CLAIMED: &str = "retake_attempts_claimed_total";
/// Counter: infrastructure failures, by `backend` and `server` (the ComfyUI server when known).
pub const INFRA_ERRORS: &str = "retake_infra_errors_total";
/// Histogram: completions written per store transaction.
pub const COMPLETION_BATCH: &str = "retake_completion_batch_size";

/// Histogram buckets (seconds) for the latencies above.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];
/// Histogram buckets for batch sizes.
pub const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// A latency histogram by name.
pub struct Latency(&'static str);

impl Latency {
    pub fn observe(&self, d: Duration) {
        metrics::histogram!(self.0).record(d.as_secs_f64());
    }
}

/// Registers help texts with whichever recorder is installed.
pub fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_histogram!(
        DECISION_LATENCY_NAME,
        Unit::Seconds,
        "Time to judge scores and apply the retry decision."
    );
    describe_histogram!(
        DISPATCH_LATENCY,
        Unit::Seconds,
        "Wait from an attempt being ready to its claim, by kind (retry or original)."
    );
    describe_counter!(
        ATTEMPTS_FINISHED,
        "Attempts this process finished, by outcome."
    );
    describe_counter!(ATTEMPTS_CLAIMED, "Attempts this process claimed.");
    describe_counter!(
        INFRA_ERRORS,
        "Infrastructure failures, by backend and ComfyUI server."
    );
    describe_histogram!(
        COMPLETION_BATCH,
        Unit::Count,
        "Completions written per store transaction."
    );
}

/// An attempt was claimed after waiting `waited` since it became ready.
pub fn dispatched(waited: Duration, retry: bool) {
    metrics::counter!(ATTEMPTS_CLAIMED).increment(1);
    let kind = if retry { "retry" } else { "original" };
    metrics::histogram!(DISPATCH_LATENCY, "kind" => kind).record(waited.as_secs_f64());
}

/// A batch of completions was written; count what it finished.
pub fn completed(batch: &[Completion], results: &[retake_store::Result<Applied>]) {
    metrics::histogram!(COMPLETION_BATCH).record(batch.len() as f64);
    for (c, r) in batch.iter().zip(results) {
        let Ok(a) = r else { continue };
        if !a.applied {
            continue;
        }
        let outcome = match c {
            Completion::Infra(_) => "infra_error",
            Completion::Generated(g) if g.stopped_by_budget => "stopped_by_budget",
            // A generation whose scores come later is not finished yet.
            Completion::Generated(g) if g.verdict.is_none() => continue,
            Completion::Generated(_) | Completion::Verdict { .. } => "scored",
        };
        metrics::counter!(ATTEMPTS_FINISHED, "outcome" => outcome).increment(1);
    }
}

/// An infrastructure failure on `backend` (and ComfyUI `server`, when known).
pub fn infra_error(backend: &str, server: Option<&str>) {
    metrics::counter!(
        INFRA_ERRORS,
        "backend" => backend.to_owned(),
        "server" => server.unwrap_or("").to_owned()
    )
    .increment(1);
}

/// How long a just-claimed attempt waited since it became ready: since it was queued, or since
/// its backoff ended.
pub fn ready_wait(a: &retake_store::Attempt) -> Duration {
    let ready = match a.not_before {
        Some(nb) if nb > a.created_at => nb,
        _ => a.created_at,
    };
    (chrono::Utc::now() - ready).to_std().unwrap_or_default()
}
