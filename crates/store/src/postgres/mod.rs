//! The PostgreSQL store: several replicas (engine loops, API servers) sharing one database.
//!
//! It owns its migrations (`migrations/postgres`), a pool of ~8 connections, and one `LISTEN`
//! task per store ([`listen`]). Decisions are not made here: every transaction that changes an
//! attempt, a segment or the budget calls [`crate::ops`] over [`tx::PgTx`], exactly as the SQLite
//! store does. What this backend adds is concurrency control between replicas:
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
mod queries;
pub mod rows;
#[cfg(all(test, feature = "testing"))]
mod tests;
pub mod tx;

use crate::model::*;
use crate::ops::{self, NewEvent, TxOps};
use crate::unit::Unit;
use crate::views::{LedgerEntry, LedgerFilter, QueueFilter, QueueSnapshot, SpendSeries};
use crate::{reads, scene_types, Result, Store, StoreError};
use async_trait::async_trait;
use listen::{ListenerTask, Signals};
use retake_core::SegmentStatus;
use rows::{db_err, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Row};
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
                Err(e) => Err(e),
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

/// Runs an [`ops`] function over a [`Unit`] of the transaction `$t` and flushes the unit's writes.
macro_rules! unit {
    ($t:ident, |$u:ident| $body:expr) => {{
        async {
            let mut $u = Unit::new(&mut *$t);
            let out = $body;
            $u.flush().await?;
            Ok(out)
        }
        .await
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

async fn rescue_in(t: &mut PgTx) -> Result<Vec<i64>> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM retry_attempts WHERE overall_status IN ('generating','scoring') AND lease_expires_at < $1
         ORDER BY id FOR UPDATE SKIP LOCKED",
    )
    .bind(now())
    .fetch_all(&mut *t.tx)
    .await?;
    if ids.is_empty() {
        return Ok(ids);
    }
    unit!(t, |u| {
        u.preload(&ids).await?;
        let mut rescued = vec![];
        for id in ids {
            if ops::rescue(&mut u, id).await? {
                rescued.push(id);
            }
        }
        rescued
    })
}

async fn close_segment_in(
    t: &mut PgTx,
    segment_id: i64,
    actor: &str,
    to: SegmentStatus,
    note: Option<String>,
) -> Result<(Segment, Vec<Attempt>)> {
    t.lock_segment_for_close(segment_id).await?;
    unit!(t, |u| ops::close_segment(
        &mut u, segment_id, actor, to, note
    )
    .await?)
}

async fn update_project_in(
    t: &mut PgTx,
    id: i64,
    patch: ProjectPatch,
    if_updated_at: Option<Timestamp>,
) -> Result<Project> {
    if patch.gpu_budget_seconds.is_some() {
        // Wait for reservations made without a budget to commit; later ones see this budget.
        sqlx::query("SELECT pg_advisory_xact_lock($1, ($2 % 2147483647)::int4)::text")
            .bind(tx::BUDGET_LOCK)
            .bind(id)
            .execute(&mut *t.tx)
            .await?;
    }
    let cur = sqlx::query("SELECT * FROM projects WHERE id = $1 FOR NO KEY UPDATE")
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
            return Err(StoreError::conflict(
                Some("updated_at"),
                format!("project {id} was changed by someone else at {}; reload and apply your change again", cur.updated_at.to_rfc3339()),
            ));
        }
    }
    let name = patch.name.unwrap_or(cur.name);
    let r = sqlx::query(
        "UPDATE projects SET name = $1, gpu_budget_seconds = $2, default_gpu_estimate_seconds = $3, default_retry_policy = $4, updated_at = $5
         WHERE id = $6 RETURNING *",
    )
    .bind(rows::text(&name))
    .bind(patch.gpu_budget_seconds.unwrap_or(cur.gpu_budget_seconds))
    .bind(patch.default_gpu_estimate_seconds.unwrap_or(cur.default_gpu_estimate_seconds))
    .bind(json(&patch.default_retry_policy.unwrap_or(cur.default_retry_policy)))
    .bind(now().max(cur.updated_at + chrono::Duration::microseconds(1)))
    .bind(id)
    .fetch_one(&mut *t.tx)
    .await
    .map_err(|e| db_err(e, "name", || format!("a project named `{name}` already exists")))?;
    rows::project(&r)
}

/// The in-flight attempts a delete would take with it (locked); refused unless `force`.
async fn in_flight(
    t: &mut PgTx,
    owner_column: &str,
    id: i64,
    force: bool,
    what: impl FnOnce() -> String,
) -> Result<Vec<Attempt>> {
    let rs = sqlx::query(&format!(
        "{} FOR UPDATE",
        ops::in_flight_attempts_sql(owner_column)
    ))
    .bind(id)
    .fetch_all(&mut *t.tx)
    .await?;
    let attempts: Vec<Attempt> = rs.iter().map(rows::attempt).collect::<Result<_>>()?;
    let segments: i64 = sqlx::query_scalar(&ops::segments_in_progress_sql(owner_column))
        .bind(id)
        .fetch_one(&mut *t.tx)
        .await?;
    if !force && (segments > 0 || !attempts.is_empty()) {
        return Err(ops::in_flight_refusal(&what(), segments, &attempts));
    }
    Ok(attempts)
}

async fn delete_scene_type_in(t: &mut PgTx, id: i64, force: bool) -> Result<Vec<Attempt>> {
    let in_flight = in_flight(t, "scene_type_id", id, force, || format!("scene type {id}")).await?;
    let project: Option<i64> =
        sqlx::query_scalar("DELETE FROM scene_types WHERE id = $1 RETURNING project_id")
            .bind(id)
            .fetch_optional(&mut *t.tx)
            .await?;
    let Some(project) = project else {
        return Err(StoreError::not_found("scene type", id));
    };
    // Its segments went with it: count the project's statistics again (the project row lock
    // keeps a fold from running in between).
    sqlx::query("SELECT id FROM projects WHERE id = $1 FOR NO KEY UPDATE")
        .bind(project)
        .execute(&mut *t.tx)
        .await?;
    for sql in ops::RECOUNT_PROJECT {
        sqlx::query(sql).bind(project).execute(&mut *t.tx).await?;
    }
    Ok(in_flight)
}

async fn end_server_wait_in(t: &mut PgTx) -> Result<u64> {
    let rs = sqlx::query(
        "UPDATE retry_attempts SET waiting_since = NULL, failure_reason = NULL, updated_at = $1
         WHERE waiting_since IS NOT NULL AND overall_status IN ('queued', 'generating')
         RETURNING id, segment_id, project_id, attempt_number",
    )
    .bind(now())
    .fetch_all(&mut *t.tx)
    .await?;
    for r in &rs {
        let n: i32 = r.get(3);
        t.push_event(ops::wait_over(r.get(2), r.get(1), r.get(0), n.into()));
    }
    Ok(rs.len() as u64)
}

async fn set_progress_in(t: &mut PgTx, attempt_id: i64, worker: &str, progress: f64) -> Result<()> {
    let r = sqlx::query(
        "UPDATE retry_attempts SET progress = $1 WHERE id = $2 AND worker = $3 RETURNING segment_id, project_id, attempt_number",
    )
    .bind(progress.clamp(0.0, 1.0))
    .bind(attempt_id)
    .bind(worker)
    .fetch_optional(&mut *t.tx)
    .await?;
    if let Some(r) = r {
        let n: i32 = r.get(2);
        t.push_event(NewEvent {
            project_id: Some(r.get(1)),
            segment_id: Some(r.get(0)),
            attempt_id: Some(attempt_id),
            kind: "progress",
            message: format!("attempt {n}: {:.0}%", progress * 100.0),
            data: serde_json::json!({"progress": progress, "attempt_number": n}),
        });
    }
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    async fn create_project(&self, p: NewProject) -> Result<Project> {
        let t = now();
        let r = sqlx::query(
            "INSERT INTO projects (name, gpu_budget_seconds, default_gpu_estimate_seconds, default_retry_policy, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING *",
        )
        .bind(rows::text(&p.name))
        .bind(p.gpu_budget_seconds)
        .bind(p.default_gpu_estimate_seconds)
        .bind(json(&p.default_retry_policy))
        .bind(t)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db_err(e, "name", || format!("a project named `{}` already exists", p.name)))?;
        self.signals.events.notify_waiters();
        rows::project(&r)
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
        in_tx!(self, |t| update_project_in(
            t,
            id,
            patch.clone(),
            if_updated_at
        )
        .await)
    }

    async fn delete_project(&self, id: i64, force: bool) -> Result<Vec<Attempt>> {
        in_tx!(self, |t| {
            let in_flight =
                in_flight(t, "project_id", id, force, || format!("project {id}")).await?;
            let r = sqlx::query(
                "WITH d AS (DELETE FROM project_deltas WHERE project_id = $1) DELETE FROM projects WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *t.tx)
            .await?;
            if r.rows_affected() == 0 {
                Err(StoreError::not_found("project", id))
            } else {
                Ok(in_flight)
            }
        })
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
        in_tx!(self, |t| delete_scene_type_in(t, id, force).await)
    }

    async fn submit_segments(&self, segments: Vec<NewSegment>) -> Result<Vec<Segment>> {
        in_tx!(self, |t| queries::submit_segments(t, segments.clone())
            .await)
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
        if attempt_ids.is_empty() {
            return Ok(vec![]);
        }
        // Rows are locked in id order, like every other multi-attempt lock.
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "WITH mine AS (
                 SELECT id FROM retry_attempts
                 WHERE id = ANY($3) AND worker = $2 AND overall_status IN ('generating','scoring')
                 ORDER BY id FOR UPDATE)
             UPDATE retry_attempts a SET lease_expires_at = $1 FROM mine WHERE a.id = mine.id RETURNING a.id",
        )
        .bind(ops::lease_until(lease))
        .bind(worker)
        .bind(attempt_ids)
        .fetch_all(&self.pool)
        .await?;
        ids.sort_unstable();
        Ok(ids)
    }

    async fn extend_reservation(&self, attempt_id: i64, worker: &str, extra: f64) -> Result<bool> {
        in_tx!(self, |t| queries::extend_reservation(
            t, attempt_id, worker, extra
        )
        .await)
    }

    async fn set_progress(&self, attempt_id: i64, worker: &str, progress: f64) -> Result<()> {
        in_tx!(self, |t| set_progress_in(t, attempt_id, worker, progress)
            .await)
    }

    async fn set_provenance(
        &self,
        attempt_id: i64,
        worker: &str,
        provenance: serde_json::Value,
    ) -> Result<()> {
        // A server accepted the work: its wait ends, and so does the reason it carried.
        sqlx::query(
            "UPDATE retry_attempts SET provenance = $1,
             failure_reason = CASE WHEN $4 AND waiting_since IS NOT NULL THEN NULL ELSE failure_reason END,
             waiting_since = CASE WHEN $4 THEN NULL ELSE waiting_since END
             WHERE id = $2 AND worker = $3",
        )
        .bind(json(&provenance))
        .bind(attempt_id)
        .bind(worker)
        .bind(provenance.get("server").is_some())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn end_server_wait(&self) -> Result<u64> {
        // Nearly always nothing waits: look (the partial index) before writing.
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM retry_attempts WHERE waiting_since IS NOT NULL AND overall_status IN ('queued', 'generating'))",
        )
        .fetch_one(&self.pool)
        .await?;
        if !waiting {
            return Ok(0);
        }
        in_tx!(self, |t| end_server_wait_in(t).await)
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
        let projects: Vec<(i64, i64)> =
            sqlx::query_as("SELECT project_id, COUNT(*) FROM project_deltas GROUP BY project_id")
                .fetch_all(&self.pool)
                .await?;
        let mut folded = 0;
        for (project_id, n) in projects {
            let r = in_tx!(self, |t| t.reserve(project_id, &[]).await);
            match r {
                Ok(_) => folded += n as u64,
                Err(StoreError::NotFound { .. }) => {
                    // The project was deleted: its deltas go with it.
                    sqlx::query("DELETE FROM project_deltas WHERE project_id = $1")
                        .bind(project_id)
                        .execute(&self.pool)
                        .await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(folded)
    }

    async fn rescue_expired(&self) -> Result<Vec<i64>> {
        in_tx!(self, |t| rescue_in(t).await)
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
        in_tx!(self, |t| unit!(t, |u| ops::select_attempt(
            &mut u,
            segment_id,
            n,
            actor,
            human_override
        )
        .await?))
    }

    async fn reject_segment(
        &self,
        segment_id: i64,
        actor: &str,
        note: Option<String>,
    ) -> Result<(Segment, Vec<Attempt>)> {
        in_tx!(self, |t| close_segment_in(
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
        in_tx!(self, |t| close_segment_in(
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
        in_tx!(self, |t| unit!(t, |u| ops::rerun(
            &mut u,
            segment_id,
            actor,
            o.clone()
        )
        .await?))
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
        let r = sqlx::query("INSERT INTO api_tokens (name, role, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING *")
            .bind(name)
            .bind(role.as_str())
            .bind(token_hash)
            .bind(now())
            .bind(expires_at)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_err(e, "token", || "a token with this hash already exists".into()))?;
        rows::token(&r)
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
        let r = sqlx::query(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING *",
        )
        .bind(id)
        .bind(now())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found("token", id))?;
        sqlx::query("DELETE FROM sessions WHERE token_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        rows::token(&r)
    }

    async fn touch_token(&self, id: i64, at: Timestamp) -> Result<()> {
        let since = at - chrono::Duration::seconds(crate::TOKEN_TOUCH_INTERVAL_SECONDS);
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(id)
        .bind(at)
        .bind(since)
        .execute(&self.pool)
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
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(created)
            .execute(&self.pool)
            .await?;
        let r = sqlx::query(
            "INSERT INTO sessions (token_id, session_hash, created_at, expires_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(token_id)
        .bind(session_hash)
        .bind(created)
        .bind(expires_at)
        .fetch_one(&self.pool)
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
        reads::session_by_hash(&self.pool, session_hash).await
    }

    async fn delete_session(&self, session_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE session_hash = $1")
            .bind(session_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
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
        let r = sqlx::query(
            "INSERT INTO comfy_servers (name, url, max_concurrency, drained, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (name) DO UPDATE SET url = EXCLUDED.url, max_concurrency = EXCLUDED.max_concurrency,
             drained = EXCLUDED.drained, updated_at = EXCLUDED.updated_at RETURNING *",
        )
        .bind(name)
        .bind(url)
        .bind(max_concurrency.min(i32::MAX as u32) as i32)
        .bind(drained)
        .bind(now())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db_err(e, "max_concurrency", || "invalid server".into()))?;
        rows::comfy_server(&r)
    }

    async fn delete_comfy_server(&self, name: &str) -> Result<()> {
        let r = sqlx::query("DELETE FROM comfy_servers WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("ComfyUI server", name));
        }
        Ok(())
    }
}
