//! The HTTP routes, one module per resource.

pub mod bulk;
pub mod ledger;
pub mod ops;
pub mod projects;
pub mod queue;
pub mod review;
pub mod scene_types;
pub mod segments;
pub mod tokens;

use crate::dto::SegmentView;
use crate::error::ApiResult;
use crate::state::AppState;
use retake_core::{estimate_gpu_seconds, summary_sentence_with, EffectivePolicy, RoundCount};
use retake_store::{Project, SceneType, Segment};

/// The scene type's effective policy and the GPU estimate one attempt reserves now.
pub async fn effective(
    state: &AppState,
    st: &SceneType,
) -> ApiResult<(Project, EffectivePolicy, f64)> {
    let project = state.store.get_project(st.project_id).await?;
    let eff = EffectivePolicy::resolve(&project.default_retry_policy, &st.retry_policy)?;
    let recent = state
        .store
        .recent_gpu_seconds(st.id, retake_store::ops::ESTIMATE_WINDOW)
        .await?;
    let est = estimate_gpu_seconds(&recent, project.default_gpu_estimate_seconds);
    Ok((project, eff, est))
}

pub async fn segment_view(
    state: &AppState,
    s: Segment,
    scene: Option<&SceneType>,
) -> ApiResult<SegmentView> {
    let owned;
    let scene = match scene {
        Some(sc) => sc,
        None => {
            owned = state.store.get_scene_type(s.scene_type_id).await?;
            &owned
        }
    };
    let attempts = state.store.list_attempts(s.id).await?;
    Ok(segment_view_of(s, scene, &attempts))
}

/// [`segment_view`] with the segment's attempts already read (a page reads them in one query).
pub fn segment_view_of(
    s: Segment,
    scene: &SceneType,
    attempts: &[retake_store::Attempt],
) -> SegmentView {
    let views: Vec<_> = attempts.iter().map(|a| a.view()).collect();
    let triggers: Vec<String> = scene.qa_checks.iter().map(|c| c.check.clone()).collect();
    let rounds = RoundCount::of(&views);
    let actions = retake_store::human_actions(attempts);
    SegmentView {
        retry_count: s.retry_count(),
        round: rounds.round,
        round_retry_count: rounds.retries,
        summary: summary_sentence_with(s.id, &views, &actions, &triggers),
        scene_type_name: scene.name.clone(),
        segment: s,
    }
}
