//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use crate::dto::*;
use crate::routes::{bulk, ledger, ops, projects, queue, review, scene_types, segments, tokens};
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
        ops::health, ops::me, tokens::create, tokens::list, tokens::revoke, tokens::sign_in, tokens::sign_out, ops::metrics, ops::events, ops::list_servers, ops::put_server, ops::delete_server,
        projects::create, projects::list, projects::get, projects::update, projects::delete, projects::get_policy, projects::put_policy, projects::patch_policy,
        scene_types::create, scene_types::list, scene_types::get, scene_types::update, scene_types::delete, scene_types::get_policy,
        scene_types::put_policy, scene_types::patch_policy, scene_types::failure_patterns, scene_types::all_failure_patterns,
        segments::submit, segments::list, segments::get, segments::retry_history, segments::select, segments::cancel, segments::media,
        review::queue, review::accept, review::rerun, review::reject, review::external_qa,
        bulk::bulk_review, queue::queue, ledger::ledger, ledger::spend,
    ),
    components(schemas(
        crate::error::ErrorBody, crate::error::ErrorDetail, crate::error::BudgetFigures, CreateProject, UpdateProject, ProjectView, CreateSceneType, UpdateSceneType,
        SceneTypeView, SceneTypePolicyView, ProjectPolicyView, NewSegmentBody, SubmitSegments, SegmentView, SegmentPage, SubmittedSegments,
        CheckView, ParamChange, AttemptView, RetryHistory, HumanActionView, AcceptBody, RejectBody, ReviewItem, ReviewQueue, RerunResult, ExternalQa,
        QaAccepted, Health, WaitingForServer, Me, ComfyServerBody, CreateTokenBody, CreatedToken, tokens::SessionBody, tokens::SessionView, retake_store::ApiToken,
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

/// The document served at `/api/openapi.json` and printed by `retake openapi`: utoipa's, with
/// every limit laid in from `retake_core::limits` (the constants validation uses) and every
/// status each operation can answer. JSON, since it uses keywords utoipa's types do not model
/// (`not`, `propertyNames`, `minProperties`).
pub fn document() -> serde_json::Value {
    let mut v = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    limits::apply(&mut v);
    responses::complete(&mut v);
    v
}

/// Every status an operation can answer, in the one error shape. The handlers' annotations list
/// what is particular to each (409, 412, 428, …); these are the ones that follow from an
/// operation's shape: authentication, roles, path ids, parameters and bodies, the database.
mod responses {
    use serde_json::{json, Value};

    fn error(description: &str) -> Value {
        json!({"description": description,
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
    }

    pub fn complete(doc: &mut Value) {
        let Some(paths) = doc["paths"].as_object_mut() else {
            return;
        };
        for (path, item) in paths.iter_mut() {
            let Some(ops) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in ops.iter_mut() {
                let secured = op.get("security").is_some();
                let has_params = op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .is_some_and(|p| !p.is_empty());
                let has_query = op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .is_some_and(|p| p.iter().any(|p| p["in"] == "query"));
                let has_body = op.get("requestBody").is_some();
                let write = method != "get";
                let mut add = |code: &str, description: &str| {
                    let responses = op["responses"].as_object_mut().expect("responses");
                    responses
                        .entry(code.to_owned())
                        .or_insert_with(|| error(description));
                };
                if has_params || has_body {
                    add("400", "malformed JSON, a value of the wrong type, or an unknown field or parameter");
                }
                if secured {
                    add("401", "missing or invalid API token");
                    // Reading needs any token; writes need the creator or admin role.
                    if write {
                        add("403", "the token's role does not allow this");
                    }
                }
                if path.contains('{') {
                    add("404", "what the path names does not exist");
                }
                if has_body || has_query {
                    add(
                        "422",
                        "a value out of its range or not allowed here; `field` names it",
                    );
                }
                if has_body {
                    add("413", "the body is larger than 1 MiB");
                }
                if write {
                    add(
                        "503",
                        "the database cannot take writes right now; nothing was stored",
                    );
                    add("507", "the database's disk is full; nothing was stored");
                }
            }
        }
    }
}

mod limits {
    use retake_core::limits::*;
    use retake_core::params::MAX_SEED;
    use serde_json::{json, Map, Value};

    /// The property schema `field` of component `schema`.
    fn prop<'a>(doc: &'a mut Value, schema: &str, field: &str) -> &'a mut Map<String, Value> {
        doc["components"]["schemas"][schema]["properties"][field]
            .as_object_mut()
            .unwrap_or_else(|| panic!("the document has no {schema}.{field}"))
    }

    fn set(doc: &mut Value, schema: &str, field: &str, kv: Value) {
        let p = prop(doc, schema, field);
        for (k, v) in kv.as_object().expect("an object of keywords") {
            p.insert(k.clone(), v.clone());
        }
    }

    /// A name: not blank, at most `max` characters.
    fn name(max: usize) -> Value {
        json!({"minLength": 1, "maxLength": max, "pattern": "\\S"})
    }

    pub fn apply(doc: &mut Value) {
        for s in ["RetryPolicy", "PolicyOverrides"] {
            set(
                doc,
                s,
                "max_attempts",
                json!({"minimum": MAX_ATTEMPTS.0, "maximum": MAX_ATTEMPTS.1}),
            );
            set(
                doc,
                s,
                "parallelism",
                json!({"minimum": PARALLELISM.0, "maximum": PARALLELISM.1}),
            );
            set(
                doc,
                s,
                "retry_priority",
                json!({"minimum": RETRY_PRIORITY.0, "maximum": RETRY_PRIORITY.1}),
            );
            set(
                doc,
                s,
                "min_rescue_probability",
                json!({"minimum": MIN_RESCUE_PROBABILITY.0, "maximum": MIN_RESCUE_PROBABILITY.1}),
            );
            set(
                doc,
                s,
                "cfg_jitter",
                json!({"minimum": 0.0, "maximum": CFG_JITTER_MAX}),
            );
            set(
                doc,
                s,
                "denoise_jitter",
                json!({"minimum": 0.0, "maximum": DENOISE_JITTER_MAX}),
            );
            for f in [
                "target_score",
                "systematic_max_spread",
                "min_gain_per_gpu_second",
            ] {
                set(doc, s, f, json!({"minimum": UNIT.0, "maximum": UNIT.1}));
            }
            set(
                doc,
                s,
                "trigger_checks",
                json!({"items": {"type": "string", "minLength": 1, "maxLength": CHECK_NAME_LEN, "pattern": "\\S"}}),
            );
            set(
                doc,
                s,
                "extra_jitter",
                json!({"additionalProperties": {"type": "number", "minimum": 0.0, "maximum": OTHER_JITTER_MAX},
                "propertyNames": {"type": "string", "not": {"enum": ["seed", "cfg_scale", "denoise_strength"]}}}),
            );
        }
        for s in ["CreateProject", "UpdateProject"] {
            set(doc, s, "name", name(NAME_LEN));
            set(
                doc,
                s,
                "gpu_budget_seconds",
                json!({"minimum": 0.0, "maximum": GPU_BUDGET_MAX}),
            );
            set(
                doc,
                s,
                "default_gpu_estimate_seconds",
                json!({"exclusiveMinimum": 0.0, "maximum": GPU_ESTIMATE_MAX}),
            );
        }
        for s in ["CreateSceneType", "UpdateSceneType"] {
            set(doc, s, "name", name(NAME_LEN));
            set(doc, s, "backend", json!({"enum": ["simulated", "comfyui"]}));
            set(doc, s, "qa_checks", json!({"maxItems": MAX_QA_CHECKS}));
            set(doc, s, "qa_commands", json!({"maxItems": MAX_QA_COMMANDS}));
        }
        set(
            doc,
            "CheckConfig",
            "check",
            json!({"minLength": 1, "maxLength": CHECK_NAME_LEN, "pattern": "\\S", "not": {"const": "overall"}}),
        );
        for f in ["warn", "fail"] {
            set(
                doc,
                "CheckConfig",
                f,
                json!({"minimum": UNIT.0, "maximum": UNIT.1}),
            );
        }
        set(
            doc,
            "CommandCheck",
            "name",
            json!({"minLength": 1, "maxLength": CHECK_NAME_LEN, "pattern": "\\S"}),
        );
        set(
            doc,
            "CommandCheck",
            "program",
            json!({"minLength": 1, "pattern": "\\S"}),
        );
        set(
            doc,
            "CommandCheck",
            "timeout_seconds",
            json!({"exclusiveMinimum": 0.0, "maximum": COMMAND_TIMEOUT_MAX}),
        );
        set(
            doc,
            "NewSegmentBody",
            "label",
            json!({"maxLength": NAME_LEN}),
        );
        set(
            doc,
            "NewSegmentBody",
            "rng_seed",
            json!({"minimum": 0, "maximum": MAX_SEED}),
        );
        set(
            doc,
            "CheckScore",
            "check",
            json!({"minLength": 1, "maxLength": CHECK_NAME_LEN, "pattern": "\\S"}),
        );
        set(
            doc,
            "CheckScore",
            "score",
            json!({"minimum": UNIT.0, "maximum": UNIT.1}),
        );
        // Scores, or an error: an empty body says nothing.
        set(doc, "ExternalQa", "scores", json!({"minItems": 1}));
        set(doc, "ExternalQa", "error", json!({"type": "string"}));
        doc["components"]["schemas"]["ExternalQa"]["minProperties"] = json!(1);
        set(
            doc,
            "RerunOverrides",
            "jitter_scale",
            json!({"minimum": JITTER_SCALE.0, "maximum": JITTER_SCALE.1}),
        );
        set(doc, "AcceptBody", "attempt_number", json!({"minimum": 1}));
        set(
            doc,
            "ComfyServerBody",
            "max_concurrency",
            json!({"minimum": SERVER_CONCURRENCY.0, "maximum": SERVER_CONCURRENCY.1}),
        );
        set(
            doc,
            "ComfyServerBody",
            "url",
            json!({"pattern": "^https?://", "maxLength": 500}),
        );
        set(doc, "CreateTokenBody", "name", name(100));

        // A policy sent in a request may leave fields out (they take their defaults) and may not
        // add any; the response always has every field.
        let mut input = doc["components"]["schemas"]["RetryPolicy"].clone();
        if let Some(o) = input.as_object_mut() {
            o.remove("required");
            o.insert("additionalProperties".into(), json!(false));
            o.insert(
                "description".into(),
                json!("A retry policy as sent: absent fields take their defaults."),
            );
        }
        doc["components"]["schemas"]["RetryPolicyInput"] = input;
        doc["components"]["schemas"]["PolicyOverrides"]["additionalProperties"] = json!(false);
        let input_ref = json!({"$ref": "#/components/schemas/RetryPolicyInput"});
        doc["components"]["schemas"]["CreateProject"]["properties"]["default_retry_policy"] =
            json!({"oneOf": [{"type": "null"}, input_ref]});
        for method in ["put", "patch"] {
            doc["paths"]["/api/projects/{id}/retry-policy"][method]["requestBody"]["content"]
                ["application/json"]["schema"] = input_ref.clone();
        }
        // The batch form of a submission.
        doc["components"]["schemas"]["SubmitSegments"]["oneOf"][0]["additionalProperties"] =
            json!(false);
        doc["components"]["schemas"]["SubmitSegments"]["oneOf"][0]["properties"]["segments"]
            ["minItems"] = json!(1);
        doc["components"]["schemas"]["SubmitSegments"]["oneOf"][0]["properties"]["segments"]
            ["maxItems"] = json!(SUBMIT_BATCH_MAX);
        // Server-Sent Events: each event's `data` is one Event as JSON.
        doc["paths"]["/api/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
            ["schema"] = json!({
            "type": "object",
            "required": ["data"],
            "properties": {
                "id": {"type": "string"},
                "event": {"type": "string"},
                "data": {"type": "string", "contentMediaType": "application/json",
                         "contentSchema": {"$ref": "#/components/schemas/Event"}}
            }
        });
        let statuses = json!({"enum": ["queued", "generating", "retrying", "passed", "needs_review", "approved", "rejected", "cancelled"]});

        // Query and path parameters.
        if let Some(paths) = doc["paths"].as_object_mut() {
            for (path, item) in paths.iter_mut() {
                let Some(ops) = item.as_object_mut() else {
                    continue;
                };
                for op in ops.values_mut() {
                    let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut)
                    else {
                        continue;
                    };
                    for p in params {
                        let (name, loc) = (
                            p["name"].as_str().unwrap_or(""),
                            p["in"].as_str().unwrap_or(""),
                        );
                        let kw = match (name, loc) {
                            ("limit", "query") => {
                                json!({"minimum": PAGE_LIMIT.0, "maximum": PAGE_LIMIT.1})
                            }
                            ("n", "path") => json!({"minimum": 1}),
                            ("status", "query") => statuses.clone(),
                            ("If-Match", "header") => json!({"format": "date-time"}),
                            ("name", "path") if path.starts_with("/api/comfyui/") => {
                                json!({"minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._-]+$"})
                            }
                            _ => continue,
                        };
                        if let (Some(s), Some(kw)) = (p["schema"].as_object_mut(), kw.as_object()) {
                            for (k, v) in kw {
                                s.insert(k.clone(), v.clone());
                            }
                        }
                    }
                }
            }
        }
    }
}
