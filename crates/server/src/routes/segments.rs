//! Segments: submission, listing, detail, retry history, selection, cancellation and media.

use super::{effective, segment_view, segment_view_of};
use crate::auth::Caller;
use crate::dto::*;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::json::Json;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use retake_core::{summary_sentence_with, EffectivePolicy, RoundCount, SegmentStatus};
use retake_store::{NewSegment, Role, SceneType, Segment, SegmentFilter};
use serde::Deserialize;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

pub const MAX_BATCH: usize = retake_core::limits::SUBMIT_BATCH_MAX;

/// [`SubmitSegments::Batch`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    segments: Vec<NewSegmentBody>,
}

#[utoipa::path(post, path = "/api/segments", tag = "segments", request_body = SubmitSegments,
    responses((status = 201, body = SubmittedSegments), (status = 422, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    Json(b): Json<serde_json::Value>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Creator)?;
    // `SubmitSegments` is untagged, and an untagged enum that fails says only "no variant
    // matched": choose the variant by its `segments` key so that errors name the field.
    let (list, batch) = if b.get("segments").is_some() {
        (
            crate::json::parse::<Batch>(b.to_string().as_bytes())?.segments,
            true,
        )
    } else {
        (
            vec![crate::json::parse::<NewSegmentBody>(
                b.to_string().as_bytes(),
            )?],
            false,
        )
    };
    if list.is_empty() || list.len() > MAX_BATCH {
        return Err(ApiError::validation(
            "segments",
            format!("a batch holds 1..={MAX_BATCH} segments; got {}", list.len()),
        ));
    }
    let mut scenes = HashMap::new();
    let mut new = Vec::with_capacity(list.len());
    for (i, s) in list.into_iter().enumerate() {
        let field = |f: &str| {
            if batch {
                format!("segments[{i}].{f}")
            } else {
                f.to_owned()
            }
        };
        if let Entry::Vacant(e) = scenes.entry(s.scene_type_id) {
            let st = state
                .store
                .get_scene_type(s.scene_type_id)
                .await
                .map_err(|_| {
                    ApiError::validation(
                        field("scene_type_id"),
                        format!("scene type {} does not exist", s.scene_type_id),
                    )
                })?;
            e.insert(st);
        }
        let scene = &scenes[&s.scene_type_id];
        s.parameters
            .validate_for_scene(&scene.default_parameters, &scene.domains())
            .map_err(|(f, m)| ApiError::validation(field(&f), m))?;
        if let Some(l) = &s.label {
            if l.chars().count() > retake_core::limits::NAME_LEN {
                return Err(ApiError::validation(
                    field("label"),
                    format!(
                        "must have at most {} characters",
                        retake_core::limits::NAME_LEN
                    ),
                ));
            }
        }
        let max = retake_core::params::MAX_SEED;
        if s.rng_seed.is_some_and(|r| r > max) {
            return Err(ApiError::validation(
                field("rng_seed"),
                format!("must be an integer in 0..={max} (2^53 − 1, exact in JSON)"),
            ));
        }
        let rng_seed = s
            .rng_seed
            .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0 & max);
        new.push(NewSegment {
            scene_type_id: s.scene_type_id,
            label: s.label,
            parameters: s.parameters,
            rng_seed,
        });
    }
    let created = state.store.submit_segments(new).await?;
    let mut out = Vec::with_capacity(created.len());
    for s in created {
        let scene = scenes.get(&s.scene_type_id);
        out.push(segment_view(&state, s, scene).await?);
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(SubmittedSegments { segments: out }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub project_id: Option<i64>,
    pub scene_type_id: Option<i64>,
    /// `queued`, `generating`, `retrying`, `passed`, `needs_review`, `approved`, `rejected`, `cancelled`.
    pub status: Option<String>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<i64>,
    /// 1..=200 (default 50).
    pub limit: Option<u32>,
    /// Only segments escalated for this reason: `all_attempts_failed`, `non_retriable_check`,
    /// `budget_exhausted`, `retry_disabled`, `systematic_failure`, `qa_error`, `infra_error`,
    /// `workflow_error`.
    pub review_reason: Option<String>,
    /// Only segments whose label contains this text (ASCII case ignored), 1..=200 characters.
    pub label: Option<String>,
}

pub fn parse_status(s: Option<&str>) -> ApiResult<Option<SegmentStatus>> {
    s.map(|v| {
        v.parse::<SegmentStatus>()
            .map_err(|e| ApiError::validation("status", e))
    })
    .transpose()
}

pub fn check_limit(l: Option<u32>) -> ApiResult<u32> {
    let (lo, hi) = retake_core::limits::PAGE_LIMIT;
    match l {
        None => Ok(50),
        Some(v) if (lo..=hi).contains(&v) => Ok(v),
        Some(v) => Err(ApiError::validation(
            "limit",
            format!("must be in {lo}..={hi}; got {v}"),
        )),
    }
}

#[utoipa::path(get, path = "/api/segments", tag = "segments", params(ListQuery), responses((status = 200, body = SegmentPage)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _c: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<SegmentPage>> {
    let limit = check_limit(q.limit)?;
    let filter = SegmentFilter {
        project_id: q.project_id,
        scene_type_id: q.scene_type_id,
        status: parse_status(q.status.as_deref())?,
        before_id: q.cursor,
        limit,
        review_reason: super::bulk::parse_reason(q.review_reason.as_deref())?,
        label_contains: super::bulk::parse_label(q.label)?,
    };
    let segs = state.store.list_segments(&filter).await?;
    let next_cursor = if segs.len() as u32 == limit {
        segs.last().map(|s| s.id)
    } else {
        None
    };
    // One read for the page's attempts, one per distinct scene type: never one per segment.
    let ids: Vec<i64> = segs.iter().map(|s| s.id).collect();
    let mut attempts: HashMap<i64, Vec<retake_store::Attempt>> = HashMap::new();
    for a in state.store.list_attempts_of(&ids).await? {
        attempts.entry(a.segment_id).or_default().push(a);
    }
    let mut scenes = HashMap::new();
    let mut items = Vec::with_capacity(segs.len());
    for s in segs {
        if let Entry::Vacant(e) = scenes.entry(s.scene_type_id) {
            e.insert(state.store.get_scene_type(s.scene_type_id).await?);
        }
        let scene = &scenes[&s.scene_type_id];
        let own = attempts.remove(&s.id).unwrap_or_default();
        items.push(segment_view_of(s, scene, &own));
    }
    Ok(axum::Json(SegmentPage { items, next_cursor }))
}

#[utoipa::path(get, path = "/api/segments/{id}", tag = "segments", params(("id" = i64, Path)),
    responses((status = 200, body = SegmentView), (status = 404, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    _c: Caller,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<SegmentView>> {
    let s = state.store.get_segment(id).await?;
    Ok(axum::Json(segment_view(&state, s, None).await?))
}

pub async fn history(state: &AppState, id: i64) -> ApiResult<RetryHistory> {
    // The attempts do not depend on the segment's row: read them while the segment, its scene
    // type and its effective policy are read (one round trip less on a remote database).
    let head = async {
        let s = state.store.get_segment(id).await?;
        let st = state.store.get_scene_type(s.scene_type_id).await?;
        let (_, eff, _) = effective(state, &st).await?;
        Ok::<_, ApiError>((s, st, eff))
    };
    let attempts = async { Ok::<_, ApiError>(state.store.list_attempts(id).await?) };
    let ((s, st, eff), attempts) = futures::try_join!(head, attempts)?;
    Ok(history_of(&s, &st, &eff, &attempts))
}

/// A segment's retry history from what is already read: the segment, its scene type, the
/// policy in effect for it and its attempts in order.
pub fn history_of(
    s: &Segment,
    st: &SceneType,
    eff: &EffectivePolicy,
    attempts: &[retake_store::Attempt],
) -> RetryHistory {
    let views: Vec<_> = attempts.iter().map(|a| a.view()).collect();
    let names: Vec<String> = st.qa_checks.iter().map(|c| c.check.clone()).collect();
    let rounds = RoundCount::of(&views);
    let actions = retake_store::human_actions(attempts);
    RetryHistory {
        segment_id: s.id,
        project_id: s.project_id,
        scene_type_id: s.scene_type_id,
        scene_type_name: st.name.clone(),
        label: s.label.clone(),
        status: s.status,
        review_reason: s.review_reason,
        decision_note: s.decision_note.clone(),
        review_evidence: s.review_evidence.clone(),
        retry_count: s.retry_count(),
        round: rounds.round,
        round_retry_count: rounds.retries,
        round_summary: rounds.describe(eff.policy.max_attempts as u32),
        human_actions: actions.iter().cloned().map(HumanActionView::from).collect(),
        max_attempts: eff.policy.max_attempts,
        trigger_checks: eff.policy.trigger_checks.iter().cloned().collect(),
        selected_attempt_number: s.selected_attempt_number,
        total_gpu_seconds: (attempts.iter().map(|a| a.gpu_seconds).sum::<f64>() * 1000.0).round()
            / 1000.0,
        summary: summary_sentence_with(s.id, &views, &actions, &names),
        rng_seed: s.rng_seed,
        waiting_for_server_since: attempts
            .iter()
            .filter(|a| {
                matches!(
                    a.overall_status,
                    retake_core::AttemptStatus::Queued | retake_core::AttemptStatus::Generating
                )
            })
            .filter_map(|a| a.waiting_since)
            .min(),
        attempts: attempts
            .iter()
            .map(|a| attempt_view(a, &eff.policy.trigger_checks))
            .collect(),
    }
}

#[utoipa::path(get, path = "/api/segments/{id}/retry-history", tag = "segments", params(("id" = i64, Path)),
    responses((status = 200, body = RetryHistory), (status = 404, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn retry_history(
    State(state): State<AppState>,
    _c: Caller,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<RetryHistory>> {
    Ok(axum::Json(history(&state, id).await?))
}

/// Select a passing attempt as the segment's output, recording who did it.
#[utoipa::path(post, path = "/api/segments/{id}/attempts/{n}/select", tag = "segments", params(("id" = i64, Path), ("n" = u32, Path)),
    responses((status = 409, body = crate::error::ErrorBody, description = "the segment is not in a state that allows this"), (status = 200, body = SegmentView), (status = 422, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn select(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, n)): Path<(i64, u32)>,
) -> ApiResult<axum::Json<SegmentView>> {
    caller.require(Role::Creator)?;
    let s = state
        .store
        .select_attempt(id, n, &caller.actor(), false)
        .await?;
    Ok(axum::Json(segment_view(&state, s, None).await?))
}

/// Cancel a segment that is still queued or retrying; its running generations are stopped.
#[utoipa::path(post, path = "/api/segments/{id}/cancel", tag = "segments", params(("id" = i64, Path)),
    responses((status = 409, body = crate::error::ErrorBody, description = "the segment is not in a state that allows this"), (status = 200, body = SegmentView), (status = 422, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<SegmentView>> {
    caller.require(Role::Creator)?;
    let (s, cancelled) = state.store.cancel_segment(id, &caller.actor()).await?;
    state
        .backends
        .cancel_all(state.store.as_ref(), &cancelled)
        .await;
    Ok(axum::Json(segment_view(&state, s, None).await?))
}

/// The attempt's video, streamed from the media store (local directory or S3-compatible), with
/// HTTP Range support. Only objects inside the media store are served, never another file of
/// the data directory.
#[utoipa::path(get, path = "/api/segments/{id}/attempts/{n}/media", tag = "segments", params(("id" = i64, Path), ("n" = u32, Path)),
    responses((status = 200, description = "the video", content_type = "video/mp4"), (status = 206, description = "a byte range"), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn media(
    State(state): State<AppState>,
    _c: Caller,
    Path((id, n)): Path<(i64, u32)>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let attempts = state.store.list_attempts(id).await?;
    let a = attempts
        .iter()
        .find(|a| a.attempt_number == n)
        .ok_or_else(|| ApiError::not_found(format!("segment {id} has no attempt {n}")))?;
    let Some(reference) = &a.output_video_path else {
        return Err(ApiError::not_found(format!(
            "attempt {n} of segment {id} has no video"
        )));
    };
    crate::media::serve(&state.media, reference, &headers).await
}
