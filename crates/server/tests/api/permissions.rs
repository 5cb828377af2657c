//! Roles: no token → 401 everywhere but health; a viewer reads everything and writes nothing; a
//! creator submits, selects, reviews and delivers QA but changes no policy, budget, scene type or
//! server; an admin does everything.

use crate::helpers::*;
use reqwest::Method;
use retake_store::Store;
use serde_json::{json, Value};
use std::sync::Arc;

retake_store::contract_tests!(
    every_endpoint_but_health_needs_a_token,
    viewers_read_everything_and_write_nothing,
    creators_do_the_work_but_change_no_configuration,
    admins_can_do_everything,
);

/// What the permission tests act on: a project, a scene type, a segment in review (attempt 1
/// failed), a segment that passed, and an attempt waiting for external QA.
struct World {
    project: i64,
    scene: i64,
    review: i64,
    passed: i64,
    scoring_attempt: i64,
}

async fn world(app: &TestApp) -> World {
    let project = id(&app.project(json!({"gpu_budget_seconds": 1000.0})).await);
    let scene = id(&app.scene_type(project, json!({})).await);
    let review = app.run_scripted(scene, &[0.3]).await["segment_id"]
        .as_i64()
        .unwrap();
    let passed = app.run_scripted(scene, &[0.9]).await["segment_id"]
        .as_i64()
        .unwrap();
    let ext = id(&app
        .scene_type(project, json!({"backend_config": {"external_qa": true}}))
        .await);
    let s = app.submit(ext).await;
    app.run().await;
    let scoring_attempt =
        id(&app.get_retry_history(&app.viewer, id(&s)).await.expect(200)["attempts"][0]);
    World {
        project,
        scene,
        review,
        passed,
        scoring_attempt,
    }
}

/// Reads: `(path)`, all GET.
fn reads(w: &World) -> Vec<String> {
    vec![
        "/api/me".into(),
        "/api/projects".into(),
        format!("/api/projects/{}", w.project),
        format!("/api/projects/{}/retry-policy", w.project),
        "/api/scene-types".into(),
        format!("/api/scene-types/{}", w.scene),
        format!("/api/scene-types/{}/retry-policy", w.scene),
        format!("/api/scene-types/{}/failure-patterns", w.scene),
        "/api/failure-patterns".into(),
        "/api/segments".into(),
        format!("/api/segments/{}", w.review),
        format!("/api/segments/{}/retry-history", w.review),
        "/api/review".into(),
        "/api/comfyui/servers".into(),
        "/metrics".into(),
    ]
}

/// Writes a creator may make.
fn creator_writes(w: &World) -> Vec<(Method, String, Value)> {
    vec![
        (
            Method::POST,
            "/api/segments".into(),
            json!({"scene_type_id": w.scene}),
        ),
        (
            Method::POST,
            format!("/api/segments/{}/attempts/1/select", w.passed),
            Value::Null,
        ),
        (
            Method::POST,
            format!("/api/review/{}/accept", w.review),
            json!({"attempt_number": 1}),
        ),
        (
            Method::POST,
            format!("/api/attempts/{}/qa", w.scoring_attempt),
            json!({"scores": [{"check": "face_confidence", "score": 0.9}, {"check": "black_frames", "score": 0.95}]}),
        ),
    ]
}

/// Writes only an admin may make.
fn admin_writes(w: &World) -> Vec<(Method, String, Value)> {
    vec![
        (
            Method::POST,
            "/api/tokens".into(),
            json!({"name": "t", "role": "viewer"}),
        ),
        (
            Method::POST,
            "/api/projects".into(),
            json!({"name": "new project"}),
        ),
        (
            Method::PATCH,
            format!("/api/projects/{}", w.project),
            json!({"gpu_budget_seconds": 5000.0}),
        ),
        (
            Method::PUT,
            format!("/api/projects/{}/retry-policy", w.project),
            json!({"enabled": true}),
        ),
        (
            Method::POST,
            "/api/scene-types".into(),
            json!({"project_id": w.project, "name": "new scene"}),
        ),
        (
            Method::PATCH,
            format!("/api/scene-types/{}", w.scene),
            json!({"name": "renamed"}),
        ),
        (
            Method::PUT,
            format!("/api/scene-types/{}/retry-policy", w.scene),
            json!({"enabled": true}),
        ),
        (
            Method::PUT,
            "/api/comfyui/servers/gpu-1".into(),
            json!({"url": "http://gpu"}),
        ),
        (
            Method::DELETE,
            "/api/comfyui/servers/gpu-1".into(),
            Value::Null,
        ),
        (
            // The world has work in flight: an admin deletes it only by forcing.
            Method::DELETE,
            format!("/api/scene-types/{}?force=true", w.scene),
            Value::Null,
        ),
        (
            Method::DELETE,
            format!("/api/projects/{}?force=true", w.project),
            Value::Null,
        ),
    ]
}

/// Creator writes that would end the world's segments (tried last, or by role checks only).
fn closing_writes(w: &World) -> Vec<(Method, String, Value)> {
    vec![
        (
            Method::POST,
            format!("/api/review/{}/rerun", w.review),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/review/{}/reject", w.review),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/segments/{}/cancel", w.review),
            Value::Null,
        ),
    ]
}

fn body(v: &Value) -> Body {
    if v.is_null() {
        Body::None
    } else {
        Body::Json(v.clone())
    }
}

async fn every_endpoint_but_health_needs_a_token(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let w = world(&app).await;
    app.request(Method::GET, "/api/health", None, Body::None, &[])
        .await
        .expect(200);
    app.request(Method::GET, "/api/openapi.json", None, Body::None, &[])
        .await
        .expect(200);
    let mut all: Vec<(Method, String, Value)> = reads(&w)
        .into_iter()
        .map(|p| (Method::GET, p, Value::Null))
        .collect();
    all.push((Method::GET, "/api/events".into(), Value::Null));
    all.push((
        Method::GET,
        format!("/api/segments/{}/attempts/1/media", w.review),
        Value::Null,
    ));
    all.extend(creator_writes(&w));
    all.extend(admin_writes(&w));
    all.extend(closing_writes(&w));
    for (m, path, b) in &all {
        for auth in [
            None,
            Some("Bearer rtk_wrong"),
            Some("Token abc"),
            Some("bearer"),
        ] {
            let h: Vec<(&str, &str)> = auth.map(|a| vec![("authorization", a)]).unwrap_or_default();
            let r = app.request(m.clone(), path, None, body(b), &h).await;
            assert_eq!(r.status, 401, "{m} {path} with {auth:?}: {}", r.text());
        }
    }
    // Nothing changed.
    assert_eq!(
        app.get_segment(&app.viewer, w.review).await.expect(200)["status"],
        "needs_review"
    );
}

async fn viewers_read_everything_and_write_nothing(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let w = world(&app).await;
    for path in reads(&w) {
        let r = app.get(&path, &app.viewer).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    }
    let mut writes = creator_writes(&w);
    writes.extend(admin_writes(&w));
    writes.extend(closing_writes(&w));
    for (m, path, b) in writes {
        let r = app
            .request(m.clone(), &path, Some(&app.viewer), body(&b), &[])
            .await;
        let e = r.expect_error(403, "forbidden", None);
        assert!(
            e["error"]["message"].as_str().unwrap().contains("viewer"),
            "{m} {path}: says which role it has: {e}"
        );
    }
    // Nothing changed.
    assert_eq!(
        app.get_segment(&app.viewer, w.review).await.expect(200)["status"],
        "needs_review"
    );
    assert_eq!(
        app.get_retry_history(&app.viewer, w.scoring_attempt_segment(&app).await)
            .await
            .expect(200)["attempts"][0]["status"],
        "scoring"
    );
    assert_eq!(
        app.list_projects(&app.viewer)
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

impl World {
    async fn scoring_attempt_segment(&self, app: &TestApp) -> i64 {
        let segs = app.list_segments(&app.viewer, "").await.expect(200);
        for s in segs["items"].as_array().unwrap() {
            let h = app.get_retry_history(&app.viewer, id(s)).await.expect(200);
            if h["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| id(a) == self.scoring_attempt)
            {
                return id(s);
            }
        }
        panic!("no segment holds attempt {}", self.scoring_attempt);
    }
}

async fn creators_do_the_work_but_change_no_configuration(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let w = world(&app).await;
    for path in reads(&w) {
        assert_eq!(app.get(&path, &app.creator).await.status, 200, "GET {path}");
    }
    for (m, path, b) in admin_writes(&w) {
        app.request(m.clone(), &path, Some(&app.creator), body(&b), &[])
            .await
            .expect_error(403, "forbidden", None);
    }
    for (m, path, b) in creator_writes(&w) {
        let r = app
            .request(m.clone(), &path, Some(&app.creator), body(&b), &[])
            .await;
        assert!(
            r.status == 200 || r.status == 201,
            "{m} {path}: {}",
            r.text()
        );
    }
    // Accepting closed the review; the closing actions need a fresh one each.
    for (m, path, b) in closing_writes(&w) {
        // Re-run and reject act on a segment in review; cancel on one still queued.
        let fresh = if path.ends_with("/cancel") {
            id(&app.submit(w.scene).await)
        } else {
            app.run_scripted(w.scene, &[0.3]).await["segment_id"]
                .as_i64()
                .unwrap()
        };
        let path = path.replace(&format!("/{}/", w.review), &format!("/{fresh}/"));
        let r = app
            .request(m.clone(), &path, Some(&app.creator), body(&b), &[])
            .await;
        assert_eq!(r.status, 200, "{m} {path}: {}", r.text());
    }
    // The configuration is as it was.
    let p = app.get_project(&app.viewer, w.project).await.expect(200);
    approx(&p["gpu_budget_seconds"], 1000.0);
    assert_eq!(p["default_retry_policy"]["enabled"], false);
    assert_eq!(
        app.get_scene_policy(&app.viewer, w.scene).await.expect(200)["overrides"]["enabled"],
        Value::Null
    );
}

async fn admins_can_do_everything(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let w = world(&app).await;
    for path in reads(&w) {
        assert_eq!(app.get(&path, &app.admin).await.status, 200, "GET {path}");
    }
    let mut writes = creator_writes(&w);
    writes.extend(admin_writes(&w));
    for (m, path, b) in writes {
        // Writes to projects, scene types and policies carry the precondition from a GET.
        let etag = if (m == Method::PUT || m == Method::PATCH)
            && (path.starts_with("/api/projects/") || path.starts_with("/api/scene-types/"))
        {
            app.get(&path, &app.admin).await.json()["updated_at"]
                .as_str()
                .map(str::to_owned)
        } else {
            None
        };
        let headers: Vec<(&str, &str)> = etag.iter().map(|e| ("if-match", e.as_str())).collect();
        let r = app
            .request(m.clone(), &path, Some(&app.admin), body(&b), &headers)
            .await;
        assert!(
            [200, 201, 204].contains(&r.status),
            "{m} {path}: {}",
            r.text()
        );
    }
}
