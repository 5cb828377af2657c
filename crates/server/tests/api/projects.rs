//! Projects (with their GPU budget: spent, reserved, remaining) and the project's default policy.

use crate::helpers::*;
use retake_store::Store;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

retake_store::contract_tests!(
    projects_are_created_listed_read_updated_and_deleted,
    budget_shows_spent_reserved_and_remaining,
    project_input_is_validated,
    project_retry_policy_is_read_and_replaced,
    a_budget_below_what_is_spent_needs_to_be_meant,
    deleting_a_project_with_work_in_flight_needs_force,
);

async fn projects_are_created_listed_read_updated_and_deleted(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let p = app
        .create_project(&app.admin, json!({"name": "  Feature film  ", "gpu_budget_seconds": 3600.0, "default_gpu_estimate_seconds": 25.0}))
        .await
        .expect(201);
    let pid = id(&p);
    assert_eq!(p["name"], "Feature film", "names are trimmed");
    approx(&p["gpu_budget_seconds"], 3600.0);
    approx(&p["gpu_spent_seconds"], 0.0);
    approx(&p["gpu_reserved_seconds"], 0.0);
    approx(&p["gpu_remaining_seconds"], 3600.0);
    approx(&p["default_gpu_estimate_seconds"], 25.0);
    assert_eq!(
        p["default_retry_policy"]["enabled"], false,
        "auto-retry is off unless turned on"
    );
    assert_eq!(p["default_retry_policy"]["max_attempts"], 3);
    assert_eq!(p["stats"]["segments"], 0);
    assert!(p["created_at"].is_string() && p["updated_at"].is_string());

    let unlimited = app
        .create_project(&app.admin, json!({"name": "Shorts"}))
        .await
        .expect(201);
    assert!(unlimited["gpu_budget_seconds"].is_null());
    assert!(
        unlimited["gpu_remaining_seconds"].is_null(),
        "no budget: nothing to count down"
    );
    approx(&unlimited["default_gpu_estimate_seconds"], 30.0);

    let list = app.list_projects(&app.viewer).await.expect(200);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Feature film") && names.contains(&"Shorts"),
        "{names:?}"
    );

    let got = app.get_project(&app.viewer, pid).await.expect(200);
    assert_eq!(got["name"], "Feature film");

    let upd = app
        .update_project(&app.admin, pid, json!({"name": "Feature film v2", "gpu_budget_seconds": 100.0, "default_gpu_estimate_seconds": 12.5}), None)
        .await
        .expect(200);
    assert_eq!(upd["name"], "Feature film v2");
    approx(&upd["gpu_budget_seconds"], 100.0);
    approx(&upd["default_gpu_estimate_seconds"], 12.5);
    // Absent fields are unchanged; an explicit null budget is unlimited.
    let upd = app
        .update_project(&app.admin, pid, json!({"gpu_budget_seconds": null}), None)
        .await
        .expect(200);
    assert_eq!(upd["name"], "Feature film v2");
    assert!(upd["gpu_budget_seconds"].is_null());
    assert!(upd["gpu_remaining_seconds"].is_null());
    // A stale If-Match loses.
    let stale = p["updated_at"].as_str().unwrap();
    app.update_project(&app.admin, pid, json!({"name": "late"}), Some(stale))
        .await
        .expect_error(412, "precondition_failed", Some("If-Match"));
    let fresh = upd["updated_at"].as_str().unwrap();
    app.update_project(&app.admin, pid, json!({"name": "on time"}), Some(fresh))
        .await
        .expect(200);

    app.delete_project(&app.admin, pid).await.expect(204);
    app.get_project(&app.viewer, pid)
        .await
        .expect_error(404, "not_found", None);
    app.delete_project(&app.admin, pid)
        .await
        .expect_error(404, "not_found", None);
    app.update_project(&app.admin, pid, json!({"name": "ghost"}), None)
        .await
        .expect_error(404, "not_found", None);
}

async fn budget_shows_spent_reserved_and_remaining(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let p = app.project(json!({"gpu_budget_seconds": 100.0})).await;
    let pid = id(&p);
    let st = app.scene_type(pid, json!({})).await;

    // One attempt that passes spends its GPU time.
    let h = app.run_scripted(id(&st), &[0.9]).await;
    approx(&h["total_gpu_seconds"], SCRIPTED_GPU);
    let p = app.get_project(&app.viewer, pid).await.expect(200);
    approx(&p["gpu_spent_seconds"], SCRIPTED_GPU);
    approx(&p["gpu_reserved_seconds"], 0.0);
    approx(&p["gpu_remaining_seconds"], 100.0 - SCRIPTED_GPU);
    assert_eq!(p["stats"]["segments"], 1);
    assert_eq!(p["stats"]["passed_first_time"], 1);

    // A claimed attempt holds a reservation of the estimate until it finishes.
    app.submit(id(&st)).await;
    let work = app
        .store
        .claim("someone-else", 1, Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(work.len(), 1);
    let p = app.get_project(&app.viewer, pid).await.expect(200);
    approx(&p["gpu_spent_seconds"], SCRIPTED_GPU);
    approx(&p["gpu_reserved_seconds"], DEFAULT_ESTIMATE);
    approx(
        &p["gpu_remaining_seconds"],
        100.0 - SCRIPTED_GPU - DEFAULT_ESTIMATE,
    );
    assert_eq!(p["stats"]["in_progress"], 1);
}

async fn project_input_is_validated(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let a = &app.admin;
    app.create_project(a, json!({"name": ""}))
        .await
        .expect_error(422, "validation_failed", Some("name"));
    app.create_project(a, json!({"name": "   "}))
        .await
        .expect_error(422, "validation_failed", Some("name"));
    app.create_project(a, json!({"name": "n".repeat(201)}))
        .await
        .expect_error(422, "validation_failed", Some("name"));
    app.create_project(a, json!({"name": "x", "gpu_budget_seconds": -1}))
        .await
        .expect_error(422, "validation_failed", Some("gpu_budget_seconds"));
    app.create_project(a, json!({"name": "x", "gpu_budget_seconds": 1e13}))
        .await
        .expect_error(422, "validation_failed", Some("gpu_budget_seconds"));
    app.create_project(a, json!({"name": "x", "gpu_budget_seconds": "lots"}))
        .await
        .expect_error(400, "bad_request", Some("gpu_budget_seconds"));
    app.create_project(a, json!({"name": "x", "default_gpu_estimate_seconds": 0}))
        .await
        .expect_error(
            422,
            "validation_failed",
            Some("default_gpu_estimate_seconds"),
        );
    app.create_project(a, json!({"name": "x", "default_gpu_estimate_seconds": 2e6}))
        .await
        .expect_error(
            422,
            "validation_failed",
            Some("default_gpu_estimate_seconds"),
        );
    app.create_project(
        a,
        json!({"name": "x", "default_retry_policy": {"max_attempts": 0}}),
    )
    .await
    .expect_error(
        422,
        "validation_failed",
        Some("default_retry_policy.max_attempts"),
    );
    app.create_project(a, json!({"gpu_budget_seconds": 5}))
        .await
        .expect_error(400, "bad_request", Some("name"));
    app.create_project(a, json!({"name": "x", "owner": "me"}))
        .await
        .expect_error(400, "bad_request", Some("owner"));

    app.create_project(a, json!({"name": "Unique"}))
        .await
        .expect(201);
    app.create_project(a, json!({"name": "Unique"}))
        .await
        .expect_error(409, "conflict", Some("name"));
    let other = app
        .create_project(a, json!({"name": "Other"}))
        .await
        .expect(201);
    app.update_project(a, id(&other), json!({"name": "Unique"}), None)
        .await
        .expect_error(409, "conflict", Some("name"));
    app.update_project(a, id(&other), json!({"gpu_budget_seconds": -5}), None)
        .await
        .expect_error(422, "validation_failed", Some("gpu_budget_seconds"));
    app.update_project(
        a,
        id(&other),
        json!({"default_gpu_estimate_seconds": -5}),
        None,
    )
    .await
    .expect_error(
        422,
        "validation_failed",
        Some("default_gpu_estimate_seconds"),
    );
    app.update_project(a, id(&other), json!({"name": ""}), None)
        .await
        .expect_error(422, "validation_failed", Some("name"));
    app.update_project(a, id(&other), json!({"default_retry_policy": {}}), None)
        .await
        .expect_error(400, "bad_request", Some("default_retry_policy"));
    app.update_project(a, id(&other), json!({"name": "y"}), Some("yesterday"))
        .await
        .expect_error(400, "bad_request", Some("If-Match"));
}

async fn project_retry_policy_is_read_and_replaced(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let got = app.get_project_policy(&app.viewer, pid).await.expect(200);
    assert_eq!(got["project_id"], pid);
    let policy = &got["policy"];
    assert_eq!(policy["enabled"], false);
    assert_eq!(policy["max_attempts"], 3);
    assert_eq!(policy["trigger_checks"], json!(["face_confidence"]));
    assert_eq!(policy["seed_variation"], true);
    approx(&policy["cfg_jitter"], 0.5);
    approx(&policy["denoise_jitter"], 0.05);
    assert_eq!(policy["selection_mode"], "first_pass");
    let etag = got["updated_at"].as_str().unwrap().to_owned();

    let new = json!({"enabled": true, "max_attempts": 5, "trigger_checks": ["face_confidence", "black_frames"], "cfg_jitter": 1.5,
        "denoise_jitter": 0.1, "extra_jitter": {"steps": 4}, "selection_mode": "best_of_n", "parallelism": 2});
    let put = app
        .put_project_policy(&app.admin, pid, new.clone(), Some(&etag))
        .await
        .expect(200);
    assert_eq!(put["policy"]["enabled"], true);
    assert_eq!(put["policy"]["max_attempts"], 5);
    assert_eq!(
        put["policy"]["trigger_checks"],
        json!(["black_frames", "face_confidence"])
    );
    assert_eq!(put["policy"]["selection_mode"], "best_of_n");
    assert_eq!(put["policy"]["parallelism"], 2);
    assert_ne!(
        put["updated_at"], got["updated_at"],
        "a save moves the precondition on"
    );
    // The change is what GET now says, and what the project shows.
    let again = app.get_project_policy(&app.viewer, pid).await.expect(200);
    assert_eq!(again["policy"], put["policy"]);
    assert_eq!(
        app.get_project(&app.viewer, pid).await.expect(200)["default_retry_policy"],
        put["policy"]
    );

    // Saving against the old precondition is a conflict and changes nothing.
    app.put_project_policy(&app.admin, pid, json!({"max_attempts": 2}), Some(&etag))
        .await
        .expect_error(412, "precondition_failed", Some("If-Match"));
    assert_eq!(
        app.get_project_policy(&app.viewer, pid).await.expect(200)["policy"]["max_attempts"],
        5
    );
    // A PUT replaces the whole policy: absent fields take their defaults.
    let put = app
        .put_project_policy(&app.admin, pid, json!({"enabled": true}), None)
        .await
        .expect(200);
    assert_eq!(put["policy"]["max_attempts"], 3);
    app.get_project_policy(&app.viewer, 999_999)
        .await
        .expect_error(404, "not_found", None);
    app.put_project_policy(&app.admin, 999_999, json!({}), None)
        .await
        .expect_error(404, "not_found", None);
}

/// Issue 12 item 8: lowering a budget below spent + reserved is a 409 giving both figures,
/// unless the request says it means it.
async fn a_budget_below_what_is_spent_needs_to_be_meant(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({"gpu_budget_seconds": 1000.0})).await);
    let st = id(&app.scene_type(pid, json!({})).await);
    app.run_scripted(st, &[0.9]).await;
    app.run_scripted(st, &[0.9]).await;
    let spent = 2.0 * SCRIPTED_GPU;
    let e = app
        .update_project(&app.admin, pid, json!({"gpu_budget_seconds": 10.0}), None)
        .await
        .expect_error(409, "conflict", Some("gpu_budget_seconds"));
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("spent (16.0 GPU-s)")
            && msg.contains("reserved (0.0 GPU-s)")
            && msg.contains("allow_below_spent"),
        "{msg}"
    );
    // The same figures as numbers, for a client to show.
    approx(&e["error"]["budget"]["requested_seconds"], 10.0);
    approx(&e["error"]["budget"]["spent_seconds"], spent);
    approx(&e["error"]["budget"]["reserved_seconds"], 0.0);
    approx(
        &app.get_project(&app.viewer, pid).await.expect(200)["gpu_budget_seconds"],
        1000.0,
    );
    // Exactly what is spent, or more, is fine.
    app.update_project(&app.admin, pid, json!({"gpu_budget_seconds": spent}), None)
        .await
        .expect(200);
    // Meant: the body says so, or the query forces it.
    let p = app
        .update_project(
            &app.admin,
            pid,
            json!({"gpu_budget_seconds": 10.0, "allow_below_spent": true}),
            None,
        )
        .await
        .expect(200);
    approx(&p["gpu_budget_seconds"], 10.0);
    let etag = p["updated_at"].as_str().unwrap().to_owned();
    let p = app
        .patch(
            &format!("/api/projects/{pid}?force=true"),
            &app.admin,
            json!({"gpu_budget_seconds": 5.0}),
            Some(&etag),
        )
        .await
        .expect(200);
    approx(&p["gpu_budget_seconds"], 5.0);
    approx(&p["gpu_remaining_seconds"], 0.0);
}

/// Issue 15 item 3: a delete with work in flight is refused with the counts unless forced;
/// forcing cancels the work, and the engine and server carry on.
async fn deleting_a_project_with_work_in_flight_needs_force(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let st = id(&app.scene_type(pid, json!({})).await);
    let other_pid = id(&app.project(json!({})).await);
    let other_st = id(&app.scene_type(other_pid, json!({})).await);
    app.submit(st).await;
    app.submit(st).await;
    let e =
        app.delete_scene_type(&app.admin, st)
            .await
            .expect_error(409, "conflict", Some("force"));
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("2 segments in progress, 2 attempts (0 generating, 0 scoring, 2 queued)"),
        "{msg}"
    );
    assert!(msg.contains("?force=true"), "{msg}");
    app.delete_project(&app.admin, pid)
        .await
        .expect_error(409, "conflict", Some("force"));
    app.get_project(&app.viewer, pid).await.expect(200);

    app.delete(&format!("/api/projects/{pid}?force=true"), &app.admin)
        .await
        .expect(204);
    app.get_project(&app.viewer, pid)
        .await
        .expect_error(404, "not_found", None);
    // The engine runs on: the deleted project's work is gone, other projects' work runs.
    let other = app.run_scripted(other_st, &[0.9]).await;
    assert_eq!(other["status"], "passed");
    // A scene type with nothing in flight deletes without force.
    app.delete_scene_type(&app.admin, other_st)
        .await
        .expect(204);
    app.delete(
        &format!("/api/projects/{other_pid}?force=maybe"),
        &app.admin,
    )
    .await
    .expect_error(400, "bad_request", Some("query"));
    app.delete_project(&app.admin, 999_999)
        .await
        .expect_error(404, "not_found", None);
}
