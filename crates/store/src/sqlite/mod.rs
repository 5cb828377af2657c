//! The embedded SQLite store, retake's default: one file (`DATA_DIR/retake.db`), WAL mode, one
//! writer connection (SQLite has one writer anyway; queuing in-process avoids busy errors) and a
//! few readers.

mod dialect;
pub(crate) mod queries;
pub mod rows;
mod tx;

use crate::errors::db_err;
use crate::model::*;
use crate::ops::TxOps;
use crate::ops::{self, NewEvent};
use crate::unit::Unit;
use crate::views::{LedgerEntry, LedgerFilter, QueueFilter, QueueSnapshot, SpendSeries};
use crate::{reads, scene_types, Result, Store, StoreError};
use async_trait::async_trait;
use retake_core::SegmentStatus;
use rows::{json, ts};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tx::SqliteTx;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// `PRAGMA max_page_count` for the writer (0: SQLite's default), kept across reconnects.
    page_limit: Arc<AtomicU64>,
    work: Arc<Notify>,
    events: Arc<Notify>,
}

impl SqliteStore {
    /// Opens (creating if needed) `sqlite:PATH`, `sqlite://PATH` or a bare path, and migrates it.
    pub async fn open(url: &str) -> Result<Self> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let opts = SqliteConnectOptions::from_str(&format!("sqlite:{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // 64 MiB of page cache and memory-mapped reads: the hot path re-reads the same
            // attempts, segments and indexes; the 2 MB default kept evicting them.
            .pragma("cache_size", "-65536")
            .pragma("mmap_size", "268435456")
            // After a checkpoint the WAL is truncated back to this size instead of staying as
            // large as it once grew.
            .pragma("journal_size_limit", "67108864");
        let page_limit = Arc::new(AtomicU64::new(0));
        let limit = page_limit.clone();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .after_connect(move |conn, _| {
                let limit = limit.load(Ordering::Relaxed);
                Box::pin(async move {
                    if limit > 0 {
                        sqlx::query(&format!("PRAGMA max_page_count = {limit}"))
                            .execute(conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(Self {
            writer,
            reader,
            page_limit,
            work: Arc::new(Notify::new()),
            events: Arc::new(Notify::new()),
        })
    }

    /// Caps the database file at its current size plus `extra_pages` pages (`None` lifts the
    /// cap): a disk that fills up, for the tests that check no acknowledged write is lost.
    pub async fn set_page_limit(&self, extra_pages: Option<u64>) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        let limit = match extra_pages {
            Some(extra) => {
                let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
                    .fetch_one(&mut *conn)
                    .await?;
                pages as u64 + extra
            }
            None => 4_294_967_294,
        };
        self.page_limit.store(limit, Ordering::Relaxed);
        sqlx::query(&format!("PRAGMA max_page_count = {limit}"))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn begin(&self) -> Result<SqliteTx> {
        SqliteTx::begin(&self.writer).await
    }

    async fn commit(&self, t: SqliteTx) -> Result<()> {
        let queued = t.work_queued;
        t.commit().await?;
        if queued {
            // Wake every waiting loop, and leave a permit for one that is about to wait.
            self.work.notify_waiters();
            self.work.notify_one();
        }
        self.events.notify_waiters();
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    async fn create_project(&self, p: NewProject) -> Result<Project> {
        let t = ts(now());
        let r = sqlx::query(
            "INSERT INTO projects (name, gpu_budget_seconds, default_gpu_estimate_seconds, default_retry_policy, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(&p.name)
        .bind(p.gpu_budget_seconds)
        .bind(p.default_gpu_estimate_seconds)
        .bind(json(&p.default_retry_policy))
        .bind(&t)
        .bind(&t)
        .fetch_one(&self.writer)
        .await
        .map_err(|e| db_err(e, "name", || format!("a project named `{}` already exists", p.name)))?;
        self.events.notify_waiters();
        rows::project(&r)
    }

    async fn get_project(&self, id: i64) -> Result<Project> {
        reads::get_project(&self.reader, id).await
    }

    async fn list_projects(&self) -> Result<Vec<Project>> {
        reads::list_projects(&self.reader).await
    }

    async fn update_project(
        &self,
        id: i64,
        patch: ProjectPatch,
        if_updated_at: Option<Timestamp>,
    ) -> Result<Project> {
        let mut t = self.begin().await?;
        let cur = sqlx::query("SELECT * FROM projects WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *t.tx)
            .await?;
        let cur = cur
            .as_ref()
            .map(rows::project)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("project", id))?;
        if let Some(expected) = if_updated_at {
            if expected != cur.updated_at {
                return Err(StoreError::conflict(Some("updated_at"), format!(
                    "project {id} was changed by someone else at {}; reload and apply your change again", cur.updated_at.to_rfc3339())));
            }
        }
        let name = patch.name.unwrap_or(cur.name);
        let budget = patch.gpu_budget_seconds.unwrap_or(cur.gpu_budget_seconds);
        let est = patch
            .default_gpu_estimate_seconds
            .unwrap_or(cur.default_gpu_estimate_seconds);
        let policy = patch
            .default_retry_policy
            .unwrap_or(cur.default_retry_policy);
        let r = sqlx::query(
            "UPDATE projects SET name = ?, gpu_budget_seconds = ?, default_gpu_estimate_seconds = ?, default_retry_policy = ?, updated_at = ?
             WHERE id = ? RETURNING *",
        )
        .bind(&name)
        .bind(budget)
        .bind(est)
        .bind(json(&policy))
        .bind(ts(now().max(cur.updated_at + chrono::Duration::microseconds(1))))
        .bind(id)
        .fetch_one(&mut *t.tx)
        .await
        .map_err(|e| db_err(e, "name", || format!("a project named `{name}` already exists")))?;
        let p = rows::project(&r)?;
        self.commit(t).await?;
        Ok(p)
    }

    async fn delete_project(&self, id: i64, force: bool) -> Result<Vec<Attempt>> {
        let mut t = self.begin().await?;
        let in_flight =
            match in_flight(&mut t, "project_id", id, force, || format!("project {id}")).await {
                Ok(v) => v,
                Err(e) => {
                    t.rollback().await;
                    return Err(e);
                }
            };
        sqlx::query("DELETE FROM project_deltas WHERE project_id = ?")
            .bind(id)
            .execute(&mut *t.tx)
            .await?;
        let r = sqlx::query("DELETE FROM projects WHERE id = ?")
            .bind(id)
            .execute(&mut *t.tx)
            .await?;
        self.commit(t).await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("project", id));
        }
        Ok(in_flight)
    }

    async fn create_scene_type(&self, s: NewSceneType) -> Result<SceneType> {
        scene_types::create(&self.writer, s).await
    }

    async fn get_scene_type(&self, id: i64) -> Result<SceneType> {
        reads::get_scene_type(&self.reader, id).await
    }

    async fn list_scene_types(&self, project_id: Option<i64>) -> Result<Vec<SceneType>> {
        reads::list_scene_types(&self.reader, project_id).await
    }

    async fn update_scene_type(
        &self,
        id: i64,
        patch: SceneTypePatch,
        if_updated_at: Option<Timestamp>,
    ) -> Result<SceneType> {
        let mut t = self.begin().await?;
        let st = scene_types::update::<Sqlite>(&mut t.tx, id, patch, if_updated_at).await?;
        self.commit(t).await?;
        Ok(st)
    }

    async fn delete_scene_type(&self, id: i64, force: bool) -> Result<Vec<Attempt>> {
        let mut t = self.begin().await?;
        let in_flight = match in_flight(&mut t, "scene_type_id", id, force, || {
            format!("scene type {id}")
        })
        .await
        {
            Ok(v) => v,
            Err(e) => {
                t.rollback().await;
                return Err(e);
            }
        };
        let project: Option<i64> =
            sqlx::query_scalar("DELETE FROM scene_types WHERE id = ? RETURNING project_id")
                .bind(id)
                .fetch_optional(&mut *t.tx)
                .await?;
        let Some(project) = project else {
            t.rollback().await;
            return Err(StoreError::not_found("scene type", id));
        };
        // Its segments went with it: count the project's statistics again.
        for sql in ops::RECOUNT_PROJECT {
            sqlx::query(&ops::sqlite_sql(sql))
                .bind(project)
                .execute(&mut *t.tx)
                .await?;
        }
        self.commit(t).await?;
        Ok(in_flight)
    }

    async fn submit_segments(&self, segments: Vec<NewSegment>) -> Result<Vec<Segment>> {
        let mut t = self.begin().await?;
        let out = queries::submit_segments(&mut t.tx, segments).await?;
        t.work_queued = true;
        self.commit(t).await?;
        Ok(out)
    }

    async fn get_segment(&self, id: i64) -> Result<Segment> {
        reads::get_segment(&self.reader, id).await
    }

    async fn list_segments(&self, f: &SegmentFilter) -> Result<Vec<Segment>> {
        reads::list_segments(&self.reader, f).await
    }

    async fn list_attempts(&self, segment_id: i64) -> Result<Vec<Attempt>> {
        reads::list_attempts(&self.reader, segment_id).await
    }

    async fn list_attempts_of(&self, segment_ids: &[i64]) -> Result<Vec<Attempt>> {
        reads::list_attempts_of(&self.reader, segment_ids).await
    }

    async fn get_attempt(&self, id: i64) -> Result<Attempt> {
        reads::get_attempt(&self.reader, id).await
    }

    async fn heartbeat(
        &self,
        worker: &str,
        attempt_ids: &[i64],
        lease: Duration,
    ) -> Result<Vec<i64>> {
        if attempt_ids.is_empty() {
            return Ok(vec![]);
        }
        let ids = json(&attempt_ids);
        let rs = sqlx::query(
            "UPDATE retry_attempts SET lease_expires_at = ?1 WHERE worker = ?2
             AND overall_status IN ('generating','scoring') AND id IN (SELECT value FROM json_each(?3)) RETURNING id",
        )
        .bind(ts(ops::lease_until(lease)))
        .bind(worker)
        .bind(ids)
        .fetch_all(&self.writer)
        .await?;
        Ok(rs.iter().map(|r| r.get::<i64, _>(0)).collect())
    }

    async fn extend_reservation(&self, attempt_id: i64, worker: &str, extra: f64) -> Result<bool> {
        let mut t = self.begin().await?;
        let ok = queries::extend_reservation(&mut t, attempt_id, worker, extra).await?;
        self.commit(t).await?;
        Ok(ok)
    }

    async fn set_progress(&self, attempt_id: i64, worker: &str, progress: f64) -> Result<()> {
        let mut t = self.begin().await?;
        let r = sqlx::query("UPDATE retry_attempts SET progress = ? WHERE id = ? AND worker = ? RETURNING segment_id, project_id, attempt_number")
            .bind(progress.clamp(0.0, 1.0))
            .bind(attempt_id)
            .bind(worker)
            .fetch_optional(&mut *t.tx)
            .await?;
        if let Some(r) = r {
            let n: i64 = r.get(2);
            tx::insert_event(
                &mut t.tx,
                NewEvent {
                    project_id: Some(r.get(1)),
                    segment_id: Some(r.get(0)),
                    attempt_id: Some(attempt_id),
                    kind: "progress",
                    message: format!("attempt {n}: {:.0}%", progress * 100.0),
                    data: serde_json::json!({"progress": progress, "attempt_number": n}),
                },
            )
            .await?;
        }
        self.commit(t).await
    }

    async fn set_provenance(
        &self,
        attempt_id: i64,
        worker: &str,
        provenance: serde_json::Value,
    ) -> Result<()> {
        // A server accepted the work: its wait ends, and so does the reason it carried.
        sqlx::query(
            "UPDATE retry_attempts SET provenance = ?1,
             failure_reason = CASE WHEN ?2 AND waiting_since IS NOT NULL THEN NULL ELSE failure_reason END,
             waiting_since = CASE WHEN ?2 THEN NULL ELSE waiting_since END
             WHERE id = ?3 AND worker = ?4",
        )
        .bind(json(&provenance))
        .bind(provenance.get("server").is_some())
        .bind(attempt_id)
        .bind(worker)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn end_server_wait(&self) -> Result<u64> {
        // Nearly always nothing waits: look with the reader (the partial index) before writing.
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM retry_attempts WHERE waiting_since IS NOT NULL AND overall_status IN ('queued', 'generating'))",
        )
        .fetch_one(&self.reader)
        .await?;
        if !waiting {
            return Ok(0);
        }
        let mut t = self.begin().await?;
        let rs = sqlx::query(
            "UPDATE retry_attempts SET waiting_since = NULL, failure_reason = NULL, updated_at = ?1
             WHERE waiting_since IS NOT NULL AND overall_status IN ('queued', 'generating')
             RETURNING id, segment_id, project_id, attempt_number",
        )
        .bind(ts(now()))
        .fetch_all(&mut *t.tx)
        .await?;
        for r in &rs {
            tx::insert_event(
                &mut t.tx,
                ops::wait_over(r.get(2), r.get(1), r.get(0), r.get(3)),
            )
            .await?;
        }
        self.commit(t).await?;
        Ok(rs.len() as u64)
    }

    async fn complete_and_claim(
        &self,
        items: Vec<Completion>,
        claim: Option<ClaimRequest>,
    ) -> Result<Completed> {
        crate::complete_isolated(items, claim, |items, claim| async move {
            let mut t = self.begin().await?;
            let out = ops::complete_batch(&mut t, &items, claim.as_ref()).await?;
            // Committed even when nothing was claimed: a claim the budget refused cancelled
            // attempts and escalated their segments.
            self.commit(t).await?;
            Ok(out)
        })
        .await
    }

    async fn settle_pending(&self) -> Result<u64> {
        let projects: Vec<(i64, i64)> =
            sqlx::query_as("SELECT project_id, COUNT(*) FROM project_deltas GROUP BY project_id")
                .fetch_all(&self.reader)
                .await?;
        let mut folded = 0;
        for (project_id, n) in projects {
            let mut t = self.begin().await?;
            match t.reserve(project_id, &[]).await {
                Ok(_) => folded += n as u64,
                Err(StoreError::NotFound { .. }) => {
                    sqlx::query("DELETE FROM project_deltas WHERE project_id = ?")
                        .bind(project_id)
                        .execute(&mut *t.tx)
                        .await?;
                }
                Err(e) => return Err(e),
            }
            self.commit(t).await?;
        }
        Ok(folded)
    }

    async fn rescue_expired(&self) -> Result<Vec<i64>> {
        let mut t = self.begin().await?;
        let ids: Vec<i64> = sqlx::query(
            "SELECT id FROM retry_attempts WHERE overall_status IN ('generating','scoring') AND lease_expires_at IS NOT NULL AND lease_expires_at < ? ORDER BY id",
        )
        .bind(ts(now()))
        .fetch_all(&mut *t.tx)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        let mut rescued = vec![];
        let mut u = Unit::new(&mut t);
        u.preload(&ids).await?;
        for id in ids {
            if ops::rescue(&mut u, id).await? {
                rescued.push(id);
            }
        }
        u.flush().await?;
        self.commit(t).await?;
        Ok(rescued)
    }

    async fn pending_work(&self) -> Result<u64> {
        reads::pending_work(&self.writer).await
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.work.notified()).await;
    }

    async fn wait_for_events(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.events.notified()).await;
    }

    async fn select_attempt(
        &self,
        segment_id: i64,
        n: u32,
        actor: &str,
        human_override: bool,
    ) -> Result<Segment> {
        let mut t = self.begin().await?;
        let mut u = Unit::new(&mut t);
        let s = ops::select_attempt(&mut u, segment_id, n, actor, human_override).await?;
        u.flush().await?;
        self.commit(t).await?;
        Ok(s)
    }

    async fn reject_segment(
        &self,
        segment_id: i64,
        actor: &str,
        note: Option<String>,
    ) -> Result<(Segment, Vec<Attempt>)> {
        let mut t = self.begin().await?;
        let s = {
            let mut u = Unit::new(&mut t);
            let out = ops::close_segment(&mut u, segment_id, actor, SegmentStatus::Rejected, note)
                .await?;
            u.flush().await?;
            out
        };
        self.commit(t).await?;
        Ok(s)
    }

    async fn cancel_segment(
        &self,
        segment_id: i64,
        actor: &str,
    ) -> Result<(Segment, Vec<Attempt>)> {
        let mut t = self.begin().await?;
        let s = {
            let mut u = Unit::new(&mut t);
            let out = ops::close_segment(&mut u, segment_id, actor, SegmentStatus::Cancelled, None)
                .await?;
            u.flush().await?;
            out
        };
        self.commit(t).await?;
        Ok(s)
    }

    async fn rerun_segment(
        &self,
        segment_id: i64,
        actor: &str,
        o: RerunOverrides,
    ) -> Result<(Segment, Attempt)> {
        let mut t = self.begin().await?;
        let mut u = Unit::new(&mut t);
        let s = ops::rerun(&mut u, segment_id, actor, o).await?;
        u.flush().await?;
        self.commit(t).await?;
        Ok(s)
    }

    async fn events_head(&self) -> Result<EventsHead> {
        // One writer at a time: ids are in commit order, so the largest id is the head.
        let (after,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM events")
            .fetch_one(&self.reader)
            .await?;
        Ok(EventsHead {
            after,
            skip: Vec::new(),
        })
    }

    async fn list_events(
        &self,
        after_id: i64,
        segment_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Event>> {
        reads::list_events(&self.reader, after_id, segment_id, limit).await
    }

    async fn project_stats(&self, project_id: i64) -> Result<ProjectStats> {
        reads::project_stats(&self.reader, project_id).await
    }

    async fn failure_patterns(&self, scene_type_id: Option<i64>) -> Result<Vec<FailurePattern>> {
        reads::failure_patterns(&self.reader, scene_type_id).await
    }

    async fn metrics(&self) -> Result<MetricsSnapshot> {
        reads::metrics(&self.reader).await
    }

    async fn queue_snapshot(&self, filter: &QueueFilter) -> Result<QueueSnapshot> {
        reads::queue_snapshot(&self.reader, filter).await
    }

    async fn list_ledger(&self, filter: &LedgerFilter) -> Result<Vec<LedgerEntry>> {
        reads::list_ledger(&self.reader, filter).await
    }

    async fn spend_series(&self, project_id: i64, buckets: u32) -> Result<SpendSeries> {
        reads::spend_series(&self.reader, project_id, buckets).await
    }

    async fn recent_gpu_seconds(&self, scene_type_id: i64, limit: u32) -> Result<Vec<f64>> {
        reads::recent_gpu_seconds(&self.reader, scene_type_id, limit).await
    }

    async fn create_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<ApiToken> {
        let r = sqlx::query("INSERT INTO api_tokens (name, role, token_hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING *")
            .bind(name)
            .bind(role.as_str())
            .bind(token_hash)
            .bind(ts(now()))
            .bind(expires_at.map(ts))
            .fetch_one(&self.writer)
            .await
            .map_err(|e| db_err(e, "token", || "a token with this hash already exists".into()))?;
        rows::token(&r)
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        reads::token_by_hash(&self.reader, token_hash).await
    }

    async fn installation_id(&self) -> Result<String> {
        reads::installation_id(&self.reader).await
    }

    async fn waiting_for_server(&self) -> Result<ServerWait> {
        reads::waiting_for_server(&self.reader).await
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        reads::list_tokens(&self.reader).await
    }

    async fn revoke_token(&self, id: i64) -> Result<ApiToken> {
        let r = sqlx::query(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1 RETURNING *",
        )
        .bind(id)
        .bind(ts(now()))
        .fetch_optional(&self.writer)
        .await?
        .ok_or_else(|| StoreError::not_found("token", id))?;
        sqlx::query("DELETE FROM sessions WHERE token_id = ?1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        rows::token(&r)
    }

    async fn touch_token(&self, id: i64, at: Timestamp) -> Result<()> {
        let since = at - chrono::Duration::seconds(crate::TOKEN_TOUCH_INTERVAL_SECONDS);
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?3)",
        )
        .bind(id)
        .bind(ts(at))
        .bind(ts(since))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn create_session(
        &self,
        token_id: i64,
        session_hash: &str,
        expires_at: Timestamp,
    ) -> Result<Session> {
        let created = now();
        sqlx::query("DELETE FROM sessions WHERE expires_at <= ?1")
            .bind(ts(created))
            .execute(&self.writer)
            .await?;
        let r = sqlx::query(
            "INSERT INTO sessions (token_id, session_hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        )
        .bind(token_id)
        .bind(session_hash)
        .bind(ts(created))
        .bind(ts(expires_at))
        .fetch_one(&self.writer)
        .await
        .map_err(|e| db_err(e, "token", || "this session exists already".into()))?;
        Ok(Session {
            id: r.try_get("id")?,
            token_id,
            created_at: created,
            expires_at,
        })
    }

    async fn session_by_hash(&self, session_hash: &str) -> Result<Option<(Session, ApiToken)>> {
        reads::session_by_hash(&self.reader, session_hash).await
    }

    async fn delete_session(&self, session_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE session_hash = ?1")
            .bind(session_hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn list_comfy_servers(&self) -> Result<Vec<ComfyServer>> {
        reads::list_comfy_servers(&self.reader).await
    }

    async fn upsert_comfy_server(
        &self,
        name: &str,
        url: &str,
        max_concurrency: u32,
        drained: bool,
    ) -> Result<ComfyServer> {
        let t = ts(now());
        let r = sqlx::query(
            "INSERT INTO comfy_servers (name, url, max_concurrency, drained, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT (name) DO UPDATE SET url = ?2, max_concurrency = ?3, drained = ?4, updated_at = ?5 RETURNING *",
        )
        .bind(name)
        .bind(url)
        .bind(max_concurrency as i64)
        .bind(drained)
        .bind(t)
        .fetch_one(&self.writer)
        .await
        .map_err(|e| db_err(e, "max_concurrency", || "invalid server".into()))?;
        rows::comfy_server(&r)
    }

    async fn delete_comfy_server(&self, name: &str) -> Result<()> {
        let r = sqlx::query("DELETE FROM comfy_servers WHERE name = ?")
            .bind(name)
            .execute(&self.writer)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("ComfyUI server", name));
        }
        Ok(())
    }
}

/// The in-flight attempts a delete would take with it; refused unless `force`.
async fn in_flight(
    t: &mut SqliteTx,
    owner_column: &str,
    id: i64,
    force: bool,
    what: impl FnOnce() -> String,
) -> Result<Vec<Attempt>> {
    let rs = sqlx::query(&ops::sqlite_sql(&ops::in_flight_attempts_sql(owner_column)))
        .bind(id)
        .fetch_all(&mut *t.tx)
        .await?;
    let attempts: Vec<Attempt> = rs.iter().map(rows::attempt).collect::<Result<_>>()?;
    let segments: i64 = sqlx::query_scalar(&ops::sqlite_sql(&ops::segments_in_progress_sql(
        owner_column,
    )))
    .bind(id)
    .fetch_one(&mut *t.tx)
    .await?;
    if !force && (segments > 0 || !attempts.is_empty()) {
        return Err(ops::in_flight_refusal(&what(), segments, &attempts));
    }
    Ok(attempts)
}
