//! What operators use every day: the live queue (retries ahead of new originals), review at
//! scale (filters, label search, bulk actions answered per segment), and the GPU ledger over
//! time (pages, CSV, spend per scene type).

use crate::helpers::*;
use reqwest::Method;
use retake_core::{CheckScore, QaVerdict};
use retake_store::{GenerationDone, Store};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

retake_store::contract_tests!(
    a_failed_attempt_is_retried_before_the_backlog_of_originals,
    retry_priority_zero_keeps_first_in_first_out,
    the_queue_pages_in_claim_order_and_checks_its_parameters,
    bulk_review_acts_on_each_segment_and_answers_for_each,
    bulk_review_refuses_bad_requests_naming_the_field,
    segments_filter_by_review_reason_and_label,
    the_ledger_pages_and_exports_csv,
    spend_over_time_is_split_by_scene_type,
);

impl TestApp {
    pub async fn queue(&self, token: &str, query: &str) -> Resp {
        self.get(&format!("/api/queue{query}"), token).await
    }
    pub async fn bulk_review(&self, token: &str, body: Value) -> Resp {
        self.post("/api/review/bulk", token, body).await
    }
    pub async fn ledger(&self, token: &str, project_id: i64, query: &str) -> Resp {
        self.get(&format!("/api/projects/{project_id}/ledger{query}"), token)
            .await
    }
    pub async fn spend(&self, token: &str, project_id: i64, query: &str) -> Resp {
        self.get(&format!("/api/projects/{project_id}/spend{query}"), token)
            .await
    }
}

const LEASE: Duration = Duration::from_secs(30);

/// Claims the next attempt as worker `w` and fails its face check: a retriable failure.
async fn claim_and_fail(app: &TestApp) -> (i64, u32) {
    let w = app.store.claim("w", 1, LEASE).await.unwrap().remove(0);
    app.store
        .finish_generation(GenerationDone {
            attempt_id: w.attempt.id,
            worker: "w".into(),
            backend: "simulated".into(),
            output_video_path: None,
            gpu_seconds: 5.0,
            verdict: Some(QaVerdict {
                scores: vec![
                    CheckScore {
                        check: "face_confidence".into(),
                        score: 0.2,
                        details: Value::Null,
                    },
                    CheckScore {
                        check: "black_frames".into(),
                        score: 0.99,
                        details: Value::Null,
                    },
                ],
                error: None,
                source: "simulated".into(),
            }),
            stopped_by_budget: false,
            scored_by_worker: false,
        })
        .await
        .unwrap();
    (w.attempt.segment_id, w.attempt.attempt_number)
}

/// (segment id, attempt number, priority, position) of each queued entry, in the order listed.
fn queued(q: &Value) -> Vec<(i64, u64, u64, u64)> {
    q["queued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["segment_id"].as_i64().unwrap(),
                e["attempt_number"].as_u64().unwrap(),
                e["priority"].as_u64().unwrap(),
                e["position"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn a_failed_attempt_is_retried_before_the_backlog_of_originals(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let st = id(&app.retrying_scene_type(pid, 3).await);
    let policy = app.get_scene_policy(&app.viewer, st).await.expect(200);
    assert_eq!(
        policy["effective"]["retry_priority"], 10,
        "retries go first by default"
    );
    let a = id(&app.submit(st).await);
    let b = id(&app.submit(st).await);
    let c = id(&app.submit(st).await);

    let (failed, n) = claim_and_fail(&app).await;
    assert_eq!((failed, n), (a, 1));
    let q = app.queue(&app.viewer, "").await.expect(200);
    assert_eq!(
        queued(&q),
        vec![(a, 2, 10, 1), (b, 1, 0, 2), (c, 1, 0, 3)],
        "the retry waits first in line, not behind the originals: {q}"
    );
    assert_eq!(q["queued_total"], 3);
    assert!(q["running"].as_array().unwrap().is_empty());
    assert!(
        q["queued"][0]["estimated_start_seconds"].is_null(),
        "nothing runs, so there is no rate to estimate from"
    );

    // The next claim takes it, and the queue shows where it runs.
    let w = app.store.claim("w", 1, LEASE).await.unwrap().remove(0);
    assert_eq!((w.attempt.segment_id, w.attempt.attempt_number), (a, 2));
    let q = app
        .queue(&app.viewer, &format!("?project_id={pid}"))
        .await
        .expect(200);
    let running = q["running"].as_array().unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0]["segment_id"], a);
    assert_eq!(running[0]["worker"], "w");
    assert_eq!(running[0]["status"], "generating");
    assert_eq!(q["running_everywhere"], 1);
    assert_eq!(queued(&q), vec![(b, 1, 0, 1), (c, 1, 0, 2)]);
    // One attempt finished (5 s of wall time at most in a test), one runs: an estimate exists.
    assert!(q["mean_attempt_seconds"].is_number(), "{q}");
    let eta = &q["queued"][1]["estimated_start_seconds"];
    assert!(
        eta.as_f64()
            .is_some_and(|e| e >= q["queued"][0]["estimated_start_seconds"].as_f64().unwrap()),
        "later places never start sooner: {q}"
    );
    assert!(q["estimate_basis"]
        .as_str()
        .unwrap()
        .contains("attempts running now (1)"));
}

async fn retry_priority_zero_keeps_first_in_first_out(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let st = id(&app
        .scene_type(
            pid,
            json!({"retry_policy": {"enabled": true, "max_attempts": 3, "retry_priority": 0}}),
        )
        .await);
    let a = id(&app.submit(st).await);
    let b = id(&app.submit(st).await);
    assert_eq!(claim_and_fail(&app).await, (a, 1));
    let q = app.queue(&app.viewer, "").await.expect(200);
    assert_eq!(queued(&q), vec![(b, 1, 0, 1), (a, 2, 0, 2)]);
    let w = app.store.claim("w", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(w.attempt.segment_id, b);

    // The project default sets it too, and the API refuses what is out of range.
    let r = app
        .put_scene_policy(&app.admin, st, json!({"retry_priority": 101}), None)
        .await;
    r.expect_error(422, "validation_failed", Some("retry_priority"));
    let r = app
        .put_project_policy(&app.admin, pid, json!({"retry_priority": -1}), None)
        .await;
    r.expect_error(422, "validation_failed", Some("retry_priority"));
}

async fn the_queue_pages_in_claim_order_and_checks_its_parameters(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let st = id(&app.scene_type(pid, json!({})).await);
    let ids: Vec<i64> = {
        let mut v = vec![];
        for _ in 0..5 {
            v.push(id(&app.submit(st).await));
        }
        v
    };
    let p1 = app.queue(&app.viewer, "?limit=2").await.expect(200);
    assert_eq!(queued(&p1), vec![(ids[0], 1, 0, 1), (ids[1], 1, 0, 2)]);
    assert_eq!(p1["next_offset"], 2);
    let p3 = app
        .queue(&app.viewer, "?limit=2&offset=4")
        .await
        .expect(200);
    assert_eq!(queued(&p3), vec![(ids[4], 1, 0, 5)]);
    assert!(p3["next_offset"].is_null());
    assert_eq!(p3["queued_total"], 5);

    // Another project's queue is empty, though its places would still count this one's work.
    let other = id(&app.project(json!({})).await);
    let q = app
        .queue(&app.viewer, &format!("?project_id={other}"))
        .await
        .expect(200);
    assert_eq!(q["queued_total"], 0);

    for (query, status, field) in [
        ("?limit=0", 422, "limit"),
        ("?limit=201", 422, "limit"),
        ("?offset=9223372036854775808", 422, "offset"),
        ("?offset=-1", 400, "query"),
        ("?limit=many", 400, "query"),
        ("?colour=red", 400, "query"),
    ] {
        let code = if status == 422 {
            "validation_failed"
        } else {
            "bad_request"
        };
        app.queue(&app.viewer, query)
            .await
            .expect_error(status, code, Some(field));
    }
    app.queue(&app.viewer, "?project_id=999999")
        .await
        .expect_error(404, "not_found", None);
    let r = app
        .request(Method::GET, "/api/queue", None, Body::None, &[])
        .await;
    r.expect_error(401, "unauthorized", None);
}

/// Three segments in review (retries off, failing faces) and one that passed.
async fn in_review(app: &TestApp) -> (i64, Vec<i64>, i64) {
    let pid = id(&app.project(json!({"gpu_budget_seconds": 1000.0})).await);
    let st = id(&app.scene_type(pid, json!({})).await);
    let mut review = vec![];
    for faces in [[0.3], [0.45], [0.1]] {
        let h = app.run_scripted(st, &faces).await;
        assert_eq!(h["status"], "needs_review");
        review.push(h["segment_id"].as_i64().unwrap());
    }
    let passed = app.run_scripted(st, &[0.9]).await["segment_id"]
        .as_i64()
        .unwrap();
    (pid, review, passed)
}

async fn bulk_review_acts_on_each_segment_and_answers_for_each(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let (_, review, passed) = in_review(&app).await;

    let r = app
        .bulk_review(
            &app.creator,
            json!({"action": "accept", "segment_ids": [review[0], passed, 999999], "note": "good enough for the edit"}),
        )
        .await
        .expect(200);
    assert_eq!(
        (r["succeeded"].as_u64(), r["failed"].as_u64()),
        (Some(1), Some(2))
    );
    let res = r["results"].as_array().unwrap();
    assert_eq!(res[0]["segment_id"], review[0]);
    assert_eq!(res[0]["ok"], true);
    assert_eq!(res[0]["segment_status"], "approved");
    assert_eq!(res[0]["attempt_number"], 1);
    assert_eq!(
        res[1]["status"], 409,
        "a passed segment is not in review: {r}"
    );
    assert_eq!(res[1]["error"]["code"], "conflict");
    assert_eq!(res[2]["status"], 404);
    let h = app
        .get_retry_history(&app.viewer, review[0])
        .await
        .expect(200);
    assert_eq!(h["status"], "approved");
    assert_eq!(h["attempts"][0]["human_override"], true);

    let r = app
        .bulk_review(
            &app.creator,
            json!({"action": "rerun", "segment_ids": [review[1]]}),
        )
        .await
        .expect(200);
    assert_eq!(r["results"][0]["attempt_number"], 2);
    assert_eq!(r["results"][0]["segment_status"], "retrying");
    let h = app
        .get_retry_history(&app.viewer, review[1])
        .await
        .expect(200);
    assert_eq!(h["attempts"][1]["status"], "queued");
    // A re-run from review is a retry: it is queued with the policy's priority.
    let q = app.queue(&app.viewer, "").await.expect(200);
    assert_eq!(queued(&q)[0], (review[1], 2, 10, 1));

    let r = app
        .bulk_review(
            &app.creator,
            json!({"action": "reject", "segment_ids": [review[2], review[0]]}),
        )
        .await
        .expect(200);
    assert_eq!(r["results"][0]["segment_status"], "rejected");
    assert_eq!(r["results"][1]["status"], 409, "already approved");
    assert_eq!(
        app.get_segment(&app.viewer, review[2]).await.expect(200)["status"],
        "rejected"
    );
}

async fn bulk_review_refuses_bad_requests_naming_the_field(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let (_, review, _) = in_review(&app).await;
    let too_many: Vec<i64> = (1..=101).collect();
    for (body, status, field) in [
        (
            json!({"action": "accept", "segment_ids": []}),
            422,
            "segment_ids",
        ),
        (
            json!({"action": "accept", "segment_ids": too_many}),
            422,
            "segment_ids",
        ),
        (
            json!({"action": "reject", "segment_ids": [review[0], review[0]]}),
            422,
            "segment_ids[1]",
        ),
        (
            json!({"action": "reject", "segment_ids": [review[0]], "note": "x".repeat(501)}),
            422,
            "note",
        ),
        (
            json!({"action": "maybe", "segment_ids": [review[0]]}),
            400,
            "action",
        ),
        (json!({"segment_ids": [review[0]]}), 400, "action"),
        (
            json!({"action": "accept", "segment_ids": ["one"]}),
            400,
            "segment_ids[0]",
        ),
    ] {
        let code = if status == 422 {
            "validation_failed"
        } else {
            "bad_request"
        };
        app.bulk_review(&app.creator, body)
            .await
            .expect_error(status, code, Some(field));
    }
    app.bulk_review(
        &app.viewer,
        json!({"action": "reject", "segment_ids": [review[0]]}),
    )
    .await
    .expect_error(403, "forbidden", None);
    // Nothing was acted on.
    assert_eq!(
        app.get_segment(&app.viewer, review[0]).await.expect(200)["status"],
        "needs_review"
    );
}

async fn segments_filter_by_review_reason_and_label(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let off = id(&app.scene_type(pid, json!({})).await);
    let on = id(&app.retrying_scene_type(pid, 2).await);
    let submit = |st: i64, label: &'static str| {
        let app = &app;
        async move {
            id(&app
                .submit_segments(&app.creator, json!({"scene_type_id": st, "label": label}))
                .await
                .expect(201)["segments"][0])
        }
    };
    let a = submit(off, "Shot-A1 wide").await;
    let b = submit(on, "shot-a2 close").await;
    let c = submit(on, "shot-B1").await;
    app.faces(a, &[0.2]);
    app.faces(b, &[0.2, 0.3]);
    app.faces(c, &[0.9]);
    app.run().await;

    let ids = |v: Value| -> Vec<i64> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_i64().unwrap())
            .collect()
    };
    let q = |query: &str| {
        let query = query.to_owned();
        let app = &app;
        async move { app.list_segments(&app.viewer, &query).await }
    };
    assert_eq!(
        ids(q("?review_reason=retry_disabled").await.expect(200)),
        vec![a]
    );
    let both = q("?review_reason=all_attempts_failed").await.expect(200);
    assert_eq!(ids(both.clone()), vec![b]);
    assert_eq!(both["items"][0]["review_reason"], "all_attempts_failed");
    assert_eq!(ids(q("?label=SHOT-A").await.expect(200)), vec![b, a]);
    assert_eq!(
        ids(q(&format!("?label=shot&scene_type_id={on}&status=passed"))
            .await
            .expect(200)),
        vec![c]
    );
    assert!(
        ids(q("?label=%25").await.expect(200)).is_empty(),
        "no wildcards"
    );
    q("?review_reason=bored")
        .await
        .expect_error(422, "validation_failed", Some("review_reason"));
    q("?label=")
        .await
        .expect_error(422, "validation_failed", Some("label"));
    q(&format!("?label={}", "x".repeat(201)))
        .await
        .expect_error(422, "validation_failed", Some("label"));
}

async fn the_ledger_pages_and_exports_csv(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({"gpu_budget_seconds": 500.0})).await);
    let st = app.scene_type(pid, json!({"name": "Night, \"wet\""})).await;
    for _ in 0..3 {
        app.run_scripted(id(&st), &[0.9]).await;
    }
    let p1 = app.ledger(&app.viewer, pid, "?limit=2").await.expect(200);
    let items = p1["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items[0]["id"].as_i64() > items[1]["id"].as_i64(),
        "newest first"
    );
    assert_eq!(items[0]["scene_type_name"], "Night, \"wet\"");
    approx(&items[0]["spent_seconds"], SCRIPTED_GPU);
    let cursor = p1["next_cursor"].as_i64().unwrap();
    let p2 = app
        .ledger(&app.viewer, pid, &format!("?limit=2&cursor={cursor}"))
        .await
        .expect(200);
    assert_eq!(p2["items"].as_array().unwrap().len(), 1);
    assert!(p2["next_cursor"].is_null());

    let csv = app.ledger(&app.viewer, pid, "?format=csv").await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(csv
        .header("content-disposition")
        .unwrap()
        .contains(&format!("project-{pid}-gpu-ledger.csv")));
    let text = csv.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three rows: {text}");
    assert!(lines[0].starts_with("id,created_at,attempt_id,segment_id"));
    assert!(
        lines[1].ends_with(r#","Night, ""wet""",10.000,8.000,generation finished"#),
        "{text}"
    );
    let by_accept = app
        .request(
            Method::GET,
            &format!("/api/projects/{pid}/ledger"),
            Some(&app.viewer),
            Body::None,
            &[("accept", "text/csv")],
        )
        .await;
    assert_eq!(by_accept.text(), text);

    let project = app.get_project(&app.viewer, pid).await.expect(200);
    approx(&project["gpu_spent_seconds"], 3.0 * SCRIPTED_GPU);

    app.ledger(&app.viewer, pid, "?limit=0").await.expect_error(
        422,
        "validation_failed",
        Some("limit"),
    );
    app.ledger(&app.viewer, pid, "?limit=201")
        .await
        .expect_error(422, "validation_failed", Some("limit"));
    app.ledger(&app.viewer, pid, "?format=xml")
        .await
        .expect_error(422, "validation_failed", Some("format"));
    app.ledger(&app.viewer, 999999, "")
        .await
        .expect_error(404, "not_found", None);
}

async fn spend_over_time_is_split_by_scene_type(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({"gpu_budget_seconds": 500.0})).await);
    let empty = app.spend(&app.viewer, pid, "").await.expect(200);
    assert!(empty["start"].is_null() && empty["points"].as_array().unwrap().is_empty());
    assert_eq!(empty["buckets"], 40);

    let wide = id(&app.scene_type(pid, json!({"name": "wide"})).await);
    let close = id(&app.retrying_scene_type(pid, 2).await);
    app.run_scripted(wide, &[0.9]).await;
    app.run_scripted(close, &[0.2, 0.9]).await;
    app.run_scripted(close, &[0.9]).await;

    let s = app.spend(&app.viewer, pid, "?buckets=5").await.expect(200);
    assert_eq!(s["buckets"], 5);
    approx(&s["gpu_budget_seconds"], 500.0);
    let types = s["scene_types"].as_array().unwrap();
    assert_eq!(types.len(), 2);
    assert_eq!(types[0]["scene_type_id"], close, "most spent first");
    approx(&types[0]["spent_seconds"], 3.0 * SCRIPTED_GPU);
    assert_eq!(types[1]["name"], "wide");
    approx(&types[1]["spent_seconds"], SCRIPTED_GPU);
    let points = s["points"].as_array().unwrap();
    let total: f64 = points
        .iter()
        .map(|p| p["spent_seconds"].as_f64().unwrap())
        .sum();
    assert!((total - 4.0 * SCRIPTED_GPU).abs() < 1e-6);
    assert!(points
        .iter()
        .all(|p| p["bucket"].as_u64().is_some_and(|b| b < 5)));
    approx(&s["gpu_spent_seconds"], total);

    for q in ["?buckets=0", "?buckets=201"] {
        app.spend(&app.viewer, pid, q).await.expect_error(
            422,
            "validation_failed",
            Some("buckets"),
        );
    }
    app.spend(&app.viewer, 999999, "")
        .await
        .expect_error(404, "not_found", None);
}
