//! [`TxOps`] for SQLite: one writer connection, so a transaction sees and writes alone.

use super::rows::{self, json, ots, ts};
use crate::errors::db_err;
use crate::model::*;
use crate::ops::{LedgerRow, NewEvent, ProjectDelta, RescueRow, TxOps};
use crate::{Result, StoreError};
use async_trait::async_trait;
use retake_core::strategy::SceneStats;
use retake_core::{Arm, ArmStats, CheckStats};
use sqlx::pool::PoolConnection;
use sqlx::{QueryBuilder, Row, Sqlite};

/// The events insert without its rows (one row in `insert_event`, many in `insert_events`).
macro_rules! insert_events {
    () => {
        "INSERT INTO events (project_id, segment_id, attempt_id, kind, message, data, created_at) "
    };
}

/// A write transaction on the one writer connection, begun and ended by hand rather than with
/// sqlx's `Transaction`: when a `COMMIT` fails (disk full, I/O error) SQLite may or may not have
/// rolled back already, and a connection left inside a transaction would silently turn every
/// later "commit" into the release of a savepoint that is never written. So a transaction that
/// does not commit cleanly is rolled back and its connection closed; the pool opens a fresh one.
pub struct SqliteTx {
    pub tx: PoolConnection<Sqlite>,
    pub work_queued: bool,
    open: bool,
}

impl SqliteTx {
    pub async fn begin(pool: &sqlx::SqlitePool) -> Result<SqliteTx> {
        let mut conn = pool.acquire().await?;
        if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
            conn.close_on_drop();
            return Err(e.into());
        }
        Ok(SqliteTx {
            tx: conn,
            work_queued: false,
            open: true,
        })
    }

    pub async fn commit(mut self) -> Result<()> {
        match sqlx::query("COMMIT").execute(&mut *self.tx).await {
            Ok(_) => {
                self.open = false;
                Ok(())
            }
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut *self.tx).await;
                // `open` stays set: dropping closes the connection.
                Err(e.into())
            }
        }
    }

    pub async fn rollback(mut self) {
        if sqlx::query("ROLLBACK").execute(&mut *self.tx).await.is_ok() {
            self.open = false;
        }
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open {
            // Ended by an error (or never committed): the connection may still be inside the
            // transaction. Close it rather than hand it back to the pool.
            self.tx.close_on_drop();
        }
    }
}

#[async_trait]
impl TxOps for SqliteTx {
    async fn attempt(&mut self, id: i64) -> Result<Option<Attempt>> {
        let r = sqlx::query("SELECT * FROM retry_attempts WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        r.as_ref().map(rows::attempt).transpose()
    }

    async fn segment(&mut self, id: i64) -> Result<Option<Segment>> {
        let r = sqlx::query("SELECT * FROM segments WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        r.as_ref().map(rows::segment).transpose()
    }

    async fn scene_type(&mut self, id: i64) -> Result<SceneType> {
        let r = sqlx::query("SELECT * FROM scene_types WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        r.as_ref()
            .map(rows::scene_type)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("scene type", id))
    }

    async fn project(&mut self, id: i64) -> Result<Project> {
        let r = sqlx::query(&crate::ops::sqlite_sql(&format!(
            "{} WHERE p.id = $1",
            crate::ops::PROJECT_SELECT
        )))
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        r.as_ref()
            .map(rows::project)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("project", id))
    }

    async fn attempts_of(&mut self, segment_id: i64) -> Result<Vec<Attempt>> {
        let rs = sqlx::query(
            "SELECT * FROM retry_attempts WHERE segment_id = ? ORDER BY attempt_number",
        )
        .bind(segment_id)
        .fetch_all(&mut *self.tx)
        .await?;
        rs.iter().map(rows::attempt).collect()
    }

    async fn save_attempt(&mut self, a: &Attempt) -> Result<()> {
        sqlx::query(
            "UPDATE retry_attempts SET output_video_path = ?, quality_scores = ?, overall_status = ?, is_selected = ?,
             gpu_seconds = ?, reserved_gpu_seconds = ?, failure_reason = ?, backend = ?, worker = ?, lease_expires_at = ?,
             not_before = ?, progress = ?, infra_errors = ?, provenance = ?, qa_source = ?, selected_by = ?, human_override = ?,
             started_at = ?, finished_at = ?, updated_at = ?, waiting_since = ? WHERE id = ?",
        )
        .bind(&a.output_video_path)
        .bind(a.quality_scores.as_ref().map(json))
        .bind(a.overall_status.as_str())
        .bind(a.is_selected)
        .bind(a.gpu_seconds)
        .bind(a.reserved_gpu_seconds)
        .bind(&a.failure_reason)
        .bind(&a.backend)
        .bind(&a.worker)
        .bind(ots(a.lease_expires_at))
        .bind(ots(a.not_before))
        .bind(a.progress)
        .bind(json(&a.infra_errors))
        .bind(json(&a.provenance))
        .bind(&a.qa_source)
        .bind(&a.selected_by)
        .bind(a.human_override)
        .bind(ots(a.started_at))
        .bind(ots(a.finished_at))
        .bind(ts(a.updated_at))
        .bind(ots(a.waiting_since))
        .bind(a.id)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| db_err(e, "is_selected", || {
            format!("attempt {} of segment {}", a.attempt_number, a.segment_id)
        }))?;
        Ok(())
    }

    async fn insert_attempt(
        &mut self,
        a: &Attempt,
        project_id: i64,
        scene_type_id: i64,
    ) -> Result<i64> {
        insert_attempt(&mut self.tx, a, project_id, scene_type_id).await
    }

    async fn save_attempts(&mut self, attempts: &[Attempt]) -> Result<()> {
        // One statement per chunk: `UPDATE … FROM (VALUES …)` (each statement is a round trip to
        // the connection's thread, which costs more than the write itself).
        for chunk in attempts.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE retry_attempts SET output_video_path = v.column2, quality_scores = v.column3,
                 overall_status = v.column4, is_selected = v.column5, gpu_seconds = v.column6,
                 reserved_gpu_seconds = v.column7, failure_reason = v.column8, backend = v.column9,
                 worker = v.column10, lease_expires_at = v.column11, not_before = v.column12,
                 progress = v.column13, infra_errors = v.column14, provenance = v.column15,
                 qa_source = v.column16, selected_by = v.column17, human_override = v.column18,
                 started_at = v.column19, finished_at = v.column20, updated_at = v.column21,
                 waiting_since = v.column22 FROM (",
            );
            q.push_values(chunk, |mut b, a| {
                b.push_bind(a.id)
                    .push_bind(a.output_video_path.clone())
                    .push_bind(a.quality_scores.as_ref().map(json))
                    .push_bind(a.overall_status.as_str())
                    .push_bind(a.is_selected)
                    .push_bind(a.gpu_seconds)
                    .push_bind(a.reserved_gpu_seconds)
                    .push_bind(a.failure_reason.clone())
                    .push_bind(a.backend.clone())
                    .push_bind(a.worker.clone())
                    .push_bind(ots(a.lease_expires_at))
                    .push_bind(ots(a.not_before))
                    .push_bind(a.progress)
                    .push_bind(json(&a.infra_errors))
                    .push_bind(json(&a.provenance))
                    .push_bind(a.qa_source.clone())
                    .push_bind(a.selected_by.clone())
                    .push_bind(a.human_override)
                    .push_bind(ots(a.started_at))
                    .push_bind(ots(a.finished_at))
                    .push_bind(ts(a.updated_at))
                    .push_bind(ots(a.waiting_since));
            });
            q.push(") AS v WHERE retry_attempts.id = v.column1");
            q.build()
                .persistent(false)
                .execute(&mut *self.tx)
                .await
                .map_err(|e| db_err(e, "is_selected", || "a batch of attempts".to_owned()))?;
        }
        Ok(())
    }

    async fn save_segments(&mut self, segments: &[Segment]) -> Result<()> {
        for chunk in segments.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE segments SET status = v.column2, review_reason = v.column3,
                 decision_note = v.column4, review_evidence = v.column5,
                 selected_attempt_number = v.column6, output_video_path = v.column7,
                 attempt_count = v.column8, updated_at = v.column9, had_failure = v.column10,
                 first_pass = v.column11 FROM (",
            );
            q.push_values(chunk, |mut b, s| {
                b.push_bind(s.id)
                    .push_bind(s.status.as_str())
                    .push_bind(s.review_reason.map(|r| r.as_str()))
                    .push_bind(s.decision_note.clone())
                    .push_bind(json(&s.review_evidence))
                    .push_bind(s.selected_attempt_number.map(i64::from))
                    .push_bind(s.output_video_path.clone())
                    .push_bind(s.attempt_count as i64)
                    .push_bind(ts(s.updated_at))
                    .push_bind(s.had_failure)
                    .push_bind(s.first_pass.map(i64::from));
            });
            q.push(") AS v WHERE segments.id = v.column1");
            q.build()
                .persistent(false)
                .execute(&mut *self.tx)
                .await
                .map_err(|e| db_err(e, "status", || "a batch of segments".to_owned()))?;
        }
        Ok(())
    }

    async fn ledger_rows(&mut self, rows: &[LedgerRow]) -> Result<()> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO gpu_ledger (project_id, attempt_id, reserved_seconds, spent_seconds, note, created_at) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.project_id)
                    .push_bind(r.attempt_id)
                    .push_bind(r.reserved)
                    .push_bind(r.spent)
                    .push_bind(r.note.clone())
                    .push_bind(ts(r.at));
            });
            q.build().persistent(false).execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn events(&mut self, events: Vec<NewEvent>) -> Result<()> {
        insert_events(&mut self.tx, events).await
    }

    async fn save_segment(&mut self, s: &Segment) -> Result<()> {
        sqlx::query(
            "UPDATE segments SET status = ?, review_reason = ?, decision_note = ?, review_evidence = ?,
             selected_attempt_number = ?, output_video_path = ?, attempt_count = ?, updated_at = ?,
             had_failure = ?, first_pass = ? WHERE id = ?",
        )
        .bind(s.status.as_str())
        .bind(s.review_reason.map(|r| r.as_str()))
        .bind(&s.decision_note)
        .bind(json(&s.review_evidence))
        .bind(s.selected_attempt_number.map(i64::from))
        .bind(&s.output_video_path)
        .bind(s.attempt_count as i64)
        .bind(ts(s.updated_at))
        .bind(s.had_failure)
        .bind(s.first_pass.map(i64::from))
        .bind(s.id)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| db_err(e, "status", || format!("segment {}", s.id)))?;
        Ok(())
    }

    async fn reserve(&mut self, project_id: i64, wanted: &[f64]) -> Result<usize> {
        // One writer: nothing else changes the project or its deltas until this commits.
        let Some(r) = sqlx::query(
            "SELECT gpu_budget_seconds, gpu_spent_seconds, gpu_reserved_seconds FROM projects WHERE id = ?",
        )
        .bind(project_id)
        .fetch_optional(&mut *self.tx)
        .await?
        else {
            return Err(StoreError::not_found("project", project_id));
        };
        let budget: Option<f64> = r.get(0);
        let folded =
            sqlx::query("DELETE FROM project_deltas WHERE project_id = ? RETURNING key, value")
                .bind(project_id)
                .fetch_all(&mut *self.tx)
                .await?;
        let fold = crate::ops::Fold::of(
            folded
                .iter()
                .map(|r| (r.get::<String, _>(0), r.get::<f64, _>(1))),
        );
        let spent = r.get::<f64, _>(1) + fold.spent;
        let reserved = (r.get::<f64, _>(2) + fold.reserved).max(0.0);
        let n = crate::ops::covered(budget, spent + reserved, wanted);
        let add: f64 = wanted[..n].iter().sum();
        if !folded.is_empty() || add != 0.0 {
            sqlx::query(
                "UPDATE projects SET gpu_spent_seconds = ?, gpu_reserved_seconds = ? WHERE id = ?",
            )
            .bind(spent)
            .bind(reserved + add)
            .bind(project_id)
            .execute(&mut *self.tx)
            .await?;
        }
        for (key, value) in fold.counters {
            sqlx::query(
                "INSERT INTO project_counters (project_id, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (project_id, key) DO UPDATE SET value = value + ?3",
            )
            .bind(project_id)
            .bind(key)
            .bind(value)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(n)
    }

    async fn add_deltas(&mut self, deltas: &[ProjectDelta]) -> Result<()> {
        insert_deltas(&mut self.tx, deltas).await
    }

    async fn lock_attempts(&mut self, ids: &[i64]) -> Result<Vec<Attempt>> {
        let rs = sqlx::query(
            "SELECT * FROM retry_attempts WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
        )
        .bind(id_list(ids))
        .fetch_all(&mut *self.tx)
        .await?;
        rs.iter().map(rows::attempt).collect()
    }

    async fn lock_segments(&mut self, ids: &[i64]) -> Result<Vec<Segment>> {
        let rs = sqlx::query(
            "SELECT * FROM segments WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
        )
        .bind(id_list(ids))
        .fetch_all(&mut *self.tx)
        .await?;
        rs.iter().map(rows::segment).collect()
    }

    async fn attempts_of_many(&mut self, segment_ids: &[i64]) -> Result<Vec<Attempt>> {
        let rs = sqlx::query(
            "SELECT * FROM retry_attempts WHERE segment_id IN (SELECT value FROM json_each(?))
             ORDER BY segment_id, attempt_number",
        )
        .bind(id_list(segment_ids))
        .fetch_all(&mut *self.tx)
        .await?;
        rs.iter().map(rows::attempt).collect()
    }

    async fn ledger(
        &mut self,
        project_id: i64,
        attempt_id: i64,
        reserved: f64,
        spent: f64,
        note: &str,
    ) -> Result<()> {
        sqlx::query("INSERT INTO gpu_ledger (project_id, attempt_id, reserved_seconds, spent_seconds, note, created_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(project_id)
            .bind(attempt_id)
            .bind(reserved)
            .bind(spent)
            .bind(note)
            .bind(ts(now()))
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn event(&mut self, e: NewEvent) -> Result<()> {
        insert_event(&mut self.tx, e).await
    }

    async fn recent_gpu(&mut self, scene_type_id: i64, limit: u32) -> Result<Vec<f64>> {
        let rs = sqlx::query(
            "SELECT gpu_seconds FROM retry_attempts WHERE scene_type_id = ? AND overall_status IN ('passed','failed','qa_error')
             ORDER BY id DESC LIMIT ?",
        )
        .bind(scene_type_id)
        .bind(limit as i64)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rs.iter().map(|r| r.get::<f64, _>(0)).collect())
    }

    async fn scene_stats(&mut self, scene_type_id: i64, with_scores: bool) -> Result<SceneStats> {
        let mut stats = SceneStats::default();
        for r in sqlx::query(r#"SELECT "check", attempts, failures, rescues FROM scene_check_stats WHERE scene_type_id = ?"#)
            .bind(scene_type_id)
            .fetch_all(&mut *self.tx)
            .await?
        {
            stats.checks.insert(
                r.get(0),
                CheckStats { attempts: r.get::<i64, _>(1) as u32, failures: r.get::<i64, _>(2) as u32, rescues: r.get::<i64, _>(3) as u32 },
            );
        }
        for r in sqlx::query(
            r#"SELECT "check", arm, tries, rescues FROM scene_arm_stats WHERE scene_type_id = ?"#,
        )
        .bind(scene_type_id)
        .fetch_all(&mut *self.tx)
        .await?
        {
            let arm: String = r.get(1);
            if let Some(arm) = Arm::parse(&arm) {
                stats.arms.entry(r.get(0)).or_default().insert(
                    arm,
                    ArmStats {
                        tries: r.get::<i64, _>(2) as u32,
                        rescues: r.get::<i64, _>(3) as u32,
                    },
                );
            }
        }
        if with_scores {
            let rs = sqlx::query(
                "SELECT overall_status, quality_scores FROM retry_attempts WHERE scene_type_id = ?
                 AND overall_status IN ('passed','failed','qa_error') ORDER BY id DESC LIMIT 200",
            )
            .bind(scene_type_id)
            .fetch_all(&mut *self.tx)
            .await?;
            let mut passed = 0usize;
            for r in &rs {
                let st: String = r.get(0);
                if st == "passed" {
                    passed += 1;
                    if let Some(q) =
                        rows::get_ojson::<retake_core::QualityScores>(r, "quality_scores")?
                    {
                        stats.passing_overall.push(q.overall);
                    }
                }
            }
            if !rs.is_empty() {
                stats.pass_rate = Some(passed as f64 / rs.len() as f64);
            }
        }
        Ok(stats)
    }

    async fn bump_check_stats(
        &mut self,
        scene_type_id: i64,
        check: &str,
        attempts: i64,
        failures: i64,
        failed_segments: i64,
        rescues: i64,
    ) -> Result<()> {
        sqlx::query(
            r#"INSERT INTO scene_check_stats (scene_type_id, "check", attempts, failures, failed_segments, rescues) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
               ON CONFLICT (scene_type_id, "check") DO UPDATE SET attempts = attempts + ?3, failures = failures + ?4,
               failed_segments = failed_segments + ?5, rescues = rescues + ?6"#,
        )
        .bind(scene_type_id)
        .bind(check)
        .bind(attempts)
        .bind(failures)
        .bind(failed_segments)
        .bind(rescues)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn bump_arm_stats(
        &mut self,
        scene_type_id: i64,
        check: &str,
        arm: &str,
        tries: i64,
        rescues: i64,
    ) -> Result<()> {
        sqlx::query(
            r#"INSERT INTO scene_arm_stats (scene_type_id, "check", arm, tries, rescues) VALUES (?1, ?2, ?3, ?4, ?5)
               ON CONFLICT (scene_type_id, "check", arm) DO UPDATE SET tries = tries + ?4, rescues = rescues + ?5"#,
        )
        .bind(scene_type_id)
        .bind(check)
        .bind(arm)
        .bind(tries)
        .bind(rescues)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn rescue_rows(&mut self, scene_type_id: i64, limit: u32) -> Result<Vec<RescueRow>> {
        let rs = sqlx::query(
            r#"SELECT "check", bucket, key, value FROM scene_rescue_evidence WHERE scene_type_id = ?
               ORDER BY bucket DESC LIMIT ?"#,
        )
        .bind(scene_type_id)
        .bind(limit as i64)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rs
            .iter()
            .map(|r| RescueRow {
                scene_type_id,
                check: r.get(0),
                bucket: r.get(1),
                key: r.get(2),
                value: r.get(3),
            })
            .collect())
    }

    async fn bump_rescue(&mut self, rows: &[RescueRow]) -> Result<()> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                r#"INSERT INTO scene_rescue_evidence (scene_type_id, "check", bucket, key, value) "#,
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.scene_type_id)
                    .push_bind(r.check.clone())
                    .push_bind(r.bucket)
                    .push_bind(r.key.clone())
                    .push_bind(r.value);
            });
            q.push(
                r#" ON CONFLICT (scene_type_id, "check", bucket, key) DO UPDATE SET value = value + excluded.value"#,
            );
            q.build().persistent(false).execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn notify_work(&mut self) -> Result<()> {
        self.work_queued = true;
        Ok(())
    }

    async fn lock_ready(
        &mut self,
        limit: u32,
        at: Timestamp,
        skip: &[i64],
    ) -> Result<(Vec<(Attempt, i64, i64)>, Vec<Segment>)> {
        let rs = sqlx::query(
            "SELECT * FROM retry_attempts
             WHERE overall_status = 'queued' AND (not_before IS NULL OR not_before <= ?1)
               AND id NOT IN (SELECT value FROM json_each(?3))
             ORDER BY priority DESC, id LIMIT ?2",
        )
        .bind(ts(at))
        .bind(limit as i64)
        .bind(id_list(skip))
        .fetch_all(&mut *self.tx)
        .await?;
        if rs.is_empty() {
            return Ok((vec![], vec![]));
        }
        let ready = rs
            .iter()
            .map(rows::ready_attempt)
            .collect::<Result<Vec<_>>>()?;
        let ids = crate::ops::segment_ids(&ready);
        let segments = self.lock_segments(&ids).await?;
        Ok((ready, segments))
    }
}

pub async fn insert_attempt(
    tx: &mut PoolConnection<Sqlite>,
    a: &Attempt,
    project_id: i64,
    scene_type_id: i64,
) -> Result<i64> {
    let r = sqlx::query(
        "INSERT INTO retry_attempts (segment_id, project_id, scene_type_id, attempt_number, seed, parameters, original_parameters,
         overall_status, jitter, arm, why, provenance, infra_errors, created_at, updated_at, round, requested_by, priority)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(a.segment_id)
    .bind(project_id)
    .bind(scene_type_id)
    .bind(a.attempt_number as i64)
    .bind(a.seed as i64)
    .bind(json(&a.parameters))
    .bind(json(&a.original_parameters))
    .bind(a.overall_status.as_str())
    .bind(a.jitter.as_ref().map(json))
    .bind(a.arm.map(|x| x.as_str()))
    .bind(&a.why)
    .bind(json(&a.provenance))
    .bind(ts(a.created_at))
    .bind(ts(a.updated_at))
    .bind(a.round as i64)
    .bind(&a.requested_by)
    .bind(a.priority as i64)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| {
        crate::errors::db_err(e, "attempt_number", || {
            format!("segment {} already has attempt {}", a.segment_id, a.attempt_number)
        })
    })?;
    Ok(r.get(0))
}

pub async fn insert_event(tx: &mut PoolConnection<Sqlite>, e: NewEvent) -> Result<()> {
    sqlx::query(concat!(insert_events!(), "VALUES (?, ?, ?, ?, ?, ?, ?)"))
        .bind(e.project_id)
        .bind(e.segment_id)
        .bind(e.attempt_id)
        .bind(e.kind)
        .bind(&e.message)
        .bind(json(&e.data))
        .bind(ts(now()))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Ids as a JSON array, for `IN (SELECT value FROM json_each(?))`.
pub(crate) fn id_list(ids: &[i64]) -> String {
    serde_json::to_string(ids).expect("ids serialize")
}

pub async fn insert_deltas(tx: &mut PoolConnection<Sqlite>, deltas: &[ProjectDelta]) -> Result<()> {
    for chunk in deltas.chunks(ROWS_PER_STATEMENT) {
        let mut q =
            QueryBuilder::<Sqlite>::new("INSERT INTO project_deltas (project_id, key, value) ");
        q.push_values(chunk, |mut b, d| {
            b.push_bind(d.project_id)
                .push_bind(d.key.clone())
                .push_bind(d.value);
        });
        q.build().persistent(false).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Events in one statement per chunk, ids in the order given.
pub async fn insert_events(tx: &mut PoolConnection<Sqlite>, events: Vec<NewEvent>) -> Result<()> {
    let at = ts(now());
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(insert_events!());
        q.push_values(chunk, |mut b, e| {
            b.push_bind(e.project_id)
                .push_bind(e.segment_id)
                .push_bind(e.attempt_id)
                .push_bind(e.kind)
                .push_bind(e.message.clone())
                .push_bind(json(&e.data))
                .push_bind(at.clone());
        });
        q.build().persistent(false).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Rows per multi-row statement: well under SQLite's 32,766 bound parameters at 22 a row.
const ROWS_PER_STATEMENT: usize = 256;
