//! [`TxOps`] for PostgreSQL, and what a transaction does at commit.
//!
//! Reads of an attempt or a segment take the row lock (`FOR UPDATE`), so concurrent finishes of
//! the same attempt or decisions on the same segment — from any replica — run one after the
//! other, and the second sees the first's result. Reservations are one conditional `UPDATE`, which
//! PostgreSQL re-checks against the latest committed row after waiting for its lock, so racing
//! replicas never overspend.
//!
//! Events are buffered and inserted in one statement at commit, each stamped with the writing
//! transaction's id (`txid`); readers follow `(txid, id)` below the oldest running transaction, so
//! no lock orders the writers (see `list_events`). The `retake_work` / `retake_events`
//! notifications are sent in the same transaction (delivered on commit).

use super::rows::{self, json, otext, text};
use crate::model::*;
use crate::ops::{
    ArmBump, CheckBump, LedgerRow, NewEvent, ProjectDelta, RescueRow, TxOps, PROJECT_SELECT,
};
use crate::{Result, StoreError};
use async_trait::async_trait;
use retake_core::strategy::SceneStats;
use retake_core::{Arm, ArmStats, CheckStats};
use sqlx::{Postgres, Row, Transaction};

/// The class of the advisory locks that order budget changes against reservations made
/// without a budget (the second key is the project id). A transaction that reads a project to
/// reserve for it takes the lock shared — in a statement before the one that checks the budget,
/// so that check sees any budget committed before it; setting a budget takes it exclusively
/// first, so it waits for those transactions and every later one sees the budget. Shared
/// advisory locks cost no row write, unlike `FOR SHARE` on the project row (a multixact per
/// concurrent claim).
pub const BUDGET_LOCK: i32 = 0x7274_6b62;

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

    /// Ends the transaction now, so its row locks go before the connection serves anyone else.
    /// Dropping a `Transaction` only queues the `ROLLBACK` until the connection's next use; an
    /// idle pooled connection would keep holding the rows, and claims (`SKIP LOCKED`) would skip
    /// them meanwhile. A failed rollback leaves it queued, as a drop would.
    pub async fn rollback(self) {
        if let Err(e) = self.tx.rollback().await {
            tracing::debug!(error = %e, "rollback failed; it is sent on the connection's next use");
        }
    }

    /// Write the buffered events, send the notifications, commit. Returns (work queued, events
    /// written) for the in-process wake-ups.
    pub async fn commit(mut self) -> Result<(bool, bool)> {
        let events = std::mem::take(&mut self.events);
        let wrote_events = !events.is_empty();
        if wrote_events {
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
            // The wake-ups ride on the same statement (one round trip less per transaction);
            // PostgreSQL delivers them at commit, or never if the transaction rolls back.
            macro_rules! insert_events {
                () => {
                    "WITH ins AS (INSERT INTO events (project_id, segment_id, attempt_id, kind, message, data, created_at)
                     SELECT p, s, a, k, m, d, t FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[])
                          WITH ORDINALITY AS e(p, s, a, k, m, d, t, n)
                     ORDER BY n RETURNING 1)"
                };
            }
            let sql = if self.work_queued {
                concat!(
                    insert_events!(),
                    " SELECT pg_notify('retake_events', ''), pg_notify('retake_work', '')"
                )
            } else {
                concat!(insert_events!(), " SELECT pg_notify('retake_events', '')")
            };
            sqlx::query(sql)
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
        if self.work_queued && !wrote_events {
            sqlx::query("SELECT pg_notify('retake_work', '')")
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        Ok((self.work_queued, wrote_events))
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

    /// The budget view for decisions only; reservations go through [`TxOps::reserve`]. It also
    /// takes the project's budget lock shared (see [`BUDGET_LOCK`]).
    async fn project(&mut self, id: i64) -> Result<Project> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "{PROJECT_SELECT} CROSS JOIN LATERAL (SELECT pg_advisory_xact_lock_shared({BUDGET_LOCK}, (p.id % 2147483647)::int4)) l WHERE p.id = $1"
            )
        });
        let r = sqlx::query(SQL.as_str())
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
             human_override = $17, started_at = $18, finished_at = $19, updated_at = $20, waiting_since = $22 WHERE id = $21",
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
        .bind(a.waiting_since)
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
             selected_attempt_number = $5, output_video_path = $6, attempt_count = $7, updated_at = $8,
             had_failure = $10, first_pass = $11 WHERE id = $9",
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
        .bind(s.had_failure)
        .bind(s.first_pass.map(|n| n as i32))
        .execute(&mut *self.tx)
        .await
        .map_err(|e| rows::db_err(e, "status", || format!("segment {}", s.id)))?;
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
        for r in sqlx::query(r#"SELECT "check", SUM(attempts)::int4, SUM(failures)::int4, SUM(rescues)::int4 FROM scene_check_stats WHERE scene_type_id = $1 GROUP BY "check""#)
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
            r#"SELECT "check", arm, SUM(tries)::int4, SUM(rescues)::int4 FROM scene_arm_stats WHERE scene_type_id = $1 GROUP BY "check", arm"#,
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
            r#"INSERT INTO scene_check_stats AS s (scene_type_id, "check", stripe, attempts, failures, failed_segments, rescues)
               VALUES ($1, $2, pg_backend_pid() % 32, $3, $4, $5, $6)
               ON CONFLICT (scene_type_id, "check", stripe) DO UPDATE SET attempts = s.attempts + $3, failures = s.failures + $4,
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
            r#"INSERT INTO scene_arm_stats AS s (scene_type_id, "check", arm, stripe, tries, rescues)
               VALUES ($1, $2, $3, pg_backend_pid() % 32, $4, $5)
               ON CONFLICT (scene_type_id, "check", arm, stripe) DO UPDATE SET tries = s.tries + $4, rescues = s.rescues + $5"#,
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

    /// Rows arrive sorted by key, so concurrent batches lock their stripes in the same order.
    async fn bump_check_stats_many(&mut self, rows: &[CheckBump]) -> Result<()> {
        sqlx::query(
            r#"INSERT INTO scene_check_stats AS s (scene_type_id, "check", attempts, failures, failed_segments, rescues, stripe)
               SELECT *, pg_backend_pid() % 32 FROM UNNEST($1::int8[], $2::text[], $3::int4[], $4::int4[], $5::int4[], $6::int4[])
               ON CONFLICT (scene_type_id, "check", stripe) DO UPDATE SET attempts = s.attempts + EXCLUDED.attempts,
               failures = s.failures + EXCLUDED.failures, failed_segments = s.failed_segments + EXCLUDED.failed_segments,
               rescues = s.rescues + EXCLUDED.rescues"#,
        )
        .bind(rows.iter().map(|r| r.scene_type_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.check.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.attempts as i32).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.failures as i32).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.failed_segments as i32).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.rescues as i32).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn bump_arm_stats_many(&mut self, rows: &[ArmBump]) -> Result<()> {
        sqlx::query(
            r#"INSERT INTO scene_arm_stats AS s (scene_type_id, "check", arm, tries, rescues, stripe)
               SELECT *, pg_backend_pid() % 32 FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int4[], $5::int4[])
               ON CONFLICT (scene_type_id, "check", arm, stripe) DO UPDATE SET tries = s.tries + EXCLUDED.tries,
               rescues = s.rescues + EXCLUDED.rescues"#,
        )
        .bind(rows.iter().map(|r| r.scene_type_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.check.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.arm.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.tries as i32).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.rescues as i32).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn rescue_rows(&mut self, scene_type_id: i64, limit: u32) -> Result<Vec<RescueRow>> {
        let rs = sqlx::query(
            r#"SELECT "check", bucket, key, SUM(value) FROM scene_rescue_evidence WHERE scene_type_id = $1
               GROUP BY "check", bucket, key ORDER BY bucket DESC LIMIT $2"#,
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
        if rows.is_empty() {
            return Ok(());
        }
        let mut scene = Vec::with_capacity(rows.len());
        let mut check = Vec::with_capacity(rows.len());
        let mut bucket = Vec::with_capacity(rows.len());
        let mut key = Vec::with_capacity(rows.len());
        let mut value = Vec::with_capacity(rows.len());
        for r in rows {
            scene.push(r.scene_type_id);
            check.push(r.check.clone());
            bucket.push(r.bucket);
            key.push(r.key.clone());
            value.push(r.value);
        }
        // Rows arrive sorted by key (the unit aggregates them in a BTreeMap), so concurrent
        // batches lock them in the same order.
        sqlx::query(
            r#"INSERT INTO scene_rescue_evidence AS e (scene_type_id, "check", bucket, key, value, stripe)
               SELECT *, pg_backend_pid() % 32 FROM UNNEST($1::int8[], $2::text[], $3::int8[], $4::text[], $5::float8[])
               ON CONFLICT (scene_type_id, "check", bucket, key, stripe) DO UPDATE SET value = e.value + EXCLUDED.value"#,
        )
        .bind(&scene)
        .bind(&check)
        .bind(&bucket)
        .bind(&key)
        .bind(&value)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// `pg_notify('retake_work')` is sent once, just before this transaction commits.
    async fn notify_work(&mut self) -> Result<()> {
        self.work_queued = true;
        Ok(())
    }

    /// Two statements with plans that stay simple however stale the statistics: the queue's
    /// first ready attempts (its index, in claim order), then their segments. Both skip rows
    /// another transaction holds; an attempt whose segment is held is left out (its row lock
    /// goes at commit, and it stays queued).
    async fn lock_ready(
        &mut self,
        limit: u32,
        at: Timestamp,
        skip: &[i64],
    ) -> Result<(Vec<(Attempt, i64, i64)>, Vec<Segment>)> {
        let rs = sqlx::query(
            "SELECT * FROM retry_attempts
             WHERE overall_status = 'queued' AND (not_before IS NULL OR not_before <= $1) AND id <> ALL($3)
             ORDER BY priority DESC, id LIMIT $2
             FOR UPDATE SKIP LOCKED",
        )
        .bind(at)
        .bind(limit as i64)
        .bind(skip)
        .fetch_all(&mut *self.tx)
        .await?;
        if rs.is_empty() {
            return Ok((vec![], vec![]));
        }
        let mut ready = rs
            .iter()
            .map(rows::ready_attempt)
            .collect::<Result<Vec<_>>>()?;
        let ids = crate::ops::segment_ids(&ready);
        let segments = sqlx::query(
            "SELECT * FROM segments WHERE id = ANY($1) ORDER BY id FOR UPDATE SKIP LOCKED",
        )
        .bind(&ids)
        .fetch_all(&mut *self.tx)
        .await?
        .iter()
        .map(rows::segment)
        .collect::<Result<Vec<Segment>>>()?;
        if segments.len() < ids.len() {
            let held: std::collections::HashSet<i64> = segments.iter().map(|s| s.id).collect();
            ready.retain(|r| held.contains(&r.0.segment_id));
        }
        Ok((ready, segments))
    }

    async fn reserve(&mut self, project_id: i64, wanted: &[f64]) -> Result<usize> {
        // A project without a budget has no cap to check: its reservation is appended as a
        // delta like every settlement, so claims of one project never queue on its row. The
        // caller holds the project's budget lock shared (`project`, or `extend_reservation`'s
        // first statement), so a budget cannot be set until this transaction commits, and
        // this statement sees one set before.
        if !wanted.is_empty() {
            let unbudgeted =
                sqlx::query("SELECT 1 FROM projects WHERE id = $1 AND gpu_budget_seconds IS NULL")
                    .bind(project_id)
                    .fetch_optional(&mut *self.tx)
                    .await?
                    .is_some();
            if unbudgeted {
                let add: f64 = wanted.iter().sum();
                if add != 0.0 {
                    self.add_deltas(&[ProjectDelta::new(
                        project_id,
                        crate::ops::GPU_RESERVED.into(),
                        add,
                    )])
                    .await?;
                }
                return Ok(wanted.len());
            }
        }
        // Folding, or a project with a budget: the project row first. Every folder and
        // reserver takes it before the deltas, so they run one after the other and never fold
        // the same delta twice, and `spent + reserved <= budget` is checked against one total.
        let Some(r) = sqlx::query(
            "SELECT gpu_budget_seconds, gpu_spent_seconds, gpu_reserved_seconds FROM projects WHERE id = $1 FOR NO KEY UPDATE",
        )
        .bind(project_id)
        .fetch_optional(&mut *self.tx)
        .await?
        else {
            return Err(StoreError::not_found("project", project_id));
        };
        let budget: Option<f64> = r.get(0);
        let folded =
            sqlx::query("DELETE FROM project_deltas WHERE project_id = $1 RETURNING key, value")
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
            sqlx::query("UPDATE projects SET gpu_spent_seconds = $1, gpu_reserved_seconds = $2 WHERE id = $3")
                .bind(spent)
                .bind(reserved + add)
                .bind(project_id)
                .execute(&mut *self.tx)
                .await?;
        }
        if !fold.counters.is_empty() {
            let (keys, values): (Vec<String>, Vec<f64>) = fold.counters.into_iter().unzip();
            sqlx::query(
                "INSERT INTO project_counters AS c (project_id, key, value)
                 SELECT $1, k, v FROM UNNEST($2::text[], $3::float8[]) AS u(k, v)
                 ON CONFLICT (project_id, key) DO UPDATE SET value = c.value + excluded.value",
            )
            .bind(project_id)
            .bind(keys)
            .bind(values)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(n)
    }

    async fn add_deltas(&mut self, deltas: &[ProjectDelta]) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let project: Vec<i64> = deltas.iter().map(|d| d.project_id).collect();
        let key: Vec<&str> = deltas.iter().map(|d| d.key.as_str()).collect();
        let value: Vec<f64> = deltas.iter().map(|d| d.value).collect();
        sqlx::query(
            "INSERT INTO project_deltas (project_id, key, value) SELECT * FROM UNNEST($1::int8[], $2::text[], $3::float8[])",
        )
        .bind(project)
        .bind(key)
        .bind(value)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn ledger_rows(&mut self, rows: &[LedgerRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO gpu_ledger (project_id, attempt_id, reserved_seconds, spent_seconds, note, created_at)
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::float8[], $4::float8[], $5::text[], $6::timestamptz[])",
        )
        .bind(rows.iter().map(|r| r.project_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.attempt_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.reserved).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.spent).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| text(&r.note).into_owned()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.at).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn lock_attempts(&mut self, ids: &[i64]) -> Result<Vec<Attempt>> {
        let rs =
            sqlx::query("SELECT * FROM retry_attempts WHERE id = ANY($1) ORDER BY id FOR UPDATE")
                .bind(ids)
                .fetch_all(&mut *self.tx)
                .await?;
        rs.iter().map(rows::attempt).collect()
    }

    async fn lock_segments(&mut self, ids: &[i64]) -> Result<Vec<Segment>> {
        let rs = sqlx::query("SELECT * FROM segments WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(ids)
            .fetch_all(&mut *self.tx)
            .await?;
        rs.iter().map(rows::segment).collect()
    }

    async fn attempts_of_many(&mut self, segment_ids: &[i64]) -> Result<Vec<Attempt>> {
        let rs = sqlx::query(
            "SELECT * FROM retry_attempts WHERE segment_id = ANY($1) ORDER BY segment_id, attempt_number",
        )
        .bind(segment_ids)
        .fetch_all(&mut *self.tx)
        .await?;
        rs.iter().map(rows::attempt).collect()
    }

    async fn save_attempts(&mut self, attempts: &[Attempt]) -> Result<()> {
        if attempts.len() == 1 {
            return self.save_attempt(&attempts[0]).await;
        }
        let col =
            |f: &dyn Fn(&Attempt) -> Option<String>| attempts.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "UPDATE retry_attempts a SET output_video_path = u.output_video_path, quality_scores = u.quality_scores,
                 overall_status = u.overall_status, is_selected = u.is_selected, gpu_seconds = u.gpu_seconds,
                 reserved_gpu_seconds = u.reserved_gpu_seconds, failure_reason = u.failure_reason, backend = u.backend,
                 worker = u.worker, lease_expires_at = u.lease_expires_at, not_before = u.not_before, progress = u.progress,
                 infra_errors = u.infra_errors, provenance = u.provenance, qa_source = u.qa_source,
                 selected_by = u.selected_by, human_override = u.human_override, started_at = u.started_at,
                 finished_at = u.finished_at, updated_at = u.updated_at, waiting_since = u.waiting_since
             FROM UNNEST($1::int8[], $2::text[], $3::jsonb[], $4::text[], $5::bool[], $6::float8[], $7::float8[], $8::text[],
                         $9::text[], $10::text[], $11::timestamptz[], $12::timestamptz[], $13::float8[], $14::jsonb[],
                         $15::jsonb[], $16::text[], $17::text[], $18::bool[], $19::timestamptz[], $20::timestamptz[],
                         $21::timestamptz[], $22::timestamptz[])
                  AS u(id, output_video_path, quality_scores, overall_status, is_selected, gpu_seconds, reserved_gpu_seconds,
                       failure_reason, backend, worker, lease_expires_at, not_before, progress, infra_errors, provenance,
                       qa_source, selected_by, human_override, started_at, finished_at, updated_at, waiting_since)
             WHERE a.id = u.id",
        )
        .bind(attempts.iter().map(|a| a.id).collect::<Vec<_>>())
        .bind(col(&|a| otext(&a.output_video_path).map(|c| c.into_owned())))
        .bind(attempts.iter().map(|a| a.quality_scores.as_ref().map(json)).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.overall_status.as_str()).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.is_selected).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.gpu_seconds).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.reserved_gpu_seconds).collect::<Vec<_>>())
        .bind(col(&|a| otext(&a.failure_reason).map(|c| c.into_owned())))
        .bind(col(&|a| a.backend.clone()))
        .bind(col(&|a| a.worker.clone()))
        .bind(attempts.iter().map(|a| a.lease_expires_at).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.not_before).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.progress).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| json(&a.infra_errors)).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| json(&a.provenance)).collect::<Vec<_>>())
        .bind(col(&|a| a.qa_source.clone()))
        .bind(col(&|a| a.selected_by.clone()))
        .bind(attempts.iter().map(|a| a.human_override).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.started_at).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.finished_at).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.updated_at).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.waiting_since).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await
        .map_err(|e| rows::db_err(e, "is_selected", || "a batch of attempts".to_owned()))?;
        Ok(())
    }

    async fn save_segments(&mut self, segments: &[Segment]) -> Result<()> {
        if segments.len() == 1 {
            return self.save_segment(&segments[0]).await;
        }
        sqlx::query(
            "UPDATE segments s SET status = u.status, review_reason = u.review_reason, decision_note = u.decision_note,
                 review_evidence = u.review_evidence, selected_attempt_number = u.selected_attempt_number,
                 output_video_path = u.output_video_path, attempt_count = u.attempt_count, updated_at = u.updated_at,
                 had_failure = u.had_failure, first_pass = u.first_pass
             FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::int4[], $7::text[], $8::int4[],
                         $9::timestamptz[], $10::bool[], $11::int4[])
                  AS u(id, status, review_reason, decision_note, review_evidence, selected_attempt_number,
                       output_video_path, attempt_count, updated_at, had_failure, first_pass)
             WHERE s.id = u.id",
        )
        .bind(segments.iter().map(|s| s.id).collect::<Vec<_>>())
        .bind(segments.iter().map(|s| s.status.as_str()).collect::<Vec<_>>())
        .bind(segments.iter().map(|s| s.review_reason.map(|r| r.as_str())).collect::<Vec<_>>())
        .bind(segments.iter().map(|s| otext(&s.decision_note).map(|c| c.into_owned())).collect::<Vec<_>>())
        .bind(segments.iter().map(|s| json(&s.review_evidence)).collect::<Vec<_>>())
        .bind(segments.iter().map(|s| s.selected_attempt_number.map(|n| n as i32)).collect::<Vec<_>>())
        .bind(segments.iter().map(|s| otext(&s.output_video_path).map(|c| c.into_owned())).collect::<Vec<_>>())
        .bind(segments.iter().map(|s| s.attempt_count as i32).collect::<Vec<_>>())
        .bind(segments.iter().map(|s| s.updated_at).collect::<Vec<_>>())
        .bind(segments.iter().map(|s| s.had_failure).collect::<Vec<_>>())
        .bind(segments.iter().map(|s| s.first_pass.map(|n| n as i32)).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await
        .map_err(|e| rows::db_err(e, "status", || "a batch of segments".to_owned()))?;
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
         overall_status, jitter, arm, why, provenance, infra_errors, created_at, updated_at, round, requested_by, priority)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '[]', $13, $14, $15, $16, $17) RETURNING id",
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
    .bind(a.round as i32)
    .bind(&a.requested_by)
    .bind(a.priority as i32)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| {
        rows::db_err(e, "attempt_number", || format!("segment {} already has attempt {}", a.segment_id, a.attempt_number))
    })?;
    Ok(r.get(0))
}
