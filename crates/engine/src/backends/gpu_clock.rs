//! The budget clock of one ComfyUI generation: the GPU time its prompt has used so far, counted
//! from when the prompt really started on its server. A generation that outgrows its reservation
//! must extend it; this clock is what it is compared with. A prompt re-attached after a worker
//! crash has been running since before this process saw it, so its clock starts when the server
//! started it (recorded by the process that died), not at the re-attach.
//!
//! Pure: every moment is passed in, nothing here reads a clock. The moments it needs again after
//! a crash are kept in the attempt's provenance (`submitted_at`, `execution_start`).

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuClock {
    /// When this try's prompt was posted to its server (our clock).
    submitted_at: Option<DateTime<Utc>>,
    /// When the server started running it, on our clock: its `execution_start`, no earlier than
    /// the submission and no later than when we heard of it (the two clocks may differ).
    execution_start: Option<DateTime<Utc>>,
    /// The prompt was found on the server, its beginning unknown: count from here.
    adopted_from: Option<DateTime<Utc>>,
}

impl GpuClock {
    /// The prompt was posted at `at`; it cannot have started earlier.
    pub fn submitted(&mut self, at: DateTime<Utc>) {
        self.submitted_at.get_or_insert(at);
    }

    /// The server reported `execution_start` (`server_ms`, its clock), heard at `heard_at`.
    pub fn execution_started(&mut self, server_ms: i64, heard_at: DateTime<Utc>) {
        let reported = Utc
            .timestamp_millis_opt(server_ms)
            .single()
            .unwrap_or(heard_at);
        let mut start = reported.min(heard_at);
        if let Some(s) = self.submitted_at {
            start = start.max(s);
        }
        self.execution_start = Some(start);
    }

    /// The job re-attached to a prompt an earlier run of the same try submitted. `previous` is the
    /// provenance that run recorded; `attempt_started_at` the attempt's first start. Counts from
    /// the server's `execution_start` when it was recorded, else from the submission, else from
    /// the attempt's start, else from `now`.
    pub fn adopted(
        &mut self,
        previous: &Value,
        prompt_id: &str,
        attempt_started_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) {
        let same_prompt = previous.get("prompt_id").and_then(Value::as_str) == Some(prompt_id);
        let recorded = |field: &str| {
            same_prompt
                .then(|| previous.get(field).and_then(Value::as_str))
                .flatten()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        if self.execution_start.is_none() {
            self.execution_start = recorded("execution_start");
        }
        if self.submitted_at.is_none() {
            self.submitted_at = recorded("submitted_at");
        }
        self.adopted_from = Some(attempt_started_at.unwrap_or(now).min(now));
    }

    /// Where the count begins, if the prompt has reached a server.
    pub fn origin(&self) -> Option<DateTime<Utc>> {
        self.execution_start
            .or(self.submitted_at)
            .or(self.adopted_from)
    }

    /// GPU seconds the prompt has used by `now` (an upper bound: time queued on the server counts
    /// until its start is known).
    pub fn elapsed(&self, now: DateTime<Utc>) -> f64 {
        self.origin()
            .map(|o| ((now - o).num_milliseconds() as f64 / 1000.0).max(0.0))
            .unwrap_or(0.0)
    }

    /// Writes what a later run needs into the provenance.
    pub fn record(&self, prov: &mut Value) {
        if let Some(t) = self.submitted_at {
            prov["submitted_at"] = json!(t.to_rfc3339());
        }
        if let Some(t) = self.execution_start {
            prov["execution_start"] = json!(t.to_rfc3339());
        }
    }
}

/// How much more to reserve when `elapsed` has come within 10% of `reserved`: half as much again
/// (5 GPU-s at least), and always enough to get back under 90% at once (a prompt re-attached
/// late may already have run past its reservation).
pub fn extension(reserved: f64, elapsed: f64) -> f64 {
    (reserved * 0.5).max(5.0).max(elapsed / 0.9 - reserved)
}

/// Whether the reservation must grow now.
pub fn needs_more(reserved: f64, elapsed: f64) -> bool {
    elapsed > reserved * 0.9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn nothing_counts_before_the_prompt_reaches_a_server() {
        let c = GpuClock::default();
        assert_eq!(c.elapsed(t(100)), 0.0);
    }

    #[test]
    fn counts_from_the_submission_until_the_server_reports_its_start() {
        let mut c = GpuClock::default();
        c.submitted(t(10));
        assert_eq!(c.elapsed(t(15)), 5.0);
        c.execution_started(t(12).timestamp_millis(), t(12));
        assert_eq!(c.elapsed(t(15)), 3.0);
    }

    #[test]
    fn a_server_clock_off_ours_is_clamped_between_submission_and_hearing_of_it() {
        let mut c = GpuClock::default();
        c.submitted(t(10));
        // The server's clock is 60 s ahead: its start cannot be after we heard of it.
        c.execution_started(t(72).timestamp_millis(), t(12));
        assert_eq!(c.origin(), Some(t(12)));
        // 60 s behind: not before we posted the prompt.
        c.execution_started(t(-48).timestamp_millis(), t(12));
        assert_eq!(c.origin(), Some(t(10)));
    }

    #[test]
    fn an_adopted_prompt_counts_from_the_start_the_dead_run_recorded() {
        let mut before = GpuClock::default();
        before.submitted(t(0));
        before.execution_started(t(2).timestamp_millis(), t(2));
        let mut prov = json!({"prompt_id": "p1"});
        before.record(&mut prov);

        let mut c = GpuClock::default();
        c.adopted(&prov, "p1", Some(t(-5)), t(40));
        assert_eq!(
            c.elapsed(t(40)),
            38.0,
            "from execution_start, not the re-attach"
        );
        // Recorded again, so a second crash keeps it.
        let mut again = json!({"prompt_id": "p1"});
        c.record(&mut again);
        assert_eq!(again["execution_start"], prov["execution_start"]);
    }

    #[test]
    fn an_adopted_prompt_without_a_recorded_start_counts_from_the_submission_or_the_attempt() {
        let mut c = GpuClock::default();
        c.adopted(
            &json!({"prompt_id": "p1", "submitted_at": t(3).to_rfc3339()}),
            "p1",
            Some(t(0)),
            t(40),
        );
        assert_eq!(c.origin(), Some(t(3)));
        let mut c = GpuClock::default();
        c.adopted(&json!({"prompt_id": "p1"}), "p1", Some(t(0)), t(40));
        assert_eq!(c.origin(), Some(t(0)), "the attempt's original start");
        // Another try's times say nothing about this prompt.
        let mut c = GpuClock::default();
        c.adopted(
            &json!({"prompt_id": "p0", "execution_start": t(1).to_rfc3339()}),
            "p1",
            Some(t(0)),
            t(40),
        );
        assert_eq!(c.origin(), Some(t(0)));
    }

    #[test]
    fn an_extension_brings_a_late_prompt_back_under_its_reservation() {
        assert!(!needs_more(10.0, 9.0));
        assert!(needs_more(10.0, 9.5));
        assert_eq!(extension(10.0, 9.5), 5.0);
        assert_eq!(extension(40.0, 37.0), 20.0);
        let more = extension(10.0, 30.0);
        assert!(!needs_more(10.0 + more, 30.0));
    }
}
