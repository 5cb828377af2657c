//! Row ↔ domain mapping for PostgreSQL (`TIMESTAMPTZ`, `JSONB`, `TEXT[]`), and the mapping of
//! database errors to [`StoreError`]. It owns no SQL beyond column names.

use crate::model::*;
use crate::{Result, StoreError};
use retake_core::{Arm, AttemptStatus, PolicyOverrides, ReviewReason, SegmentStatus};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;
use std::borrow::Cow;

/// A domain value as a `JSONB` parameter, NUL-free (see [`text`]).
pub fn json<T: serde::Serialize>(v: &T) -> Json<Value> {
    let mut v = serde_json::to_value(v).expect("domain values serialize");
    scrub(&mut v);
    Json(v)
}

/// PostgreSQL's `TEXT` and `JSONB` cannot hold a NUL character (SQLite can). Text from outside —
/// a generation server's error, a QA command's output — might carry one, and failing the whole
/// finish over it would strand the attempt, so it is stored as U+FFFD instead.
pub fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

pub fn otext(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(text)
}

fn scrub(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        Value::Array(a) => a.iter_mut().for_each(scrub),
        Value::Object(m) => {
            if m.keys().any(|k| k.contains('\0')) {
                *m = std::mem::take(m)
                    .into_iter()
                    .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), v))
                    .collect();
            }
            m.values_mut().for_each(scrub);
        }
        _ => {}
    }
}

pub fn get_json<T: DeserializeOwned>(r: &PgRow, col: &str) -> Result<T> {
    let Json(v): Json<Value> = r.try_get(col)?;
    serde_json::from_value(v).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

/// SQL `NULL` and JSON `null` both read as `None`.
pub fn get_ojson<T: DeserializeOwned>(r: &PgRow, col: &str) -> Result<Option<T>> {
    let v: Option<Json<Value>> = r.try_get(col)?;
    match v {
        None | Some(Json(Value::Null)) => Ok(None),
        Some(Json(v)) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("{col}: {e}"))),
    }
}

fn parse_enum<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T> {
    s.parse().map_err(StoreError::Corrupt)
}

fn get_u32(r: &PgRow, col: &str) -> Result<u32> {
    Ok(r.try_get::<i32, _>(col)? as u32)
}

/// A pending budget delta summed by [`crate::ops::PROJECT_SELECT`]; 0 when the row was read
/// without it.
fn pending(r: &PgRow, col: &str) -> f64 {
    r.try_get::<Option<f64>, _>(col)
        .ok()
        .flatten()
        .unwrap_or(0.0)
}

pub fn project(r: &PgRow) -> Result<Project> {
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
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub fn scene_type(r: &PgRow) -> Result<SceneType> {
    let mut extra: serde_json::Map<String, Value> = get_json(r, "auto_retry_extra")?;
    let enabled: Option<bool> = r.try_get("auto_retry_enabled")?;
    let max: Option<i32> = r.try_get("auto_retry_max_attempts")?;
    let triggers: Option<Vec<String>> = r.try_get("auto_retry_trigger_checks")?;
    let seed_variation: Option<bool> = r.try_get("auto_retry_seed_variation")?;
    let cfg: Option<f64> = r.try_get("auto_retry_cfg_jitter")?;
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            extra.insert(k.to_owned(), v);
        }
    };
    put("enabled", serde_json::json!(enabled));
    put("max_attempts", serde_json::json!(max));
    put("trigger_checks", serde_json::json!(triggers));
    put("seed_variation", serde_json::json!(seed_variation));
    put("cfg_jitter", serde_json::json!(cfg));
    let retry_policy = serde_json::from_value(Value::Object(extra))
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
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub fn segment(r: &PgRow) -> Result<Segment> {
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
        review_evidence: r.try_get::<Json<Value>, _>("review_evidence")?.0,
        selected_attempt_number: r
            .try_get::<Option<i32>, _>("selected_attempt_number")?
            .map(|n| n as u32),
        output_video_path: r.try_get("output_video_path")?,
        attempt_count: get_u32(r, "attempt_count")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        had_failure: r
            .try_get::<Option<bool>, _>("had_failure")
            .ok()
            .flatten()
            .unwrap_or(false),
        first_pass: r
            .try_get::<Option<i32>, _>("first_pass")
            .ok()
            .flatten()
            .map(|n| n as u32),
    })
}

pub fn attempt(r: &PgRow) -> Result<Attempt> {
    let status: String = r.try_get("overall_status")?;
    let arm: Option<String> = r.try_get("arm")?;
    Ok(Attempt {
        id: r.try_get("id")?,
        segment_id: r.try_get("segment_id")?,
        attempt_number: get_u32(r, "attempt_number")?,
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
        lease_expires_at: r.try_get("lease_expires_at")?,
        not_before: r.try_get("not_before")?,
        waiting_since: r.try_get("waiting_since")?,
        progress: r.try_get("progress")?,
        infra_errors: get_json(r, "infra_errors")?,
        provenance: r.try_get::<Json<Value>, _>("provenance")?.0,
        qa_source: r.try_get("qa_source")?,
        selected_by: r.try_get("selected_by")?,
        human_override: r.try_get("human_override")?,
        round: r.try_get::<i32, _>("round")? as u32,
        requested_by: r.try_get("requested_by")?,
        priority: r.try_get::<i32, _>("priority")? as u8,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub fn event(r: &PgRow) -> Result<Event> {
    Ok(Event {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        segment_id: r.try_get("segment_id")?,
        attempt_id: r.try_get("attempt_id")?,
        kind: r.try_get("kind")?,
        message: r.try_get("message")?,
        data: r.try_get::<Json<Value>, _>("data")?.0,
        created_at: r.try_get("created_at")?,
    })
}

pub fn token(r: &PgRow) -> Result<ApiToken> {
    let role: String = r.try_get("role")?;
    Ok(ApiToken {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role `{role}`")))?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

pub fn session(r: &PgRow) -> Result<Session> {
    Ok(Session {
        id: r.try_get("session_id")?,
        token_id: r.try_get("id")?,
        created_at: r.try_get("session_created_at")?,
        expires_at: r.try_get("session_expires_at")?,
    })
}

pub fn comfy_server(r: &PgRow) -> Result<ComfyServer> {
    Ok(ComfyServer {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        url: r.try_get("url")?,
        max_concurrency: get_u32(r, "max_concurrency")?,
        drained: r.try_get("drained")?,
    })
}

/// The scene type's policy overrides split into the seed's columns and the `JSONB` remainder.
pub struct PolicyColumns {
    pub enabled: Option<bool>,
    pub max_attempts: Option<i32>,
    pub trigger_checks: Option<Vec<String>>,
    pub seed_variation: Option<bool>,
    pub cfg_jitter: Option<f64>,
    pub extra: Json<Value>,
}

pub fn policy_columns(p: &PolicyOverrides) -> PolicyColumns {
    let mut v = serde_json::to_value(p).expect("overrides serialize");
    let m = v.as_object_mut().expect("overrides serialize to an object");
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
        max_attempts: p.max_attempts.map(i32::from),
        trigger_checks: p
            .trigger_checks
            .as_ref()
            .map(|t| t.iter().map(|c| c.to_string()).collect()),
        seed_variation: p.seed_variation,
        cfg_jitter: p.cfg_jitter,
        extra: Json(v),
    }
}

/// SQLSTATEs after which the whole transaction is worth running again.
pub fn is_retriable(e: &StoreError) -> bool {
    match e {
        StoreError::Db(sqlx::Error::Database(d)) => {
            matches!(d.code().as_deref(), Some("40P01" | "40001"))
        }
        _ => false,
    }
}

pub use crate::errors::db_err;
