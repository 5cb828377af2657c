//! Segments: submission (one and batch), listing with filters and cursor pagination, detail,
//! the retry history, selection and cancellation.

use crate::helpers::*;
use retake_store::Store;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

retake_store::contract_tests!(
    segments_are_submitted_one_at_a_time_or_in_batches,
    segments_are_listed_with_filters_and_cursor_pagination,
    retry_history_explains_every_attempt,
    only_a_passing_attempt_can_be_selected,
    queued_segments_can_be_cancelled,
    parameters_are_checked_against_the_scene_type,
);

async fn segments_are_submitted_one_at_a_time_or_in_batches(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let st = app.scene_type(pid, json!({})).await;
    let sid = id(&st);

    let one = app
        .submit_segments(&app.creator, json!({"scene_type_id": sid, "label": "shot 12", "parameters": {"cfg_scale": 6.5, "seed": 1234, "prompt": "a face"}, "rng_seed": 42}))
        .await
        .expect(201);
    let segs = one["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 1);
    let s = &segs[0];
    assert_eq!(s["status"], "queued");
    assert_eq!(s["label"], "shot 12");
    assert_eq!(s["project_id"], pid);
    assert_eq!(s["scene_type_id"], sid);
    assert_eq!(s["scene_type_name"], st["name"]);
    assert_eq!(s["rng_seed"], 42);
    assert_eq!(
        s["attempt_count"], 1,
        "attempt 1 is queued with the segment"
    );
    assert_eq!(s["retry_count"], 0);
    // Submitted parameters are laid over the scene type's defaults.
    approx(&s["parameters"]["cfg_scale"], 6.5);
    approx(&s["parameters"]["denoise_strength"], 0.9);
    assert_eq!(s["parameters"]["seed"], 1234);
    assert_eq!(s["parameters"]["prompt"], "a face");

    let batch = app
        .submit_segments(&app.creator, json!({"segments": [{"scene_type_id": sid, "label": "a"}, {"scene_type_id": sid, "label": "b"}, {"scene_type_id": sid}]}))
        .await
        .expect(201);
    let segs = batch["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 3);
    let ids: BTreeSet<i64> = segs.iter().map(id).collect();
    assert_eq!(ids.len(), 3);
    assert!(
        segs.iter().all(|s| s["rng_seed"].as_u64().is_some()),
        "an absent rng_seed is drawn and recorded"
    );

    // The first attempt runs with the submitted seed.
    app.faces(id(s), &[0.9]);
    app.run().await;
    let h = app.get_retry_history(&app.viewer, id(s)).await.expect(200);
    assert_eq!(h["attempts"][0]["seed"], 1234);

    // A batch is all or nothing.
    let before = app.list_segments(&app.viewer, "").await.expect(200)["items"]
        .as_array()
        .unwrap()
        .len();
    app.submit_segments(
        &app.creator,
        json!({"segments": [{"scene_type_id": sid}, {"scene_type_id": 999_999}]}),
    )
    .await
    .expect_error(422, "validation_failed", Some("segments[1].scene_type_id"));
    app.submit_segments(&app.creator, json!({"segments": [{"scene_type_id": sid}, {"scene_type_id": sid, "parameters": {"seed": -1}}]}))
        .await
        .expect_error(422, "validation_failed", Some("segments[1].parameters.seed"));
    assert_eq!(
        app.list_segments(&app.viewer, "").await.expect(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        before
    );

    app.submit_segments(&app.creator, json!({"segments": []}))
        .await
        .expect_error(422, "validation_failed", Some("segments"));
    let too_many: Vec<_> = (0..1001).map(|_| json!({"scene_type_id": sid})).collect();
    app.submit_segments(&app.creator, json!({"segments": too_many}))
        .await
        .expect_error(422, "validation_failed", Some("segments"));
    app.submit_segments(&app.creator, json!({"scene_type_id": 999_999}))
        .await
        .expect_error(422, "validation_failed", Some("scene_type_id"));
    app.submit_segments(
        &app.creator,
        json!({"scene_type_id": sid, "label": "l".repeat(201)}),
    )
    .await
    .expect_error(422, "validation_failed", Some("label"));
    app.submit_segments(
        &app.creator,
        json!({"scene_type_id": sid, "parameters": {"seed": 9_007_199_254_740_992u64}}),
    )
    .await
    .expect_error(422, "validation_failed", Some("parameters.seed"));
    app.submit_segments(
        &app.creator,
        json!({"scene_type_id": sid, "parameters": {"cfg_scale": 1000}}),
    )
    .await
    .expect_error(422, "validation_failed", Some("parameters.cfg_scale"));
    app.submit_segments(
        &app.creator,
        json!({"scene_type_id": sid, "rng_seed": u64::MAX}),
    )
    .await
    .expect_error(422, "validation_failed", Some("rng_seed"));
    app.submit_segments(
        &app.creator,
        json!({"scene_type_id": sid, "priority": "high"}),
    )
    .await
    .expect_error(400, "bad_request", Some("priority"));
    app.submit_segments(&app.creator, json!({"label": "no scene"}))
        .await
        .expect_error(400, "bad_request", Some("scene_type_id"));
}

async fn segments_are_listed_with_filters_and_cursor_pagination(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let p1 = id(&app.project(json!({})).await);
    let p2 = id(&app.project(json!({})).await);
    let a = id(&app.scene_type(p1, json!({})).await);
    let b = id(&app.scene_type(p2, json!({})).await);
    let mut in_a = vec![];
    for _ in 0..5 {
        in_a.push(id(&app.submit(a).await));
    }
    let in_b = [id(&app.submit(b).await), id(&app.submit(b).await)];

    // Pages of 2, newest first, until next_cursor is null: every segment once.
    let mut seen = vec![];
    let mut cursor: Option<i64> = None;
    let mut pages = 0;
    loop {
        let q = match cursor {
            Some(c) => format!("?project_id={p1}&limit=2&cursor={c}"),
            None => format!("?project_id={p1}&limit=2"),
        };
        let page = app.list_segments(&app.viewer, &q).await.expect(200);
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(id));
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    let mut expected = in_a.clone();
    expected.reverse();
    assert_eq!(seen, expected, "newest first, no gaps, no repeats");

    let by_scene = app
        .list_segments(&app.viewer, &format!("?scene_type_id={b}"))
        .await
        .expect(200);
    let ids: BTreeSet<i64> = by_scene["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(ids, in_b.into_iter().collect());
    assert!(by_scene["next_cursor"].is_null());

    // Status filter: run one segment to completion.
    app.faces(in_a[0], &[0.9]);
    app.faces(in_a[1], &[0.9]);
    for s in &in_a[2..] {
        app.cancel_segment(&app.creator, *s).await.expect(200);
    }
    app.cancel_segment(&app.creator, in_b[0]).await.expect(200);
    app.cancel_segment(&app.creator, in_b[1]).await.expect(200);
    app.run().await;
    let passed = app
        .list_segments(&app.viewer, "?status=passed")
        .await
        .expect(200);
    let ids: BTreeSet<i64> = passed["items"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(ids, [in_a[0], in_a[1]].into_iter().collect());
    assert!(passed["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "passed"));
    let cancelled = app
        .list_segments(&app.viewer, &format!("?status=cancelled&project_id={p1}"))
        .await
        .expect(200);
    assert_eq!(cancelled["items"].as_array().unwrap().len(), 3);
    assert!(app
        .list_segments(&app.viewer, "?status=needs_review")
        .await
        .expect(200)["items"]
        .as_array()
        .unwrap()
        .is_empty());

    app.list_segments(&app.viewer, "?status=bogus")
        .await
        .expect_error(422, "validation_failed", Some("status"));
    app.list_segments(&app.viewer, "?limit=0")
        .await
        .expect_error(422, "validation_failed", Some("limit"));
    app.list_segments(&app.viewer, "?limit=201")
        .await
        .expect_error(422, "validation_failed", Some("limit"));
    app.list_segments(&app.viewer, "?limit=-1")
        .await
        .expect_error(400, "bad_request", Some("query"));
    app.list_segments(&app.viewer, "?limit=ten")
        .await
        .expect_error(400, "bad_request", Some("query"));
    app.list_segments(&app.viewer, "?cursor=abc")
        .await
        .expect_error(400, "bad_request", Some("query"));
    app.list_segments(&app.viewer, "?sort=asc")
        .await
        .expect_error(400, "bad_request", Some("query"));
}

async fn retry_history_explains_every_attempt(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let st = app.retrying_scene_type(pid, 3).await;
    let s = app.submit(id(&st)).await;
    let sid = id(&s);
    app.faces(sid, &[0.42, 0.87]);
    app.run().await;

    let h = app.get_retry_history(&app.viewer, sid).await.expect(200);
    assert_eq!(h["segment_id"], sid);
    assert_eq!(h["project_id"], pid);
    assert_eq!(h["scene_type_id"], id(&st));
    assert_eq!(h["scene_type_name"], st["name"]);
    assert_eq!(h["status"], "passed");
    assert_eq!(h["retry_count"], 1);
    assert_eq!(h["max_attempts"], 3);
    assert_eq!(h["trigger_checks"], json!(["face_confidence"]));
    assert_eq!(h["selected_attempt_number"], 2);
    approx(&h["total_gpu_seconds"], 2.0 * SCRIPTED_GPU);
    assert_eq!(
        h["summary"],
        format!("Segment {sid}: failed attempt 1 (face 0.42), passed attempt 2 (face 0.87)")
    );
    assert_eq!(h["rng_seed"], s["rng_seed"]);

    let attempts = h["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    let numbers: Vec<u64> = attempts
        .iter()
        .map(|a| a["attempt_number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 2], "attempts in order");
    assert_ne!(
        attempts[0]["seed"], attempts[1]["seed"],
        "a retry draws a new seed"
    );

    let first = &attempts[0];
    assert_eq!(first["status"], "failed");
    assert_eq!(first["is_selected"], false);
    approx(&first["gpu_seconds"], SCRIPTED_GPU);
    let reason = first["failure_reason"]
        .as_str()
        .expect("a failed attempt says why");
    assert!(
        reason.contains("face_confidence") && reason.contains("0.42"),
        "{reason}"
    );
    assert_eq!(
        first["parameter_diff"],
        json!({}),
        "attempt 1 runs the submitted parameters"
    );
    let face = first["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "face_confidence")
        .unwrap();
    approx(&face["score"], 0.42);
    approx(&face["warn"], 0.7);
    approx(&face["fail"], 0.5);
    assert_eq!(face["verdict"], "fail");
    assert_eq!(face["trigger"], true);
    let black = first["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "black_frames")
        .unwrap();
    approx(&black["score"], 0.99);
    approx(&black["warn"], 0.9);
    approx(&black["fail"], 0.8);
    assert_eq!(black["verdict"], "pass");
    assert_eq!(black["trigger"], false);
    assert!(first["overall"].as_f64().is_some());
    assert!(first["started_at"].is_string() && first["finished_at"].is_string());

    let second = &attempts[1];
    assert_eq!(second["status"], "passed");
    assert_eq!(second["is_selected"], true);
    assert!(second["failure_reason"].is_null());
    approx(&second["gpu_seconds"], SCRIPTED_GPU);
    let face = second["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "face_confidence")
        .unwrap();
    approx(&face["score"], 0.87);
    assert_eq!(face["verdict"], "pass");
    // The retry jittered cfg_scale (±0.5 by default): the diff names it, from the original.
    let diff = &second["parameter_diff"];
    approx(&diff["cfg_scale"]["from"], 7.0);
    let to = diff["cfg_scale"]["to"]
        .as_f64()
        .expect("cfg_scale was varied");
    assert!((6.5..=7.5).contains(&to) && to != 7.0, "{to}");
    approx(&second["parameters"]["cfg_scale"], to);
    approx(&second["original_parameters"]["cfg_scale"], 7.0);
    assert!(
        second["why"].as_str().is_some_and(|w| !w.is_empty()),
        "a retry says why it exists"
    );
    assert!(second["jitter"].is_object());
    assert!(second["finished_at"].is_string());

    // The segment view carries the same sentence.
    let seg = app.get_segment(&app.viewer, sid).await.expect(200);
    assert_eq!(seg["summary"], h["summary"]);
    assert_eq!(seg["retry_count"], 1);
    assert_eq!(seg["selected_attempt_number"], 2);
    assert_eq!(seg["status"], "passed");

    app.get_retry_history(&app.viewer, 999_999)
        .await
        .expect_error(404, "not_found", None);
    app.get_segment(&app.viewer, 999_999)
        .await
        .expect_error(404, "not_found", None);
}

async fn only_a_passing_attempt_can_be_selected(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    // Best of 3: every attempt runs, both later ones pass; the best is picked automatically.
    let st = app
        .scene_type(pid, json!({"retry_policy": {"enabled": true, "max_attempts": 3, "trigger_checks": ["face_confidence"], "selection_mode": "best_of_n"}}))
        .await;
    let h = app.run_scripted(id(&st), &[0.3, 0.8, 0.95]).await;
    let sid = h["segment_id"].as_i64().unwrap();
    assert_eq!(h["status"], "passed");
    assert_eq!(h["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(h["selected_attempt_number"], 3);

    // A person prefers attempt 2.
    let seg = app.select_attempt(&app.creator, sid, 2).await.expect(200);
    assert_eq!(seg["selected_attempt_number"], 2);
    assert_eq!(seg["status"], "passed");
    let h = app.get_retry_history(&app.viewer, sid).await.expect(200);
    let selected: Vec<u64> = h["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["is_selected"] == true)
        .map(|a| a["attempt_number"].as_u64().unwrap())
        .collect();
    assert_eq!(selected, vec![2], "exactly one selected attempt");
    assert!(h["attempts"][1]["selected_by"]
        .as_str()
        .unwrap()
        .contains("creator"));
    assert_eq!(h["attempts"][1]["human_override"], false);

    // A failed attempt cannot be selected (the review queue can accept it as an override).
    let r = app.select_attempt(&app.creator, sid, 1).await;
    r.expect_error(409, "conflict", Some("attempt_number"));
    assert_eq!(
        app.get_segment(&app.viewer, sid).await.expect(200)["selected_attempt_number"],
        2
    );
    app.select_attempt(&app.creator, sid, 9)
        .await
        .expect_error(404, "not_found", None);
    app.select_attempt(&app.creator, 999_999, 1)
        .await
        .expect_error(404, "not_found", None);
    app.select_attempt(&app.creator, sid, 0)
        .await
        .expect_error(404, "not_found", None);
}

async fn queued_segments_can_be_cancelled(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({"gpu_budget_seconds": 100.0})).await);
    let st = app.scene_type(pid, json!({})).await;
    let s = app.submit(id(&st)).await;
    let sid = id(&s);
    let seg = app.cancel_segment(&app.creator, sid).await.expect(200);
    assert_eq!(seg["status"], "cancelled");
    app.run().await;
    let h = app.get_retry_history(&app.viewer, sid).await.expect(200);
    assert_eq!(h["status"], "cancelled");
    assert_eq!(
        h["attempts"][0]["status"], "cancelled",
        "the queued attempt never runs"
    );
    approx(&h["total_gpu_seconds"], 0.0);
    let p = app.get_project(&app.viewer, pid).await.expect(200);
    approx(&p["gpu_spent_seconds"], 0.0);
    approx(&p["gpu_reserved_seconds"], 0.0);
    // A finished segment cannot be cancelled.
    app.cancel_segment(&app.creator, sid)
        .await
        .expect_error(409, "conflict", Some("status"));
    let done = app.run_scripted(id(&st), &[0.9]).await;
    app.cancel_segment(&app.creator, done["segment_id"].as_i64().unwrap())
        .await
        .expect_error(409, "conflict", Some("status"));
    app.cancel_segment(&app.creator, 999_999)
        .await
        .expect_error(404, "not_found", None);
}

/// Issue 15 item 4: `{"cfg_scale": "high", "steps": "many"}` was accepted and its retries
/// skipped cfg jitter. Types and ranges are checked at submission, naming the field.
async fn parameters_are_checked_against_the_scene_type(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let st = id(&app
        .scene_type(pid, json!({"default_parameters": {"cfg_scale": 7.0, "denoise_strength": 0.9, "frames": 48, "prompt": "a face"}}))
        .await);
    let submit = |params: serde_json::Value| {
        let app = &app;
        async move {
            app.submit_segments(
                &app.creator,
                json!({"scene_type_id": st, "parameters": params}),
            )
            .await
        }
    };
    let e = submit(json!({"cfg_scale": "high", "steps": "many"}))
        .await
        .expect_error(422, "validation_failed", Some("parameters.cfg_scale"));
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("a number in (0, 100]"),
        "{e}"
    );
    submit(json!({"steps": "many"})).await.expect_error(
        422,
        "validation_failed",
        Some("parameters.steps"),
    );
    submit(json!({"steps": 12.5})).await.expect_error(
        422,
        "validation_failed",
        Some("parameters.steps"),
    );
    submit(json!({"frames": "lots"})).await.expect_error(
        422,
        "validation_failed",
        Some("parameters.frames"),
    );
    submit(json!({"prompt": 42})).await.expect_error(
        422,
        "validation_failed",
        Some("parameters.prompt"),
    );
    submit(json!({"denoise_strength": 2})).await.expect_error(
        422,
        "validation_failed",
        Some("parameters.denoise_strength"),
    );
    // In a batch, the field names the segment.
    app.submit_segments(
        &app.creator,
        json!({"segments": [{"scene_type_id": st}, {"scene_type_id": st, "parameters": {"cfg_scale": "high"}}]}),
    )
    .await
    .expect_error(422, "validation_failed", Some("segments[1].parameters.cfg_scale"));
    assert!(
        app.list_segments(&app.viewer, "").await.expect(200)["items"]
            .as_array()
            .unwrap()
            .is_empty(),
        "refused submissions store nothing"
    );
    let ok = submit(json!({"cfg_scale": 6.5, "steps": 30, "prompt": "another face", "lora": "x"}))
        .await
        .expect(201);
    approx(&ok["segments"][0]["parameters"]["cfg_scale"], 6.5);
}
