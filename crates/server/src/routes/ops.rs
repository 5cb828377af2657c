//! Health, the caller, metrics, the live event stream, tokens and ComfyUI servers.

use crate::auth::Caller;
use crate::dto::*;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::json::Json;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures::Stream;
use retake_store::{ComfyServer, Event, Role};
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;

#[utoipa::path(get, path = "/api/health", tag = "operations", responses((status = 200, body = Health)))]
pub async fn health(State(state): State<AppState>) -> axum::Json<Health> {
    // Health stays open and answers even when the store cannot: the wait is then unknown.
    let waiting = match state.store.waiting_for_server().await {
        Ok(w) => w
            .since
            .filter(|_| w.attempts > 0)
            .map(|since| WaitingForServer {
                attempts: w.attempts,
                since,
                message: format!(
                    "{} attempt(s) waiting for a healthy ComfyUI server since {}",
                    w.attempts,
                    since.format("%Y-%m-%d %H:%M:%S UTC")
                ),
            }),
        Err(e) => {
            tracing::warn!(error = %e, "health: reading the server wait failed");
            None
        }
    };
    axum::Json(Health {
        status: if waiting.is_some() {
            "waiting_for_server"
        } else {
            "ok"
        },
        store: state.store.backend_name(),
        version: env!("CARGO_PKG_VERSION"),
        waiting_for_server: waiting,
    })
}

#[utoipa::path(get, path = "/api/me", tag = "operations", responses((status = 200, body = Me), (status = 401, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn me(caller: Caller) -> axum::Json<Me> {
    axum::Json(Me {
        name: caller.0.name,
        role: caller.0.role,
    })
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus metrics", content_type = "text/plain")), security(("bearer" = [])))]
pub async fn metrics(State(state): State<AppState>, _c: Caller) -> ApiResult<impl IntoResponse> {
    let m = state.store.metrics().await?;
    crate::metrics::record_store(&m);
    let wait = state.store.waiting_for_server().await?;
    crate::metrics::record_waiting(wait.attempts, wait.since);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::metrics::render(),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Start after this event id (or send `Last-Event-ID`). Default: only new events.
    pub after: Option<i64>,
    pub segment_id: Option<i64>,
    /// Token for browsers' EventSource, which cannot send headers.
    pub access_token: Option<String>,
}

/// Server-Sent Events: every attempt and segment change, as stored events (`id` is the event id;
/// `event` its kind; `data` the event as JSON). Reconnects resume from `Last-Event-ID`.
/// Kinds: `segment_submitted`, `attempt_started`, `progress`, `attempt_scoring`, `retry_scheduled`,
/// `selected`, `accepted`, `escalated`, `budget_refused`, `infra_error`, `lease_rescued`,
/// `waiting_for_server`, `server_available`, `rejected`, `cancelled`.
#[utoipa::path(get, path = "/api/events", tag = "operations", params(EventsQuery),
    responses((status = 200, description = "text/event-stream of Event", content_type = "text/event-stream", body = Event)), security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    _c: Caller,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    // A resuming client continues from its last event; a new one gets what commits from now on.
    let (start, skip) = match last.or(q.after) {
        Some(a) => (a, Vec::new()),
        None => {
            let head = state.store.events_head().await?;
            (head.after, head.skip)
        }
    };
    let store = state.store.clone();
    let segment = q.segment_id;
    let stream = async_stream(store, start, skip, segment);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn async_stream(
    store: std::sync::Arc<dyn retake_store::Store>,
    start: i64,
    skip: Vec<i64>,
    segment: Option<i64>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    // Events committed before the stream opened that the cursor has not passed yet.
    let skip: std::collections::HashSet<i64> = skip.into_iter().collect();
    futures::stream::unfold(
        (
            store,
            start,
            std::collections::VecDeque::<Event>::new(),
            skip,
        ),
        move |(store, mut after, mut buf, mut skip)| async move {
            loop {
                if let Some(e) = buf.pop_front() {
                    if skip.remove(&e.id) {
                        continue;
                    }
                    let ev = SseEvent::default()
                        .id(e.id.to_string())
                        .event(e.kind.clone())
                        .json_data(&e)
                        .unwrap_or_default();
                    return Some((Ok(ev), (store, after, buf, skip)));
                }
                match store.list_events(after, segment, 200).await {
                    Ok(events) if !events.is_empty() => {
                        after = events.last().map(|e| e.id).unwrap_or(after);
                        buf.extend(events);
                    }
                    Ok(_) => store.wait_for_events(Duration::from_secs(1)).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream read failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        },
    )
}

#[utoipa::path(get, path = "/api/comfyui/servers", tag = "comfyui", responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn list_servers(
    State(state): State<AppState>,
    _c: Caller,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let configured = state.store.list_comfy_servers().await?;
    let live = state
        .comfy_admin
        .as_ref()
        .map(|a| a.status())
        .unwrap_or(serde_json::Value::Null);
    Ok(axum::Json(
        serde_json::json!({"servers": configured, "live": live}),
    ))
}

/// Add or change a ComfyUI server (admin). `drained: true` stops new work going to it.
#[utoipa::path(put, path = "/api/comfyui/servers/{name}", tag = "comfyui", params(("name" = String, Path)), request_body = ComfyServerBody,
    responses((status = 200, body = ComfyServer), (status = 422, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn put_server(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(b): Json<ComfyServerBody>,
) -> ApiResult<axum::Json<ComfyServer>> {
    caller.require(Role::Admin)?;
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ApiError::validation(
            "name",
            "must be 1..=64 characters of letters, digits, '-', '_' or '.'",
        ));
    }
    if !(b.url.starts_with("http://") || b.url.starts_with("https://")) || b.url.len() > 500 {
        return Err(ApiError::validation(
            "url",
            "must be an http:// or https:// URL",
        ));
    }
    let (lo, hi) = retake_core::limits::SERVER_CONCURRENCY;
    if !(lo..=hi).contains(&b.max_concurrency) {
        return Err(ApiError::validation(
            "max_concurrency",
            format!("must be in {lo}..={hi}; got {}", b.max_concurrency),
        ));
    }
    let s = state
        .store
        .upsert_comfy_server(
            &name,
            b.url.trim_end_matches('/'),
            b.max_concurrency,
            b.drained,
        )
        .await?;
    if let Some(a) = &state.comfy_admin {
        a.reload(state.store.list_comfy_servers().await?).await;
    }
    Ok(axum::Json(s))
}

#[utoipa::path(delete, path = "/api/comfyui/servers/{name}", tag = "comfyui", params(("name" = String, Path)), responses((status = 204)), security(("bearer" = [])))]
pub async fn delete_server(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    state.store.delete_comfy_server(&name).await?;
    if let Some(a) = &state.comfy_admin {
        a.reload(state.store.list_comfy_servers().await?).await;
    }
    Ok(StatusCode::NO_CONTENT)
}
