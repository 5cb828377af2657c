//! Projects (with their GPU budget) and the project's default retry policy.

use crate::auth::Caller;
use crate::dto::*;
use crate::error::{ApiError, ApiResult};
use crate::extract::{if_match, Path};
use crate::json::Json;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use retake_core::RetryPolicy;
use retake_store::{NewProject, ProjectPatch, Role};

fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(ApiError::validation("name", "must have 1..=200 characters"));
    }
    Ok(())
}

fn check_budget(b: Option<f64>) -> ApiResult<()> {
    if let Some(b) = b {
        if !(b.is_finite() && (0.0..=1e12).contains(&b)) {
            return Err(ApiError::validation(
                "gpu_budget_seconds",
                format!("must be null (unlimited) or a number in 0..=1e12; got {b}"),
            ));
        }
    }
    Ok(())
}

fn check_estimate(e: f64) -> ApiResult<()> {
    if !(e.is_finite() && e > 0.0 && e <= 1e6) {
        return Err(ApiError::validation(
            "default_gpu_estimate_seconds",
            format!("must be a number in (0, 1e6]; got {e}"),
        ));
    }
    Ok(())
}

pub async fn view(state: &AppState, p: retake_store::Project) -> ApiResult<ProjectView> {
    let stats = state.store.project_stats(p.id).await?;
    Ok(ProjectView {
        gpu_remaining_seconds: p.remaining_gpu_seconds(),
        stats,
        project: p,
    })
}

#[utoipa::path(post, path = "/api/projects", tag = "projects", request_body = CreateProject,
    responses((status = 201, body = ProjectView), (status = 422, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(b): Json<CreateProject>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Admin)?;
    check_name(&b.name)?;
    check_budget(b.gpu_budget_seconds)?;
    check_estimate(b.default_gpu_estimate_seconds)?;
    let p = state
        .store
        .create_project(NewProject {
            name: b.name.trim().to_owned(),
            gpu_budget_seconds: b.gpu_budget_seconds,
            default_gpu_estimate_seconds: b.default_gpu_estimate_seconds,
            default_retry_policy: b.default_retry_policy.unwrap_or_default(),
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(view(&state, p).await?)))
}

#[utoipa::path(get, path = "/api/projects", tag = "projects", responses((status = 200, body = [ProjectView])), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _c: Caller,
) -> ApiResult<axum::Json<Vec<ProjectView>>> {
    let mut out = vec![];
    for p in state.store.list_projects().await? {
        out.push(view(&state, p).await?);
    }
    Ok(axum::Json(out))
}

#[utoipa::path(get, path = "/api/projects/{id}", tag = "projects", params(("id" = i64, Path)),
    responses((status = 200, body = ProjectView), (status = 404, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    _c: Caller,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<ProjectView>> {
    let p = state.store.get_project(id).await?;
    Ok(axum::Json(view(&state, p).await?))
}

#[utoipa::path(patch, path = "/api/projects/{id}", tag = "projects", params(("id" = i64, Path)), request_body = UpdateProject,
    responses((status = 200, body = ProjectView), (status = 409, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(b): Json<UpdateProject>,
) -> ApiResult<axum::Json<ProjectView>> {
    caller.require(Role::Admin)?;
    if let Some(n) = &b.name {
        check_name(n)?;
    }
    if let Some(bud) = b.gpu_budget_seconds {
        check_budget(bud)?;
    }
    if let Some(e) = b.default_gpu_estimate_seconds {
        check_estimate(e)?;
    }
    let p = state
        .store
        .update_project(
            id,
            ProjectPatch {
                name: b.name.map(|n| n.trim().to_owned()),
                gpu_budget_seconds: b.gpu_budget_seconds,
                default_gpu_estimate_seconds: b.default_gpu_estimate_seconds,
                default_retry_policy: None,
            },
            if_match(&headers)?,
        )
        .await?;
    Ok(axum::Json(view(&state, p).await?))
}

#[utoipa::path(delete, path = "/api/projects/{id}", tag = "projects", params(("id" = i64, Path)), responses((status = 204)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    state.store.delete_project(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/projects/{id}/retry-policy", tag = "policy", params(("id" = i64, Path)),
    responses((status = 200, body = ProjectPolicyView)), security(("bearer" = [])))]
pub async fn get_policy(
    State(state): State<AppState>,
    _c: Caller,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<ProjectPolicyView>> {
    let p = state.store.get_project(id).await?;
    Ok(axum::Json(ProjectPolicyView {
        project_id: p.id,
        policy: p.default_retry_policy,
        updated_at: p.updated_at,
    }))
}

/// Replace the project's default policy. Send the `updated_at` from GET as `If-Match`; a stale
/// value is a 409.
#[utoipa::path(put, path = "/api/projects/{id}/retry-policy", tag = "policy", params(("id" = i64, Path)), request_body = RetryPolicy,
    responses((status = 200, body = ProjectPolicyView), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(policy): Json<RetryPolicy>,
) -> ApiResult<axum::Json<ProjectPolicyView>> {
    caller.require(Role::Admin)?;
    // Scene types that inherit must still resolve to a valid policy.
    for st in state.store.list_scene_types(Some(id)).await? {
        retake_core::EffectivePolicy::resolve(&policy, &st.retry_policy)?;
    }
    let p = state
        .store
        .update_project(
            id,
            ProjectPatch {
                default_retry_policy: Some(policy),
                ..Default::default()
            },
            if_match(&headers)?,
        )
        .await?;
    Ok(axum::Json(ProjectPolicyView {
        project_id: p.id,
        policy: p.default_retry_policy,
        updated_at: p.updated_at,
    }))
}
