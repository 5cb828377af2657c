//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use crate::dto::*;
use crate::routes::{bulk, ledger, ops, projects, queue, review, scene_types, segments};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "retake", description = "Opt-in, transparent, bounded, budget-aware auto-retry for generated video segments. Every attempt and decision is visible here."),
    modifiers(&Bearer),
    paths(
        ops::health, ops::me, ops::tokens, ops::metrics, ops::events, ops::list_servers, ops::put_server, ops::delete_server,
        projects::create, projects::list, projects::get, projects::update, projects::delete, projects::get_policy, projects::put_policy,
        scene_types::create, scene_types::list, scene_types::get, scene_types::update, scene_types::delete, scene_types::get_policy,
        scene_types::put_policy, scene_types::failure_patterns, scene_types::all_failure_patterns,
        segments::submit, segments::list, segments::get, segments::retry_history, segments::select, segments::cancel, segments::media,
        review::queue, review::accept, review::rerun, review::reject, review::external_qa,
        bulk::bulk_review, queue::queue, ledger::ledger, ledger::spend,
    ),
    components(schemas(
        crate::error::ErrorBody, crate::error::ErrorDetail, CreateProject, UpdateProject, ProjectView, CreateSceneType, UpdateSceneType,
        SceneTypeView, SceneTypePolicyView, ProjectPolicyView, NewSegmentBody, SubmitSegments, SegmentView, SegmentPage, SubmittedSegments,
        CheckView, ParamChange, AttemptView, RetryHistory, AcceptBody, RejectBody, ReviewItem, ReviewQueue, RerunResult, ExternalQa,
        QaAccepted, Health, Me, ComfyServerBody, CreateTokenBody, CreatedToken,
        retake_store::Project, retake_store::ProjectStats, retake_store::SceneType, retake_store::Segment, retake_store::Event,
        retake_store::InfraErrorRecord, retake_store::FailurePattern, retake_store::ComfyServer, retake_store::Role, retake_store::RerunOverrides,
        retake_store::DomainRecord,
        retake_core::RetryPolicy, retake_core::PolicyOverrides, retake_core::PolicySource, retake_core::SelectionMode, retake_core::CheckConfig,
        retake_core::CommandCheck, retake_core::CheckScore, retake_core::Verdict, retake_core::JitterProvenance, retake_core::JitterDraw,
        retake_core::Arm, retake_core::AttemptStatus, retake_core::SegmentStatus, retake_core::ReviewReason, retake_core::Parameters,
        retake_core::ArmStats,
        bulk::BulkAction, bulk::BulkReviewBody, bulk::BulkItemResult, bulk::BulkReviewResult,
        queue::QueueView, queue::QueuedAttempt, retake_store::QueueEntry,
        ledger::LedgerPage, ledger::SpendSeriesView, ledger::SpendSceneType, retake_store::LedgerEntry, retake_store::SpendPoint,
    )),
    tags((name = "policy", description = "Retry policies: the project default and scene-type overrides"))
)]
pub struct ApiDoc;
