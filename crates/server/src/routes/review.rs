//! The review queue and its actions, and the external QA endpoint.

use super::segments::{check_limit, history_of};
use super::{effective, segment_view, segment_view_of};
use crate::auth::Caller;
use crate::dto::*;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::json::Json;
use crate::state::AppState;
use axum::extract::State;
use retake_core::{EffectivePolicy, QaVerdict, SegmentStatus};
use retake_store::{Attempt, Project, RerunOverrides, Role, SceneType, SegmentFilter};
use serde::Deserialize;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    pub project_id: Option<i64>,
    pub scene_type_id: Option<i64>,
    pub cursor: Option<i64>,
    pub limit: Option<u32>,
    /// Only segments escalated for this reason (see `GET /api/segments`).
    pub review_reason: Option<String>,
}

/// Escalated segments with their reason and every attempt.
#[utoipa::path(get, path = "/api/review", tag = "review", params(ReviewQuery), responses((status = 200, body = ReviewQueue)), security(("bearer" = [])))]
pub async fn queue(
    State(state): State<AppState>,
    _c: Caller,
    Query(q): Query<ReviewQuery>,
) -> ApiResult<axum::Json<ReviewQueue>> {
    let limit = check_limit(q.limit)?;
    let segs = state
        .store
        .list_segments(&SegmentFilter {
            project_id: q.project_id,
            scene_type_id: q.scene_type_id,
            status: Some(SegmentStatus::NeedsReview),
            before_id: q.cursor,
            limit,
            review_reason: super::bulk::parse_reason(q.review_reason.as_deref())?,
            label_contains: None,
        })
        .await?;
    let next_cursor = if segs.len() as u32 == limit {
        segs.last().map(|s| s.id)
    } else {
        None
    };
    // One read for the page's attempts and one set per distinct scene type (the scene type,
    // its project, its GPU estimate): never one per segment.
    let ids: Vec<i64> = segs.iter().map(|s| s.id).collect();
    let mut attempts: HashMap<i64, Vec<Attempt>> = HashMap::new();
    for a in state.store.list_attempts_of(&ids).await? {
        attempts.entry(a.segment_id).or_default().push(a);
    }
    let mut scenes: HashMap<i64, (SceneType, Project, EffectivePolicy, f64)> = HashMap::new();
    let mut items = Vec::with_capacity(segs.len());
    for s in segs {
        if let Entry::Vacant(e) = scenes.entry(s.scene_type_id) {
            let st = state.store.get_scene_type(s.scene_type_id).await?;
            let (project, eff, est) = effective(&state, &st).await?;
            e.insert((st, project, eff, est));
        }
        let (st, project, eff, est) = &scenes[&s.scene_type_id];
        let own = attempts.remove(&s.id).unwrap_or_default();
        items.push(ReviewItem {
            history: history_of(&s, st, eff, &own),
            segment: segment_view_of(s, st, &own),
            rerun_estimate_gpu_seconds: *est,
            project_remaining_gpu_seconds: project.remaining_gpu_seconds(),
        });
    }
    Ok(axum::Json(ReviewQueue { items, next_cursor }))
}

/// Accept an attempt — even a failing one — as a human override. The segment becomes `approved`.
#[utoipa::path(post, path = "/api/review/{segment_id}/accept", tag = "review", params(("segment_id" = i64, Path)), request_body = AcceptBody,
    responses((status = 409, body = crate::error::ErrorBody, description = "the segment is not in a state that allows this"), (status = 200, body = SegmentView), (status = 422, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(b): Json<AcceptBody>,
) -> ApiResult<axum::Json<SegmentView>> {
    caller.require(Role::Creator)?;
    let seg = state.store.get_segment(id).await?;
    if seg.status != SegmentStatus::NeedsReview {
        return Err(ApiError::Conflict {
            field: Some("status".into()),
            message: format!(
                "segment {id} is {}; only a segment in review can be accepted",
                seg.status
            ),
        });
    }
    let actor = match &b.note {
        Some(n) => format!("{} — {n}", caller.actor()),
        None => caller.actor(),
    };
    let s = state
        .store
        .select_attempt(id, b.attempt_number, &actor, true)
        .await?;
    Ok(axum::Json(segment_view(&state, s, None).await?))
}

/// Re-run with new parameters and/or a wider jitter. The new attempt counts against the budget.
#[utoipa::path(post, path = "/api/review/{segment_id}/rerun", tag = "review", params(("segment_id" = i64, Path)), request_body = RerunOverrides,
    responses((status = 200, body = RerunResult), (status = 409, body = crate::error::ErrorBody, description = "the budget cannot cover another attempt"), (status = 422, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn rerun(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(b): Json<RerunOverrides>,
) -> ApiResult<axum::Json<RerunResult>> {
    caller.require(Role::Creator)?;
    let seg = state.store.get_segment(id).await?;
    let st = state.store.get_scene_type(seg.scene_type_id).await?;
    let (_, eff, est) = effective(&state, &st).await?;
    let (s, a) = state.store.rerun_segment(id, &caller.actor(), b).await?;
    Ok(axum::Json(RerunResult {
        segment: segment_view(&state, s, Some(&st)).await?,
        attempt: attempt_view(&a, &eff.policy.trigger_checks),
        estimate_gpu_seconds: est,
    }))
}

#[utoipa::path(post, path = "/api/review/{segment_id}/reject", tag = "review", params(("segment_id" = i64, Path)), request_body = RejectBody,
    responses((status = 409, body = crate::error::ErrorBody, description = "the segment is not in a state that allows this"), (status = 200, body = SegmentView), (status = 422, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(b): Json<RejectBody>,
) -> ApiResult<axum::Json<SegmentView>> {
    caller.require(Role::Creator)?;
    let (s, cancelled) = state
        .store
        .reject_segment(id, &caller.actor(), b.note)
        .await?;
    state
        .backends
        .cancel_all(state.store.as_ref(), &cancelled)
        .await;
    Ok(axum::Json(segment_view(&state, s, None).await?))
}

/// Scores from an external QA service for an attempt waiting in `scoring`. The engine decides
/// exactly as with built-in QA; delivering the same result twice changes nothing.
#[utoipa::path(post, path = "/api/attempts/{id}/qa", tag = "qa", params(("id" = i64, Path)), request_body = ExternalQa,
    responses((status = 200, body = QaAccepted), (status = 422, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn external_qa(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(b): Json<ExternalQa>,
) -> ApiResult<axum::Json<QaAccepted>> {
    caller.require(Role::Creator)?;
    if b.scores.is_empty() && b.error.is_none() {
        return Err(ApiError::validation(
            "scores",
            "send at least one score, or an error",
        ));
    }
    for (i, s) in b.scores.iter().enumerate() {
        if !(s.score.is_finite() && (0.0..=1.0).contains(&s.score)) {
            return Err(ApiError::validation(
                format!("scores[{i}].score"),
                format!("must be a number in 0..=1; got {}", s.score),
            ));
        }
        if s.check.trim().is_empty()
            || s.check.chars().count() > retake_core::limits::CHECK_NAME_LEN
        {
            return Err(ApiError::validation(
                format!("scores[{i}].check"),
                format!(
                    "must have 1..={} characters",
                    retake_core::limits::CHECK_NAME_LEN
                ),
            ));
        }
    }
    // Every score must be for a check the attempt's scene type has: a misspelt name would
    // otherwise be ignored and the check reported missing.
    let attempt = state.store.get_attempt(id).await?;
    let segment = state.store.get_segment(attempt.segment_id).await?;
    let scene = state.store.get_scene_type(segment.scene_type_id).await?;
    if matches!(
        attempt.overall_status,
        retake_core::AttemptStatus::Queued | retake_core::AttemptStatus::Generating
    ) {
        return Err(ApiError::Conflict {
            field: Some("status".into()),
            message: format!(
                "attempt {id} is {}; scores are accepted once it is scoring",
                attempt.overall_status
            ),
        });
    }
    // A late delivery for an attempt already judged changes nothing (the store says so); the
    // names are judged for an attempt waiting for its scores.
    let judging = attempt.overall_status == retake_core::AttemptStatus::Scoring;
    for (i, s) in b.scores.iter().enumerate().filter(|_| judging) {
        if let Some(j) = b.scores[..i].iter().position(|e| e.check == s.check) {
            return Err(ApiError::validation(
                format!("scores[{i}].check"),
                format!(
                    "`{}` is scored twice (scores[{j}] and scores[{i}]); send each check once",
                    s.check
                ),
            ));
        }
    }
    let known = scene.check_names();
    if let Some((i, s)) = b
        .scores
        .iter()
        .enumerate()
        .find(|(_, s)| judging && !known.contains(&s.check))
    {
        return Err(ApiError::validation(
            format!("scores[{i}].check"),
            format!(
                "`{}` is not a QA check of scene type \"{}\"; its checks: [{}]",
                s.check,
                scene.name,
                known.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let started = std::time::Instant::now();
    let v = QaVerdict {
        scores: b.scores,
        error: b.error,
        source: format!("api:{}", caller.0.name),
    };
    let r = state.store.deliver_verdict(id, v, None).await?;
    retake_engine::metrics::DECISION_LATENCY.observe(started.elapsed());
    Ok(axum::Json(QaAccepted {
        applied: r.applied,
        decision: r.decision,
        segment_status: r.segment_status,
    }))
}
