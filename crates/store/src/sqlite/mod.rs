//! The embedded SQLite store, retake's default: one file (`DATA_DIR/retake.db`), WAL mode, one
//! writer connection (SQLite has one writer anyway; queuing in-process avoids busy errors) and a
//! few readers. Reads and writes are written once (`reads.rs`, `writes.rs`, [`crate::ops`]); this
//! module opens the database and picks the pool or the transaction each runs in.

mod dialect;
pub mod rows;
mod tx;

use crate::model::*;
use crate::ops;
use crate::views::{LedgerEntry, LedgerFilter, QueueFilter, QueueSnapshot, SpendSeries};
use crate::{installation, reads, scene_types, writes, Result, Store};
use async_trait::async_trait;
use retake_core::SegmentStatus;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};
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

/// Runs `$body` — an expression over `$t: &mut SqliteTx` yielding `Result<T>`, without `?` — in
/// one write transaction: committed when it succeeds, rolled back when it fails.
macro_rules! in_tx {
    ($store:expr, |$t:ident| $body:expr) => {{
        let mut tx = $store.begin().await?;
        let out = {
            let $t = &mut tx;
            $body
        };
        match out {
            Ok(v) => $store.commit(tx).await.map(|()| v),
            Err(e) => {
                tx.rollback().await;
                Err(e)
            }
        }
    }};
}

#[async_trait]
impl Store for SqliteStore {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    async fn create_project(&self, p: NewProject) -> Result<Project> {
        let p = writes::create_project(&self.writer, p).await?;
        self.events.notify_waiters();
        Ok(p)
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
        in_tx!(self, |t| writes::update_project(
            t,
            id,
            patch,
            if_updated_at
        )
        .await)
    }

    async fn delete_project(&self, id: i64, force: bool) -> Result<Vec<Attempt>> {
        in_tx!(self, |t| writes::delete_project(t, id, force).await)
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
        in_tx!(self, |t| scene_types::update::<Sqlite>(
            &mut t.tx,
            id,
            patch,
            if_updated_at
        )
        .await)
    }

    async fn delete_scene_type(&self, id: i64, force: bool) -> Result<Vec<Attempt>> {
        in_tx!(self, |t| writes::delete_scene_type(t, id, force).await)
    }

    async fn submit_segments(&self, segments: Vec<NewSegment>) -> Result<Vec<Segment>> {
        in_tx!(self, |t| writes::submit_segments(t, segments).await)
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
        writes::heartbeat(&self.writer, worker, attempt_ids, lease).await
    }

    async fn extend_reservation(&self, attempt_id: i64, worker: &str, extra: f64) -> Result<bool> {
        in_tx!(self, |t| writes::extend_reservation(
            t, attempt_id, worker, extra
        )
        .await)
    }

    async fn set_progress(&self, attempt_id: i64, worker: &str, progress: f64) -> Result<()> {
        in_tx!(self, |t| writes::set_progress(
            t, attempt_id, worker, progress
        )
        .await)
    }

    async fn set_provenance(
        &self,
        attempt_id: i64,
        worker: &str,
        provenance: serde_json::Value,
    ) -> Result<()> {
        writes::set_provenance(&self.writer, attempt_id, worker, provenance).await
    }

    async fn end_server_wait(&self) -> Result<u64> {
        // Looked at with the reader, so that the writer is not taken for nothing.
        if !writes::any_waiting(&self.reader).await? {
            return Ok(0);
        }
        in_tx!(self, |t| writes::end_server_wait(t).await)
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
        let mut folded = 0;
        for (project_id, n) in writes::pending_deltas(&self.reader).await? {
            if in_tx!(self, |t| writes::settle(t, project_id).await)? {
                folded += n as u64;
            }
        }
        Ok(folded)
    }

    async fn rescue_expired(&self) -> Result<Vec<i64>> {
        in_tx!(self, |t| writes::rescue_expired(t).await)
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
        in_tx!(self, |t| writes::select_attempt(
            t,
            segment_id,
            n,
            actor,
            human_override
        )
        .await)
    }

    async fn reject_segment(
        &self,
        segment_id: i64,
        actor: &str,
        note: Option<String>,
    ) -> Result<(Segment, Vec<Attempt>)> {
        in_tx!(self, |t| writes::close_segment(
            t,
            segment_id,
            actor,
            SegmentStatus::Rejected,
            note
        )
        .await)
    }

    async fn cancel_segment(
        &self,
        segment_id: i64,
        actor: &str,
    ) -> Result<(Segment, Vec<Attempt>)> {
        in_tx!(self, |t| writes::close_segment(
            t,
            segment_id,
            actor,
            SegmentStatus::Cancelled,
            None
        )
        .await)
    }

    async fn rerun_segment(
        &self,
        segment_id: i64,
        actor: &str,
        o: RerunOverrides,
    ) -> Result<(Segment, Attempt)> {
        in_tx!(self, |t| writes::rerun(t, segment_id, actor, o).await)
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
        installation::create_token(&self.writer, name, role, token_hash, expires_at).await
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
        installation::revoke_token(&self.writer, id).await
    }

    async fn touch_token(&self, id: i64, at: Timestamp) -> Result<()> {
        installation::touch_token(&self.writer, id, at).await
    }

    async fn create_session(
        &self,
        token_id: i64,
        session_hash: &str,
        expires_at: Timestamp,
    ) -> Result<Session> {
        installation::create_session(&self.writer, token_id, session_hash, expires_at).await
    }

    async fn session_by_hash(&self, session_hash: &str) -> Result<Option<(Session, ApiToken)>> {
        reads::session_by_hash(&self.reader, session_hash).await
    }

    async fn delete_session(&self, session_hash: &str) -> Result<()> {
        installation::delete_session(&self.writer, session_hash).await
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
        installation::upsert_comfy_server(&self.writer, name, url, max_concurrency, drained).await
    }

    async fn delete_comfy_server(&self, name: &str) -> Result<()> {
        installation::delete_comfy_server(&self.writer, name).await
    }
}
