//! The longer SQLite statements: submission and reservation growth.

use super::rows::{self, json, ts};
use super::tx::{insert_attempt, insert_event, SqliteTx};
use crate::model::*;
use crate::ops::{first_attempt, first_seed, NewEvent};
use crate::{Result, StoreError};
use sqlx::{Row, Sqlite};
use std::collections::hash_map::{Entry, HashMap};

pub async fn submit_segments(
    tx: &mut sqlx::pool::PoolConnection<Sqlite>,
    segs: Vec<NewSegment>,
) -> Result<Vec<Segment>> {
    let mut scenes: HashMap<i64, SceneType> = HashMap::new();
    let mut counters: Vec<i64> = Vec::with_capacity(segs.len());
    let mut out = Vec::with_capacity(segs.len());
    for s in segs {
        let scene = match scenes.entry(s.scene_type_id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
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
                e.insert(st)
            }
        };
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
