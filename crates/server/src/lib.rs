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
mod openapi;
pub mod routes;
pub mod state;
pub mod ui;

pub use openapi::ApiDoc;
pub use state::{AppState, ComfyAdmin, WorkflowValidator};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use routes::{bulk, ledger, ops, projects, queue, review, scene_types, segments};
use std::future::Future;
use tokio::net::TcpListener;
use utoipa::OpenApi;

/// The whole application.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/health", get(ops::health))
        .route("/api/me", get(ops::me))
        .route("/api/tokens", post(ops::tokens))
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
            get(projects::get_policy).put(projects::put_policy),
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
            get(scene_types::get_policy).put(scene_types::put_policy),
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
            get(|| async { axum::Json(ApiDoc::openapi()) }),
        )
        .route(
            "/api/{*rest}",
            axum::routing::any(|| async { error::ApiError::not_found("no such API route") }),
        )
        // After every route: a known path with another method gets the one error shape too.
        .method_not_allowed_fallback(|| async { error::ApiError::MethodNotAllowed });
    let docs = utoipa_swagger_ui::SwaggerUi::new("/api/docs")
        .url("/api/docs/openapi.json", ApiDoc::openapi());
    Router::new()
        .merge(api)
        .merge(docs)
        .fallback_service(ui::service(state.ui_dir.clone()))
        .layer(DefaultBodyLimit::max(json::MAX_BODY))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serve until `shutdown` completes. Tests call this with a port-0 listener.
pub async fn launch(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
