//! Row ↔ domain mapping for SQLite: timestamps as fixed-width RFC 3339 text, JSON as text.

use crate::model::*;
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use retake_core::{Arm, AttemptStatus, ReviewReason, SegmentStatus};
use serde::de::DeserializeOwned;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// Fixed-width UTC text, so string order is time order and equality is exact.
pub fn ts(t: Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub fn ots(t: Option<Timestamp>) -> Option<String> {
    t.map(ts)
}

pub fn parse_ts(s: &str) -> Result<Timestamp> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp `{s}`: {e}")))
}

pub fn get_ts(r: &SqliteRow, col: &str) -> Result<Timestamp> {
    let s: String = r.try_get(col)?;
    parse_ts(&s)
}

pub fn get_ots(r: &SqliteRow, col: &str) -> Result<Option<Timestamp>> {
    let s: Option<String> = r.try_get(col)?;
    s.as_deref().map(parse_ts).transpose()
}

pub fn get_json<T: DeserializeOwned>(r: &SqliteRow, col: &str) -> Result<T> {
    let s: String = r.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub fn get_ojson<T: DeserializeOwned>(r: &SqliteRow, col: &str) -> Result<Option<T>> {
    let s: Option<String> = r.try_get(col)?;
    match s.as_deref() {
        None | Some("null") => Ok(None),
        Some(s) => serde_json::from_str(s)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("{col}: {e}"))),
    }
}

pub fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("domain values serialize")
}

fn parse_enum<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T> {
    s.parse().map_err(StoreError::Corrupt)
}

/// A pending budget delta summed by [`crate::ops::PROJECT_SELECT`]; 0 when the row was read
/// without it.
fn pending(r: &SqliteRow, col: &str) -> f64 {
    r.try_get::<Option<f64>, _>(col)
        .ok()
        .flatten()
        .unwrap_or(0.0)
}

pub fn project(r: &SqliteRow) -> Result<Project> {
    Ok(Project {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        gpu_budget_seconds: r.try_get("gpu_budget_seconds")?,
        gpu_spent_seconds: r.try_get::<f64, _>("gpu_spent_seconds")? + pending(r, "pending_spent"),
        gpu_reserved_seconds: (r.try_get::<f64, _>("gpu_reserved_seconds")?
            + pending(r, "pending_reserved"))
        .max(0.0),
        default_gpu_estimate_seconds: r.try_get("default_gpu_estimate_seconds")?,
        default_retry_policy: get_json(r, "default_retry_policy")?,
        created_at: get_ts(r, "created_at")?,
        updated_at: get_ts(r, "updated_at")?,
    })
}

pub fn scene_type(r: &SqliteRow) -> Result<SceneType> {
    let mut extra: serde_json::Map<String, serde_json::Value> = get_json(r, "auto_retry_extra")?;
    let enabled: Option<bool> = r.try_get("auto_retry_enabled")?;
    let max: Option<i64> = r.try_get("auto_retry_max_attempts")?;
    let triggers: Option<Vec<String>> = get_ojson(r, "auto_retry_trigger_checks")?;
    let seed_variation: Option<bool> = r.try_get("auto_retry_seed_variation")?;
    let cfg: Option<f64> = r.try_get("auto_retry_cfg_jitter")?;
    let mut put = |k: &str, v: serde_json::Value| {
        if !v.is_null() {
            extra.insert(k.to_owned(), v);
        }
    };
    put("enabled", serde_json::json!(enabled));
    put("max_attempts", serde_json::json!(max));
    put("trigger_checks", serde_json::json!(triggers));
    put("seed_variation", serde_json::json!(seed_variation));
    put("cfg_jitter", serde_json::json!(cfg));
    let retry_policy = serde_json::from_value(serde_json::Value::Object(extra))
        .map_err(|e| StoreError::Corrupt(format!("scene type policy: {e}")))?;
    Ok(SceneType {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        name: r.try_get("name")?,
        backend: r.try_get("backend")?,
        backend_config: get_json(r, "backend_config")?,
        workflow_template: get_json(r, "workflow_template")?,
        parameter_bindings: get_json(r, "parameter_bindings")?,
        default_parameters: get_json(r, "default_parameters")?,
        qa_checks: get_json(r, "qa_checks")?,
        qa_commands: get_json(r, "qa_commands")?,
        retry_policy,
        parameter_domains: get_json(r, "parameter_domains")?,
        created_at: get_ts(r, "created_at")?,
        updated_at: get_ts(r, "updated_at")?,
    })
}

pub fn segment(r: &SqliteRow) -> Result<Segment> {
    let status: String = r.try_get("status")?;
    let reason: Option<String> = r.try_get("review_reason")?;
    Ok(Segment {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        scene_type_id: r.try_get("scene_type_id")?,
        label: r.try_get("label")?,
        parameters: get_json(r, "parameters")?,
        rng_seed: r.try_get::<i64, _>("rng_seed")? as u64,
        status: parse_enum::<SegmentStatus>(&status)?,
        review_reason: reason
            .as_deref()
            .map(parse_enum::<ReviewReason>)
            .transpose()?,
        decision_note: r.try_get("decision_note")?,
        review_evidence: get_json(r, "review_evidence")?,
        selected_attempt_number: r
            .try_get::<Option<i64>, _>("selected_attempt_number")?
            .map(|n| n as u32),
        output_video_path: r.try_get("output_video_path")?,
        attempt_count: r.try_get::<i64, _>("attempt_count")? as u32,
        created_at: get_ts(r, "created_at")?,
        updated_at: get_ts(r, "updated_at")?,
        had_failure: r
            .try_get::<Option<bool>, _>("had_failure")
            .ok()
            .flatten()
            .unwrap_or(false),
        first_pass: r
            .try_get::<Option<i64>, _>("first_pass")
            .ok()
            .flatten()
            .map(|n| n as u32),
    })
}

pub fn attempt(r: &SqliteRow) -> Result<Attempt> {
    let status: String = r.try_get("overall_status")?;
    let arm: Option<String> = r.try_get("arm")?;
    Ok(Attempt {
        id: r.try_get("id")?,
        segment_id: r.try_get("segment_id")?,
        attempt_number: r.try_get::<i64, _>("attempt_number")? as u32,
        seed: r.try_get::<i64, _>("seed")? as u64,
        parameters: get_json(r, "parameters")?,
        original_parameters: get_json(r, "original_parameters")?,
        output_video_path: r.try_get("output_video_path")?,
        quality_scores: get_ojson(r, "quality_scores")?,
        overall_status: parse_enum::<AttemptStatus>(&status)?,
        is_selected: r.try_get("is_selected")?,
        gpu_seconds: r.try_get("gpu_seconds")?,
        reserved_gpu_seconds: r.try_get("reserved_gpu_seconds")?,
        failure_reason: r.try_get("failure_reason")?,
        jitter: get_ojson(r, "jitter")?,
        arm: arm.as_deref().and_then(Arm::parse),
        why: r.try_get("why")?,
        backend: r.try_get("backend")?,
        worker: r.try_get("worker")?,
        lease_expires_at: get_ots(r, "lease_expires_at")?,
        not_before: get_ots(r, "not_before")?,
        waiting_since: get_ots(r, "waiting_since")?,
        progress: r.try_get("progress")?,
        infra_errors: get_json(r, "infra_errors")?,
        provenance: get_json(r, "provenance")?,
        qa_source: r.try_get("qa_source")?,
        selected_by: r.try_get("selected_by")?,
        human_override: r.try_get("human_override")?,
        round: r.try_get::<i64, _>("round")? as u32,
        requested_by: r.try_get("requested_by")?,
        priority: r.try_get::<i64, _>("priority")? as u8,
        started_at: get_ots(r, "started_at")?,
        finished_at: get_ots(r, "finished_at")?,
        created_at: get_ts(r, "created_at")?,
        updated_at: get_ts(r, "updated_at")?,
    })
}

pub fn event(r: &SqliteRow) -> Result<Event> {
    Ok(Event {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        segment_id: r.try_get("segment_id")?,
        attempt_id: r.try_get("attempt_id")?,
        kind: r.try_get("kind")?,
        message: r.try_get("message")?,
        data: get_json(r, "data")?,
        created_at: get_ts(r, "created_at")?,
    })
}

pub fn token(r: &SqliteRow) -> Result<ApiToken> {
    let role: String = r.try_get("role")?;
    Ok(ApiToken {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role `{role}`")))?,
        created_at: get_ts(r, "created_at")?,
        expires_at: get_ots(r, "expires_at")?,
        last_used_at: get_ots(r, "last_used_at")?,
        revoked_at: get_ots(r, "revoked_at")?,
    })
}

pub fn session(r: &SqliteRow) -> Result<Session> {
    Ok(Session {
        id: r.try_get("session_id")?,
        token_id: r.try_get("id")?,
        created_at: get_ts(r, "session_created_at")?,
        expires_at: get_ts(r, "session_expires_at")?,
    })
}

pub fn comfy_server(r: &SqliteRow) -> Result<ComfyServer> {
    Ok(ComfyServer {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        url: r.try_get("url")?,
        max_concurrency: r.try_get::<i64, _>("max_concurrency")? as u32,
        drained: r.try_get("drained")?,
    })
}

/// The scene type's policy overrides split into the seed's columns and the JSON remainder.
pub struct PolicyColumns {
    pub enabled: Option<bool>,
    pub max_attempts: Option<i64>,
    pub trigger_checks: Option<String>,
    pub seed_variation: Option<bool>,
    pub cfg_jitter: Option<f64>,
    pub extra: String,
}

pub fn policy_columns(p: &retake_core::PolicyOverrides) -> PolicyColumns {
    let mut v = serde_json::to_value(p).expect("overrides serialize");
    let m = v.as_object_mut().expect("object");
    for k in [
        "enabled",
        "max_attempts",
        "trigger_checks",
        "seed_variation",
        "cfg_jitter",
    ] {
        m.remove(k);
    }
    m.retain(|_, v| !v.is_null());
    PolicyColumns {
        enabled: p.enabled,
        max_attempts: p.max_attempts.map(i64::from),
        trigger_checks: p.trigger_checks.as_ref().map(json),
        seed_variation: p.seed_variation,
        cfg_jitter: p.cfg_jitter,
        extra: serde_json::to_string(&v).expect("serialize"),
    }
}
