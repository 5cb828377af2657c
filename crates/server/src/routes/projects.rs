//! Projects (with their GPU budget) and the project's default retry policy.

use crate::auth::Caller;
use crate::dto::*;
use crate::error::{ApiError, ApiResult};
use crate::extract::{require_if_match, Path, Query};
use crate::json::Json;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use retake_core::{limits, PolicyOverrides, RetryPolicy};
use retake_store::{NewProject, ProjectPatch, Role};

fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.chars().count() > limits::NAME_LEN {
        return Err(ApiError::validation(
            "name",
            format!("must have 1..={} characters", limits::NAME_LEN),
        ));
    }
    Ok(())
}

fn check_budget(b: Option<f64>) -> ApiResult<()> {
    if let Some(b) = b {
        if !(b.is_finite() && (0.0..=limits::GPU_BUDGET_MAX).contains(&b)) {
            return Err(ApiError::validation(
                "gpu_budget_seconds",
                format!("must be null (unlimited) or a number in 0..=1e12; got {b}"),
            ));
        }
    }
    Ok(())
}

fn check_estimate(e: f64) -> ApiResult<()> {
    if !(e.is_finite() && e > 0.0 && e <= limits::GPU_ESTIMATE_MAX) {
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

/// Change a project's name, budget or estimate. Send `If-Match: <updated_at>` from GET. A budget
/// below what is already spent and reserved is refused (409, with both figures) unless the body
/// says `"allow_below_spent": true` (or the query `?force=true`).
#[utoipa::path(patch, path = "/api/projects/{id}", tag = "projects", params(("id" = i64, Path), ForceQuery, IfMatchHeader), request_body = UpdateProject,
    responses((status = 200, body = ProjectView), (status = 409, description = "the budget is below spent + reserved, or the name is taken", body = crate::error::ErrorBody),
        (status = 412, description = "If-Match is stale", body = crate::error::ErrorBody), (status = 428, description = "If-Match is missing", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(force): Query<ForceQuery>,
    headers: HeaderMap,
    Json(b): Json<UpdateProject>,
) -> ApiResult<axum::Json<ProjectView>> {
    caller.require(Role::Admin)?;
    let expected = require_if_match(&headers)?;
    if let Some(n) = &b.name {
        check_name(n)?;
    }
    if let Some(bud) = b.gpu_budget_seconds {
        check_budget(bud)?;
    }
    if let Some(e) = b.default_gpu_estimate_seconds {
        check_estimate(e)?;
    }
    if let Some(Some(budget)) = b.gpu_budget_seconds {
        let cur = state.store.get_project(id).await?;
        let committed = cur.gpu_spent_seconds + cur.gpu_reserved_seconds;
        if budget < committed && !(b.allow_below_spent || force.force) {
            return Err(ApiError::BudgetBelowCommitted {
                requested: budget,
                spent: cur.gpu_spent_seconds,
                reserved: cur.gpu_reserved_seconds,
            });
        }
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
            Some(expected),
        )
        .await?;
    Ok(axum::Json(view(&state, p).await?))
}

/// Delete a project with its scene types, segments and attempts. While it has work in flight
/// this is a 409 giving the counts, unless `?force=true`: then its work is cancelled (running
/// generations are stopped) and it is deleted.
#[utoipa::path(delete, path = "/api/projects/{id}", tag = "projects", params(("id" = i64, Path), ForceQuery),
    responses((status = 204, description = "deleted"), (status = 409, description = "work in flight; the message gives the counts", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<ForceQuery>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    let cancelled = state.store.delete_project(id, q.force).await?;
    if !cancelled.is_empty() {
        tracing::info!(
            project = id,
            attempts = cancelled.len(),
            "project deleted with work in flight; stopping its generations"
        );
        state
            .backends
            .cancel_all(state.store.as_ref(), &cancelled)
            .await;
    }
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

/// Replace the project's default policy with this whole document (absent fields take their
/// defaults). To change some fields only, use PATCH. Send the `updated_at` from GET as
/// `If-Match`: missing is a 428, stale a 412.
#[utoipa::path(put, path = "/api/projects/{id}/retry-policy", tag = "policy", params(("id" = i64, Path), IfMatchHeader), request_body = RetryPolicy,
    responses((status = 200, body = ProjectPolicyView), (status = 412, description = "If-Match is stale", body = crate::error::ErrorBody),
        (status = 428, description = "If-Match is missing", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(policy): Json<RetryPolicy>,
) -> ApiResult<axum::Json<ProjectPolicyView>> {
    caller.require(Role::Admin)?;
    let expected = require_if_match(&headers)?;
    save_policy(&state, id, policy, expected).await
}

/// Change only the fields in the body; the rest of the project's default policy stays as it is.
/// `If-Match` as for PUT.
#[utoipa::path(patch, path = "/api/projects/{id}/retry-policy", tag = "policy", params(("id" = i64, Path), IfMatchHeader), request_body = PolicyOverrides,
    responses((status = 200, body = ProjectPolicyView), (status = 412, description = "If-Match is stale", body = crate::error::ErrorBody),
        (status = 428, description = "If-Match is missing", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(patch): Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<axum::Json<ProjectPolicyView>> {
    caller.require(Role::Admin)?;
    let expected = require_if_match(&headers)?;
    let cur = state.store.get_project(id).await?;
    let policy: RetryPolicy = merge_patch(&cur.default_retry_policy, patch)?;
    save_policy(&state, id, policy, expected).await
}

/// The document with each field of `patch` laid over it, parsed again (so it is validated).
pub fn merge_patch<T: serde::Serialize + serde::de::DeserializeOwned>(
    cur: &T,
    patch: serde_json::Map<String, serde_json::Value>,
) -> ApiResult<T> {
    let mut doc = match serde_json::to_value(cur) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "a policy is a JSON object"
            )))
        }
    };
    for (k, v) in patch {
        doc.insert(k, v);
    }
    let bytes = serde_json::to_vec(&doc).map_err(|e| ApiError::Internal(e.into()))?;
    crate::json::parse(&bytes)
}

async fn save_policy(
    state: &AppState,
    id: i64,
    policy: RetryPolicy,
    expected: chrono::DateTime<chrono::Utc>,
) -> ApiResult<axum::Json<ProjectPolicyView>> {
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
            Some(expected),
        )
        .await?;
    Ok(axum::Json(ProjectPolicyView {
        project_id: p.id,
        policy: p.default_retry_policy,
        updated_at: p.updated_at,
    }))
}
