//! [`TxOps`] for PostgreSQL, and what a transaction does at commit.
//!
//! Reads of an attempt or a segment take the row lock (`FOR UPDATE`), so concurrent finishes of
//! the same attempt or decisions on the same segment — from any replica — run one after the
//! other, and the second sees the first's result. Reservations are one conditional `UPDATE`, which
//! PostgreSQL re-checks against the latest committed row after waiting for its lock, so racing
//! replicas never overspend.
//!
//! Events are buffered and inserted at commit under a transaction-scoped advisory lock, so event
//! ids are assigned in commit order (a reader following `id > cursor` never misses one), and the
//! `retake_work` / `retake_events` notifications are sent in the same transaction (delivered on
//! commit).

use super::rows::{self, json, otext, text};
use crate::model::*;
use crate::ops::{NewEvent, TxOps};
use crate::{Result, StoreError};
use async_trait::async_trait;
use retake_core::strategy::SceneStats;
use retake_core::{Arm, ArmStats, CheckStats};
use sqlx::{Postgres, Row, Transaction};

/// Serialises the commit tail of event-writing transactions (see the module docs).
const EVENT_ORDER_LOCK: i64 = 0x7265_7461_6b65_0001;

pub struct PgTx {
    pub tx: Transaction<'static, Postgres>,
    pub work_queued: bool,
    events: Vec<(NewEvent, Timestamp)>,
}

impl PgTx {
    pub fn new(tx: Transaction<'static, Postgres>) -> Self {
        PgTx {
            tx,
            work_queued: false,
            events: vec![],
        }
    }

    pub fn push_event(&mut self, e: NewEvent) {
        self.events.push((e, now()));
    }

    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Write the buffered events, send the notifications, commit. Returns (work queued, events
    /// written) for the in-process wake-ups.
    pub async fn commit(mut self) -> Result<(bool, bool)> {
        let events = std::mem::take(&mut self.events);
        let wrote_events = !events.is_empty();
        if wrote_events {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(EVENT_ORDER_LOCK)
                .execute(&mut *self.tx)
                .await?;
            let mut project = Vec::with_capacity(events.len());
            let mut segment = Vec::with_capacity(events.len());
            let mut attempt = Vec::with_capacity(events.len());
            let mut kind = Vec::with_capacity(events.len());
            let mut message = Vec::with_capacity(events.len());
            let mut data = Vec::with_capacity(events.len());
            let mut at = Vec::with_capacity(events.len());
            for (e, t) in events {
                project.push(e.project_id);
                segment.push(e.segment_id);
                attempt.push(e.attempt_id);
                kind.push(e.kind.to_owned());
                message.push(text(&e.message).into_owned());
                data.push(json(&e.data));
                at.push(t);
            }
            sqlx::query(
                "INSERT INTO events (project_id, segment_id, attempt_id, kind, message, data, created_at)
                 SELECT p, s, a, k, m, d, t FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[])
                      WITH ORDINALITY AS e(p, s, a, k, m, d, t, n)
                 ORDER BY n",
            )
            .bind(project)
            .bind(segment)
            .bind(attempt)
            .bind(kind)
            .bind(message)
            .bind(data)
            .bind(at)
            .execute(&mut *self.tx)
            .await?;
        }
        let notify = match (self.work_queued, wrote_events) {
            (true, true) => {
                Some("SELECT pg_notify('retake_work', ''), pg_notify('retake_events', '')")
            }
            (true, false) => Some("SELECT pg_notify('retake_work', '')"),
            (false, true) => Some("SELECT pg_notify('retake_events', '')"),
            (false, false) => None,
        };
        if let Some(sql) = notify {
            sqlx::query(sql).execute(&mut *self.tx).await?;
        }
        self.tx.commit().await?;
        Ok((self.work_queued, wrote_events))
    }

    /// Lock the segments, then the projects, of attempts this transaction holds, each in id
    /// order: the order every other transaction takes them in (attempt → segment → project), so a
    /// batch touching several never deadlocks with another.
    pub async fn lock_parents(&mut self, attempt_ids: &[i64]) -> Result<()> {
        sqlx::query(
            "SELECT id FROM segments WHERE id IN (SELECT segment_id FROM retry_attempts WHERE id = ANY($1))
             ORDER BY id FOR UPDATE",
        )
        .bind(attempt_ids)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "SELECT id FROM projects WHERE id IN (SELECT project_id FROM retry_attempts WHERE id = ANY($1))
             ORDER BY id FOR NO KEY UPDATE",
        )
        .bind(attempt_ids)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Lock a segment's in-flight attempts, then the segment, before a person closes it: the
    /// order a finishing worker takes them in (attempt → segment), instead of the reverse that
    /// the shared logic would take, which deadlocks with it.
    pub async fn lock_segment_for_close(&mut self, segment_id: i64) -> Result<()> {
        sqlx::query(
            "SELECT id FROM retry_attempts WHERE segment_id = $1 AND overall_status IN ('queued','generating','scoring')
             ORDER BY id FOR UPDATE",
        )
        .bind(segment_id)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("SELECT id FROM segments WHERE id = $1 FOR UPDATE")
            .bind(segment_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl TxOps for PgTx {
    async fn attempt(&mut self, id: i64) -> Result<Option<Attempt>> {
        let r = sqlx::query("SELECT * FROM retry_attempts WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        r.as_ref().map(rows::attempt).transpose()
    }

    async fn segment(&mut self, id: i64) -> Result<Option<Segment>> {
        let r = sqlx::query("SELECT * FROM segments WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        r.as_ref().map(rows::segment).transpose()
    }

    async fn scene_type(&mut self, id: i64) -> Result<SceneType> {
        let r = sqlx::query("SELECT * FROM scene_types WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        r.as_ref()
            .map(rows::scene_type)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("scene type", id))
    }

    /// The budget view for decisions only; reservations go through [`TxOps::try_reserve`].
    async fn project(&mut self, id: i64) -> Result<Project> {
        let r = sqlx::query("SELECT * FROM projects WHERE id = $1")
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
            "SELECT * FROM retry_attempts WHERE segment_id = $1 ORDER BY attempt_number",
        )
        .bind(segment_id)
        .fetch_all(&mut *self.tx)
        .await?;
        rs.iter().map(rows::attempt).collect()
    }

    async fn save_attempt(&mut self, a: &Attempt) -> Result<()> {
        sqlx::query(
            "UPDATE retry_attempts SET output_video_path = $1, quality_scores = $2, overall_status = $3, is_selected = $4,
             gpu_seconds = $5, reserved_gpu_seconds = $6, failure_reason = $7, backend = $8, worker = $9, lease_expires_at = $10,
             not_before = $11, progress = $12, infra_errors = $13, provenance = $14, qa_source = $15, selected_by = $16,
             human_override = $17, started_at = $18, finished_at = $19, updated_at = $20 WHERE id = $21",
        )
        .bind(otext(&a.output_video_path))
        .bind(a.quality_scores.as_ref().map(json))
        .bind(a.overall_status.as_str())
        .bind(a.is_selected)
        .bind(a.gpu_seconds)
        .bind(a.reserved_gpu_seconds)
        .bind(otext(&a.failure_reason))
        .bind(&a.backend)
        .bind(&a.worker)
        .bind(a.lease_expires_at)
        .bind(a.not_before)
        .bind(a.progress)
        .bind(json(&a.infra_errors))
        .bind(json(&a.provenance))
        .bind(&a.qa_source)
        .bind(&a.selected_by)
        .bind(a.human_override)
        .bind(a.started_at)
        .bind(a.finished_at)
        .bind(a.updated_at)
        .bind(a.id)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| rows::db_err(e, "is_selected", || format!("attempt {} of segment {}", a.attempt_number, a.segment_id)))?;
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

    async fn save_segment(&mut self, s: &Segment) -> Result<()> {
        sqlx::query(
            "UPDATE segments SET status = $1, review_reason = $2, decision_note = $3, review_evidence = $4,
             selected_attempt_number = $5, output_video_path = $6, attempt_count = $7, updated_at = $8 WHERE id = $9",
        )
        .bind(s.status.as_str())
        .bind(s.review_reason.map(|r| r.as_str()))
        .bind(otext(&s.decision_note))
        .bind(json(&s.review_evidence))
        .bind(s.selected_attempt_number.map(|n| n as i32))
        .bind(otext(&s.output_video_path))
        .bind(s.attempt_count as i32)
        .bind(s.updated_at)
        .bind(s.id)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| rows::db_err(e, "status", || format!("segment {}", s.id)))?;
        Ok(())
    }

    async fn try_reserve(&mut self, project_id: i64, seconds: f64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE projects SET gpu_reserved_seconds = gpu_reserved_seconds + $1
             WHERE id = $2 AND (gpu_budget_seconds IS NULL OR gpu_spent_seconds + gpu_reserved_seconds + $1 <= gpu_budget_seconds + 1e-9)",
        )
        .bind(seconds)
        .bind(project_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn settle(&mut self, project_id: i64, release: f64, spend: f64) -> Result<()> {
        sqlx::query(
            "UPDATE projects SET gpu_reserved_seconds = GREATEST(0, gpu_reserved_seconds - $1), gpu_spent_seconds = gpu_spent_seconds + $2
             WHERE id = $3",
        )
        .bind(release)
        .bind(spend)
        .bind(project_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn ledger(
        &mut self,
        project_id: i64,
        attempt_id: i64,
        reserved: f64,
        spent: f64,
        note: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO gpu_ledger (project_id, attempt_id, reserved_seconds, spent_seconds, note, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(project_id)
        .bind(attempt_id)
        .bind(reserved)
        .bind(spent)
        .bind(text(note))
        .bind(now())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn event(&mut self, e: NewEvent) -> Result<()> {
        self.push_event(e);
        Ok(())
    }

    async fn recent_gpu(&mut self, scene_type_id: i64, limit: u32) -> Result<Vec<f64>> {
        let rs = sqlx::query(
            "SELECT gpu_seconds FROM retry_attempts WHERE scene_type_id = $1 AND overall_status IN ('passed','failed','qa_error')
             ORDER BY id DESC LIMIT $2",
        )
        .bind(scene_type_id)
        .bind(limit as i64)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rs.iter().map(|r| r.get::<f64, _>(0)).collect())
    }

    async fn scene_stats(&mut self, scene_type_id: i64, with_scores: bool) -> Result<SceneStats> {
        let mut stats = SceneStats::default();
        for r in sqlx::query(r#"SELECT "check", attempts, failures, rescues FROM scene_check_stats WHERE scene_type_id = $1"#)
            .bind(scene_type_id)
            .fetch_all(&mut *self.tx)
            .await?
        {
            stats.checks.insert(
                r.get(0),
                CheckStats { attempts: r.get::<i32, _>(1) as u32, failures: r.get::<i32, _>(2) as u32, rescues: r.get::<i32, _>(3) as u32 },
            );
        }
        for r in sqlx::query(
            r#"SELECT "check", arm, tries, rescues FROM scene_arm_stats WHERE scene_type_id = $1"#,
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
                        tries: r.get::<i32, _>(2) as u32,
                        rescues: r.get::<i32, _>(3) as u32,
                    },
                );
            }
        }
        if with_scores {
            let rs = sqlx::query(
                "SELECT overall_status, quality_scores FROM retry_attempts WHERE scene_type_id = $1
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
            r#"INSERT INTO scene_check_stats AS s (scene_type_id, "check", attempts, failures, failed_segments, rescues)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (scene_type_id, "check") DO UPDATE SET attempts = s.attempts + $3, failures = s.failures + $4,
               failed_segments = s.failed_segments + $5, rescues = s.rescues + $6"#,
        )
        .bind(scene_type_id)
        .bind(check)
        .bind(attempts as i32)
        .bind(failures as i32)
        .bind(failed_segments as i32)
        .bind(rescues as i32)
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
            r#"INSERT INTO scene_arm_stats AS s (scene_type_id, "check", arm, tries, rescues) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (scene_type_id, "check", arm) DO UPDATE SET tries = s.tries + $4, rescues = s.rescues + $5"#,
        )
        .bind(scene_type_id)
        .bind(check)
        .bind(arm)
        .bind(tries as i32)
        .bind(rescues as i32)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// `pg_notify('retake_work')` is sent once, just before this transaction commits.
    async fn notify_work(&mut self) -> Result<()> {
        self.work_queued = true;
        Ok(())
    }
}

pub async fn insert_attempt(
    tx: &mut Transaction<'static, Postgres>,
    a: &Attempt,
    project_id: i64,
    scene_type_id: i64,
) -> Result<i64> {
    let r = sqlx::query(
        "INSERT INTO retry_attempts (segment_id, project_id, scene_type_id, attempt_number, seed, parameters, original_parameters,
         overall_status, jitter, arm, why, provenance, infra_errors, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '[]', $13, $14) RETURNING id",
    )
    .bind(a.segment_id)
    .bind(project_id)
    .bind(scene_type_id)
    .bind(a.attempt_number as i32)
    .bind(a.seed as i64)
    .bind(json(&a.parameters))
    .bind(json(&a.original_parameters))
    .bind(a.overall_status.as_str())
    .bind(a.jitter.as_ref().map(json))
    .bind(a.arm.map(|x| x.as_str()))
    .bind(otext(&a.why))
    .bind(json(&a.provenance))
    .bind(a.created_at)
    .bind(a.updated_at)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| {
        rows::db_err(e, "attempt_number", || format!("segment {} already has attempt {}", a.segment_id, a.attempt_number))
    })?;
    Ok(r.get(0))
}
