//! Optimistic concurrency: two admins saving against the same `If-Match` — one wins, one gets a
//! 412 and must reload.

use crate::helpers::*;
use retake_store::Store;
use serde_json::json;
use std::sync::Arc;

retake_store::contract_tests!(
    concurrent_project_policy_saves_one_wins,
    concurrent_scene_policy_saves_one_wins,
    concurrent_project_edits_one_wins,
    concurrent_reruns_create_one_attempt,
    concurrent_duplicate_qa_deliveries_apply_once,
    concurrent_review_actions_leave_one_outcome,
);

fn one_wins(a: &Resp, b: &Resp) -> usize {
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 412], "a: {} b: {}", a.text(), b.text());
    let loser = if a.status == 412 { a } else { b };
    let e = loser.json();
    assert_eq!(e["error"]["code"], "precondition_failed");
    assert_eq!(e["error"]["field"], "If-Match");
    if a.status == 200 {
        0
    } else {
        1
    }
}

async fn concurrent_project_policy_saves_one_wins(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    for round in 0..5 {
        let etag = app.get_project_policy(&app.admin, pid).await.expect(200)["updated_at"]
            .as_str()
            .unwrap()
            .to_owned();
        let a = app.put_project_policy(
            &app.admin,
            pid,
            json!({"enabled": true, "max_attempts": 4}),
            Some(&etag),
        );
        let b = app.put_project_policy(
            &app.admin2,
            pid,
            json!({"enabled": true, "max_attempts": 7}),
            Some(&etag),
        );
        let (a, b) = tokio::join!(a, b);
        let winner = one_wins(&a, &b);
        let expected = if winner == 0 { 4 } else { 7 };
        let now = app.get_project_policy(&app.viewer, pid).await.expect(200);
        assert_eq!(
            now["policy"]["max_attempts"], expected,
            "round {round}: the winner's policy is saved, the loser's is not"
        );
    }
}

async fn concurrent_scene_policy_saves_one_wins(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let sid = id(&app.scene_type(pid, json!({})).await);
    for round in 0..5 {
        let etag = app.get_scene_policy(&app.admin, sid).await.expect(200)["updated_at"]
            .as_str()
            .unwrap()
            .to_owned();
        let a = app.put_scene_policy(&app.admin, sid, json!({"max_attempts": 2}), Some(&etag));
        let b = app.put_scene_policy(&app.admin2, sid, json!({"max_attempts": 9}), Some(&etag));
        let (a, b) = tokio::join!(a, b);
        let winner = one_wins(&a, &b);
        let now = app.get_scene_policy(&app.viewer, sid).await.expect(200);
        assert_eq!(
            now["effective"]["max_attempts"],
            if winner == 0 { 2 } else { 9 },
            "round {round}"
        );
    }
}

async fn concurrent_project_edits_one_wins(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let p = app.project(json!({"gpu_budget_seconds": 10.0})).await;
    let etag = p["updated_at"].as_str().unwrap().to_owned();
    let a = app.update_project(
        &app.admin,
        id(&p),
        json!({"gpu_budget_seconds": 20.0}),
        Some(&etag),
    );
    let b = app.update_project(
        &app.admin2,
        id(&p),
        json!({"gpu_budget_seconds": 30.0}),
        Some(&etag),
    );
    let (a, b) = tokio::join!(a, b);
    let winner = one_wins(&a, &b);
    let now = app.get_project(&app.viewer, id(&p)).await.expect(200);
    approx(
        &now["gpu_budget_seconds"],
        if winner == 0 { 20.0 } else { 30.0 },
    );
}

async fn concurrent_reruns_create_one_attempt(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({"gpu_budget_seconds": 1000.0})).await);
    let st = id(&app.scene_type(pid, json!({})).await);
    for _ in 0..3 {
        let sid = app.run_scripted(st, &[0.3]).await["segment_id"]
            .as_i64()
            .unwrap();
        let (a, b) = tokio::join!(
            app.rerun(&app.creator, sid, json!({})),
            app.rerun(&app.admin, sid, json!({}))
        );
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses[0], 200, "a: {} b: {}", a.text(), b.text());
        assert_eq!(
            statuses[1],
            409,
            "the second re-run finds the segment no longer in review: a: {} b: {}",
            a.text(),
            b.text()
        );
        let h = app.get_retry_history(&app.viewer, sid).await.expect(200);
        assert_eq!(
            h["attempts"].as_array().unwrap().len(),
            2,
            "exactly one new attempt"
        );
        let p = app.get_project(&app.viewer, pid).await.expect(200);
        approx(&p["gpu_reserved_seconds"], 0.0);
    }
}

async fn concurrent_duplicate_qa_deliveries_apply_once(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let st = app
        .scene_type(pid, json!({"backend_config": {"external_qa": true}, "retry_policy": {"enabled": true, "max_attempts": 3, "trigger_checks": ["face_confidence"]}}))
        .await;
    for _ in 0..3 {
        let s = app.submit(id(&st)).await;
        app.run().await;
        let attempt =
            id(&app.get_retry_history(&app.viewer, id(&s)).await.expect(200)["attempts"][0]);
        let body = json!({"scores": [{"check": "face_confidence", "score": 0.2}, {"check": "black_frames", "score": 0.99}]});
        let (a, b, c) = tokio::join!(
            app.external_qa(&app.creator, attempt, body.clone()),
            app.external_qa(&app.creator, attempt, body.clone()),
            app.external_qa(&app.admin, attempt, body.clone()),
        );
        let applied: Vec<bool> = [&a, &b, &c]
            .iter()
            .map(|r| r.expect(200)["applied"].as_bool().unwrap())
            .collect();
        assert_eq!(
            applied.iter().filter(|x| **x).count(),
            1,
            "exactly one delivery is applied: {applied:?}"
        );
        let h = app.get_retry_history(&app.viewer, id(&s)).await.expect(200);
        assert_eq!(
            h["attempts"].as_array().unwrap().len(),
            2,
            "exactly one retry"
        );
    }
}

async fn concurrent_review_actions_leave_one_outcome(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let st = id(&app.scene_type(pid, json!({})).await);
    for _ in 0..3 {
        let sid = app.run_scripted(st, &[0.3]).await["segment_id"]
            .as_i64()
            .unwrap();
        let (a, r) = tokio::join!(
            app.accept(&app.creator, sid, json!({"attempt_number": 1})),
            app.reject(&app.admin, sid, json!({}))
        );
        let mut statuses = [a.status, r.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [200, 409],
            "accept: {} reject: {}",
            a.text(),
            r.text()
        );
        let seg = app.get_segment(&app.viewer, sid).await.expect(200);
        let expected = if a.status == 200 {
            "approved"
        } else {
            "rejected"
        };
        assert_eq!(seg["status"], expected);
    }
}
