//! Rows → domain values, written once for both databases over [`RowExt`].
//!
//! What both databases decode the same way (integers, floats, booleans, text) is read with
//! [`RowExt::value`]; what each stores its own way — timestamps, JSON, the `INTEGER`/`INT4`
//! columns, text lists — through the methods each dialect implements (`sqlite/rows.rs`,
//! `postgres/rows.rs`).

use crate::model::*;
use crate::{Result, StoreError};
use retake_core::{Arm, AttemptStatus, PolicyOverrides, ReviewReason, SegmentStatus};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::{ColumnIndex, Decode, Type};
use std::fmt;

/// A column, by name or by position.
#[derive(Debug, Clone, Copy)]
pub enum Col<'a> {
    Name(&'a str),
    At(usize),
}

impl<'a> From<&'a str> for Col<'a> {
    fn from(n: &'a str) -> Self {
        Col::Name(n)
    }
}

impl From<usize> for Col<'_> {
    fn from(i: usize) -> Self {
        Col::At(i)
    }
}

impl fmt::Display for Col<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Col::Name(n) => f.write_str(n),
            Col::At(i) => write!(f, "column {i}"),
        }
    }
}

/// A `T` read from a column the way sqlx decodes it; every sqlx row has these.
pub trait Cell<T> {
    fn cell(&self, c: Col<'_>) -> Result<T>;
}

impl<R, T> Cell<T> for R
where
    R: sqlx::Row,
    T: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
    usize: ColumnIndex<R>,
{
    fn cell(&self, c: Col<'_>) -> Result<T> {
        Ok(match c {
            Col::Name(n) => self.try_get(n)?,
            Col::At(i) => self.try_get(i)?,
        })
    }
}

/// A row of either database, read into domain values.
pub trait RowExt:
    Cell<i64>
    + Cell<Option<i64>>
    + Cell<f64>
    + Cell<Option<f64>>
    + Cell<bool>
    + Cell<Option<bool>>
    + Cell<String>
    + Cell<Option<String>>
{
    /// A value both databases decode the same way.
    fn value<'c, T>(&self, c: impl Into<Col<'c>>) -> Result<T>
    where
        Self: Cell<T>,
    {
        self.cell(c.into())
    }

    // What each dialect stores its own way.
    fn ts<'c>(&self, c: impl Into<Col<'c>>) -> Result<Timestamp>;
    fn ots<'c>(&self, c: impl Into<Col<'c>>) -> Result<Option<Timestamp>>;
    fn json<'c, T: DeserializeOwned>(&self, c: impl Into<Col<'c>>) -> Result<T>;
    /// SQL `NULL` and JSON `null` both read as `None`.
    fn ojson<'c, T: DeserializeOwned>(&self, c: impl Into<Col<'c>>) -> Result<Option<T>>;
    /// A JSON column kept as a document (on PostgreSQL, as decoded, without a second pass).
    fn json_value<'c>(&self, c: impl Into<Col<'c>>) -> Result<Value>;
    /// A small integer column (attempt numbers, counts, priorities): SQLite's `INTEGER`,
    /// PostgreSQL's `INT4`.
    fn int<'c>(&self, c: impl Into<Col<'c>>) -> Result<i64>;
    fn oint<'c>(&self, c: impl Into<Col<'c>>) -> Result<Option<i64>>;
    /// A list of text values: JSON text on SQLite, `TEXT[]` on PostgreSQL.
    fn strings<'c>(&self, c: impl Into<Col<'c>>) -> Result<Option<Vec<String>>>;

    fn uint<'c>(&self, c: impl Into<Col<'c>>) -> Result<u32> {
        Ok(self.int(c)? as u32)
    }
    fn ouint<'c>(&self, c: impl Into<Col<'c>>) -> Result<Option<u32>> {
        Ok(self.oint(c)?.map(|n| n as u32))
    }
}

pub(crate) fn parse_enum<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T> {
    s.parse().map_err(StoreError::Corrupt)
}

/// A pending budget delta summed by [`crate::ops::PROJECT_SELECT`]; 0 when the row was read
/// without it.
fn pending(r: &impl RowExt, col: &str) -> f64 {
    r.value::<Option<f64>>(col).ok().flatten().unwrap_or(0.0)
}

pub fn project<R: RowExt>(r: &R) -> Result<Project> {
    Ok(Project {
        id: r.value("id")?,
        name: r.value("name")?,
        gpu_budget_seconds: r.value("gpu_budget_seconds")?,
        gpu_spent_seconds: r.value::<f64>("gpu_spent_seconds")? + pending(r, "pending_spent"),
        gpu_reserved_seconds: (r.value::<f64>("gpu_reserved_seconds")?
            + pending(r, "pending_reserved"))
        .max(0.0),
        default_gpu_estimate_seconds: r.value("default_gpu_estimate_seconds")?,
        default_retry_policy: r.json("default_retry_policy")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

pub fn scene_type<R: RowExt>(r: &R) -> Result<SceneType> {
    let mut extra: serde_json::Map<String, Value> = r.json("auto_retry_extra")?;
    let enabled: Option<bool> = r.value("auto_retry_enabled")?;
    let max: Option<i64> = r.oint("auto_retry_max_attempts")?;
    let triggers: Option<Vec<String>> = r.strings("auto_retry_trigger_checks")?;
    let seed_variation: Option<bool> = r.value("auto_retry_seed_variation")?;
    let cfg: Option<f64> = r.value("auto_retry_cfg_jitter")?;
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
        id: r.value("id")?,
        project_id: r.value("project_id")?,
        name: r.value("name")?,
        backend: r.value("backend")?,
        backend_config: r.json("backend_config")?,
        workflow_template: r.json("workflow_template")?,
        parameter_bindings: r.json("parameter_bindings")?,
        default_parameters: r.json("default_parameters")?,
        qa_checks: r.json("qa_checks")?,
        qa_commands: r.json("qa_commands")?,
        retry_policy,
        parameter_domains: r.json("parameter_domains")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

pub fn segment<R: RowExt>(r: &R) -> Result<Segment> {
    let status: String = r.value("status")?;
    let reason: Option<String> = r.value("review_reason")?;
    Ok(Segment {
        id: r.value("id")?,
        project_id: r.value("project_id")?,
        scene_type_id: r.value("scene_type_id")?,
        label: r.value("label")?,
        parameters: r.json("parameters")?,
        rng_seed: r.value::<i64>("rng_seed")? as u64,
        status: parse_enum::<SegmentStatus>(&status)?,
        review_reason: reason
            .as_deref()
            .map(parse_enum::<ReviewReason>)
            .transpose()?,
        decision_note: r.value("decision_note")?,
        review_evidence: r.json_value("review_evidence")?,
        selected_attempt_number: r.ouint("selected_attempt_number")?,
        output_video_path: r.value("output_video_path")?,
        attempt_count: r.uint("attempt_count")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
        had_failure: r
            .value::<Option<bool>>("had_failure")
            .ok()
            .flatten()
            .unwrap_or(false),
        first_pass: r.ouint("first_pass").ok().flatten(),
    })
}

/// An attempt a claim locked, with its project and scene type (`TxOps::lock_ready`).
pub fn ready_attempt<R: RowExt>(r: &R) -> Result<(Attempt, i64, i64)> {
    Ok((
        attempt(r)?,
        r.value("project_id")?,
        r.value("scene_type_id")?,
    ))
}

pub fn attempt<R: RowExt>(r: &R) -> Result<Attempt> {
    let status: String = r.value("overall_status")?;
    let arm: Option<String> = r.value("arm")?;
    Ok(Attempt {
        id: r.value("id")?,
        segment_id: r.value("segment_id")?,
        attempt_number: r.uint("attempt_number")?,
        seed: r.value::<i64>("seed")? as u64,
        parameters: r.json("parameters")?,
        original_parameters: r.json("original_parameters")?,
        output_video_path: r.value("output_video_path")?,
        quality_scores: r.ojson("quality_scores")?,
        overall_status: parse_enum::<AttemptStatus>(&status)?,
        is_selected: r.value("is_selected")?,
        gpu_seconds: r.value("gpu_seconds")?,
        reserved_gpu_seconds: r.value("reserved_gpu_seconds")?,
        failure_reason: r.value("failure_reason")?,
        jitter: r.ojson("jitter")?,
        arm: arm.as_deref().and_then(Arm::parse),
        why: r.value("why")?,
        backend: r.value("backend")?,
        worker: r.value("worker")?,
        lease_expires_at: r.ots("lease_expires_at")?,
        not_before: r.ots("not_before")?,
        waiting_since: r.ots("waiting_since")?,
        progress: r.value("progress")?,
        infra_errors: r.json("infra_errors")?,
        provenance: r.json_value("provenance")?,
        qa_source: r.value("qa_source")?,
        selected_by: r.value("selected_by")?,
        human_override: r.value("human_override")?,
        round: r.uint("round")?,
        requested_by: r.value("requested_by")?,
        priority: r.uint("priority")? as u8,
        started_at: r.ots("started_at")?,
        finished_at: r.ots("finished_at")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

pub fn event<R: RowExt>(r: &R) -> Result<Event> {
    Ok(Event {
        id: r.value("id")?,
        project_id: r.value("project_id")?,
        segment_id: r.value("segment_id")?,
        attempt_id: r.value("attempt_id")?,
        kind: r.value("kind")?,
        message: r.value("message")?,
        data: r.json_value("data")?,
        created_at: r.ts("created_at")?,
    })
}

pub fn token<R: RowExt>(r: &R) -> Result<ApiToken> {
    let role: String = r.value("role")?;
    Ok(ApiToken {
        id: r.value("id")?,
        name: r.value("name")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role `{role}`")))?,
        created_at: r.ts("created_at")?,
        expires_at: r.ots("expires_at")?,
        last_used_at: r.ots("last_used_at")?,
        revoked_at: r.ots("revoked_at")?,
    })
}

/// The session half of a sessions ⋈ tokens row (`session_by_hash`).
pub fn session<R: RowExt>(r: &R) -> Result<Session> {
    Ok(Session {
        id: r.value("session_id")?,
        token_id: r.value("id")?,
        created_at: r.ts("session_created_at")?,
        expires_at: r.ts("session_expires_at")?,
    })
}

pub fn comfy_server<R: RowExt>(r: &R) -> Result<ComfyServer> {
    Ok(ComfyServer {
        id: r.value("id")?,
        name: r.value("name")?,
        url: r.value("url")?,
        max_concurrency: r.uint("max_concurrency")?,
        drained: r.value("drained")?,
    })
}

/// The policy overrides a scene type keeps in `auto_retry_extra`: all but the five that have
/// columns of their own, without nulls.
pub fn policy_extra(p: &PolicyOverrides) -> Value {
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
    v
}
