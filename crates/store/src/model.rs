//! The rows retake stores, as domain types. Both backends read and write exactly these.

use chrono::{DateTime, Utc};
use retake_core::{Arm, AttemptStatus};
use retake_core::{
    CheckConfig, CommandCheck, JitterProvenance, ParamDomain, Parameters, PolicyOverrides,
    QualityScores, RetryPolicy, ReviewReason, SegmentStatus,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub type Timestamp = DateTime<Utc>;

/// Current time truncated to microseconds, the precision both stores keep, so a timestamp read
/// back compares equal to the one written (optimistic-concurrency preconditions rely on it).
pub fn now() -> Timestamp {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Project {
    pub id: i64,
    pub name: String,
    /// `null` is unlimited.
    pub gpu_budget_seconds: Option<f64>,
    pub gpu_spent_seconds: f64,
    pub gpu_reserved_seconds: f64,
    /// What one attempt reserves before a scene type has enough history.
    pub default_gpu_estimate_seconds: f64,
    pub default_retry_policy: RetryPolicy,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Project {
    pub fn budget_view(&self) -> retake_core::BudgetView {
        retake_core::BudgetView {
            budget: self.gpu_budget_seconds,
            spent: self.gpu_spent_seconds,
            reserved: self.gpu_reserved_seconds,
        }
    }
    pub fn remaining_gpu_seconds(&self) -> Option<f64> {
        self.budget_view().remaining()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewProject {
    pub name: String,
    pub gpu_budget_seconds: Option<f64>,
    pub default_gpu_estimate_seconds: f64,
    pub default_retry_policy: RetryPolicy,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub gpu_budget_seconds: Option<Option<f64>>,
    pub default_gpu_estimate_seconds: Option<f64>,
    pub default_retry_policy: Option<RetryPolicy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SceneType {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    /// `simulated` or `comfyui`.
    pub backend: String,
    /// Backend settings: for `simulated`, `{"profile": "<scenario profile>"}`.
    #[schema(value_type = Object)]
    pub backend_config: Value,
    /// ComfyUI API-format workflow (node id → `{class_type, inputs}`), or `{}`.
    #[schema(value_type = Object)]
    pub workflow_template: Value,
    /// retake parameter → `"<node id>.<input>"`, e.g. `cfg_scale → "3.cfg"`.
    pub parameter_bindings: BTreeMap<String, String>,
    pub default_parameters: Parameters,
    pub qa_checks: Vec<CheckConfig>,
    pub qa_commands: Vec<CommandCheck>,
    /// The scene type's own policy values; unset fields inherit the project's default.
    pub retry_policy: PolicyOverrides,
    /// Parameter ranges learnt from the generation server (`/object_info`), used to clamp jitter.
    #[schema(value_type = Object)]
    pub parameter_domains: BTreeMap<String, DomainRecord>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A serialisable [`ParamDomain`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DomainRecord {
    pub min: f64,
    pub min_inclusive: bool,
    pub max: f64,
    pub integer: bool,
}

impl From<DomainRecord> for ParamDomain {
    fn from(d: DomainRecord) -> Self {
        ParamDomain {
            min: d.min,
            min_inclusive: d.min_inclusive,
            max: d.max,
            integer: d.integer,
        }
    }
}
impl From<ParamDomain> for DomainRecord {
    fn from(d: ParamDomain) -> Self {
        DomainRecord {
            min: d.min,
            min_inclusive: d.min_inclusive,
            max: d.max,
            integer: d.integer,
        }
    }
}

impl SceneType {
    pub fn domains(&self) -> BTreeMap<String, ParamDomain> {
        self.parameter_domains
            .iter()
            .map(|(k, v)| (k.clone(), (*v).into()))
            .collect()
    }
    pub fn check_names(&self) -> std::collections::BTreeSet<String> {
        self.qa_checks.iter().map(|c| c.check.clone()).collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewSceneType {
    pub project_id: i64,
    pub name: String,
    pub backend: String,
    pub backend_config: Value,
    pub workflow_template: Value,
    pub parameter_bindings: BTreeMap<String, String>,
    pub default_parameters: Parameters,
    pub qa_checks: Vec<CheckConfig>,
    pub qa_commands: Vec<CommandCheck>,
    pub retry_policy: PolicyOverrides,
    pub parameter_domains: BTreeMap<String, DomainRecord>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SceneTypePatch {
    pub name: Option<String>,
    pub backend: Option<String>,
    pub backend_config: Option<Value>,
    pub workflow_template: Option<Value>,
    pub parameter_bindings: Option<BTreeMap<String, String>>,
    pub default_parameters: Option<Parameters>,
    pub qa_checks: Option<Vec<CheckConfig>>,
    pub qa_commands: Option<Vec<CommandCheck>>,
    pub retry_policy: Option<PolicyOverrides>,
    pub parameter_domains: Option<BTreeMap<String, DomainRecord>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Segment {
    pub id: i64,
    pub project_id: i64,
    pub scene_type_id: i64,
    /// A caller's own reference (shot name, pipeline id).
    pub label: Option<String>,
    /// The submitted parameters; attempt 1 runs them as they are.
    pub parameters: Parameters,
    /// Seeds every retry's randomness; recorded so the attempt sequence can be replayed.
    pub rng_seed: u64,
    pub status: SegmentStatus,
    pub review_reason: Option<ReviewReason>,
    /// Why the last decision was taken, and its evidence.
    pub decision_note: Option<String>,
    /// What the escalation is based on; `null` when not escalated.
    pub review_evidence: Value,
    pub selected_attempt_number: Option<u32>,
    pub output_video_path: Option<String>,
    /// Attempts created so far (the original included).
    pub attempt_count: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// An attempt failed QA at some point (the project statistics count rescues by it).
    #[serde(skip)]
    pub had_failure: bool,
    /// The first attempt that passed QA, if any.
    #[serde(skip)]
    pub first_pass: Option<u32>,
}

impl Segment {
    /// Retries so far: attempts beyond the original.
    pub fn retry_count(&self) -> u32 {
        self.attempt_count.saturating_sub(1)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewSegment {
    pub scene_type_id: i64,
    pub label: Option<String>,
    /// Merged over the scene type's default parameters.
    pub parameters: Parameters,
    pub rng_seed: u64,
}

/// One infrastructure failure of an attempt (server down, out of memory, …), kept on the attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InfraErrorRecord {
    pub at: DateTime<Utc>,
    pub worker: String,
    pub message: String,
    pub gpu_seconds: f64,
    pub retried: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub id: i64,
    pub segment_id: i64,
    /// 1 is the original generation; `max_attempts` counts it.
    pub attempt_number: u32,
    pub seed: u64,
    pub parameters: Parameters,
    pub original_parameters: Parameters,
    pub output_video_path: Option<String>,
    pub quality_scores: Option<QualityScores>,
    pub overall_status: AttemptStatus,
    pub is_selected: bool,
    pub gpu_seconds: f64,
    pub reserved_gpu_seconds: f64,
    pub failure_reason: Option<String>,
    /// How the seed and jitter were drawn; `null` for attempt 1.
    pub jitter: Option<JitterProvenance>,
    pub arm: Option<Arm>,
    /// Why this attempt exists (the decision that scheduled it).
    pub why: Option<String>,
    pub backend: Option<String>,
    pub worker: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub not_before: Option<DateTime<Utc>>,
    /// Since when the attempt has been waiting for a healthy generation server (it has not
    /// reached one yet); `None` otherwise. A wait is not an infrastructure failure.
    pub waiting_since: Option<DateTime<Utc>>,
    pub progress: Option<f64>,
    pub infra_errors: Vec<InfraErrorRecord>,
    /// What was submitted: for ComfyUI the injected workflow's hash, server and prompt id.
    #[schema(value_type = Object)]
    pub provenance: Value,
    pub qa_source: Option<String>,
    pub selected_by: Option<String>,
    pub human_override: bool,
    /// 1 for the attempts after submission; each human re-run from review starts the next round.
    pub round: u32,
    /// Who re-ran the segment from review to create this attempt; `null` for automatic attempts.
    pub requested_by: Option<String>,
    /// Claim order: higher first, then older. 0 for an original generation; a retry or re-run
    /// gets the policy's `retry_priority` when it is queued.
    pub priority: u8,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Attempt {
    pub fn view(&self) -> retake_core::AttemptView {
        retake_core::AttemptView {
            attempt_number: self.attempt_number,
            seed: self.seed,
            status: self.overall_status,
            scores: self.quality_scores.clone(),
            gpu_seconds: self.gpu_seconds,
            arm: self.arm,
            workflow_error: self
                .failure_reason
                .as_deref()
                .is_some_and(|r| r.starts_with(WORKFLOW_ERROR_PREFIX)),
            round: self.round,
        }
    }
}

/// What people did to a segment, from its attempts: re-runs (`requested_by`) and acceptances
/// (a human override's `selected_by`), in attempt order.
pub fn human_actions(attempts: &[Attempt]) -> Vec<retake_core::HumanAction> {
    use retake_core::{HumanAction, HumanActionKind};
    let mut out = vec![];
    for a in attempts {
        if let Some(actor) = &a.requested_by {
            out.push(HumanAction {
                attempt_number: a.attempt_number,
                actor: actor.clone(),
                kind: HumanActionKind::Rerun,
            });
        }
    }
    for a in attempts {
        if let (true, Some(actor)) = (a.human_override, &a.selected_by) {
            out.push(HumanAction {
                attempt_number: a.attempt_number,
                actor: actor.clone(),
                kind: HumanActionKind::Accepted,
            });
        }
    }
    out
}

/// Prefix of `failure_reason` for a workflow the generation server refused (not retriable).
pub const WORKFLOW_ERROR_PREFIX: &str = "workflow error: ";

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub id: i64,
    pub project_id: Option<i64>,
    pub segment_id: Option<i64>,
    pub attempt_id: Option<i64>,
    /// `segment_submitted`, `attempt_claimed`, `retry_scheduled`, `selected`, `escalated`,
    /// `budget_refused`, `lease_rescued`, `infra_error`, `qa_delivered`, `progress`, …
    pub kind: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Creator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Creator => "creator",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "creator" => Some(Role::Creator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    pub fn at_least(self, other: Role) -> bool {
        self.rank() >= other.rank()
    }
    fn rank(self) -> u8 {
        match self {
            Role::Viewer => 0,
            Role::Creator => 1,
            Role::Admin => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// After this instant the token (and every session signed in with it) is refused.
    pub expires_at: Option<DateTime<Utc>>,
    /// When a request last used it, to the minute (it is written at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revoked tokens stay listed, so the list says who had access until when.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    /// Why this token cannot be used at `at`, if it cannot.
    pub fn refusal(&self, at: DateTime<Utc>) -> Option<String> {
        if let Some(r) = self.revoked_at {
            return Some(format!(
                "the token `{}` was revoked at {}",
                self.name,
                r.to_rfc3339()
            ));
        }
        match self.expires_at {
            Some(e) if e <= at => Some(format!(
                "the token `{}` expired at {}",
                self.name,
                e.to_rfc3339()
            )),
            _ => None,
        }
    }
}

/// A browser session signed in with a token (`POST /api/session`); the cookie holds a random
/// value whose SHA-256 is `session_hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: i64,
    pub token_id: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ComfyServer {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub max_concurrency: u32,
    pub drained: bool,
}

/// Filter and cursor for listing segments, newest first.
#[derive(Debug, Clone, Default)]
pub struct SegmentFilter {
    pub project_id: Option<i64>,
    pub scene_type_id: Option<i64>,
    pub status: Option<SegmentStatus>,
    /// Return segments with an id below this (the previous page's `next_cursor`).
    pub before_id: Option<i64>,
    pub limit: u32,
    /// Only segments escalated (now or before a human acted) for this reason.
    pub review_reason: Option<retake_core::ReviewReason>,
    /// Only segments whose label contains this text, ignoring ASCII case.
    pub label_contains: Option<String>,
}

/// Counts a project overview shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProjectStats {
    pub segments: u64,
    pub passed_first_time: u64,
    pub rescued_by_retry: u64,
    pub in_progress: u64,
    pub needs_review: u64,
    pub approved: u64,
    pub rejected: u64,
    pub escalations_by_reason: BTreeMap<String, u64>,
    pub attempts: u64,
    pub best_of_n_beat_first_pass: u64,
    /// rescued / (rescued + escalated after a failure), `null` before any failure.
    pub rescue_rate: Option<f64>,
}

impl ProjectStats {
    /// From the aggregate query both stores run, in this column order: segments, passed first
    /// time, rescued, in progress, needs review, approved, rejected, escalated after a failure,
    /// best-of-N beat the first pass, attempts. Escalations by reason are filled in separately.
    /// From the project's counters (`crate::ops::PROJECT_COUNTERS`): key → count.
    pub fn from_counters(c: &BTreeMap<String, f64>) -> ProjectStats {
        let get = |k: &str| c.get(k).copied().unwrap_or(0.0).max(0.0).round() as u64;
        let mut stats = ProjectStats::from_counts([
            get("segments"),
            get("passed_first_time"),
            get("rescued"),
            get("status:queued") + get("status:generating") + get("status:retrying"),
            get("status:needs_review"),
            get("status:approved"),
            get("status:rejected"),
            get("escalated_after_failure"),
            get("best_beat_first"),
            get("attempts"),
        ]);
        for (k, _) in c.iter().filter(|(k, _)| k.starts_with("reason:")) {
            let n = get(k);
            if n > 0 {
                stats
                    .escalations_by_reason
                    .insert(k["reason:".len()..].to_owned(), n);
            }
        }
        stats
    }

    pub fn from_counts(c: [u64; 10]) -> ProjectStats {
        let failed_terminal = c[2] + c[7];
        ProjectStats {
            segments: c[0],
            passed_first_time: c[1],
            rescued_by_retry: c[2],
            in_progress: c[3],
            needs_review: c[4],
            approved: c[5],
            rejected: c[6],
            best_of_n_beat_first_pass: c[8],
            attempts: c[9],
            rescue_rate: (failed_terminal > 0).then(|| c[2] as f64 / failed_terminal as f64),
            escalations_by_reason: BTreeMap::new(),
        }
    }
}

/// The scene type × check failure-pattern row.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FailurePattern {
    pub scene_type_id: i64,
    pub check: String,
    pub attempts: u32,
    pub failures: u32,
    pub failed_segments: u32,
    pub rescues: u32,
    pub failure_rate: f64,
    pub rescue_rate: Option<f64>,
    /// arm → (tries, rescues) for retries after a failure of this check.
    #[schema(value_type = Object)]
    pub arms: BTreeMap<String, retake_core::ArmStats>,
}

impl FailurePattern {
    /// A row of counts, with its rates derived.
    pub fn new(
        scene_type_id: i64,
        check: String,
        [attempts, failures, failed_segments, rescues]: [u32; 4],
        arms: BTreeMap<String, retake_core::ArmStats>,
    ) -> FailurePattern {
        FailurePattern {
            scene_type_id,
            check,
            attempts,
            failures,
            failed_segments,
            rescues,
            failure_rate: if attempts > 0 {
                failures as f64 / attempts as f64
            } else {
                0.0
            },
            rescue_rate: (failed_segments > 0).then(|| rescues as f64 / failed_segments as f64),
            arms,
        }
    }
}

/// Gauges for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    pub attempts_by_status: BTreeMap<String, u64>,
    pub segments_by_status: BTreeMap<String, u64>,
    pub escalations_by_reason: BTreeMap<String, u64>,
    pub rescues: u64,
    pub gpu_seconds_spent: f64,
    /// (project name, remaining seconds or None when unlimited)
    pub budget_remaining: Vec<(String, Option<f64>)>,
    pub queue_depth: u64,
    /// Per project: GPU seconds spent and reserved (pending deltas included), and the budget.
    pub projects: Vec<ProjectMetrics>,
    /// Per scene type: retries scheduled and segments rescued.
    pub scene_types: Vec<SceneTypeMetrics>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProjectMetrics {
    pub project: String,
    pub spent: f64,
    pub reserved: f64,
    pub budget: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SceneTypeMetrics {
    pub project: String,
    pub scene_type: String,
    /// Attempts after a segment's first.
    pub retries: u64,
    /// Segments that passed after a failed attempt.
    pub rescues: u64,
}

/// Work handed to one worker by a claim.
#[derive(Debug, Clone)]
pub struct Work {
    pub attempt: Attempt,
    pub project_id: i64,
    pub scene_type_id: i64,
    pub segment_rng_seed: u64,
}

/// A worker's request for more work, taken in the same transaction as the completions it is
/// handed with (see [`crate::Store::complete_and_claim`]).
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub worker: String,
    /// Attempts to claim at most.
    pub limit: u32,
    pub lease: std::time::Duration,
}

/// The answer to [`crate::Store::complete_and_claim`]: each completion's outcome, in the order
/// given, and the work claimed after them.
#[derive(Debug, Default)]
pub struct Completed {
    pub applied: Vec<Result<Applied, crate::StoreError>>,
    pub claimed: Vec<Work>,
}

/// What a worker reports when generation ends.
#[derive(Debug, Clone)]
pub struct GenerationDone {
    pub attempt_id: i64,
    pub worker: String,
    pub backend: String,
    pub output_video_path: Option<String>,
    pub gpu_seconds: f64,
    /// Set when the backend scored its own output (simulated); otherwise the attempt waits in
    /// `scoring` for the built-in runner or the external QA endpoint.
    pub verdict: Option<retake_core::QaVerdict>,
    /// Generation was stopped because the budget could not cover it.
    pub stopped_by_budget: bool,
    /// Without a verdict: true when this worker scores the output itself (it keeps the lease),
    /// false when an external QA service will post the scores.
    pub scored_by_worker: bool,
}

#[derive(Debug, Clone)]
pub struct InfraFailure {
    pub attempt_id: i64,
    pub worker: String,
    pub message: String,
    /// False for a broken workflow (ComfyUI `node_errors`): escalate at once.
    pub retriable: bool,
    pub gpu_seconds_spent: f64,
    pub max_infra_retries: u32,
    pub backoff: std::time::Duration,
    /// False when the work never reached a generation server (none was healthy, or the one
    /// picked refused the connection): the attempt waits in the queue (`waiting_since`) and
    /// comes back after `backoff`, without using up an infrastructure retry.
    pub reached_server: bool,
}

/// The text an attempt carries while it waits for a healthy generation server.
pub fn waiting_reason(since: DateTime<Utc>, message: &str) -> String {
    format!(
        "waiting for a healthy ComfyUI server since {}: {message}",
        since.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

/// Attempts waiting for a healthy generation server (`/api/health`, metrics).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ServerWait {
    /// Attempts (queued, or claimed and looking for a server) that have not reached a server
    /// because none is healthy.
    pub attempts: u64,
    /// When the longest of those waits began.
    pub since: Option<DateTime<Utc>>,
}

/// One finished piece of work for the completer: everything a worker reports about an attempt
/// it holds, applied with other completions in one transaction.
#[derive(Debug, Clone)]
pub enum Completion {
    Generated(GenerationDone),
    Verdict {
        attempt_id: i64,
        verdict: retake_core::QaVerdict,
        /// The built-in runner's worker (it must still hold the lease); `None` for an external
        /// QA service.
        worker: Option<String>,
    },
    Infra(InfraFailure),
}

impl Completion {
    pub fn attempt_id(&self) -> i64 {
        match self {
            Completion::Generated(d) => d.attempt_id,
            Completion::Verdict { attempt_id, .. } => *attempt_id,
            Completion::Infra(f) => f.attempt_id,
        }
    }
}

/// Outcome of finishing or judging an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// False when the change had already been applied (duplicate delivery) or the caller no
    /// longer owns the attempt.
    pub applied: bool,
    pub decision: Option<String>,
    pub segment_status: Option<SegmentStatus>,
    pub new_attempts: Vec<i64>,
}

impl Applied {
    pub fn ignored() -> Self {
        Applied {
            applied: false,
            decision: None,
            segment_status: None,
            new_attempts: vec![],
        }
    }
}

/// A human re-run from review: new parameters and/or a wider jitter.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerunOverrides {
    /// Values that replace the segment's parameters for the new attempt.
    #[serde(default)]
    pub parameters: Option<Parameters>,
    /// Multiplies the policy's jitter ranges for the new attempt (1..=4).
    #[serde(default)]
    pub jitter_scale: Option<f64>,
}

/// A new event stream's starting point (`Store::events_head`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsHead {
    /// The event id `list_events` continues after.
    pub after: i64,
    /// Events already committed that `list_events` will still return after `after`.
    pub skip: Vec<i64>,
}
