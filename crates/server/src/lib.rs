//! retake's HTTP API: JSON under `/api`, an OpenAPI 3.1 document at `/api/openapi.json`, its docs
//! page at `/api/docs` (works offline), Prometheus metrics at `/metrics`, live events as SSE, and
//! the web UI's static files at `/`.
//!
//! Handlers parse input into domain types and call the store; they decide nothing themselves.

pub mod auth;
pub mod dto;
pub mod error;
pub mod extract;
pub mod json;
pub mod media;
pub mod metrics;
mod openapi;
pub mod routes;
pub mod state;
pub mod ui;

pub use openapi::{document as openapi_document, ApiDoc};
pub use state::{AppState, ComfyAdmin, WorkflowRejection, WorkflowValidator};

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use axum::Router;
use routes::{bulk, ledger, ops, projects, queue, review, scene_types, segments, tokens};
use std::future::Future;
use tokio::net::TcpListener;

/// The whole application.
pub fn app(state: AppState) -> Router {
    // Install the metrics recorder before anything is measured.
    metrics::handle();
    let api = Router::new()
        .route("/api/health", get(ops::health))
        .route("/api/me", get(ops::me))
        .route("/api/tokens", get(tokens::list).post(tokens::create))
        .route("/api/tokens/{id}", delete(tokens::revoke))
        .route(
            "/api/session",
            post(tokens::sign_in).delete(tokens::sign_out),
        )
        .route("/api/events", get(ops::events))
        .route("/api/projects", get(projects::list).post(projects::create))
        .route(
            "/api/projects/{id}",
            get(projects::get)
                .patch(projects::update)
                .delete(projects::delete),
        )
        .route(
            "/api/projects/{id}/retry-policy",
            get(projects::get_policy)
                .put(projects::put_policy)
                .patch(projects::patch_policy),
        )
        .route(
            "/api/scene-types",
            get(scene_types::list).post(scene_types::create),
        )
        .route(
            "/api/scene-types/{id}",
            get(scene_types::get)
                .patch(scene_types::update)
                .delete(scene_types::delete),
        )
        .route(
            "/api/scene-types/{id}/retry-policy",
            get(scene_types::get_policy)
                .put(scene_types::put_policy)
                .patch(scene_types::patch_policy),
        )
        .route(
            "/api/scene-types/{id}/failure-patterns",
            get(scene_types::failure_patterns),
        )
        .route(
            "/api/failure-patterns",
            get(scene_types::all_failure_patterns),
        )
        .route("/api/segments", get(segments::list).post(segments::submit))
        .route("/api/segments/{id}", get(segments::get))
        .route(
            "/api/segments/{id}/retry-history",
            get(segments::retry_history),
        )
        .route("/api/segments/{id}/cancel", post(segments::cancel))
        .route(
            "/api/segments/{id}/attempts/{n}/select",
            post(segments::select),
        )
        .route(
            "/api/segments/{id}/attempts/{n}/media",
            get(segments::media),
        )
        .route("/api/review", get(review::queue))
        .route("/api/review/bulk", post(bulk::bulk_review))
        .route("/api/queue", get(queue::queue))
        .route("/api/projects/{id}/ledger", get(ledger::ledger))
        .route("/api/projects/{id}/spend", get(ledger::spend))
        .route("/api/review/{segment_id}/accept", post(review::accept))
        .route("/api/review/{segment_id}/rerun", post(review::rerun))
        .route("/api/review/{segment_id}/reject", post(review::reject))
        .route("/api/attempts/{id}/qa", post(review::external_qa))
        .route("/api/comfyui/servers", get(ops::list_servers))
        .route(
            "/api/comfyui/servers/{name}",
            put(ops::put_server).delete(ops::delete_server),
        )
        .route("/metrics", get(ops::metrics))
        .route(
            "/api/openapi.json",
            get(|| async { axum::Json(openapi_document()) }),
        )
        .route(
            "/api/{*rest}",
            axum::routing::any(|| async { error::ApiError::not_found("no such API route") }),
        )
        // After every route: a known path with another method gets the one error shape too.
        .method_not_allowed_fallback(|| async { error::ApiError::MethodNotAllowed });
    let docs = utoipa_swagger_ui::SwaggerUi::new("/api/docs")
        .external_url_unchecked("/api/docs/openapi.json", openapi_document());
    Router::new()
        .merge(api)
        .merge(docs)
        .fallback_service(ui::service(state.ui_dir.clone()))
        .layer(DefaultBodyLimit::max(json::MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(tokio::sync::Semaphore::new(API_CONCURRENCY)),
            limit_concurrency,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// API requests answered at once; the others wait their turn. A waiting connection costs a few
/// kilobytes, a request being answered holds its rows and its JSON: without a bound, 2,000
/// concurrent page reads grew the server by hundreds of megabytes and slowed every one of them.
/// Event streams and media are not counted (they last long and hold little).
pub const API_CONCURRENCY: usize = 32;

async fn limit_concurrency(
    axum::extract::State(permits): axum::extract::State<std::sync::Arc<tokio::sync::Semaphore>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path();
    if !path.starts_with("/api/") || path == "/api/events" || path.ends_with("/media") {
        return next.run(req).await;
    }
    // The semaphore is never closed, so acquiring only waits.
    let _permit = permits.acquire().await;
    next.run(req).await
}

/// A client has this long to send a request's headers; slow-header connections are closed.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// After shutdown is asked for, open connections (event streams) get this long to finish.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// The span every request is logged in: method and path, and the query string with the value
/// of `access_token` (and any other credential-looking key) replaced, so a token never reaches
/// a log line.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        query = %req.uri().query().map(redact_query).unwrap_or_default(),
    )
}

/// `a=1&access_token=rtk_…` → `a=1&access_token=[redacted]`.
pub fn redact_query(q: &str) -> String {
    q.split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if is_secret_key(k) => format!("{k}=[redacted]"),
            _ => kv.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k.contains("token") || k.contains("secret") || k.contains("password") || k == "key"
}

/// Serve until `shutdown` completes. Tests call this with a port-0 listener.
///
/// HTTP/1 and HTTP/2 through hyper, with a header read timeout (axum's `serve` sets none, so a
/// client sending a byte a second would hold its socket forever).
pub async fn launch(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let service = TowerToHyperService::new(app(state));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let service = service.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    Ok(())
}
