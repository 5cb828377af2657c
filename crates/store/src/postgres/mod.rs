//! The PostgreSQL store: several replicas (engine loops, API servers) sharing one database.
//!
//! It owns its migrations (`migrations/postgres`), a pool of ~8 connections, and one `LISTEN`
//! task per store ([`listen`]). Neither decisions nor writes are made here: every transaction that
//! changes an attempt, a segment or the budget calls [`crate::ops`] over [`tx::PgTx`], and every
//! other write is `writes.rs`'s, exactly as the SQLite store does; this module picks the pool or
//! the transaction they run in. What this backend adds (in `tx.rs` and `dialect.rs`) is
//! concurrency control between replicas:
//!
//! - claims are one `FOR UPDATE SKIP LOCKED` statement, so replicas never hand out the same attempt
//!   and never wait for each other's queue rows;
//! - attempt and segment reads lock their rows, and the budget moves only by conditional updates;
//! - locks are taken in one order (attempt → segment → project, ids ascending within a batch); where
//!   the shared logic would take them otherwise (a person closing a segment), this backend takes
//!   them first, in that order. A transaction PostgreSQL still aborts as a deadlock victim (a
//!   retry attempt queued and claimed in the instant a segment is closed) is run again from the
//!   start;
//! - no transaction is held across a generation: claims and finishes are short, leases and the
//!   rescuer cover workers that disappear.

mod dialect;
mod listen;
pub mod rows;
#[cfg(all(test, feature = "testing"))]
mod tests;
pub mod tx;

use crate::model::*;
use crate::ops;
use crate::views::{LedgerEntry, LedgerFilter, QueueFilter, QueueSnapshot, SpendSeries};
use crate::{installation, reads, scene_types, writes, Result, Store, StoreError};
use async_trait::async_trait;
use listen::{ListenerTask, Signals};
use retake_core::SegmentStatus;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tx::PgTx;

/// How long the first connection may take before start-up fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per store: a few engine loops (claim, heartbeat, finish, rescue) plus the API.
const POOL_SIZE: u32 = 8;
/// Runs of one transaction that hit a deadlock or serialization failure before giving up.
const TX_ATTEMPTS: u32 = 5;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    signals: Signals,
    _listener: Arc<ListenerTask>,
}

/// Runs `$body` — an expression over `$t: &mut PgTx` yielding `Result<T>`, without `?` — in one
/// transaction, and runs it again from the start when PostgreSQL aborts it as a deadlock victim.
macro_rules! in_tx {
    ($store:expr, |$t:ident| $body:expr) => {{
        let mut run = 1u32;
        loop {
            let mut tx = $store.begin().await?;
            let out = {
                let $t = &mut tx;
                $body
            };
            let out = match out {
                Ok(v) => $store.commit(tx).await.map(|()| v),
                Err(e) => {
                    tx.rollback().await;
                    Err(e)
                }
            };
            match out {
                Err(e) if rows::is_retriable(&e) && run < TX_ATTEMPTS => {
                    tracing::debug!(error = %e, run, "transaction aborted by PostgreSQL; running it again");
                    tokio::time::sleep(Duration::from_millis(5 + rand::random::<u64>() % (20 * run as u64))).await;
                    run += 1;
                }
                out => break out,
            }
        }
    }};
}

impl PgStore {
    /// Connects to `postgres://…`, migrates, and starts listening for other replicas' wake-ups.
    pub async fn connect(url: &str) -> Result<Self> {
        let mut opts = PgConnectOptions::from_str(url)?;
        if opts.get_application_name().is_none() {
            opts = opts.application_name("retake");
        }
        // One direct connection first, bounded in time, so a refused, silent or misconfigured
        // server fails within seconds with its real cause instead of a pool timeout.
        let target = format!("{}:{}", opts.get_host(), opts.get_port());
        match tokio::time::timeout(
            CONNECT_TIMEOUT,
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&opts),
        )
        .await
        {
            Ok(Ok(c)) => {
                let _ = sqlx::Connection::close(c).await;
            }
            Ok(Err(e)) => {
                return Err(StoreError::unavailable(format!(
                    "cannot connect to PostgreSQL at {target}: {e}"
                )))
            }
            Err(_) => {
                return Err(StoreError::unavailable(format!(
                    "PostgreSQL at {target} did not answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )))
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await?;
        let signals = Signals::default();
        let listener = listen::start(url, signals.clone()).await;
        Ok(Self {
            pool,
            signals,
            _listener: Arc::new(listener),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> Result<PgTx> {
        Ok(PgTx::new(self.pool.begin().await?))
    }

    /// Commits (writing buffered events and sending `NOTIFY`s), then wakes this process's waiters
    /// at once; other replicas hear it through `LISTEN`.
    async fn commit(&self, t: PgTx) -> Result<()> {
        let (work, events) = t.commit().await?;
        if work {
            self.signals.wake_work();
        }
        if events {
            self.signals.events.notify_waiters();
        }
        Ok(())
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    async fn create_project(&self, p: NewProject) -> Result<Project> {
        let p = writes::create_project(&self.pool, p).await?;
        self.signals.events.notify_waiters();
        Ok(p)
    }

    async fn get_project(&self, id: i64) -> Result<Project> {
        reads::get_project(&self.pool, id).await
    }

    async fn list_projects(&self) -> Result<Vec<Project>> {
        reads::list_projects(&self.pool).await
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
            patch.clone(),
            if_updated_at
        )
        .await)
    }

    async fn delete_project(&self, id: i64, force: bool) -> Result<Vec<Attempt>> {
        in_tx!(self, |t| writes::delete_project(t, id, force).await)
    }

    async fn create_scene_type(&self, s: NewSceneType) -> Result<SceneType> {
        scene_types::create(&self.pool, s).await
    }

    async fn get_scene_type(&self, id: i64) -> Result<SceneType> {
        reads::get_scene_type(&self.pool, id).await
    }

    async fn list_scene_types(&self, project_id: Option<i64>) -> Result<Vec<SceneType>> {
        reads::list_scene_types(&self.pool, project_id).await
    }

    async fn update_scene_type(
        &self,
        id: i64,
        patch: SceneTypePatch,
        if_updated_at: Option<Timestamp>,
    ) -> Result<SceneType> {
        in_tx!(self, |t| scene_types::update::<Postgres>(
            &mut t.tx,
            id,
            patch.clone(),
            if_updated_at
        )
        .await)
    }

    async fn delete_scene_type(&self, id: i64, force: bool) -> Result<Vec<Attempt>> {
        in_tx!(self, |t| writes::delete_scene_type(t, id, force).await)
    }

    async fn submit_segments(&self, segments: Vec<NewSegment>) -> Result<Vec<Segment>> {
        in_tx!(self, |t| writes::submit_segments(t, segments.clone()).await)
    }

    async fn get_segment(&self, id: i64) -> Result<Segment> {
        reads::get_segment(&self.pool, id).await
    }

    async fn list_segments(&self, f: &SegmentFilter) -> Result<Vec<Segment>> {
        reads::list_segments(&self.pool, f).await
    }

    async fn list_attempts(&self, segment_id: i64) -> Result<Vec<Attempt>> {
        reads::list_attempts(&self.pool, segment_id).await
    }

    async fn list_attempts_of(&self, segment_ids: &[i64]) -> Result<Vec<Attempt>> {
        reads::list_attempts_of(&self.pool, segment_ids).await
    }

    async fn get_attempt(&self, id: i64) -> Result<Attempt> {
        reads::get_attempt(&self.pool, id).await
    }

    async fn heartbeat(
        &self,
        worker: &str,
        attempt_ids: &[i64],
        lease: Duration,
    ) -> Result<Vec<i64>> {
        writes::heartbeat(&self.pool, worker, attempt_ids, lease).await
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
        writes::set_provenance(&self.pool, attempt_id, worker, provenance).await
    }

    async fn end_server_wait(&self) -> Result<u64> {
        if !writes::any_waiting(&self.pool).await? {
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
            in_tx!(self, |t| ops::complete_batch(t, &items, claim.as_ref())
                .await)
        })
        .await
    }

    async fn settle_pending(&self) -> Result<u64> {
        let mut folded = 0;
        for (project_id, n) in writes::pending_deltas(&self.pool).await? {
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
        reads::pending_work(&self.pool).await
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.signals.work.notified()).await;
    }

    async fn wait_for_events(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.signals.events.notified()).await;
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
            note.clone()
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
        in_tx!(self, |t| writes::rerun(t, segment_id, actor, o.clone())
            .await)
    }

    async fn events_head(&self) -> Result<EventsHead> {
        // One statement, one snapshot: the newest event `list_events` already returns, and the
        // committed events above the oldest running transaction that it will return later.
        let (after, skip): (Option<i64>, Vec<i64>) = sqlx::query_as(
            "WITH x AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
             SELECT (SELECT id FROM events, x WHERE txid < x.xmin ORDER BY txid DESC, id DESC LIMIT 1),
                    ARRAY(SELECT id FROM events, x WHERE txid >= x.xmin ORDER BY id)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(EventsHead {
            after: after.unwrap_or(0),
            skip,
        })
    }

    async fn list_events(
        &self,
        after_id: i64,
        segment_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Event>> {
        reads::list_events(&self.pool, after_id, segment_id, limit).await
    }

    async fn project_stats(&self, project_id: i64) -> Result<ProjectStats> {
        reads::project_stats(&self.pool, project_id).await
    }

    async fn failure_patterns(&self, scene_type_id: Option<i64>) -> Result<Vec<FailurePattern>> {
        reads::failure_patterns(&self.pool, scene_type_id).await
    }

    async fn metrics(&self) -> Result<MetricsSnapshot> {
        reads::metrics(&self.pool).await
    }

    async fn queue_snapshot(&self, filter: &QueueFilter) -> Result<QueueSnapshot> {
        reads::queue_snapshot(&self.pool, filter).await
    }

    async fn list_ledger(&self, filter: &LedgerFilter) -> Result<Vec<LedgerEntry>> {
        reads::list_ledger(&self.pool, filter).await
    }

    async fn spend_series(&self, project_id: i64, buckets: u32) -> Result<SpendSeries> {
        reads::spend_series(&self.pool, project_id, buckets).await
    }

    async fn recent_gpu_seconds(&self, scene_type_id: i64, limit: u32) -> Result<Vec<f64>> {
        reads::recent_gpu_seconds(&self.pool, scene_type_id, limit).await
    }

    async fn create_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<ApiToken> {
        installation::create_token(&self.pool, name, role, token_hash, expires_at).await
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        reads::token_by_hash(&self.pool, token_hash).await
    }

    async fn installation_id(&self) -> Result<String> {
        reads::installation_id(&self.pool).await
    }

    async fn waiting_for_server(&self) -> Result<ServerWait> {
        reads::waiting_for_server(&self.pool).await
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        reads::list_tokens(&self.pool).await
    }

    async fn revoke_token(&self, id: i64) -> Result<ApiToken> {
        installation::revoke_token(&self.pool, id).await
    }

    async fn touch_token(&self, id: i64, at: Timestamp) -> Result<()> {
        installation::touch_token(&self.pool, id, at).await
    }

    async fn create_session(
        &self,
        token_id: i64,
        session_hash: &str,
        expires_at: Timestamp,
    ) -> Result<Session> {
        installation::create_session(&self.pool, token_id, session_hash, expires_at).await
    }

    async fn session_by_hash(&self, session_hash: &str) -> Result<Option<(Session, ApiToken)>> {
        reads::session_by_hash(&self.pool, session_hash).await
    }

    async fn delete_session(&self, session_hash: &str) -> Result<()> {
        installation::delete_session(&self.pool, session_hash).await
    }

    async fn list_comfy_servers(&self) -> Result<Vec<ComfyServer>> {
        reads::list_comfy_servers(&self.pool).await
    }

    async fn upsert_comfy_server(
        &self,
        name: &str,
        url: &str,
        max_concurrency: u32,
        drained: bool,
    ) -> Result<ComfyServer> {
        installation::upsert_comfy_server(&self.pool, name, url, max_concurrency, drained).await
    }

    async fn delete_comfy_server(&self, name: &str) -> Result<()> {
        installation::delete_comfy_server(&self.pool, name).await
    }
}
