//! The longer PostgreSQL statements: scene-type writes, submission and reservation growth.

use super::rows::{self, db_err, json, otext, policy_columns};
use super::tx::{insert_attempt, PgTx};
use crate::model::*;
use crate::ops::{first_attempt, first_seed};
use crate::ops::{NewEvent, TxOps};
use crate::{Result, StoreError};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::HashMap;

fn scene_type_err(e: sqlx::Error, name: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            StoreError::invalid(Some("project_id"), "project does not exist")
        }
        _ => db_err(e, "name", || {
            format!("this project already has a scene type named `{name}`")
        }),
    }
}

pub async fn create_scene_type(pool: &PgPool, s: NewSceneType) -> Result<SceneType> {
    let t = now();
    let pc = policy_columns(&s.retry_policy);
    let r = sqlx::query(
        "INSERT INTO scene_types (project_id, name, backend, backend_config, workflow_template, parameter_bindings, default_parameters,
         qa_checks, qa_commands, parameter_domains, auto_retry_enabled, auto_retry_max_attempts, auto_retry_trigger_checks,
         auto_retry_seed_variation, auto_retry_cfg_jitter, auto_retry_extra, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17) RETURNING *",
    )
    .bind(s.project_id)
    .bind(&s.name)
    .bind(&s.backend)
    .bind(json(&s.backend_config))
    .bind(json(&s.workflow_template))
    .bind(json(&s.parameter_bindings))
    .bind(json(&s.default_parameters))
    .bind(json(&s.qa_checks))
    .bind(json(&s.qa_commands))
    .bind(json(&s.parameter_domains))
    .bind(pc.enabled)
    .bind(pc.max_attempts)
    .bind(pc.trigger_checks)
    .bind(pc.seed_variation)
    .bind(pc.cfg_jitter)
    .bind(pc.extra)
    .bind(t)
    .fetch_one(pool)
    .await
    .map_err(|e| scene_type_err(e, &s.name))?;
    rows::scene_type(&r)
}

pub async fn update_scene_type(
    tx: &mut Transaction<'static, Postgres>,
    id: i64,
    p: SceneTypePatch,
    if_updated_at: Option<Timestamp>,
) -> Result<SceneType> {
    let cur = sqlx::query("SELECT * FROM scene_types WHERE id = $1 FOR NO KEY UPDATE")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    let cur = cur
        .as_ref()
        .map(rows::scene_type)
        .transpose()?
        .ok_or_else(|| StoreError::not_found("scene type", id))?;
    if let Some(expected) = if_updated_at {
        if expected != cur.updated_at {
            return Err(StoreError::conflict(
                Some("updated_at"),
                format!("scene type {id} was changed by someone else at {}; reload and apply your change again", cur.updated_at.to_rfc3339()),
            ));
        }
    }
    let name = p.name.unwrap_or(cur.name);
    let policy = p.retry_policy.unwrap_or(cur.retry_policy);
    let pc = policy_columns(&policy);
    let r = sqlx::query(
        "UPDATE scene_types SET name = $1, backend = $2, backend_config = $3, workflow_template = $4, parameter_bindings = $5,
         default_parameters = $6, qa_checks = $7, qa_commands = $8, parameter_domains = $9, auto_retry_enabled = $10,
         auto_retry_max_attempts = $11, auto_retry_trigger_checks = $12, auto_retry_seed_variation = $13, auto_retry_cfg_jitter = $14,
         auto_retry_extra = $15, updated_at = $16 WHERE id = $17 RETURNING *",
    )
    .bind(&name)
    .bind(p.backend.unwrap_or(cur.backend))
    .bind(json(&p.backend_config.unwrap_or(cur.backend_config)))
    .bind(json(&p.workflow_template.unwrap_or(cur.workflow_template)))
    .bind(json(&p.parameter_bindings.unwrap_or(cur.parameter_bindings)))
    .bind(json(&p.default_parameters.unwrap_or(cur.default_parameters)))
    .bind(json(&p.qa_checks.unwrap_or(cur.qa_checks)))
    .bind(json(&p.qa_commands.unwrap_or(cur.qa_commands)))
    .bind(json(&p.parameter_domains.unwrap_or(cur.parameter_domains)))
    .bind(pc.enabled)
    .bind(pc.max_attempts)
    .bind(pc.trigger_checks)
    .bind(pc.seed_variation)
    .bind(pc.cfg_jitter)
    .bind(pc.extra)
    // Strictly later than the previous write, so a precondition taken before it always fails
    // (the trigger guarantees the same for writes that do not set it).
    .bind(now().max(cur.updated_at + chrono::Duration::microseconds(1)))
    .bind(id)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| scene_type_err(e, &name))?;
    rows::scene_type(&r)
}

pub async fn submit_segments(t: &mut PgTx, segs: Vec<NewSegment>) -> Result<Vec<Segment>> {
    let mut scenes: HashMap<i64, SceneType> = HashMap::new();
    let mut counters: Vec<i64> = Vec::with_capacity(segs.len());
    let mut out = Vec::with_capacity(segs.len());
    for s in segs {
        if !scenes.contains_key(&s.scene_type_id) {
            let r = sqlx::query("SELECT * FROM scene_types WHERE id = $1")
                .bind(s.scene_type_id)
                .fetch_optional(&mut *t.tx)
                .await?;
            let st = r
                .as_ref()
                .map(rows::scene_type)
                .transpose()?
                .ok_or_else(|| {
                    StoreError::invalid(
                        Some("scene_type_id"),
                        format!("scene type {} does not exist", s.scene_type_id),
                    )
                })?;
            scenes.insert(s.scene_type_id, st);
        }
        let scene = &scenes[&s.scene_type_id];
        let mut params = scene.default_parameters.clone();
        for (k, v) in s.parameters.0 {
            params.set(&k, v);
        }
        let seed = first_seed(&params, s.rng_seed, &scene.domains())?;
        params.set("seed", serde_json::Value::from(seed));
        let now = now();
        let r = sqlx::query(
            "INSERT INTO segments (project_id, scene_type_id, label, parameters, rng_seed, status, attempt_count, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'queued', 1, $6, $6) RETURNING *",
        )
        .bind(scene.project_id)
        .bind(scene.id)
        .bind(otext(&s.label))
        .bind(json(&params))
        .bind(s.rng_seed as i64)
        .bind(now)
        .fetch_one(&mut *t.tx)
        .await
        .map_err(|e| db_err(e, "scene_type_id", || format!("scene type {} cannot take segments", s.scene_type_id)))?;
        let seg = rows::segment(&r)?;
        let a = first_attempt(&seg, seed, now);
        let attempt_id = insert_attempt(&mut t.tx, &a, seg.project_id, seg.scene_type_id).await?;
        t.push_event(NewEvent {
            project_id: Some(seg.project_id),
            segment_id: Some(seg.id),
            attempt_id: Some(attempt_id),
            kind: "segment_submitted",
            message: format!(
                "segment {} submitted; attempt 1 queued with seed {seed}",
                seg.id
            ),
            data: serde_json::json!({"scene_type_id": seg.scene_type_id, "label": seg.label}),
        });
        counters.push(seg.project_id);
        out.push(seg);
    }
    t.add_deltas(&crate::ops::submission_deltas(&counters))
        .await?;
    t.work_queued = !out.is_empty();
    Ok(out)
}

pub async fn extend_reservation(
    t: &mut PgTx,
    attempt_id: i64,
    worker: &str,
    extra: f64,
) -> Result<bool> {
    let r = sqlx::query("SELECT project_id FROM retry_attempts WHERE id = $1 AND worker = $2 AND overall_status = 'generating' FOR UPDATE")
        .bind(attempt_id)
        .bind(worker)
        .fetch_optional(&mut *t.tx)
        .await?;
    let Some(r) = r else { return Ok(false) };
    let project_id: i64 = r.get(0);
    if !t.try_reserve(project_id, extra).await? {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE retry_attempts SET reserved_gpu_seconds = reserved_gpu_seconds + $1 WHERE id = $2",
    )
    .bind(extra)
    .bind(attempt_id)
    .execute(&mut *t.tx)
    .await?;
    Ok(true)
}
