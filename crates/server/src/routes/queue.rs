//! The operations view: what is generating now, on which worker and server, and what waits in
//! which order with an estimate of when it starts.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::state::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use retake_core::queue::estimated_start_seconds;
use retake_store::{QueueEntry, QueueFilter};
use serde::{Deserialize, Serialize};

/// Most queued attempts one page lists.
pub const MAX_QUEUE_PAGE: u32 = 200;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    /// Only this project's attempts (places in line still count every project's).
    pub project_id: Option<i64>,
    /// Skip this many queued attempts (in claim order); the previous page's `next_offset`.
    #[param(minimum = 0)]
    pub offset: Option<u64>,
    /// Queued attempts per page, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// A queued attempt and when it is likely to start.
#[derive(Serialize, utoipa::ToSchema)]
pub struct QueuedAttempt {
    #[serde(flatten)]
    pub entry: QueueEntry,
    /// Seconds from now until a worker likely claims it (see `QueueView.estimate_basis`);
    /// null when there is no rate to go by.
    pub estimated_start_seconds: Option<f64>,
    pub estimated_start_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueueView {
    /// Attempts generating or being scored now, oldest start first (at most 500 listed).
    pub running: Vec<QueueEntry>,
    pub running_total: u64,
    /// One page of the queued attempts, in the order workers claim them: higher `priority`
    /// first (retries ahead of new originals unless a policy sets `retry_priority` 0), then
    /// older first.
    pub queued: Vec<QueuedAttempt>,
    pub queued_total: u64,
    pub offset: u64,
    pub limit: u32,
    /// Pass as `offset` for the next page; null on the last page.
    pub next_offset: Option<u64>,
    /// Attempts running now in every project: the rate the queue drains at.
    pub running_everywhere: u64,
    /// Mean wall seconds (claim to finish) of the last 200 finished attempts; null before any.
    pub mean_attempt_seconds: Option<f64>,
    /// How the estimates are made, in words.
    pub estimate_basis: String,
    pub generated_at: DateTime<Utc>,
}

fn check_limit(l: Option<u32>) -> ApiResult<u32> {
    match l {
        None => Ok(50),
        Some(v) if (1..=MAX_QUEUE_PAGE).contains(&v) => Ok(v),
        Some(v) => Err(ApiError::validation(
            "limit",
            format!("must be in 1..={MAX_QUEUE_PAGE}; got {v}"),
        )),
    }
}

/// The live queue. Cancel an entry with `POST /api/segments/{id}/cancel`.
#[utoipa::path(get, path = "/api/queue", tag = "operations", params(QueueQuery),
    responses(
        (status = 200, body = QueueView),
        (status = 400, body = crate::error::ErrorBody, description = "a query value of the wrong type or an unknown parameter"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody, description = "project_id names no project"),
        (status = 422, body = crate::error::ErrorBody, description = "limit outside 1..=200"),
    ),
    security(("bearer" = [])))]
pub async fn queue(
    State(state): State<AppState>,
    _c: Caller,
    Query(q): Query<QueueQuery>,
) -> ApiResult<axum::Json<QueueView>> {
    let limit = check_limit(q.limit)?;
    if let Some(p) = q.project_id {
        state.store.get_project(p).await?;
    }
    let offset = q.offset.unwrap_or(0);
    if offset > i64::MAX as u64 {
        return Err(crate::error::ApiError::validation(
            "offset",
            format!("must be in 0..={}; got {offset}", i64::MAX),
        ));
    }
    let snap = state
        .store
        .queue_snapshot(&QueueFilter {
            project_id: q.project_id,
            offset,
            limit,
        })
        .await?;
    let now = Utc::now();
    let walls = &snap.recent_wall_seconds;
    let mean = (!walls.is_empty()).then(|| walls.iter().sum::<f64>() / walls.len() as f64);
    let queued: Vec<QueuedAttempt> = snap
        .queued
        .into_iter()
        .map(|entry| {
            let secs = entry
                .position
                .and_then(|p| estimated_start_seconds(p, snap.running_everywhere, walls));
            // An attempt held back by a backoff starts no sooner than its backoff ends.
            let secs = match (secs, entry.not_before) {
                (Some(s), Some(nb)) => Some(
                    s.max((nb - now).num_milliseconds() as f64 / 1000.0)
                        .max(0.0),
                ),
                (s, _) => s,
            };
            QueuedAttempt {
                estimated_start_at: secs
                    .map(|s| now + chrono::Duration::milliseconds((s * 1000.0) as i64)),
                estimated_start_seconds: secs,
                entry,
            }
        })
        .collect();
    let next_offset = (offset + (queued.len() as u64) < snap.queued_total
        && queued.len() as u32 == limit)
        .then_some(offset + queued.len() as u64);
    Ok(axum::Json(QueueView {
        running: snap.running,
        running_total: snap.running_total,
        queued,
        queued_total: snap.queued_total,
        offset,
        limit,
        next_offset,
        running_everywhere: snap.running_everywhere,
        mean_attempt_seconds: mean,
        estimate_basis: format!(
            "place in line × mean attempt time ({}) ÷ attempts running now ({}), assuming the queue keeps draining at today's rate",
            mean.map(|m| format!("{m:.1} s over the last {} finished", walls.len()))
                .unwrap_or_else(|| "none finished yet".into()),
            snap.running_everywhere
        ),
        generated_at: now,
    }))
}
