//! Review at scale: one action on many segments, answered per segment, and the list filters
//! (review reason, label search) the review screens use.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorDetail};
use crate::json::Json;
use crate::state::AppState;
use axum::extract::State;
use retake_core::{ReviewReason, SegmentStatus};
use retake_store::{RerunOverrides, Role};
use serde::{Deserialize, Serialize};

/// Most segments one bulk request may name.
pub const MAX_BULK: usize = 100;
/// Longest note a review action records.
pub const MAX_NOTE: usize = 500;
/// Longest label search.
pub const MAX_LABEL_SEARCH: usize = 200;

pub fn parse_reason(s: Option<&str>) -> ApiResult<Option<ReviewReason>> {
    s.map(|v| {
        v.parse::<ReviewReason>()
            .map_err(|e| ApiError::validation("review_reason", e))
    })
    .transpose()
}

pub fn parse_label(s: Option<String>) -> ApiResult<Option<String>> {
    match s {
        None => Ok(None),
        Some(v) if v.is_empty() || v.chars().count() > MAX_LABEL_SEARCH => {
            Err(ApiError::validation(
                "label",
                format!(
                    "must have 1..={MAX_LABEL_SEARCH} characters; got {}",
                    v.chars().count()
                ),
            ))
        }
        Some(v) => Ok(Some(v)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// Accept each segment's best attempt (highest `overall`; ties to the earlier) as a human
    /// override, passing or not.
    Accept,
    /// Queue one more attempt of each segment with the policy's variation (no parameter changes).
    Rerun,
    /// Reject each segment, cancelling what still runs.
    Reject,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkReviewBody {
    pub action: BulkAction,
    /// 1..=100 distinct segment ids, each in review.
    #[schema(min_items = 1, max_items = 100)]
    pub segment_ids: Vec<i64>,
    /// Recorded with each action (at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

/// What happened to one segment of a bulk request.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkItemResult {
    pub segment_id: i64,
    pub ok: bool,
    /// The status the single-segment action would have answered (200, 404, 409, 422, …).
    pub status: u16,
    /// The segment's status after the action (when it succeeded).
    pub segment_status: Option<SegmentStatus>,
    /// The attempt accepted, or the attempt the re-run queued.
    pub attempt_number: Option<u32>,
    pub error: Option<ErrorDetail>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkReviewResult {
    pub action: BulkAction,
    pub succeeded: u32,
    pub failed: u32,
    /// One entry per requested id, in the order sent.
    pub results: Vec<BulkItemResult>,
}

fn check_body(b: &BulkReviewBody) -> ApiResult<()> {
    if b.segment_ids.is_empty() || b.segment_ids.len() > MAX_BULK {
        return Err(ApiError::validation(
            "segment_ids",
            format!(
                "must list 1..={MAX_BULK} segment ids; got {}",
                b.segment_ids.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, id) in b.segment_ids.iter().enumerate() {
        if !seen.insert(*id) {
            return Err(ApiError::validation(
                format!("segment_ids[{i}]"),
                format!("segment {id} is listed twice"),
            ));
        }
    }
    if let Some(n) = &b.note {
        if n.chars().count() > MAX_NOTE {
            return Err(ApiError::validation(
                "note",
                format!("must have at most {MAX_NOTE} characters"),
            ));
        }
    }
    Ok(())
}

/// Accept, re-run or reject many segments in review at once. Each segment is acted on alone
/// (its own transaction), exactly as the single-segment action would; the answer lists every
/// id with the status that action would have answered, so one segment that moved on meanwhile
/// does not stop the others.
#[utoipa::path(post, path = "/api/review/bulk", tag = "review", request_body = BulkReviewBody,
    responses(
        (status = 200, body = BulkReviewResult, description = "per-segment results; some may have failed"),
        (status = 400, body = crate::error::ErrorBody, description = "malformed body or unknown action"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "needs the creator role"),
        (status = 422, body = crate::error::ErrorBody, description = "segment_ids empty, over 100 or repeated; note over 500 characters"),
    ),
    security(("bearer" = [])))]
pub async fn bulk_review(
    State(state): State<AppState>,
    caller: Caller,
    Json(b): Json<BulkReviewBody>,
) -> ApiResult<axum::Json<BulkReviewResult>> {
    caller.require(Role::Creator)?;
    check_body(&b)?;
    let mut results = Vec::with_capacity(b.segment_ids.len());
    for &id in &b.segment_ids {
        let r = act(&state, &caller, b.action, id, b.note.as_deref()).await;
        results.push(match r {
            Ok((status, n)) => BulkItemResult {
                segment_id: id,
                ok: true,
                status: 200,
                segment_status: Some(status),
                attempt_number: n,
                error: None,
            },
            Err(e) => {
                // A database that refuses writes refuses the rest too: answer that, whole.
                if matches!(e, ApiError::Unavailable { .. } | ApiError::Internal(_)) {
                    return Err(e);
                }
                let (status, detail) = e.detail();
                BulkItemResult {
                    segment_id: id,
                    ok: false,
                    status: status.as_u16(),
                    segment_status: None,
                    attempt_number: None,
                    error: Some(detail),
                }
            }
        });
    }
    let succeeded = results.iter().filter(|r| r.ok).count() as u32;
    Ok(axum::Json(BulkReviewResult {
        action: b.action,
        succeeded,
        failed: results.len() as u32 - succeeded,
        results,
    }))
}

async fn act(
    state: &AppState,
    caller: &Caller,
    action: BulkAction,
    id: i64,
    note: Option<&str>,
) -> ApiResult<(SegmentStatus, Option<u32>)> {
    let seg = state.store.get_segment(id).await?;
    if seg.status != SegmentStatus::NeedsReview {
        return Err(ApiError::Conflict {
            field: Some("segment_ids".into()),
            message: format!(
                "segment {id} is {}; only a segment in review can be acted on",
                seg.status
            ),
        });
    }
    let actor = match note {
        Some(n) if !n.trim().is_empty() => format!("{} — {n}", caller.actor()),
        _ => caller.actor(),
    };
    match action {
        BulkAction::Accept => {
            let attempts = state.store.list_attempts(id).await?;
            let best = attempts
                .iter()
                .filter_map(|a| {
                    a.quality_scores
                        .as_ref()
                        .map(|q| (a.attempt_number, q.overall))
                })
                .fold(None::<(u32, f64)>, |best, (n, o)| match best {
                    Some((_, bo)) if bo >= o => best,
                    _ => Some((n, o)),
                });
            let Some((n, _)) = best else {
                return Err(ApiError::Conflict {
                    field: Some("segment_ids".into()),
                    message: format!(
                        "segment {id} has no scored attempt to accept; re-run or reject it"
                    ),
                });
            };
            let s = state.store.select_attempt(id, n, &actor, true).await?;
            Ok((s.status, Some(n)))
        }
        BulkAction::Rerun => {
            let (s, a) = state
                .store
                .rerun_segment(id, &actor, RerunOverrides::default())
                .await?;
            Ok((s.status, Some(a.attempt_number)))
        }
        BulkAction::Reject => {
            let (s, cancelled) = state
                .store
                .reject_segment(id, &caller.actor(), note.map(str::to_owned))
                .await?;
            state
                .backends
                .cancel_all(state.store.as_ref(), &cancelled)
                .await;
            Ok((s.status, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_search_is_bounded() {
        assert!(parse_label(Some(String::new())).is_err());
        assert!(parse_label(Some("x".repeat(201))).is_err());
        assert_eq!(
            parse_label(Some("shot-12".into())).unwrap().as_deref(),
            Some("shot-12")
        );
    }

    #[test]
    fn unknown_reason_names_the_field() {
        match parse_reason(Some("bored")) {
            Err(ApiError::Validation { field, message }) => {
                assert_eq!(field.as_deref(), Some("review_reason"));
                assert!(message.contains("all_attempts_failed"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
