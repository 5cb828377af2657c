//! Scene types, their retry policy (effective values with their sources) and failure patterns.

use crate::helpers::*;
use retake_store::Store;
use serde_json::json;
use std::sync::Arc;

retake_store::contract_tests!(
    scene_types_are_created_listed_read_updated_and_deleted,
    scene_policy_shows_effective_values_and_where_they_come_from,
    scene_type_input_is_validated,
    failure_patterns_count_failures_and_rescues,
    policy_patch_changes_only_the_fields_sent,
);

async fn scene_types_are_created_listed_read_updated_and_deleted(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let p1 = id(&app.project(json!({})).await);
    let p2 = id(&app.project(json!({})).await);
    let st = app
        .create_scene_type(
            &app.admin,
            json!({"project_id": p1, "name": "Close-up", "backend_config": {"profile": "portrait"},
                "default_parameters": {"cfg_scale": 7.0, "steps": 30},
                "qa_checks": [{"check": "face_confidence", "warn": 0.7, "fail": 0.5}],
                "retry_policy": {"enabled": true, "max_attempts": 4}}),
        )
        .await
        .expect(201);
    let sid = id(&st);
    assert_eq!(st["project_id"], p1);
    assert_eq!(st["name"], "Close-up");
    assert_eq!(st["backend"], "simulated");
    assert_eq!(st["backend_config"]["profile"], "portrait");
    assert_eq!(st["default_parameters"]["steps"], 30);
    assert_eq!(st["qa_checks"][0]["check"], "face_confidence");
    assert_eq!(st["retry_policy"]["max_attempts"], 4);
    assert_eq!(st["effective_policy"]["enabled"], true);
    assert_eq!(st["effective_policy"]["max_attempts"], 4);
    assert_eq!(
        st["effective_policy"]["seed_variation"], true,
        "inherited from the project"
    );
    let other = app.scene_type(p2, json!({})).await;

    let all = app.list_scene_types(&app.viewer, "").await.expect(200);
    assert_eq!(all.as_array().unwrap().len(), 2);
    let only = app
        .list_scene_types(&app.viewer, &format!("?project_id={p1}"))
        .await
        .expect(200);
    let ids: Vec<i64> = only.as_array().unwrap().iter().map(id).collect();
    assert_eq!(ids, vec![sid]);
    assert_eq!(
        app.list_scene_types(&app.viewer, "?project_id=999999")
            .await
            .expect(200),
        json!([])
    );

    let got = app.get_scene_type(&app.viewer, sid).await.expect(200);
    assert_eq!(got["name"], "Close-up");

    let upd = app
        .update_scene_type(
            &app.admin,
            sid,
            json!({"name": "Close-up v2", "qa_checks": [{"check": "face_confidence", "warn": 0.8, "fail": 0.6}, {"check": "sharpness", "warn": 0.5, "fail": 0.3}]}),
            Some(got["updated_at"].as_str().unwrap()),
        )
        .await
        .expect(200);
    assert_eq!(upd["name"], "Close-up v2");
    assert_eq!(upd["qa_checks"].as_array().unwrap().len(), 2);
    assert_eq!(
        upd["backend_config"]["profile"], "portrait",
        "absent fields are unchanged"
    );
    app.update_scene_type(
        &app.admin,
        sid,
        json!({"name": "late"}),
        Some(got["updated_at"].as_str().unwrap()),
    )
    .await
    .expect_error(412, "precondition_failed", Some("If-Match"));
    // Names are unique within a project.
    app.update_scene_type(&app.admin, id(&other), json!({"name": "Close-up v2"}), None)
        .await
        .expect(200);
    app.create_scene_type(&app.admin, json!({"project_id": p1, "name": "Close-up v2"}))
        .await
        .expect_error(409, "conflict", Some("name"));

    app.delete_scene_type(&app.admin, sid).await.expect(204);
    app.get_scene_type(&app.viewer, sid)
        .await
        .expect_error(404, "not_found", None);
    app.delete_scene_type(&app.admin, sid)
        .await
        .expect_error(404, "not_found", None);
    app.update_scene_type(&app.admin, sid, json!({"name": "x"}), None)
        .await
        .expect_error(404, "not_found", None);
    // Deleting a project takes its scene types with it.
    app.delete_project(&app.admin, p2).await.expect(204);
    app.get_scene_type(&app.viewer, id(&other))
        .await
        .expect_error(404, "not_found", None);
}

async fn scene_policy_shows_effective_values_and_where_they_come_from(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({"gpu_budget_seconds": 500.0, "default_retry_policy": {"enabled": false, "max_attempts": 3, "cfg_jitter": 0.7}})).await);
    let st = app
        .scene_type(
            pid,
            json!({"retry_policy": {"enabled": true, "max_attempts": 5}}),
        )
        .await;
    let sid = id(&st);

    let v = app.get_scene_policy(&app.viewer, sid).await.expect(200);
    assert_eq!(v["scene_type_id"], sid);
    assert_eq!(v["project_id"], pid);
    assert_eq!(v["effective"]["enabled"], true);
    assert_eq!(v["effective"]["max_attempts"], 5);
    approx(&v["effective"]["cfg_jitter"], 0.7);
    assert_eq!(v["sources"]["enabled"], "scene_type");
    assert_eq!(v["sources"]["max_attempts"], "scene_type");
    assert_eq!(v["sources"]["cfg_jitter"], "project");
    assert_eq!(v["sources"]["trigger_checks"], "project");
    for field in [
        "seed_variation",
        "denoise_jitter",
        "extra_jitter",
        "selection_mode",
        "target_score",
        "systematic_detection",
        "parallelism",
    ] {
        assert_eq!(v["sources"][field], "project", "{field}");
    }
    assert_eq!(v["overrides"]["max_attempts"], 5);
    assert!(
        v["overrides"]["cfg_jitter"].is_null(),
        "inherited values are null overrides"
    );
    assert_eq!(v["project_default"]["max_attempts"], 3);
    assert_eq!(
        v["available_checks"],
        json!(["face_confidence", "black_frames"])
    );
    approx(&v["estimate_gpu_seconds_per_attempt"], DEFAULT_ESTIMATE);
    approx(&v["worst_case_extra_gpu_seconds"], 4.0 * DEFAULT_ESTIMATE);
    approx(&v["project_remaining_gpu_seconds"], 500.0);

    // Replace the overrides: unset fields inherit again.
    let etag = v["updated_at"].as_str().unwrap().to_owned();
    let put = app
        .put_scene_policy(
            &app.admin,
            sid,
            json!({"cfg_jitter": 2.0, "trigger_checks": ["black_frames"]}),
            Some(&etag),
        )
        .await
        .expect(200);
    assert_eq!(put["effective"]["enabled"], false);
    assert_eq!(put["sources"]["enabled"], "project");
    assert_eq!(put["effective"]["max_attempts"], 3);
    approx(&put["effective"]["cfg_jitter"], 2.0);
    assert_eq!(put["sources"]["cfg_jitter"], "scene_type");
    assert_eq!(put["effective"]["trigger_checks"], json!(["black_frames"]));
    approx(&put["worst_case_extra_gpu_seconds"], 0.0);
    assert_eq!(
        app.get_scene_policy(&app.viewer, sid).await.expect(200)["effective"],
        put["effective"]
    );
    // The old precondition is stale now.
    app.put_scene_policy(&app.admin, sid, json!({}), Some(&etag))
        .await
        .expect_error(412, "precondition_failed", Some("If-Match"));
    // Explicit nulls inherit too.
    let put = app
        .put_scene_policy(
            &app.admin,
            sid,
            json!({"cfg_jitter": null, "enabled": true}),
            None,
        )
        .await
        .expect(200);
    approx(&put["effective"]["cfg_jitter"], 0.7);
    assert_eq!(put["sources"]["cfg_jitter"], "project");
    // A project-level change reaches scene types that inherit.
    let pp = app.get_project_policy(&app.admin, pid).await.expect(200);
    app.put_project_policy(
        &app.admin,
        pid,
        json!({"cfg_jitter": 0.25}),
        Some(pp["updated_at"].as_str().unwrap()),
    )
    .await
    .expect(200);
    approx(
        &app.get_scene_policy(&app.viewer, sid).await.expect(200)["effective"]["cfg_jitter"],
        0.25,
    );
    app.get_scene_policy(&app.viewer, 999_999)
        .await
        .expect_error(404, "not_found", None);
    app.put_scene_policy(&app.admin, 999_999, json!({}), None)
        .await
        .expect_error(404, "not_found", None);
}

async fn scene_type_input_is_validated(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let a = &app.admin;
    let base = |extra: serde_json::Value| {
        let mut b = json!({"project_id": pid, "name": "s", "qa_checks": [{"check": "face_confidence", "warn": 0.7, "fail": 0.5}]});
        merge(&mut b, extra);
        b
    };
    let cases = [
        (json!({"name": ""}), 422, "name"),
        (json!({"backend": "midjourney"}), 422, "backend"),
        (json!({"project_id": 999_999}), 422, "project_id"),
        (json!({"project_id": "one"}), 400, "project_id"),
        (
            json!({"parameter_bindings": {"cfg_scale": "nodot"}}),
            422,
            "parameter_bindings.cfg_scale",
        ),
        (
            json!({"qa_checks": [{"check": "face_confidence", "warn": 0.7, "fail": 0.5}, {"check": "face_confidence", "warn": 0.7, "fail": 0.5}]}),
            422,
            "qa_checks[1].check",
        ),
        (
            json!({"qa_checks": [{"check": "face_confidence", "warn": 1.7, "fail": 0.5}]}),
            422,
            "qa_checks[0].warn",
        ),
        (
            json!({"qa_checks": [{"check": "overall", "warn": 0.7, "fail": 0.5}]}),
            422,
            "qa_checks[0].check",
        ),
        (
            json!({"qa_checks": [{"check": "face_confidence", "warn": 0.7}]}),
            400,
            "qa_checks[0].fail",
        ),
        (
            json!({"default_parameters": {"cfg_scale": -3}}),
            422,
            "default_parameters.cfg_scale",
        ),
        (
            json!({"retry_policy": {"trigger_checks": ["black_frames"]}}),
            422,
            "trigger_checks",
        ),
        (
            json!({"retry_policy": {"max_attempts": 11}}),
            422,
            "retry_policy.max_attempts",
        ),
        (
            json!({"retry_policy": {"cfg_jitter": -1}}),
            422,
            "retry_policy.cfg_jitter",
        ),
        (
            json!({"retry_policy": {"selection_mode": "target_score"}}),
            422,
            "target_score",
        ),
        (json!({"backend": "comfyui"}), 422, "workflow_template"),
        (json!({"colour": "red"}), 400, "colour"),
    ];
    for (extra, status, field) in cases {
        let what = extra.to_string();
        let r = app.create_scene_type(a, base(extra)).await;
        assert_eq!(r.status, status, "{what}: {}", r.text());
        assert_eq!(r.json()["error"]["field"], field, "{what}: {}", r.text());
    }
    assert!(
        app.list_scene_types(a, "")
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing invalid was saved"
    );

    let st = app
        .scene_type(
            pid,
            json!({"retry_policy": {"trigger_checks": ["face_confidence"]}}),
        )
        .await;
    let sid = id(&st);
    // Removing a check the policy triggers on would leave the policy pointing at nothing.
    app.update_scene_type(
        a,
        sid,
        json!({"qa_checks": [{"check": "black_frames", "warn": 0.9, "fail": 0.8}]}),
        None,
    )
    .await
    .expect_error(422, "validation_failed", Some("qa_checks"));
    app.update_scene_type(a, sid, json!({"backend": "nope"}), None)
        .await
        .expect_error(422, "validation_failed", Some("backend"));
    app.update_scene_type(a, sid, json!({"retry_policy": {}}), None)
        .await
        .expect_error(400, "bad_request", Some("retry_policy"));
    // Policy overrides must name checks this scene type has.
    let r = app
        .put_scene_policy(a, sid, json!({"trigger_checks": ["lip_sync"]}), None)
        .await;
    let b = r.expect_error(422, "validation_failed", Some("trigger_checks"));
    assert!(
        b["error"]["message"].as_str().unwrap().contains("lip_sync"),
        "{b}"
    );
}

async fn failure_patterns_count_failures_and_rescues(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let st = app.retrying_scene_type(pid, 3).await;
    let sid = id(&st);
    app.run_scripted(sid, &[0.3, 0.9]).await; // rescued by a retry
    app.run_scripted(sid, &[0.9]).await; // passed first time

    let rows = app
        .scene_failure_patterns(&app.viewer, sid)
        .await
        .expect(200);
    let face = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == "face_confidence")
        .expect("a face_confidence row");
    assert_eq!(face["scene_type_id"], sid);
    assert_eq!(face["attempts"], 3);
    assert_eq!(face["failures"], 1);
    assert_eq!(face["failed_segments"], 1);
    assert_eq!(face["rescues"], 1);
    let black = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == "black_frames")
        .expect("a black_frames row");
    assert_eq!(black["failures"], 0);

    let other = app.scene_type(pid, json!({})).await;
    app.run_scripted(id(&other), &[0.9]).await;
    let all = app.failure_patterns(&app.viewer).await.expect(200);
    let scenes: std::collections::BTreeSet<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["scene_type_id"].as_i64().unwrap())
        .collect();
    assert!(
        scenes.contains(&sid) && scenes.contains(&id(&other)),
        "{all}"
    );
    app.scene_failure_patterns(&app.viewer, 999_999)
        .await
        .expect_error(404, "not_found", None);
}

/// The case: `PUT {"max_attempts": 5}` without `If-Match` turned auto-retry off. Now a
/// write without `If-Match` is a 428, and PATCH changes only the fields it names.
async fn policy_patch_changes_only_the_fields_sent(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let sid = id(&app.retrying_scene_type(pid, 3).await);
    let path = format!("/api/scene-types/{sid}/retry-policy");
    for r in [
        app.put(&path, &app.admin, json!({"max_attempts": 5}), None)
            .await,
        app.patch(&path, &app.admin, json!({"max_attempts": 5}), None)
            .await,
        app.patch(
            &format!("/api/scene-types/{sid}"),
            &app.admin,
            json!({"name": "x"}),
            None,
        )
        .await,
        app.patch(
            &format!("/api/projects/{pid}"),
            &app.admin,
            json!({"name": "x"}),
            None,
        )
        .await,
        app.put(
            &format!("/api/projects/{pid}/retry-policy"),
            &app.admin,
            json!({}),
            None,
        )
        .await,
        app.patch(
            &format!("/api/projects/{pid}/retry-policy"),
            &app.admin,
            json!({}),
            None,
        )
        .await,
    ] {
        let e = r.expect_error(428, "precondition_required", Some("If-Match"));
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("updated_at"),
            "{e}"
        );
    }
    let before = app.get_scene_policy(&app.viewer, sid).await.expect(200);
    assert_eq!(before["effective"]["enabled"], true);
    assert_eq!(before["effective"]["max_attempts"], 3);

    let patched = app
        .patch_scene_policy(&app.admin, sid, json!({"max_attempts": 5}), None)
        .await
        .expect(200);
    assert_eq!(patched["effective"]["max_attempts"], 5);
    assert_eq!(
        patched["effective"]["enabled"], true,
        "untouched fields keep their overrides"
    );
    assert_eq!(patched["sources"]["enabled"], "scene_type");
    assert_eq!(
        patched["effective"]["trigger_checks"],
        json!(["face_confidence"])
    );
    // `null` returns a field to inheriting the project's value.
    let patched = app
        .patch_scene_policy(&app.admin, sid, json!({"enabled": null}), None)
        .await
        .expect(200);
    assert_eq!(patched["effective"]["enabled"], false);
    assert_eq!(patched["sources"]["enabled"], "project");
    assert_eq!(patched["effective"]["max_attempts"], 5);
    // Bad values and unknown fields name the field; stale preconditions lose.
    app.patch_scene_policy(&app.admin, sid, json!({"max_attempts": 11}), None)
        .await
        .expect_error(422, "validation_failed", Some("max_attempts"));
    app.patch_scene_policy(
        &app.admin,
        sid,
        json!({"max_attempts": 2, "bogus": 1}),
        None,
    )
    .await
    .expect_error(400, "bad_request", Some("bogus"));
    app.patch_scene_policy(
        &app.admin,
        sid,
        json!({"trigger_checks": ["lip_sync"]}),
        None,
    )
    .await
    .expect_error(422, "validation_failed", Some("trigger_checks"));
    let stale = before["updated_at"].as_str().unwrap();
    app.patch_scene_policy(&app.admin, sid, json!({"max_attempts": 2}), Some(stale))
        .await
        .expect_error(412, "precondition_failed", Some("If-Match"));
    assert_eq!(
        app.get_scene_policy(&app.viewer, sid).await.expect(200)["effective"]["max_attempts"],
        5
    );

    // The project default has PATCH too: one field changes, the rest stay.
    let pp = app
        .patch_project_policy(&app.admin, pid, json!({"cfg_jitter": 0.25}), None)
        .await
        .expect(200);
    approx(&pp["policy"]["cfg_jitter"], 0.25);
    assert_eq!(pp["policy"]["max_attempts"], 3);
    let pp = app
        .patch_project_policy(
            &app.admin,
            pid,
            json!({"selection_mode": "target_score", "target_score": 0.8}),
            None,
        )
        .await
        .expect(200);
    approx(&pp["policy"]["cfg_jitter"], 0.25);
    assert_eq!(pp["policy"]["selection_mode"], "target_score");
    app.patch_project_policy(&app.admin, pid, json!({"max_attempts": 0}), None)
        .await
        .expect_error(422, "validation_failed", Some("max_attempts"));
    app.patch_project_policy(&app.admin, 999_999, json!({}), None)
        .await
        .expect_error(404, "not_found", None);
}
