//! The longer SQLite statements: scene-type writes, submission and reservation growth.

use super::rows::{self, json, policy_columns, ts};
use super::tx::{insert_attempt, insert_event, SqliteTx};
use crate::model::*;
use crate::ops::{first_attempt, first_seed, NewEvent};
use crate::{Result, StoreError};
use sqlx::{Row, Sqlite, SqlitePool};
use std::collections::HashMap;

fn conflict_or(e: sqlx::Error, name: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::conflict(
            Some("name"),
            format!("this project already has a scene type named `{name}`"),
        ),
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            StoreError::invalid(Some("project_id"), "project does not exist")
        }
        _ => StoreError::from(e),
    }
}

pub async fn create_scene_type(pool: &SqlitePool, s: NewSceneType) -> Result<SceneType> {
    let t = ts(now());
    let pc = policy_columns(&s.retry_policy);
    let r = sqlx::query(
        "INSERT INTO scene_types (project_id, name, backend, backend_config, workflow_template, parameter_bindings, default_parameters,
         qa_checks, qa_commands, parameter_domains, auto_retry_enabled, auto_retry_max_attempts, auto_retry_trigger_checks,
         auto_retry_seed_variation, auto_retry_cfg_jitter, auto_retry_extra, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
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
    .bind(&t)
    .bind(&t)
    .fetch_one(pool)
    .await
    .map_err(|e| conflict_or(e, &s.name))?;
    rows::scene_type(&r)
}

pub async fn update_scene_type(
    tx: &mut sqlx::pool::PoolConnection<Sqlite>,
    id: i64,
    p: SceneTypePatch,
    if_updated_at: Option<Timestamp>,
) -> Result<SceneType> {
    let cur = sqlx::query("SELECT * FROM scene_types WHERE id = ?")
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
        "UPDATE scene_types SET name = ?, backend = ?, backend_config = ?, workflow_template = ?, parameter_bindings = ?,
         default_parameters = ?, qa_checks = ?, qa_commands = ?, parameter_domains = ?, auto_retry_enabled = ?,
         auto_retry_max_attempts = ?, auto_retry_trigger_checks = ?, auto_retry_seed_variation = ?, auto_retry_cfg_jitter = ?,
         auto_retry_extra = ?, updated_at = ? WHERE id = ? RETURNING *",
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
    // Strictly later than the previous write, so a precondition taken before it always fails.
    .bind(ts(now().max(cur.updated_at + chrono::Duration::microseconds(1))))
    .bind(id)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| conflict_or(e, &name))?;
    rows::scene_type(&r)
}

pub async fn submit_segments(
    tx: &mut sqlx::pool::PoolConnection<Sqlite>,
    segs: Vec<NewSegment>,
) -> Result<Vec<Segment>> {
    let mut scenes: HashMap<i64, SceneType> = HashMap::new();
    let mut counters: Vec<i64> = Vec::with_capacity(segs.len());
    let mut out = Vec::with_capacity(segs.len());
    for s in segs {
        if !scenes.contains_key(&s.scene_type_id) {
            let r = sqlx::query("SELECT * FROM scene_types WHERE id = ?")
                .bind(s.scene_type_id)
                .fetch_optional(&mut **tx)
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
        let t = now();
        let r = sqlx::query(
            "INSERT INTO segments (project_id, scene_type_id, label, parameters, rng_seed, status, attempt_count, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, 'queued', 1, ?, ?) RETURNING *",
        )
        .bind(scene.project_id)
        .bind(scene.id)
        .bind(&s.label)
        .bind(json(&params))
        .bind(s.rng_seed as i64)
        .bind(ts(t))
        .bind(ts(t))
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| {
            crate::errors::db_err(e, "scene_type_id", || {
                format!("scene type {} cannot take segments", s.scene_type_id)
            })
        })?;
        let seg = rows::segment(&r)?;
        let a = first_attempt(&seg, seed, t);
        let attempt_id = insert_attempt(tx, &a, seg.project_id, seg.scene_type_id).await?;
        insert_event(
            tx,
            NewEvent {
                project_id: Some(seg.project_id),
                segment_id: Some(seg.id),
                attempt_id: Some(attempt_id),
                kind: "segment_submitted",
                message: format!(
                    "segment {} submitted; attempt 1 queued with seed {seed}",
                    seg.id
                ),
                data: serde_json::json!({"scene_type_id": seg.scene_type_id, "label": seg.label}),
            },
        )
        .await?;
        counters.push(seg.project_id);
        out.push(seg);
    }
    super::tx::insert_deltas(tx, &crate::ops::submission_deltas(&counters)).await?;
    Ok(out)
}

pub async fn extend_reservation(
    t: &mut SqliteTx,
    attempt_id: i64,
    worker: &str,
    extra: f64,
) -> Result<bool> {
    let r = sqlx::query("SELECT project_id FROM retry_attempts WHERE id = ? AND worker = ? AND overall_status = 'generating'")
        .bind(attempt_id)
        .bind(worker)
        .fetch_optional(&mut *t.tx)
        .await?;
    let Some(r) = r else { return Ok(false) };
    let project_id: i64 = r.get(0);
    use crate::ops::TxOps;
    if !t.try_reserve(project_id, extra).await? {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE retry_attempts SET reserved_gpu_seconds = reserved_gpu_seconds + ? WHERE id = ?",
    )
    .bind(extra)
    .bind(attempt_id)
    .execute(&mut *t.tx)
    .await?;
    Ok(true)
}
