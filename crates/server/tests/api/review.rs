//! The review queue and its actions: accept (a human override, even of a failing attempt),
//! re-run (a new attempt the budget must cover) and reject.

use crate::helpers::*;
use retake_store::Store;
use serde_json::json;
use std::sync::Arc;

retake_store::contract_tests!(
    escalated_segments_wait_in_the_review_queue_with_their_evidence,
    a_reviewer_can_accept_a_failing_attempt_as_an_override,
    a_rerun_creates_an_attempt_the_budget_must_cover,
    a_rejected_segment_is_closed,
    a_rerun_starts_a_round_the_api_shows,
);

/// A scene type with retries off: a failing segment goes straight to review.
async fn reviewed(app: &TestApp, budget: Option<f64>) -> (i64, i64) {
    let pid = id(&app.project(json!({"gpu_budget_seconds": budget})).await);
    let st = app.scene_type(pid, json!({})).await;
    (pid, id(&st))
}

async fn escalated_segments_wait_in_the_review_queue_with_their_evidence(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let (pid, st) = reviewed(&app, Some(200.0)).await;
    let h = app.run_scripted(st, &[0.3]).await;
    let sid = h["segment_id"].as_i64().unwrap();
    assert_eq!(h["status"], "needs_review");
    assert_eq!(
        h["review_reason"], "retry_disabled",
        "retries are off unless turned on"
    );
    assert!(h["decision_note"].as_str().is_some_and(|n| !n.is_empty()));
    app.run_scripted(st, &[0.9]).await; // passes: not in review

    let q = app.review_queue(&app.viewer, "").await.expect(200);
    let items = q["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item["segment"]["id"], sid);
    assert_eq!(item["segment"]["status"], "needs_review");
    assert_eq!(item["history"]["review_reason"], "retry_disabled");
    assert_eq!(item["history"]["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(
        item["history"]["attempts"][0]["checks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    approx(&item["rerun_estimate_gpu_seconds"], DEFAULT_ESTIMATE);
    approx(
        &item["project_remaining_gpu_seconds"],
        200.0 - 2.0 * SCRIPTED_GPU,
    );
    assert!(q["next_cursor"].is_null());

    assert_eq!(
        app.review_queue(&app.viewer, &format!("?project_id={pid}"))
            .await
            .expect(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.review_queue(&app.viewer, &format!("?scene_type_id={st}"))
            .await
            .expect(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(app
        .review_queue(&app.viewer, "?project_id=999999")
        .await
        .expect(200)["items"]
        .as_array()
        .unwrap()
        .is_empty());
    let page = app.review_queue(&app.viewer, "?limit=1").await.expect(200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    app.review_queue(&app.viewer, "?limit=0")
        .await
        .expect_error(422, "validation_failed", Some("limit"));
    app.review_queue(&app.viewer, "?status=passed")
        .await
        .expect_error(400, "bad_request", Some("query"));
}

async fn a_reviewer_can_accept_a_failing_attempt_as_an_override(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let (_, st) = reviewed(&app, None).await;
    let h = app.run_scripted(st, &[0.3]).await;
    let sid = h["segment_id"].as_i64().unwrap();

    app.accept(&app.creator, sid, json!({"attempt_number": 2}))
        .await
        .expect_error(404, "not_found", None);
    app.accept(&app.creator, sid, json!({})).await.expect_error(
        400,
        "bad_request",
        Some("attempt_number"),
    );
    app.accept(&app.creator, sid, json!({"attempt_number": -1}))
        .await
        .expect_error(400, "bad_request", Some("attempt_number"));

    let seg = app
        .accept(
            &app.creator,
            sid,
            json!({"attempt_number": 1, "note": "the face is fine at this size"}),
        )
        .await
        .expect(200);
    assert_eq!(seg["status"], "approved");
    assert_eq!(seg["selected_attempt_number"], 1);
    let h = app.get_retry_history(&app.viewer, sid).await.expect(200);
    let a = &h["attempts"][0];
    assert_eq!(a["status"], "failed", "the attempt's own verdict is kept");
    assert_eq!(a["is_selected"], true);
    assert_eq!(a["human_override"], true);
    let by = a["selected_by"].as_str().unwrap();
    assert!(
        by.contains("creator") && by.contains("the face is fine"),
        "{by}"
    );
    assert!(app.review_queue(&app.viewer, "").await.expect(200)["items"]
        .as_array()
        .unwrap()
        .is_empty());

    // Only a segment in review can be accepted.
    app.accept(&app.creator, sid, json!({"attempt_number": 1}))
        .await
        .expect_error(409, "conflict", Some("status"));
    let passed = app.run_scripted(st, &[0.9]).await;
    app.accept(
        &app.creator,
        passed["segment_id"].as_i64().unwrap(),
        json!({"attempt_number": 1}),
    )
    .await
    .expect_error(409, "conflict", Some("status"));
    app.accept(&app.creator, 999_999, json!({"attempt_number": 1}))
        .await
        .expect_error(404, "not_found", None);
}

async fn a_rerun_creates_an_attempt_the_budget_must_cover(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let (pid, st) = reviewed(&app, Some(100.0)).await;
    let h = app.run_scripted(st, &[0.3, 0.9]).await;
    let sid = h["segment_id"].as_i64().unwrap();
    assert_eq!(h["status"], "needs_review");

    app.rerun(&app.creator, sid, json!({"jitter_scale": 10}))
        .await
        .expect_error(422, "validation_failed", Some("jitter_scale"));
    app.rerun(&app.creator, sid, json!({"jitter_scale": 0.5}))
        .await
        .expect_error(422, "validation_failed", Some("jitter_scale"));
    app.rerun(
        &app.creator,
        sid,
        json!({"parameters": {"cfg_scale": 1000}}),
    )
    .await
    .expect_error(422, "validation_failed", Some("parameters.cfg_scale"));
    app.rerun(&app.creator, sid, json!({"speed": 2}))
        .await
        .expect_error(400, "bad_request", Some("speed"));
    assert_eq!(
        app.get_segment(&app.viewer, sid).await.expect(200)["attempt_count"],
        1,
        "refused re-runs create nothing"
    );

    let r = app
        .rerun(
            &app.creator,
            sid,
            json!({"parameters": {"cfg_scale": 5.0}, "jitter_scale": 2}),
        )
        .await
        .expect(200);
    assert_eq!(r["attempt"]["attempt_number"], 2);
    assert_eq!(r["attempt"]["status"], "queued");
    approx(&r["estimate_gpu_seconds"], DEFAULT_ESTIMATE);
    assert_ne!(r["segment"]["status"], "needs_review");
    assert_eq!(r["segment"]["attempt_count"], 2);
    assert!(r["attempt"]["why"].as_str().unwrap().contains("creator"));
    app.run().await;
    let h = app.get_retry_history(&app.viewer, sid).await.expect(200);
    assert_eq!(h["status"], "passed");
    assert_eq!(h["selected_attempt_number"], 2);
    let cfg = h["attempts"][1]["parameters"]["cfg_scale"]
        .as_f64()
        .unwrap();
    assert!((4.0..=6.0).contains(&cfg), "cfg {cfg} is 5.0 ± 2×0.5");
    let p = app.get_project(&app.viewer, pid).await.expect(200);
    approx(&p["gpu_spent_seconds"], 2.0 * SCRIPTED_GPU);

    // A re-run nothing can pay for is refused, and creates nothing.
    let h = app.run_scripted(st, &[0.3]).await;
    let sid = h["segment_id"].as_i64().unwrap();
    let spent = 3.0 * SCRIPTED_GPU;
    app.update_project(
        &app.admin,
        pid,
        json!({"gpu_budget_seconds": spent + 1.0}),
        None,
    )
    .await
    .expect(200);
    let b =
        app.rerun(&app.creator, sid, json!({}))
            .await
            .expect_error(409, "conflict", Some("budget"));
    assert!(b["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    let h = app.get_retry_history(&app.viewer, sid).await.expect(200);
    assert_eq!(h["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(h["status"], "needs_review");
    // Once the budget is raised it goes through.
    app.update_project(&app.admin, pid, json!({"gpu_budget_seconds": 1000.0}), None)
        .await
        .expect(200);
    app.rerun(&app.creator, sid, json!({})).await.expect(200);
    // Only a segment in review can be re-run.
    app.rerun(&app.creator, sid, json!({}))
        .await
        .expect_error(409, "conflict", Some("status"));
    app.rerun(&app.creator, 999_999, json!({}))
        .await
        .expect_error(404, "not_found", None);
}

async fn a_rejected_segment_is_closed(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let (_, st) = reviewed(&app, None).await;
    let h = app.run_scripted(st, &[0.3]).await;
    let sid = h["segment_id"].as_i64().unwrap();
    let seg = app
        .reject(&app.creator, sid, json!({"note": "wrong actor"}))
        .await
        .expect(200);
    assert_eq!(seg["status"], "rejected");
    assert!(seg["decision_note"]
        .as_str()
        .unwrap()
        .contains("wrong actor"));
    assert!(app.review_queue(&app.viewer, "").await.expect(200)["items"]
        .as_array()
        .unwrap()
        .is_empty());
    app.reject(&app.creator, sid, json!({}))
        .await
        .expect_error(409, "conflict", Some("status"));
    app.rerun(&app.creator, sid, json!({}))
        .await
        .expect_error(409, "conflict", Some("status"));
    app.reject(&app.creator, 999_999, json!({}))
        .await
        .expect_error(404, "not_found", None);
    app.reject(&app.creator, sid, json!({"note": 5}))
        .await
        .expect_error(400, "bad_request", Some("note"));
}

/// Issue 15 item 5 and issue 12 item 2: after a human re-run the counts are per round, the API
/// shows each attempt's round and who acted, and only the new round decides.
async fn a_rerun_starts_a_round_the_api_shows(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let st = id(&app.retrying_scene_type(pid, 2).await);
    let h = app.run_scripted(st, &[0.3, 0.35, 0.2, 0.9]).await;
    let sid = h["segment_id"].as_i64().unwrap();
    assert_eq!(h["status"], "needs_review");
    assert_eq!(h["round"], 1);
    assert_eq!(h["round_retry_count"], 1);
    assert_eq!(h["round_summary"], "retries 1 of up to 1");

    app.rerun(&app.creator, sid, json!({})).await.expect(200);
    app.run().await;
    let h = app.get_retry_history(&app.viewer, sid).await.expect(200);
    let rounds: Vec<i64> = h["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["round"].as_i64().unwrap())
        .collect();
    assert_eq!(
        rounds,
        [1, 1, 2, 2],
        "the re-run and its own retry are round 2"
    );
    assert_eq!(h["attempts"][2]["requested_by"], "creator (creator)");
    assert!(h["attempts"][3]["requested_by"].is_null());
    assert_eq!(
        h["status"], "passed",
        "round 2 has its own max_attempts: its retry passed"
    );
    assert_eq!(h["selected_attempt_number"], 4);
    assert_eq!(h["round"], 2);
    assert_eq!(h["round_retry_count"], 1);
    assert_eq!(h["round_summary"], "round 2: retries 1 of up to 1");
    assert_eq!(h["retry_count"], 3);
    assert_eq!(
        h["human_actions"],
        json!([{"kind": "rerun", "attempt_number": 3, "actor": "creator (creator)"}])
    );
    assert_eq!(
        h["summary"],
        format!("Segment {sid}: failed attempt 1 (face 0.30), failed attempt 2 (face 0.35); re-run by creator (creator): failed attempt 3 (face 0.20), passed attempt 4 (face 0.90)")
    );
    let seg = app.get_segment(&app.viewer, sid).await.expect(200);
    assert_eq!(
        (seg["round"].as_i64(), seg["round_retry_count"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(seg["summary"], h["summary"]);

    // An acceptance is named in the sentence too.
    let h = app.run_scripted(st, &[0.3, 0.4]).await;
    let sid = h["segment_id"].as_i64().unwrap();
    app.accept(&app.creator, sid, json!({"attempt_number": 2}))
        .await
        .expect(200);
    let h = app.get_retry_history(&app.viewer, sid).await.expect(200);
    assert_eq!(
        h["summary"],
        format!("Segment {sid}: failed attempt 1 (face 0.30), failed attempt 2 (face 0.40); attempt 2 accepted by creator (creator)")
    );
}
