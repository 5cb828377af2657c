//! Scene types (workflow, bindings, QA checks) and their retry policy overrides.

use super::effective;
use crate::auth::Caller;
use crate::dto::*;
use crate::error::{ApiError, ApiResult};
use crate::extract::{require_if_match, Path, Query};
use crate::json::Json;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use retake_core::{CheckConfig, CommandCheck, Parameters, PolicyOverrides};
use retake_store::{FailurePattern, NewSceneType, Role, SceneType, SceneTypePatch};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

const BACKENDS: [&str; 2] = ["simulated", "comfyui"];

fn check_checks(checks: &[CheckConfig], commands: &[CommandCheck]) -> ApiResult<()> {
    let mut seen = BTreeSet::new();
    for (i, c) in checks.iter().enumerate() {
        c.validate(i).map_err(|(f, m)| ApiError::validation(f, m))?;
        if !seen.insert(c.check.clone()) {
            return Err(ApiError::validation(
                format!("qa_checks[{i}].check"),
                format!("`{}` is listed twice", c.check),
            ));
        }
    }
    for (i, c) in commands.iter().enumerate() {
        c.validate(i).map_err(|(f, m)| ApiError::validation(f, m))?;
    }
    if checks.len() > retake_core::limits::MAX_QA_CHECKS
        || commands.len() > retake_core::limits::MAX_QA_COMMANDS
    {
        return Err(ApiError::validation(
            "qa_checks",
            format!(
                "at most {} checks and {} command checks",
                retake_core::limits::MAX_QA_CHECKS,
                retake_core::limits::MAX_QA_COMMANDS
            ),
        ));
    }
    Ok(())
}

fn check_bindings(b: &BTreeMap<String, String>) -> ApiResult<()> {
    for (param, target) in b {
        let ok = target
            .split_once('.')
            .is_some_and(|(n, i)| !n.is_empty() && !i.is_empty());
        if !ok {
            return Err(ApiError::validation(
                format!("parameter_bindings.{param}"),
                format!("must be \"<node id>.<input>\", e.g. \"3.cfg\"; got \"{target}\""),
            ));
        }
    }
    Ok(())
}

fn check_common(
    name: Option<&str>,
    backend: Option<&str>,
    params: Option<&Parameters>,
) -> ApiResult<()> {
    if let Some(n) = name {
        if n.trim().is_empty() || n.chars().count() > retake_core::limits::NAME_LEN {
            return Err(ApiError::validation(
                "name",
                format!("must have 1..={} characters", retake_core::limits::NAME_LEN),
            ));
        }
    }
    if let Some(b) = backend {
        if !BACKENDS.contains(&b) {
            return Err(ApiError::validation(
                "backend",
                format!("must be one of: {}; got `{b}`", BACKENDS.join(", ")),
            ));
        }
    }
    if let Some(p) = params {
        p.validate()
            .map_err(|(f, m)| ApiError::validation(format!("default_{f}"), m))?;
    }
    Ok(())
}

/// For ComfyUI scene types, validate the workflow against a server and learn node ranges.
async fn comfy_domains(
    state: &AppState,
    backend: &str,
    template: &serde_json::Value,
    bindings: &BTreeMap<String, String>,
) -> ApiResult<Option<BTreeMap<String, retake_store::DomainRecord>>> {
    if backend != "comfyui" {
        return Ok(None);
    }
    if !template.is_object() || template.as_object().is_some_and(|o| o.is_empty()) {
        return Err(ApiError::validation(
            "workflow_template",
            "a comfyui scene type needs an API-format workflow (node id → {class_type, inputs})",
        ));
    }
    let Some(v) = &state.workflow_validator else {
        return Ok(None);
    };
    match v.validate(template, bindings).await {
        Ok(d) => Ok(Some(d)),
        Err(r) => Err(ApiError::validation(r.field, r.problems.join("; "))),
    }
}

async fn view(state: &AppState, st: SceneType) -> ApiResult<SceneTypeView> {
    let (_, eff, _) = effective(state, &st).await?;
    Ok(SceneTypeView {
        effective_policy: eff.policy,
        scene_type: st,
    })
}

#[utoipa::path(post, path = "/api/scene-types", tag = "scene types", request_body = CreateSceneType,
    responses((status = 201, body = SceneTypeView), (status = 422, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "the project already has a scene type of this name")), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(b): Json<CreateSceneType>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Admin)?;
    check_common(Some(&b.name), Some(&b.backend), Some(&b.default_parameters))?;
    check_checks(&b.qa_checks, &b.qa_commands)?;
    check_bindings(&b.parameter_bindings)?;
    let known: BTreeSet<String> = b.qa_checks.iter().map(|c| c.check.clone()).collect();
    b.retry_policy.check_triggers_known(&known)?;
    let project = state.store.get_project(b.project_id).await.map_err(|_| {
        ApiError::validation(
            "project_id",
            format!("project {} does not exist", b.project_id),
        )
    })?;
    retake_core::EffectivePolicy::resolve(&project.default_retry_policy, &b.retry_policy)?;
    let domains = comfy_domains(
        &state,
        &b.backend,
        &b.workflow_template,
        &b.parameter_bindings,
    )
    .await?
    .unwrap_or_default();
    let st = state
        .store
        .create_scene_type(NewSceneType {
            project_id: b.project_id,
            name: b.name.trim().to_owned(),
            backend: b.backend,
            backend_config: b.backend_config,
            workflow_template: b.workflow_template,
            parameter_bindings: b.parameter_bindings,
            default_parameters: b.default_parameters,
            qa_checks: b.qa_checks,
            qa_commands: b.qa_commands,
            retry_policy: b.retry_policy,
            parameter_domains: domains,
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(view(&state, st).await?)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub project_id: Option<i64>,
}

#[utoipa::path(get, path = "/api/scene-types", tag = "scene types", params(ListQuery), responses((status = 200, body = [SceneTypeView])), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _c: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Vec<SceneTypeView>>> {
    let mut out = vec![];
    for st in state.store.list_scene_types(q.project_id).await? {
        out.push(view(&state, st).await?);
    }
    Ok(axum::Json(out))
}

#[utoipa::path(get, path = "/api/scene-types/{id}", tag = "scene types", params(("id" = i64, Path)),
    responses((status = 200, body = SceneTypeView), (status = 404, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    _c: Caller,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<SceneTypeView>> {
    let st = state.store.get_scene_type(id).await?;
    Ok(axum::Json(view(&state, st).await?))
}

/// Change a scene type's fields (those present). Send `If-Match: <updated_at>` from GET:
/// missing is a 428, stale a 412.
#[utoipa::path(patch, path = "/api/scene-types/{id}", tag = "scene types", params(("id" = i64, Path), IfMatchHeader), request_body = UpdateSceneType,
    responses((status = 200, body = SceneTypeView), (status = 409, description = "the name is taken", body = crate::error::ErrorBody),
        (status = 412, description = "If-Match is stale", body = crate::error::ErrorBody), (status = 428, description = "If-Match is missing", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(b): Json<UpdateSceneType>,
) -> ApiResult<axum::Json<SceneTypeView>> {
    caller.require(Role::Admin)?;
    let expected = require_if_match(&headers)?;
    let cur = state.store.get_scene_type(id).await?;
    check_common(
        b.name.as_deref(),
        b.backend.as_deref(),
        b.default_parameters.as_ref(),
    )?;
    let checks = b.qa_checks.clone().unwrap_or_else(|| cur.qa_checks.clone());
    let commands = b
        .qa_commands
        .clone()
        .unwrap_or_else(|| cur.qa_commands.clone());
    check_checks(&checks, &commands)?;
    let bindings = b
        .parameter_bindings
        .clone()
        .unwrap_or_else(|| cur.parameter_bindings.clone());
    check_bindings(&bindings)?;
    let known: BTreeSet<String> = checks.iter().map(|c| c.check.clone()).collect();
    cur.retry_policy.check_triggers_known(&known).map_err(|e| {
        ApiError::validation(
            "qa_checks",
            format!(
                "the retry policy triggers on a check this change removes: {}",
                e.message
            ),
        )
    })?;
    let backend = b.backend.clone().unwrap_or_else(|| cur.backend.clone());
    let template = b
        .workflow_template
        .clone()
        .unwrap_or_else(|| cur.workflow_template.clone());
    let domains =
        if b.backend.is_some() || b.workflow_template.is_some() || b.parameter_bindings.is_some() {
            comfy_domains(&state, &backend, &template, &bindings).await?
        } else {
            None
        };
    let st = state
        .store
        .update_scene_type(
            id,
            SceneTypePatch {
                name: b.name.map(|n| n.trim().to_owned()),
                backend: b.backend,
                backend_config: b.backend_config,
                workflow_template: b.workflow_template,
                parameter_bindings: b.parameter_bindings,
                default_parameters: b.default_parameters,
                qa_checks: b.qa_checks,
                qa_commands: b.qa_commands,
                retry_policy: None,
                parameter_domains: domains,
            },
            Some(expected),
        )
        .await?;
    Ok(axum::Json(view(&state, st).await?))
}

/// Delete a scene type with its segments and attempts. While it has work in flight this is a
/// 409 giving the counts, unless `?force=true`: then its work is cancelled and it is deleted.
#[utoipa::path(delete, path = "/api/scene-types/{id}", tag = "scene types", params(("id" = i64, Path), ForceQuery),
    responses((status = 204, description = "deleted"), (status = 409, description = "work in flight; the message gives the counts", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<ForceQuery>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    let cancelled = state.store.delete_scene_type(id, q.force).await?;
    if !cancelled.is_empty() {
        tracing::info!(
            scene_type = id,
            attempts = cancelled.len(),
            "scene type deleted with work in flight; stopping its generations"
        );
        state
            .backends
            .cancel_all(state.store.as_ref(), &cancelled)
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/scene-types/{id}/retry-policy", tag = "policy", params(("id" = i64, Path)),
    responses((status = 200, body = SceneTypePolicyView), (status = 404, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn get_policy(
    State(state): State<AppState>,
    _c: Caller,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<SceneTypePolicyView>> {
    let st = state.store.get_scene_type(id).await?;
    let (project, eff, est) = effective(&state, &st).await?;
    Ok(axum::Json(scene_policy_view(&st, &project, eff, est)))
}

/// Replace all of the scene type's overrides with this document: each field set here overrides
/// the project default; a missing or `null` field inherits it. To change some fields and keep
/// the others, use PATCH. Send `If-Match: <updated_at>`: missing is a 428, stale a 412.
#[utoipa::path(put, path = "/api/scene-types/{id}/retry-policy", tag = "policy", params(("id" = i64, Path), IfMatchHeader), request_body = PolicyOverrides,
    responses((status = 200, body = SceneTypePolicyView), (status = 412, description = "If-Match is stale", body = crate::error::ErrorBody),
        (status = 428, description = "If-Match is missing", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(o): Json<PolicyOverrides>,
) -> ApiResult<axum::Json<SceneTypePolicyView>> {
    caller.require(Role::Admin)?;
    let expected = require_if_match(&headers)?;
    let st = state.store.get_scene_type(id).await?;
    save_policy(&state, st, o, expected).await
}

/// Change only the overrides in the body: a value overrides the project default, `null` returns
/// that field to inheriting it, and fields not in the body keep their current override.
/// `If-Match` as for PUT.
#[utoipa::path(patch, path = "/api/scene-types/{id}/retry-policy", tag = "policy", params(("id" = i64, Path), IfMatchHeader), request_body = PolicyOverrides,
    responses((status = 200, body = SceneTypePolicyView), (status = 412, description = "If-Match is stale", body = crate::error::ErrorBody),
        (status = 428, description = "If-Match is missing", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(patch): Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<axum::Json<SceneTypePolicyView>> {
    caller.require(Role::Admin)?;
    let expected = require_if_match(&headers)?;
    let st = state.store.get_scene_type(id).await?;
    let o: PolicyOverrides = super::projects::merge_patch(&st.retry_policy, patch)?;
    save_policy(&state, st, o, expected).await
}

async fn save_policy(
    state: &AppState,
    st: SceneType,
    o: PolicyOverrides,
    expected: chrono::DateTime<chrono::Utc>,
) -> ApiResult<axum::Json<SceneTypePolicyView>> {
    let id = st.id;
    o.check_triggers_known(&st.check_names())?;
    let project = state.store.get_project(st.project_id).await?;
    retake_core::EffectivePolicy::resolve(&project.default_retry_policy, &o)?;
    let st = state
        .store
        .update_scene_type(
            id,
            SceneTypePatch {
                retry_policy: Some(o),
                ..Default::default()
            },
            Some(expected),
        )
        .await?;
    let (project, eff, est) = effective(state, &st).await?;
    Ok(axum::Json(scene_policy_view(&st, &project, eff, est)))
}

#[utoipa::path(get, path = "/api/scene-types/{id}/failure-patterns", tag = "scene types", params(("id" = i64, Path)),
    responses((status = 200, body = [FailurePattern])), security(("bearer" = [])))]
pub async fn failure_patterns(
    State(state): State<AppState>,
    _c: Caller,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<Vec<FailurePattern>>> {
    state.store.get_scene_type(id).await?;
    Ok(axum::Json(state.store.failure_patterns(Some(id)).await?))
}

/// The scene type × check failure-pattern table for every scene type.
#[utoipa::path(get, path = "/api/failure-patterns", tag = "scene types", responses((status = 200, body = [FailurePattern])), security(("bearer" = [])))]
pub async fn all_failure_patterns(
    State(state): State<AppState>,
    _c: Caller,
) -> ApiResult<axum::Json<Vec<FailurePattern>>> {
    Ok(axum::Json(state.store.failure_patterns(None).await?))
}
