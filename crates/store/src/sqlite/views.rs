//! SQLite text of the operators' read models ([`crate::views`]).

use super::rows::{get_ots, get_ts, ts};
use crate::views::*;
use crate::{Result, StoreError};
use retake_core::AttemptStatus;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

const ENTRY_COLUMNS: &str =
    "a.id, a.segment_id, s.label, a.project_id, a.scene_type_id, st.name AS scene_type_name,
    a.attempt_number, a.overall_status, a.priority, a.worker, a.backend,
    json_extract(a.provenance, '$.server') AS server, a.progress, a.reserved_gpu_seconds,
    a.not_before, a.started_at, a.created_at";

fn entry(r: &SqliteRow, position: Option<u64>) -> Result<QueueEntry> {
    let status: String = r.try_get("overall_status")?;
    Ok(QueueEntry {
        attempt_id: r.try_get("id")?,
        segment_id: r.try_get("segment_id")?,
        label: r.try_get("label")?,
        project_id: r.try_get("project_id")?,
        scene_type_id: r.try_get("scene_type_id")?,
        scene_type_name: r.try_get("scene_type_name")?,
        attempt_number: r.try_get::<i64, _>("attempt_number")? as u32,
        status: status
            .parse::<AttemptStatus>()
            .map_err(StoreError::Corrupt)?,
        priority: r.try_get::<i64, _>("priority")? as u8,
        worker: r.try_get("worker")?,
        backend: r.try_get("backend")?,
        // A server recorded as anything but a name is not shown.
        server: r.try_get::<Option<String>, _>("server").ok().flatten(),
        progress: r.try_get("progress")?,
        reserved_gpu_seconds: r.try_get("reserved_gpu_seconds")?,
        not_before: get_ots(r, "not_before")?,
        started_at: get_ots(r, "started_at")?,
        created_at: get_ts(r, "created_at")?,
        position,
    })
}

pub async fn queue_snapshot(pool: &SqlitePool, f: &QueueFilter) -> Result<QueueSnapshot> {
    let running = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM retry_attempts a
         JOIN segments s ON s.id = a.segment_id JOIN scene_types st ON st.id = a.scene_type_id
         WHERE a.overall_status IN ('generating','scoring') AND (?1 IS NULL OR a.project_id = ?1)
         ORDER BY a.started_at, a.id LIMIT ?2"
    ))
    .bind(f.project_id)
    .bind(MAX_RUNNING_LISTED as i64)
    .fetch_all(pool)
    .await?;
    // The place in claim order (priority DESC, id) counts every queued attempt ahead, whatever
    // its project: two index ranges, so it stays cheap however long the queue is.
    let queued = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS},
            (SELECT COUNT(*) FROM retry_attempts b WHERE b.overall_status = 'queued' AND b.priority > a.priority)
          + (SELECT COUNT(*) FROM retry_attempts b WHERE b.overall_status = 'queued' AND b.priority = a.priority AND b.id < a.id)
          + 1 AS position
         FROM retry_attempts a
         JOIN segments s ON s.id = a.segment_id JOIN scene_types st ON st.id = a.scene_type_id
         WHERE a.overall_status = 'queued' AND (?1 IS NULL OR a.project_id = ?1)
         ORDER BY a.priority DESC, a.id LIMIT ?2 OFFSET ?3"
    ))
    .bind(f.project_id)
    .bind(f.limit as i64)
    .bind(f.offset.min(i64::MAX as u64) as i64)
    .fetch_all(pool)
    .await?;
    let counts = sqlx::query(
        "SELECT
            (SELECT COUNT(*) FROM retry_attempts WHERE overall_status = 'queued' AND (?1 IS NULL OR project_id = ?1)) AS queued,
            (SELECT COUNT(*) FROM retry_attempts WHERE overall_status IN ('generating','scoring') AND (?1 IS NULL OR project_id = ?1)) AS running,
            (SELECT COUNT(*) FROM retry_attempts WHERE overall_status IN ('generating','scoring')) AS running_everywhere",
    )
    .bind(f.project_id)
    .fetch_one(pool)
    .await?;
    let walls = sqlx::query(
        "SELECT started_at, finished_at FROM retry_attempts
         WHERE overall_status IN ('passed','failed','qa_error') AND started_at IS NOT NULL AND finished_at IS NOT NULL
         ORDER BY id DESC LIMIT ?",
    )
    .bind(WALL_TIME_WINDOW as i64)
    .fetch_all(pool)
    .await?;
    let mut recent_wall_seconds = Vec::with_capacity(walls.len());
    for r in &walls {
        if let (Some(s), Some(e)) = (get_ots(r, "started_at")?, get_ots(r, "finished_at")?) {
            recent_wall_seconds.push(((e - s).num_milliseconds() as f64 / 1000.0).max(0.0));
        }
    }
    Ok(QueueSnapshot {
        running: running
            .iter()
            .map(|r| entry(r, None))
            .collect::<Result<_>>()?,
        running_total: counts.try_get::<i64, _>("running")? as u64,
        queued: queued
            .iter()
            .map(|r| entry(r, Some(r.try_get::<i64, _>("position")? as u64)))
            .collect::<Result<_>>()?,
        queued_total: counts.try_get::<i64, _>("queued")? as u64,
        running_everywhere: counts.try_get::<i64, _>("running_everywhere")? as u64,
        recent_wall_seconds,
    })
}

pub async fn list_ledger(pool: &SqlitePool, f: &LedgerFilter) -> Result<Vec<LedgerEntry>> {
    let rs = sqlx::query(
        "SELECT g.id, g.attempt_id, a.segment_id, a.attempt_number, a.scene_type_id, st.name AS scene_type_name,
                g.reserved_seconds, g.spent_seconds, g.note, g.created_at
         FROM gpu_ledger g LEFT JOIN retry_attempts a ON a.id = g.attempt_id
         LEFT JOIN scene_types st ON st.id = a.scene_type_id
         WHERE g.project_id = ?1 AND (?2 IS NULL OR g.id < ?2) ORDER BY g.id DESC LIMIT ?3",
    )
    .bind(f.project_id)
    .bind(f.before_id)
    .bind(f.limit as i64)
    .fetch_all(pool)
    .await?;
    rs.iter()
        .map(|r| {
            Ok(LedgerEntry {
                id: r.try_get("id")?,
                attempt_id: r.try_get("attempt_id")?,
                segment_id: r.try_get("segment_id")?,
                attempt_number: r
                    .try_get::<Option<i64>, _>("attempt_number")?
                    .map(|n| n as u32),
                scene_type_id: r.try_get("scene_type_id")?,
                scene_type_name: r.try_get("scene_type_name")?,
                reserved_seconds: r.try_get("reserved_seconds")?,
                spent_seconds: r.try_get("spent_seconds")?,
                note: r.try_get("note")?,
                created_at: get_ts(r, "created_at")?,
            })
        })
        .collect()
}

pub async fn spend_series(pool: &SqlitePool, project_id: i64, buckets: u32) -> Result<SpendSeries> {
    let span = sqlx::query(
        "SELECT MIN(created_at) AS first, MAX(created_at) AS last FROM gpu_ledger WHERE project_id = ?",
    )
    .bind(project_id)
    .fetch_one(pool)
    .await?;
    let (Some(start), Some(end)) = (get_ots(&span, "first")?, get_ots(&span, "last")?) else {
        return Ok(SpendSeries::default());
    };
    let width = SpendSeries::width((end - start).num_milliseconds() as f64 / 1000.0, buckets);
    // Seconds since `start`, from the stored RFC 3339 text (julianday keeps milliseconds).
    let rs = sqlx::query(
        "SELECT MAX(0, MIN(CAST((julianday(g.created_at) - julianday(?2)) * 86400.0 / ?3 AS INTEGER), ?4 - 1)) AS bucket,
                a.scene_type_id, SUM(g.spent_seconds) AS spent
         FROM gpu_ledger g LEFT JOIN retry_attempts a ON a.id = g.attempt_id
         WHERE g.project_id = ?1 GROUP BY bucket, a.scene_type_id ORDER BY bucket, a.scene_type_id",
    )
    .bind(project_id)
    .bind(ts(start))
    .bind(width)
    .bind(buckets as i64)
    .fetch_all(pool)
    .await?;
    let points = rs
        .iter()
        .map(|r| {
            Ok(SpendPoint {
                bucket: r.try_get::<i64, _>("bucket")? as u32,
                scene_type_id: r.try_get("scene_type_id")?,
                spent_seconds: r.try_get("spent")?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(SpendSeries {
        start: Some(start),
        end: Some(end),
        bucket_seconds: width,
        points,
    })
}
