//! retake's durable state behind one [`Store`] trait, with two backends: SQLite (embedded, the
//! default) and PostgreSQL (several replicas sharing the work). Each backend owns its migrations.
//!
//! The backends differ only in SQL. Everything that decides — finishing an attempt, judging its
//! scores, applying the retry decision, reserving budget — is written once in [`ops`] over the
//! small transaction interface [`ops::TxOps`], and calls the pure `retake_core::decide`. The
//! reads — plain lookups, statistics, metrics, the operators' views — are written once too
//! (`reads.rs`), and so are the scene-type writes (`scene_types.rs`), the rest of the writes
//! beside the hot path (`writes.rs`: projects, deletions, submission, leases, progress, rescue,
//! a person's actions) and the installation's records (`installation.rs`: tokens, sessions,
//! servers), over the `Dialect` seam (`dialect.rs`: placeholders, the few fragments spelled
//! differently, how timestamps, id lists and JSON bind, NUL-free text, and the locks only
//! PostgreSQL takes) and [`rows`], which builds domain values from either database's rows.
//! Each backend's `impl Store` only picks a pool or a transaction.
//!
//! Invariants the database enforces: `UNIQUE (segment_id, attempt_number)`, at most one selected
//! attempt per segment (partial unique index), CHECK constraints on states and ranges, an
//! append-only GPU ledger.

mod dialect;
pub mod errors;
mod installation;
pub mod model;
pub mod ops;
pub mod postgres;
mod reads;
pub mod rows;
mod scene_types;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
pub mod unit;
pub mod views;
mod writes;

pub use model::*;
pub use views::*;

use async_trait::async_trait;
use retake_core::QaVerdict;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{entity} {id} does not exist")]
    NotFound { entity: &'static str, id: String },
    /// A write lost a race or broke a uniqueness rule (stale `updated_at`, duplicate name).
    #[error("{message}")]
    Conflict {
        message: String,
        field: Option<String>,
    },
    /// The request is well-formed but not allowed in the current state.
    #[error("{message}")]
    Invalid {
        message: String,
        field: Option<String>,
    },
    #[error("database error: {0}")]
    Db(sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The database could not take the write (disk full, I/O error, connection lost). Nothing
    /// was acknowledged; the same request can be sent again once the cause is gone.
    #[error("{message}")]
    Unavailable { message: String, storage_full: bool },
}

impl StoreError {
    pub fn not_found(entity: &'static str, id: impl ToString) -> Self {
        StoreError::NotFound {
            entity,
            id: id.to_string(),
        }
    }
    pub fn invalid(field: Option<&str>, message: impl Into<String>) -> Self {
        StoreError::Invalid {
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        StoreError::Unavailable {
            message: message.into(),
            storage_full: false,
        }
    }
    /// A copy that can be handed to every caller of a failed batch.
    pub fn shared(&self) -> Self {
        match self {
            StoreError::NotFound { entity, id } => StoreError::NotFound {
                entity,
                id: id.clone(),
            },
            StoreError::Conflict { message, field } => StoreError::Conflict {
                message: message.clone(),
                field: field.clone(),
            },
            StoreError::Invalid { message, field } => StoreError::Invalid {
                message: message.clone(),
                field: field.clone(),
            },
            StoreError::Unavailable {
                message,
                storage_full,
            } => StoreError::Unavailable {
                message: message.clone(),
                storage_full: *storage_full,
            },
            other => StoreError::unavailable(other.to_string()),
        }
    }
    pub fn conflict(field: Option<&str>, message: impl Into<String>) -> Self {
        StoreError::Conflict {
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    /// Errors that say the database cannot take writes right now (disk full, I/O error, the
    /// server unreachable) become [`StoreError::Unavailable`], naming the cause; the rest stay
    /// database errors.
    fn from(e: sqlx::Error) -> Self {
        let full = |message: String| StoreError::Unavailable {
            message,
            storage_full: true,
        };
        match &e {
            sqlx::Error::Database(d) => {
                let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
                let sqlite_primary = code.parse::<i64>().ok().map(|c| c & 0xff);
                if sqlite_primary == Some(13) || code == "53100" {
                    full(format!(
                        "the database's disk is full; nothing was stored ({d})"
                    ))
                } else if sqlite_primary == Some(10)
                    || code.starts_with("53")
                    || code.starts_with("08")
                    || code.starts_with("57P")
                {
                    StoreError::unavailable(format!(
                        "the database cannot take writes right now; nothing was stored ({d})"
                    ))
                } else {
                    StoreError::Db(e)
                }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_) => {
                StoreError::unavailable(format!("the database is unreachable: {e}"))
            }
            _ => StoreError::Db(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// `last_used_at` is written at most this often per token.
pub const TOKEN_TOUCH_INTERVAL_SECONDS: i64 = 60;

/// Everything retake reads and writes. Both backends pass the same contract suite
/// (`tests/contract.rs`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend_name(&self) -> &'static str;

    // Projects.
    async fn create_project(&self, p: NewProject) -> Result<Project>;
    async fn get_project(&self, id: i64) -> Result<Project>;
    async fn list_projects(&self) -> Result<Vec<Project>>;
    /// `if_updated_at` is the optimistic-concurrency precondition: a stale value is a Conflict.
    async fn update_project(
        &self,
        id: i64,
        patch: ProjectPatch,
        if_updated_at: Option<Timestamp>,
    ) -> Result<Project>;
    /// Deletes the project and everything in it. While it has work in flight this is a
    /// Conflict giving the counts, unless `force`: then the in-flight attempts go with it and
    /// are returned, so that their generations can be stopped on the servers.
    async fn delete_project(&self, id: i64, force: bool) -> Result<Vec<Attempt>>;

    // Scene types.
    async fn create_scene_type(&self, s: NewSceneType) -> Result<SceneType>;
    async fn get_scene_type(&self, id: i64) -> Result<SceneType>;
    async fn list_scene_types(&self, project_id: Option<i64>) -> Result<Vec<SceneType>>;
    async fn update_scene_type(
        &self,
        id: i64,
        patch: SceneTypePatch,
        if_updated_at: Option<Timestamp>,
    ) -> Result<SceneType>;
    /// As [`Store::delete_project`], for one scene type and its segments.
    async fn delete_scene_type(&self, id: i64, force: bool) -> Result<Vec<Attempt>>;

    // Segments and attempts.
    /// Creates each segment with its attempt 1 queued, in one transaction.
    async fn submit_segments(&self, segments: Vec<NewSegment>) -> Result<Vec<Segment>>;
    async fn get_segment(&self, id: i64) -> Result<Segment>;
    async fn list_segments(&self, filter: &SegmentFilter) -> Result<Vec<Segment>>;
    async fn list_attempts(&self, segment_id: i64) -> Result<Vec<Attempt>>;
    /// The attempts of several segments in one read (a page of segments), ordered by segment
    /// and attempt number.
    async fn list_attempts_of(&self, segment_ids: &[i64]) -> Result<Vec<Attempt>>;
    async fn get_attempt(&self, id: i64) -> Result<Attempt>;

    // The engine's queue.
    /// Claims up to `limit` queued attempts for `worker` with a lease, reserving each one's
    /// estimated GPU seconds. An attempt the budget cannot cover is cancelled and its segment
    /// escalated with `budget_exhausted`.
    async fn claim(&self, worker: &str, limit: u32, lease: Duration) -> Result<Vec<Work>> {
        let req = ClaimRequest {
            worker: worker.to_owned(),
            limit,
            lease,
        };
        Ok(self.complete_and_claim(vec![], Some(req)).await?.claimed)
    }
    /// Extends the leases `worker` still holds; returns the ids it still owns.
    async fn heartbeat(
        &self,
        worker: &str,
        attempt_ids: &[i64],
        lease: Duration,
    ) -> Result<Vec<i64>>;
    /// Grows an attempt's reservation while budget remains; false means stop it.
    async fn extend_reservation(
        &self,
        attempt_id: i64,
        worker: &str,
        extra_seconds: f64,
    ) -> Result<bool>;
    async fn set_progress(&self, attempt_id: i64, worker: &str, progress: f64) -> Result<()>;
    /// Records what was submitted. A provenance naming a `server` means a server accepted the
    /// work, which ends the attempt's wait for one (`waiting_since`, and the reason it carried).
    async fn set_provenance(
        &self,
        attempt_id: i64,
        worker: &str,
        provenance: serde_json::Value,
    ) -> Result<()>;
    /// A generation server is healthy (it accepted work, or is busy with other work): every
    /// attempt waiting for one stops waiting — `waiting_since` and its waiting reason are
    /// cleared, with an event each — and waits for capacity like any queued work. Returns how
    /// many stopped waiting.
    async fn end_server_wait(&self) -> Result<u64>;
    /// Generation ended: charge GPU time, then judge and decide (if the backend scored it) or
    /// wait in `scoring`. Only the lease owner of a generating attempt may finish it.
    async fn finish_generation(&self, done: GenerationDone) -> Result<Applied> {
        single(self.complete(vec![Completion::Generated(done)]).await?)
    }
    /// The completer's write: applies a batch of completions in one transaction and answers
    /// each. A completion that fails on its own (its project vanished, say) fails only itself;
    /// the outer error means nothing was stored (the database refused the commit).
    async fn complete(&self, items: Vec<Completion>) -> Result<Vec<Result<Applied>>> {
        Ok(self.complete_and_claim(items, None).await?.applied)
    }
    /// [`Store::complete`], then — in the same transaction — a claim for the worker the request
    /// names (the slots these completions free), so that under load one transaction both ends
    /// attempts and starts the next ones. A retry the batch scheduled can be claimed at once.
    /// When the batch has to be split to isolate a failing completion, the claim runs after
    /// the items, in a transaction of its own.
    async fn complete_and_claim(
        &self,
        items: Vec<Completion>,
        claim: Option<ClaimRequest>,
    ) -> Result<Completed>;
    /// Fold the pending budget and statistics deltas into the project rows (claims do this as
    /// they reserve; the engine also calls it periodically). Returns the deltas folded.
    async fn settle_pending(&self) -> Result<u64>;
    /// Scores for an attempt in `scoring`, from the built-in runner (`worker` set) or an
    /// external QA service. A second delivery changes nothing.
    async fn deliver_verdict(
        &self,
        attempt_id: i64,
        verdict: QaVerdict,
        worker: Option<&str>,
    ) -> Result<Applied> {
        single(
            self.complete(vec![Completion::Verdict {
                attempt_id,
                verdict,
                worker: worker.map(str::to_owned),
            }])
            .await?,
        )
    }
    async fn record_infra_failure(&self, failure: InfraFailure) -> Result<Applied> {
        single(self.complete(vec![Completion::Infra(failure)]).await?)
    }
    /// Returns attempts whose lease expired to the queue, with an event saying so.
    async fn rescue_expired(&self) -> Result<Vec<i64>>;
    /// Attempts waiting in the queue, including those held back by an infrastructure backoff.
    async fn pending_work(&self) -> Result<u64>;
    /// Waits until work may be ready (new queued attempts) or `timeout` passes.
    async fn wait_for_work(&self, timeout: Duration);
    /// Waits until new events may exist or `timeout` passes.
    async fn wait_for_events(&self, timeout: Duration);

    // Human actions.
    async fn select_attempt(
        &self,
        segment_id: i64,
        attempt_number: u32,
        actor: &str,
        human_override: bool,
    ) -> Result<Segment>;
    /// Rejects the segment and cancels its in-flight attempts, which are returned so that their
    /// generations can be stopped on the servers.
    async fn reject_segment(
        &self,
        segment_id: i64,
        actor: &str,
        note: Option<String>,
    ) -> Result<(Segment, Vec<Attempt>)>;
    async fn cancel_segment(&self, segment_id: i64, actor: &str)
        -> Result<(Segment, Vec<Attempt>)>;
    async fn rerun_segment(
        &self,
        segment_id: i64,
        actor: &str,
        overrides: RerunOverrides,
    ) -> Result<(Segment, Attempt)>;

    // Reading what happened.
    /// Where a new event stream starts so that it sends only what commits after this call: the
    /// cursor `list_events` continues from, and the ids of events already committed beyond it
    /// (on PostgreSQL, events of transactions newer than one still running), which the stream
    /// must skip when they reach it.
    async fn events_head(&self) -> Result<EventsHead>;
    async fn list_events(
        &self,
        after_id: i64,
        segment_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Event>>;
    async fn project_stats(&self, project_id: i64) -> Result<ProjectStats>;
    async fn failure_patterns(&self, scene_type_id: Option<i64>) -> Result<Vec<FailurePattern>>;
    async fn metrics(&self) -> Result<MetricsSnapshot>;
    async fn recent_gpu_seconds(&self, scene_type_id: i64, limit: u32) -> Result<Vec<f64>>;

    // Operators' views (`views.rs`): plain reads.
    /// Attempts running now and a page of the queued ones in claim order, with their places.
    async fn queue_snapshot(&self, filter: &QueueFilter) -> Result<QueueSnapshot>;
    /// A project's GPU ledger, newest first.
    async fn list_ledger(&self, filter: &LedgerFilter) -> Result<Vec<LedgerEntry>>;
    /// A project's charges summed per scene type in `buckets` equal time buckets.
    async fn spend_series(&self, project_id: i64, buckets: u32) -> Result<SpendSeries>;

    // Tokens and servers.
    async fn create_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<ApiToken>;
    /// The token with this hash, revoked or expired ones included (the caller says why it is
    /// refused: [`ApiToken::refusal`]).
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>>;
    /// Every token, revoked and expired ones included, oldest first.
    async fn list_tokens(&self) -> Result<Vec<ApiToken>>;
    /// Revoke a token and end its sessions. Revoking a revoked token keeps the first time.
    async fn revoke_token(&self, id: i64) -> Result<ApiToken>;
    /// Record that the token was used at `at`, unless that was already recorded less than
    /// [`TOKEN_TOUCH_INTERVAL_SECONDS`] before (so a busy token costs one write a minute).
    async fn touch_token(&self, id: i64, at: Timestamp) -> Result<()>;
    /// Start a browser session for a token; expired sessions are purged on the way.
    async fn create_session(
        &self,
        token_id: i64,
        session_hash: &str,
        expires_at: Timestamp,
    ) -> Result<Session>;
    /// The session with this hash and its token, if the session has not expired (the token's
    /// own state is the caller's to check).
    async fn session_by_hash(&self, session_hash: &str) -> Result<Option<(Session, ApiToken)>>;
    async fn delete_session(&self, session_hash: &str) -> Result<()>;
    async fn list_comfy_servers(&self) -> Result<Vec<ComfyServer>>;
    async fn upsert_comfy_server(
        &self,
        name: &str,
        url: &str,
        max_concurrency: u32,
        drained: bool,
    ) -> Result<ComfyServer>;
    async fn delete_comfy_server(&self, name: &str) -> Result<()>;

    /// The id this database was created with (migration 0004): generation servers shared by
    /// several installations tell their work apart by it.
    async fn installation_id(&self) -> Result<String>;
    /// Attempts waiting for a healthy generation server (queued, or claimed and looking for
    /// one), and since when.
    async fn waiting_for_server(&self) -> Result<ServerWait>;
}

fn single(mut results: Vec<Result<Applied>>) -> Result<Applied> {
    results
        .pop()
        .unwrap_or_else(|| Err(StoreError::unavailable("the completion was not applied")))
}

/// Runs a batch of completions (and a claim) with `run`, which applies them in one
/// transaction. When the batch fails for one item's sake, each item runs alone so only that one
/// fails, and the claim runs last on its own; when the database itself refused (nothing can be
/// stored), the error is returned for the whole batch.
pub(crate) async fn complete_isolated<F, Fut>(
    items: Vec<Completion>,
    claim: Option<ClaimRequest>,
    run: F,
) -> Result<Completed>
where
    F: Fn(Vec<Completion>, Option<ClaimRequest>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<Applied>, Vec<Work>)>>,
{
    match run(items.clone(), claim.clone()).await {
        Ok((applied, claimed)) => Ok(Completed {
            applied: applied.into_iter().map(Ok).collect(),
            claimed,
        }),
        Err(e @ (StoreError::Db(_) | StoreError::Unavailable { .. })) => Err(e),
        Err(e) if items.is_empty() => Err(e),
        Err(e) if items.len() == 1 && claim.is_none() => Ok(Completed {
            applied: vec![Err(e)],
            claimed: vec![],
        }),
        Err(_) => {
            let mut applied = Vec::with_capacity(items.len());
            for item in items {
                applied.push(run(vec![item], None).await.map(|(mut v, _)| v.remove(0)));
            }
            // The items are stored now: a claim that fails only leaves the slots to the
            // worker's claim loop.
            let claimed = match claim {
                Some(req) => match run(vec![], Some(req)).await {
                    Ok((_, claimed)) => claimed,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming after a split batch failed");
                        vec![]
                    }
                },
                None => vec![],
            };
            Ok(Completed { applied, claimed })
        }
    }
}

/// Open the store a URL names: `sqlite:PATH` (or a bare path) or `postgres://…`. Migrations run.
///
/// Any other scheme (`postgress://`, `mysql://`) is refused rather than taken for a file name.
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    match url_kind(url)? {
        UrlKind::Postgres => Ok(std::sync::Arc::new(postgres::PgStore::connect(url).await?)),
        UrlKind::Sqlite => Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?)),
    }
}

/// Which store a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlKind {
    Sqlite,
    Postgres,
}

/// Classifies a database URL: `postgres://`/`postgresql://`, `sqlite:…`, or a bare file path.
pub fn url_kind(url: &str) -> Result<UrlKind> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(UrlKind::Postgres);
    }
    if url.starts_with("sqlite:") {
        return Ok(UrlKind::Sqlite);
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(StoreError::invalid(
            Some("database_url"),
            format!(
                "unknown database URL scheme `{scheme}://`; use postgres://user@host/db, \
                 sqlite:PATH or a file path"
            ),
        ));
    }
    Ok(UrlKind::Sqlite)
}
