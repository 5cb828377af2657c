//! `POST /api/attempts/{id}/qa`: scores from an external QA service for attempts waiting in
//! `scoring`. A duplicate delivery changes nothing.

use crate::helpers::*;
use retake_store::Store;
use serde_json::{json, Value};
use std::sync::Arc;

retake_store::contract_tests!(
    external_scores_decide_once_even_when_delivered_twice,
    external_qa_input_is_validated,
    a_qa_error_goes_to_review
);

async fn scoring_scene(app: &TestApp) -> i64 {
    let pid = id(&app.project(json!({})).await);
    let st = app
        .scene_type(pid, json!({"backend_config": {"external_qa": true}, "retry_policy": {"enabled": true, "max_attempts": 3, "trigger_checks": ["face_confidence"]}}))
        .await;
    id(&st)
}

fn scores(face: f64) -> Value {
    json!({"scores": [{"check": "face_confidence", "score": face, "details": {"model": "ext-1"}}, {"check": "black_frames", "score": 0.99}]})
}

async fn external_scores_decide_once_even_when_delivered_twice(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let st = scoring_scene(&app).await;
    let s = app.submit(st).await;
    let sid = id(&s);
    app.run().await;
    let h = app.get_retry_history(&app.viewer, sid).await.expect(200);
    let a1 = &h["attempts"][0];
    assert_eq!(
        a1["status"], "scoring",
        "the attempt waits for the external QA service"
    );
    approx(&a1["gpu_seconds"], SCRIPTED_GPU);
    let a1 = id(a1);

    let r = app
        .external_qa(&app.creator, a1, scores(0.3))
        .await
        .expect(200);
    assert_eq!(r["applied"], true);
    assert!(
        r["decision"].as_str().is_some_and(|d| d.contains("retry")),
        "{r}"
    );
    assert_eq!(r["segment_status"], "retrying");
    let again = app
        .external_qa(&app.creator, a1, scores(0.3))
        .await
        .expect(200);
    assert_eq!(
        again["applied"], false,
        "a duplicate delivery is recognised"
    );
    // Even a different late result for a judged attempt changes nothing.
    assert_eq!(
        app.external_qa(&app.creator, a1, scores(0.99))
            .await
            .expect(200)["applied"],
        false
    );

    let h = app.get_retry_history(&app.viewer, sid).await.expect(200);
    let attempts = h["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "exactly one retry");
    assert_eq!(attempts[0]["status"], "failed");
    assert_eq!(attempts[0]["qa_source"], "api:creator");
    let face = attempts[0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "face_confidence")
        .unwrap();
    approx(&face["score"], 0.3);
    assert_eq!(face["details"]["model"], "ext-1");
    assert_eq!(attempts[1]["status"], "queued");

    app.run().await;
    let h = app.get_retry_history(&app.viewer, sid).await.expect(200);
    let a2 = id(&h["attempts"][1]);
    assert_eq!(h["attempts"][1]["status"], "scoring");
    let r = app
        .external_qa(&app.admin, a2, scores(0.91))
        .await
        .expect(200);
    assert_eq!(r["applied"], true);
    assert_eq!(r["segment_status"], "passed");
    assert_eq!(
        app.external_qa(&app.admin, a2, scores(0.91))
            .await
            .expect(200)["applied"],
        false
    );
    let h = app.get_retry_history(&app.viewer, sid).await.expect(200);
    assert_eq!(h["status"], "passed");
    assert_eq!(h["selected_attempt_number"], 2);
    assert_eq!(h["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(
        h["summary"],
        format!("Segment {sid}: failed attempt 1 (face 0.30), passed attempt 2 (face 0.91)")
    );
}

async fn external_qa_input_is_validated(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let st = scoring_scene(&app).await;
    let s = app.submit(st).await;
    // Not scoring yet: still queued.
    let queued = id(&app.get_retry_history(&app.viewer, id(&s)).await.expect(200)["attempts"][0]);
    app.external_qa(&app.creator, queued, scores(0.9))
        .await
        .expect_error(409, "conflict", Some("status"));
    app.run().await;

    let c = &app.creator;
    app.external_qa(c, queued, json!({})).await.expect_error(
        422,
        "validation_failed",
        Some("scores"),
    );
    app.external_qa(c, queued, json!({"scores": []}))
        .await
        .expect_error(422, "validation_failed", Some("scores"));
    app.external_qa(
        c,
        queued,
        json!({"scores": [{"check": "face_confidence", "score": 1.5}]}),
    )
    .await
    .expect_error(422, "validation_failed", Some("scores[0].score"));
    app.external_qa(
        c,
        queued,
        json!({"scores": [{"check": "face_confidence", "score": -0.1}]}),
    )
    .await
    .expect_error(422, "validation_failed", Some("scores[0].score"));
    app.external_qa(c, queued, json!({"scores": [{"check": "", "score": 0.5}]}))
        .await
        .expect_error(422, "validation_failed", Some("scores[0].check"));
    app.external_qa(
        c,
        queued,
        json!({"scores": [{"check": "face_confidence", "score": "high"}]}),
    )
    .await
    .expect_error(400, "bad_request", Some("scores[0].score"));
    app.external_qa(c, queued, json!({"scores": [{"check": "face_confidence"}]}))
        .await
        .expect_error(400, "bad_request", Some("scores[0].score"));
    app.external_qa(c, queued, json!({"verdict": "pass"}))
        .await
        .expect_error(400, "bad_request", Some("verdict"));
    // The case: a check scored twice would pass with the better score. Refused.
    let twice = app
        .external_qa(
            c,
            queued,
            json!({"scores": [{"check": "face_confidence", "score": 0.1}, {"check": "face_confidence", "score": 0.9}, {"check": "black_frames", "score": 0.99}]}),
        )
        .await
        .expect_error(422, "validation_failed", Some("scores[1].check"));
    assert!(
        twice["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`face_confidence` is scored twice"),
        "{twice}"
    );
    // A check the scene type does not have (a misspelling) is named, with the allowed ones.
    let unknown = app
        .external_qa(
            c,
            queued,
            json!({"scores": [{"check": "black_frames", "score": 0.99}, {"check": "face_confidense", "score": 0.9}]}),
        )
        .await
        .expect_error(422, "validation_failed", Some("scores[1].check"));
    let msg = unknown["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("`face_confidense` is not a QA check") && msg.contains("face_confidence"),
        "{msg}"
    );
    app.external_qa(c, 999_999, scores(0.9))
        .await
        .expect_error(404, "not_found", None);
    app.external_qa(&app.viewer, queued, scores(0.9))
        .await
        .expect_error(403, "forbidden", None);
    // None of that touched the attempt.
    let h = app.get_retry_history(&app.viewer, id(&s)).await.expect(200);
    assert_eq!(h["attempts"][0]["status"], "scoring");
}

async fn a_qa_error_goes_to_review(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let st = scoring_scene(&app).await;
    let s = app.submit(st).await;
    app.run().await;
    let a = id(&app.get_retry_history(&app.viewer, id(&s)).await.expect(200)["attempts"][0]);
    let r = app
        .external_qa(
            &app.creator,
            a,
            json!({"error": "the model server timed out"}),
        )
        .await
        .expect(200);
    assert_eq!(r["applied"], true);
    let h = app.get_retry_history(&app.viewer, id(&s)).await.expect(200);
    assert_eq!(h["attempts"][0]["status"], "qa_error");
    assert!(h["attempts"][0]["failure_reason"]
        .as_str()
        .unwrap()
        .contains("timed out"));
    assert_eq!(
        h["status"], "needs_review",
        "an attempt QA could not score never passes"
    );
    assert_eq!(h["review_reason"], "qa_error");
    assert_eq!(
        h["attempts"].as_array().unwrap().len(),
        1,
        "a QA error is not retried as a quality failure"
    );
    assert_eq!(
        app.review_queue(&app.viewer, "").await.expect(200)["items"][0]["segment"]["id"],
        id(&s)
    );
}
