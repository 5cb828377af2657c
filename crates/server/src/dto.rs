//! Request and response bodies. Requests refuse unknown fields; responses are what the web UI's
//! generated TypeScript types describe.

use chrono::{DateTime, Utc};
use retake_core::{
    CheckConfig, CommandCheck, EffectivePolicy, JitterProvenance, Parameters, PolicyOverrides,
    PolicySource, RetryPolicy, ReviewReason, SegmentStatus, Verdict,
};
use retake_store::{Attempt, InfraErrorRecord, Project, ProjectStats, SceneType, Segment};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

fn default_estimate() -> f64 {
    30.0
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
    /// GPU seconds the project may spend; `null` or absent is unlimited.
    #[serde(default)]
    pub gpu_budget_seconds: Option<f64>,
    /// What one attempt reserves before a scene type has history (default 30).
    #[serde(default = "default_estimate")]
    pub default_gpu_estimate_seconds: f64,
    #[serde(default)]
    pub default_retry_policy: Option<RetryPolicy>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    #[serde(default)]
    pub name: Option<String>,
    /// A number, or `null` for unlimited. Absent leaves it unchanged.
    #[serde(default, deserialize_with = "serde_with_double_option::deserialize")]
    #[schema(value_type = Option<f64>)]
    pub gpu_budget_seconds: Option<Option<f64>>,
    #[serde(default)]
    pub default_gpu_estimate_seconds: Option<f64>,
    /// Set a budget below what is already spent and reserved (no further attempt can run);
    /// without it such a budget is a 409.
    #[serde(default)]
    pub allow_below_spent: bool,
}

/// `?force=true`: do it although work is in flight (delete) or the budget is below what is
/// spent (update).
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ForceQuery {
    #[serde(default)]
    pub force: bool,
}

/// The precondition on writes: the `updated_at` value the client read.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatchHeader {
    /// The resource's `updated_at` (RFC 3339) from GET. Missing: 428; stale: 412.
    #[param(rename = "If-Match")]
    pub if_match: String,
}

/// Distinguishes an absent field from an explicit `null`.
mod serde_with_double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
        Ok(Some(Option::<f64>::deserialize(d)?))
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProjectView {
    #[serde(flatten)]
    pub project: Project,
    /// `null` when the budget is unlimited.
    pub gpu_remaining_seconds: Option<f64>,
    pub stats: ProjectStats,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSceneType {
    pub project_id: i64,
    pub name: String,
    /// `simulated` (default) or `comfyui`.
    #[serde(default = "simulated")]
    pub backend: String,
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub backend_config: Value,
    /// ComfyUI API-format workflow.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub workflow_template: Value,
    /// retake parameter → `"<node id>.<input>"`.
    #[serde(default)]
    pub parameter_bindings: BTreeMap<String, String>,
    #[serde(default)]
    pub default_parameters: Parameters,
    #[serde(default)]
    pub qa_checks: Vec<CheckConfig>,
    #[serde(default)]
    pub qa_commands: Vec<CommandCheck>,
    #[serde(default)]
    pub retry_policy: PolicyOverrides,
}

fn simulated() -> String {
    "simulated".into()
}
fn empty_object() -> Value {
    Value::Object(Default::default())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSceneType {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub backend: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub backend_config: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub workflow_template: Option<Value>,
    #[serde(default)]
    pub parameter_bindings: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub default_parameters: Option<Parameters>,
    #[serde(default)]
    pub qa_checks: Option<Vec<CheckConfig>>,
    #[serde(default)]
    pub qa_commands: Option<Vec<CommandCheck>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SceneTypeView {
    #[serde(flatten)]
    pub scene_type: SceneType,
    pub effective_policy: RetryPolicy,
}

/// The retry policy as a scene type sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SceneTypePolicyView {
    pub scene_type_id: i64,
    pub project_id: i64,
    /// The values in force.
    pub effective: RetryPolicy,
    /// Where each effective value comes from.
    pub sources: BTreeMap<String, PolicySource>,
    /// The scene type's own values (`null` = inherited).
    pub overrides: PolicyOverrides,
    pub project_default: RetryPolicy,
    /// The scene type's QA checks, i.e. the trigger checks it may use.
    pub available_checks: Vec<String>,
    /// Send this back as `If-Match` to save; a stale value is a 409.
    pub updated_at: DateTime<Utc>,
    /// GPU seconds one attempt reserves right now.
    pub estimate_gpu_seconds_per_attempt: f64,
    /// The most extra GPU time the policy can spend on one failing segment (its retries).
    pub worst_case_extra_gpu_seconds: f64,
    pub project_remaining_gpu_seconds: Option<f64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProjectPolicyView {
    pub project_id: i64,
    pub policy: RetryPolicy,
    pub updated_at: DateTime<Utc>,
}

pub fn scene_policy_view(
    st: &SceneType,
    project: &Project,
    eff: EffectivePolicy,
    estimate: f64,
) -> SceneTypePolicyView {
    let extra = (eff.policy.max_attempts as f64 - 1.0) * estimate;
    SceneTypePolicyView {
        scene_type_id: st.id,
        project_id: project.id,
        worst_case_extra_gpu_seconds: if eff.policy.enabled { extra } else { 0.0 },
        effective: eff.policy,
        sources: eff.sources,
        overrides: st.retry_policy.clone(),
        project_default: project.default_retry_policy.clone(),
        available_checks: st.qa_checks.iter().map(|c| c.check.clone()).collect(),
        updated_at: st.updated_at,
        estimate_gpu_seconds_per_attempt: estimate,
        project_remaining_gpu_seconds: project.remaining_gpu_seconds(),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSegmentBody {
    pub scene_type_id: i64,
    /// Laid over the scene type's default parameters. A `seed` here is attempt 1's seed.
    #[serde(default)]
    pub parameters: Parameters,
    #[serde(default)]
    pub label: Option<String>,
    /// Seeds the retries' randomness (0..=2^53−1); drawn at random and recorded when absent.
    #[serde(default)]
    pub rng_seed: Option<u64>,
}

/// One segment, or a batch under `segments`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SubmitSegments {
    Batch { segments: Vec<NewSegmentBody> },
    One(NewSegmentBody),
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SegmentView {
    #[serde(flatten)]
    pub segment: Segment,
    pub retry_count: u32,
    /// The current round: 1, plus one for each re-run from review.
    #[schema(minimum = 1)]
    pub round: u32,
    /// Automatic retries within the current round.
    pub round_retry_count: u32,
    /// `Segment 5: failed attempt 1 (face 0.42), passed attempt 3 (face 0.87)`.
    pub summary: String,
    pub scene_type_name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SegmentPage {
    pub items: Vec<SegmentView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SubmittedSegments {
    pub segments: Vec<SegmentView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckView {
    pub check: String,
    pub score: f64,
    pub warn: f64,
    pub fail: f64,
    pub verdict: Verdict,
    /// Whether this check may trigger a retry under the effective policy.
    pub trigger: bool,
    #[schema(value_type = Object)]
    pub details: Value,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ParamChange {
    /// Any JSON value (usually a number).
    pub from: Value,
    /// Any JSON value (usually a number).
    pub to: Value,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    pub id: i64,
    pub attempt_number: u32,
    pub seed: u64,
    pub parameters: Parameters,
    pub original_parameters: Parameters,
    /// Parameters that differ from the original, `name → {from, to}`.
    pub parameter_diff: BTreeMap<String, ParamChange>,
    pub checks: Vec<CheckView>,
    pub overall: Option<f64>,
    pub status: retake_core::AttemptStatus,
    pub is_selected: bool,
    pub gpu_seconds: f64,
    pub failure_reason: Option<String>,
    /// Why this attempt exists (the decision that scheduled it, and its variation).
    pub why: Option<String>,
    pub arm: Option<String>,
    pub jitter: Option<JitterProvenance>,
    pub progress: Option<f64>,
    pub infra_errors: Vec<InfraErrorRecord>,
    pub human_override: bool,
    pub selected_by: Option<String>,
    /// 1 for the attempts after submission; each re-run from review starts the next round.
    #[schema(minimum = 1)]
    pub round: u32,
    /// Who re-ran the segment from review to create this attempt; `null` for automatic attempts.
    pub requested_by: Option<String>,
    pub qa_source: Option<String>,
    pub backend: Option<String>,
    pub worker: Option<String>,
    /// The worker that generated it (kept after its lease ends); `null` until one has.
    pub ran_on: Option<String>,
    #[schema(value_type = Object)]
    pub provenance: Value,
    /// `GET /api/segments/{id}/attempts/{n}/media` serves a video.
    pub has_media: bool,
    /// When the attempt was queued.
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Set while the attempt waits for a healthy ComfyUI server (it has not reached one; this
    /// is not a failure): since when. `failure_reason` then reads "waiting for a healthy
    /// ComfyUI server since …".
    pub waiting_since: Option<DateTime<Utc>>,
    /// Queue priority it was claimed by (0 originals; retries the policy's `retry_priority`).
    pub priority: u8,
}

pub fn attempt_view(a: &Attempt, triggers: &std::collections::BTreeSet<String>) -> AttemptView {
    let checks = a
        .quality_scores
        .as_ref()
        .map(|q| {
            q.checks
                .iter()
                .map(|(k, r)| CheckView {
                    check: k.clone(),
                    score: r.score,
                    warn: r.warn,
                    fail: r.fail,
                    verdict: r.verdict,
                    trigger: triggers.contains(k),
                    details: r.details.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    AttemptView {
        id: a.id,
        attempt_number: a.attempt_number,
        seed: a.seed,
        parameter_diff: a
            .parameters
            .diff(&a.original_parameters)
            .into_iter()
            .map(|(k, (from, to))| (k, ParamChange { from, to }))
            .collect(),
        parameters: a.parameters.clone(),
        original_parameters: a.original_parameters.clone(),
        checks,
        overall: a.quality_scores.as_ref().map(|q| q.overall),
        status: a.overall_status,
        is_selected: a.is_selected,
        gpu_seconds: a.gpu_seconds,
        failure_reason: a.failure_reason.clone(),
        why: a.why.clone(),
        arm: a.arm.map(|x| x.as_str().to_owned()),
        jitter: a.jitter.clone(),
        progress: a.progress,
        infra_errors: a.infra_errors.clone(),
        human_override: a.human_override,
        selected_by: a.selected_by.clone(),
        round: a.round,
        requested_by: a.requested_by.clone(),
        qa_source: a.qa_source.clone(),
        backend: a.backend.clone(),
        worker: a.worker.clone(),
        ran_on: a.worker.clone().or_else(|| {
            a.provenance
                .get("worker")
                .and_then(Value::as_str)
                .map(str::to_owned)
        }),
        provenance: a.provenance.clone(),
        has_media: a.output_video_path.is_some(),
        created_at: a.created_at,
        started_at: a.started_at,
        finished_at: a.finished_at,
        waiting_since: a.waiting_since,
        priority: a.priority,
    }
}

/// Everything about a segment's retries.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RetryHistory {
    pub segment_id: i64,
    pub project_id: i64,
    pub scene_type_id: i64,
    pub scene_type_name: String,
    pub label: Option<String>,
    pub status: SegmentStatus,
    pub review_reason: Option<ReviewReason>,
    /// Why the last decision was taken.
    pub decision_note: Option<String>,
    /// What the escalation is based on; `null` when not escalated.
    pub review_evidence: Value,
    /// Retries so far (attempts beyond the original), every round included.
    pub retry_count: u32,
    /// The current round: 1, plus one for each re-run from review.
    #[schema(minimum = 1)]
    pub round: u32,
    /// Automatic retries within the current round; `max_attempts − 1` bounds them.
    pub round_retry_count: u32,
    /// `retries 1 of up to 3`, or `round 2: retries 1 of up to 3` after a re-run.
    pub round_summary: String,
    /// Re-runs and acceptances by people, in attempt order.
    pub human_actions: Vec<HumanActionView>,
    /// The effective policy's limit per round; it counts the round's first attempt.
    pub max_attempts: u8,
    pub trigger_checks: Vec<String>,
    pub selected_attempt_number: Option<u32>,
    pub total_gpu_seconds: f64,
    pub summary: String,
    pub rng_seed: u64,
    /// Since when the segment's queued attempt has been waiting for a healthy ComfyUI server;
    /// `null` when it is not waiting.
    pub waiting_for_server_since: Option<DateTime<Utc>>,
    pub attempts: Vec<AttemptView>,
}

/// Something a person did to the segment.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HumanActionView {
    /// `rerun`: the person re-ran the segment, starting a round with this attempt;
    /// `accepted`: the person accepted this attempt as the output.
    pub kind: String,
    pub attempt_number: u32,
    pub actor: String,
}

impl From<retake_core::HumanAction> for HumanActionView {
    fn from(h: retake_core::HumanAction) -> Self {
        HumanActionView {
            kind: match h.kind {
                retake_core::HumanActionKind::Rerun => "rerun".into(),
                retake_core::HumanActionKind::Accepted => "accepted".into(),
            },
            attempt_number: h.attempt_number,
            actor: h.actor,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    pub attempt_number: u32,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ReviewItem {
    pub segment: SegmentView,
    pub history: RetryHistory,
    /// GPU seconds one more attempt would reserve (for "re-run").
    pub rerun_estimate_gpu_seconds: f64,
    pub project_remaining_gpu_seconds: Option<f64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ReviewQueue {
    pub items: Vec<ReviewItem>,
    pub next_cursor: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RerunResult {
    pub segment: SegmentView,
    pub attempt: AttemptView,
    pub estimate_gpu_seconds: f64,
}

/// Scores from an external QA service.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalQa {
    #[serde(default)]
    pub scores: Vec<retake_core::CheckScore>,
    /// Report that QA could not score the attempt (it goes to review, never passes).
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct QaAccepted {
    /// False when these scores had already been applied (a duplicate delivery).
    pub applied: bool,
    pub decision: Option<String>,
    pub segment_status: Option<SegmentStatus>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `waiting_for_server` while queued work waits for a healthy ComfyUI server.
    pub status: &'static str,
    pub store: &'static str,
    pub version: &'static str,
    /// Present while attempts wait for a healthy ComfyUI server: how many and since when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for_server: Option<WaitingForServer>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WaitingForServer {
    pub attempts: u64,
    pub since: chrono::DateTime<chrono::Utc>,
    /// "waiting for a healthy ComfyUI server since …"
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    pub name: String,
    pub role: retake_store::Role,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComfyServerBody {
    pub url: String,
    #[serde(default = "one")]
    pub max_concurrency: u32,
    #[serde(default)]
    pub drained: bool,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenBody {
    pub name: String,
    pub role: retake_store::Role,
    /// How long the token works, e.g. `30d`, `12h`, `90m` (1 minute to 10 years); absent: until
    /// revoked.
    #[serde(default)]
    pub expires_in: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// Shown once; only its hash is stored.
    pub token: String,
    pub id: i64,
    pub name: String,
    pub role: retake_store::Role,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}
