//! Optimistic concurrency: two admins saving against the same `If-Match` — one wins, one gets a
//! 409 and must reload.

use crate::helpers::*;
use retake_store::Store;
use serde_json::json;
use std::sync::Arc;

retake_store::contract_tests!(concurrent_project_policy_saves_one_wins, concurrent_scene_policy_saves_one_wins, concurrent_project_edits_one_wins);

fn one_wins(a: &Resp, b: &Resp) -> usize {
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "a: {} b: {}", a.text(), b.text());
    let loser = if a.status == 409 { a } else { b };
    let e = loser.json();
    assert_eq!(e["error"]["code"], "conflict");
    assert_eq!(e["error"]["field"], "updated_at");
    if a.status == 200 { 0 } else { 1 }
}

async fn concurrent_project_policy_saves_one_wins(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    for round in 0..5 {
        let etag = app.get_project_policy(&app.admin, pid).await.expect(200)["updated_at"].as_str().unwrap().to_owned();
        let a = app.put_project_policy(&app.admin, pid, json!({"enabled": true, "max_attempts": 4}), Some(&etag));
        let b = app.put_project_policy(&app.admin2, pid, json!({"enabled": true, "max_attempts": 7}), Some(&etag));
        let (a, b) = tokio::join!(a, b);
        let winner = one_wins(&a, &b);
        let expected = if winner == 0 { 4 } else { 7 };
        let now = app.get_project_policy(&app.viewer, pid).await.expect(200);
        assert_eq!(now["policy"]["max_attempts"], expected, "round {round}: the winner's policy is saved, the loser's is not");
    }
}

async fn concurrent_scene_policy_saves_one_wins(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let sid = id(&app.scene_type(pid, json!({})).await);
    for round in 0..5 {
        let etag = app.get_scene_policy(&app.admin, sid).await.expect(200)["updated_at"].as_str().unwrap().to_owned();
        let a = app.put_scene_policy(&app.admin, sid, json!({"max_attempts": 2}), Some(&etag));
        let b = app.put_scene_policy(&app.admin2, sid, json!({"max_attempts": 9}), Some(&etag));
        let (a, b) = tokio::join!(a, b);
        let winner = one_wins(&a, &b);
        let now = app.get_scene_policy(&app.viewer, sid).await.expect(200);
        assert_eq!(now["effective"]["max_attempts"], if winner == 0 { 2 } else { 9 }, "round {round}");
    }
}

async fn concurrent_project_edits_one_wins(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let p = app.project(json!({"gpu_budget_seconds": 10.0})).await;
    let etag = p["updated_at"].as_str().unwrap().to_owned();
    let a = app.update_project(&app.admin, id(&p), json!({"gpu_budget_seconds": 20.0}), Some(&etag));
    let b = app.update_project(&app.admin2, id(&p), json!({"gpu_budget_seconds": 30.0}), Some(&etag));
    let (a, b) = tokio::join!(a, b);
    let winner = one_wins(&a, &b);
    let now = app.get_project(&app.viewer, id(&p)).await.expect(200);
    approx(&now["gpu_budget_seconds"], if winner == 0 { 20.0 } else { 30.0 });
}
