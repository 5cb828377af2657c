//! Every kind of bad input gets the one error shape, a 4xx (never a 5xx), and names the field
//! when the input names one. (`TestApp::request` checks shape and "no 5xx" on every response.)

use crate::helpers::*;
use reqwest::Method;
use retake_store::Store;
use serde_json::{json, Value};
use std::sync::Arc;

retake_store::contract_tests!(
    policy_values_out_of_range_are_refused_with_their_field,
    trigger_checks_must_be_checks_of_the_scene_type,
    bodies_of_the_wrong_shape_are_bad_requests,
    oversized_bodies_are_refused,
    unknown_ids_and_routes_are_not_found,
    bad_path_parameters_are_bad_requests,
    strings_a_database_cannot_store_are_refused,
);

async fn policy_values_out_of_range_are_refused_with_their_field(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let sid = id(&app.scene_type(pid, json!({})).await);
    let raw = |s: &str| Body::Raw(s.as_bytes().to_vec(), Some("application/json"));
    let project = format!("/api/projects/{pid}/retry-policy");
    let scene = format!("/api/scene-types/{sid}/retry-policy");

    // (body as sent, status, field): every case is tried on both the project's full policy and
    // the scene type's overrides.
    let cases: Vec<(String, u16, &str)> = vec![
        (r#"{"max_attempts": 0}"#.into(), 422, "max_attempts"),
        (r#"{"max_attempts": 11}"#.into(), 422, "max_attempts"),
        (r#"{"max_attempts": -3}"#.into(), 422, "max_attempts"),
        // JSON Schema counts 1e3 as the integer 1000: out of range, not of the wrong type.
        (r#"{"max_attempts": 1e3}"#.into(), 422, "max_attempts"),
        (r#"{"max_attempts": 2.5}"#.into(), 400, "max_attempts"),
        (r#"{"max_attempts": "3"}"#.into(), 400, "max_attempts"),
        (
            r#"{"max_attempts": 99999999999999999999999}"#.into(),
            400,
            "max_attempts",
        ),
        (r#"{"cfg_jitter": -1}"#.into(), 422, "cfg_jitter"),
        (r#"{"cfg_jitter": 10.5}"#.into(), 422, "cfg_jitter"),
        (r#"{"cfg_jitter": 1e308}"#.into(), 422, "cfg_jitter"),
        (r#"{"cfg_jitter": "NaN"}"#.into(), 400, "cfg_jitter"),
        (r#"{"cfg_jitter": "Infinity"}"#.into(), 400, "cfg_jitter"),
        (r#"{"cfg_jitter": 1e400}"#.into(), 400, "cfg_jitter"),
        (r#"{"cfg_jitter": -1e400}"#.into(), 400, "cfg_jitter"),
        (r#"{"denoise_jitter": 0.6}"#.into(), 422, "denoise_jitter"),
        (r#"{"denoise_jitter": -0.01}"#.into(), 422, "denoise_jitter"),
        (
            r#"{"extra_jitter": {"steps": -2}}"#.into(),
            422,
            "extra_jitter.steps",
        ),
        (
            r#"{"extra_jitter": {"seed": 2}}"#.into(),
            422,
            "extra_jitter.seed",
        ),
        (
            r#"{"extra_jitter": {"steps": "two"}}"#.into(),
            400,
            "extra_jitter.steps",
        ),
        (r#"{"target_score": 1.5}"#.into(), 422, "target_score"),
        (
            r#"{"selection_mode": "target_score"}"#.into(),
            422,
            "target_score",
        ),
        (
            r#"{"selection_mode": "random"}"#.into(),
            400,
            "selection_mode",
        ),
        (r#"{"parallelism": 5}"#.into(), 422, "parallelism"),
        (
            r#"{"systematic_max_spread": 2}"#.into(),
            422,
            "systematic_max_spread",
        ),
        (
            r#"{"min_gain_per_gpu_second": -1}"#.into(),
            422,
            "min_gain_per_gpu_second",
        ),
        (
            r#"{"min_rescue_probability": 0.95}"#.into(),
            422,
            "min_rescue_probability",
        ),
        (
            r#"{"min_rescue_probability": 0}"#.into(),
            422,
            "min_rescue_probability",
        ),
        (r#"{"enabled": "yes"}"#.into(), 400, "enabled"),
        (
            r#"{"trigger_checks": "face_confidence"}"#.into(),
            400,
            "trigger_checks",
        ),
        (r#"{"trigger_checks": [""]}"#.into(), 422, "trigger_checks"),
        (
            format!(r#"{{"trigger_checks": ["{}"]}}"#, "c".repeat(65)),
            422,
            "trigger_checks",
        ),
        (r#"{"max_retries": 3}"#.into(), 400, "max_retries"),
    ];
    for (body, status, field) in &cases {
        for path in [&project, &scene] {
            let etag = app.get(path, &app.admin).await.json()["updated_at"]
                .as_str()
                .unwrap()
                .to_owned();
            let r = app
                .request(
                    Method::PUT,
                    path,
                    Some(&app.admin),
                    raw(body),
                    &[("if-match", &etag)],
                )
                .await;
            assert_eq!(r.status, *status, "PUT {path} {body}: {}", r.text());
            let b = r.json();
            assert_eq!(b["error"]["field"], *field, "PUT {path} {body}: {b}");
            assert!(
                !b["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(" at line "),
                "positions are noise to a user: {b}"
            );
        }
    }
    // The range is in the message.
    let b = app
        .put_project_policy(&app.admin, pid, json!({"max_attempts": 11}), None)
        .await
        .expect(422);
    assert!(
        b["error"]["message"].as_str().unwrap().contains("1..=10"),
        "{b}"
    );
    // Nothing was saved.
    let p = app.get_project_policy(&app.viewer, pid).await.expect(200);
    assert_eq!(p["policy"]["max_attempts"], 3);
    assert_eq!(
        app.get_scene_policy(&app.viewer, sid).await.expect(200)["overrides"]["max_attempts"],
        Value::Null
    );
    // The edges are allowed.
    app.put_project_policy(
        &app.admin,
        pid,
        json!({"max_attempts": 1, "cfg_jitter": 0}),
        None,
    )
    .await
    .expect(200);
    app.put_project_policy(
        &app.admin,
        pid,
        json!({"max_attempts": 10, "cfg_jitter": 10}),
        None,
    )
    .await
    .expect(200);
}

async fn trigger_checks_must_be_checks_of_the_scene_type(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let st = app.scene_type(pid, json!({})).await;
    let sid = id(&st);
    let b = app
        .put_scene_policy(
            &app.admin,
            sid,
            json!({"trigger_checks": ["face_confidence", "motion_blur"]}),
            None,
        )
        .await;
    let b = b.expect_error(422, "validation_failed", Some("trigger_checks"));
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("motion_blur")
            && msg.contains("face_confidence")
            && msg.contains("black_frames"),
        "names the allowed checks: {msg}"
    );
    app.create_scene_type(&app.admin, json!({"project_id": pid, "name": "no checks", "retry_policy": {"trigger_checks": ["face_confidence"]}}))
        .await
        .expect_error(422, "validation_failed", Some("trigger_checks"));
    app.put_scene_policy(
        &app.admin,
        sid,
        json!({"trigger_checks": ["black_frames"]}),
        None,
    )
    .await
    .expect(200);
}

async fn bodies_of_the_wrong_shape_are_bad_requests(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let a = Some(app.admin.as_str());
    let json_body = |s: &str| Body::Raw(s.as_bytes().to_vec(), Some("application/json"));
    let post = |body: Body| app.request(Method::POST, "/api/projects", a, body, &[]);

    // Malformed JSON.
    for bad in [
        "{",
        "{\"name\": ",
        "{\"name\": \"x\",}",
        "nul",
        "{'name': 'x'}",
        "\u{feff}{}",
        "{\"name\": \"x\"} trailing",
    ] {
        post(json_body(bad))
            .await
            .expect_error(400, "bad_request", None);
    }
    post(json_body(""))
        .await
        .expect_error(400, "bad_request", None);
    // Valid JSON of the wrong shape names what is wrong.
    post(Body::Json(json!([1, 2])))
        .await
        .expect_error(400, "bad_request", Some("body"));
    post(Body::Json(json!("a string")))
        .await
        .expect_error(400, "bad_request", Some("body"));
    post(Body::Json(json!(null)))
        .await
        .expect_error(400, "bad_request", Some("body"));
    post(Body::Json(json!({"name": 5})))
        .await
        .expect_error(400, "bad_request", Some("name"));
    post(Body::Json(json!({"name": ["x"]})))
        .await
        .expect_error(400, "bad_request", Some("name"));
    post(Body::Json(json!({"name": "x", "gpu_budget_seconds": true})))
        .await
        .expect_error(400, "bad_request", Some("gpu_budget_seconds"));
    post(Body::Json(
        json!({"name": "x", "default_retry_policy": {"enabled": true, "colour": 1}}),
    ))
    .await
    .expect_error(400, "bad_request", Some("default_retry_policy.colour"));
    post(Body::Json(json!({"name": "x", "extra": 1})))
        .await
        .expect_error(400, "bad_request", Some("extra"));
    // An empty key is still an unknown field, and the field named is never empty.
    post(Body::Json(json!({"name": "x", "": 1})))
        .await
        .expect_error(400, "bad_request", Some("body"));
    post(Body::Json(
        json!({"name": "x", "default_retry_policy": {"": 1}}),
    ))
    .await
    .expect_error(400, "bad_request", Some("default_retry_policy"));
    post(Body::Json(json!({"name": "x", "a`b": 1})))
        .await
        .expect_error(400, "bad_request", Some("a`b"));
    post(Body::Json(
        json!({"name": "x", "default_retry_policy": {"`x`y": 1}}),
    ))
    .await
    .expect_error(400, "bad_request", Some("default_retry_policy.`x`y"));
    // A struct is an object, not an array of its fields in order.
    post(Body::Json(json!(["array project"])))
        .await
        .expect_error(400, "bad_request", Some("body"));
    // Wrong or missing content type.
    let body = serde_json::to_vec(&json!({"name": "x"})).unwrap();
    post(Body::Raw(body.clone(), Some("text/plain")))
        .await
        .expect_error(400, "bad_request", None);
    post(Body::Raw(
        body.clone(),
        Some("application/x-www-form-urlencoded"),
    ))
    .await
    .expect_error(400, "bad_request", None);
    post(Body::Raw(body.clone(), None))
        .await
        .expect_error(400, "bad_request", None);
    post(Body::Raw(
        b"name=x".to_vec(),
        Some("application/x-www-form-urlencoded"),
    ))
    .await
    .expect_error(400, "bad_request", None);
    // Not UTF-8.
    post(Body::Raw(
        vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
        Some("application/json"),
    ))
    .await
    .expect_error(400, "bad_request", None);
    // `application/json; charset=utf-8` and `+json` types are JSON.
    app.request(
        Method::POST,
        "/api/projects",
        a,
        Body::Raw(body.clone(), Some("application/json; charset=utf-8")),
        &[],
    )
    .await
    .expect(201);
    let other = serde_json::to_vec(&json!({"name": "y"})).unwrap();
    app.request(
        Method::POST,
        "/api/projects",
        a,
        Body::Raw(other, Some("application/merge-patch+json")),
        &[],
    )
    .await
    .expect(201);
    // A wrong type in a nested list names its index.
    let sid = id(&app.scene_type(pid, json!({})).await);
    app.submit_segments(
        &app.creator,
        json!({"segments": [{"scene_type_id": sid}, {"scene_type_id": "two"}]}),
    )
    .await
    .expect_error(400, "bad_request", Some("segments[1].scene_type_id"));
    app.submit_segments(
        &app.creator,
        json!({"segments": [{"scene_type_id": sid, "colour": 1}]}),
    )
    .await
    .expect_error(400, "bad_request", Some("segments[0].colour"));
    app.submit_segments(&app.creator, json!({"segments": {"scene_type_id": sid}}))
        .await
        .expect_error(400, "bad_request", Some("segments"));
    app.submit_segments(&app.creator, json!({"segments": [], "scene_type_id": sid}))
        .await
        .expect_error(400, "bad_request", Some("scene_type_id"));
    app.submit_segments(
        &app.creator,
        json!({"scene_type_id": sid, "parameters": [1]}),
    )
    .await
    .expect_error(400, "bad_request", Some("parameters"));
    app.submit_segments(&app.creator, json!({"scene_type_id": sid, "rng_seed": -1}))
        .await
        .expect_error(400, "bad_request", Some("rng_seed"));
    app.submit_segments(&app.creator, json!({"scene_type_id": sid, "rng_seed": 1.5}))
        .await
        .expect_error(400, "bad_request", Some("rng_seed"));
    // Deeply nested JSON is refused, not a stack overflow.
    let deep = format!(
        "{{\"project_id\": {pid}, \"name\": \"deep\", \"backend_config\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    app.request(Method::POST, "/api/scene-types", a, json_body(&deep), &[])
        .await
        .expect_error(400, "bad_request", None);
    let deep = format!(
        "{{\"name\":\"x\",\"default_retry_policy\":{{\"extra_jitter\":{}1{}}}}}",
        "{\"a\":".repeat(5000),
        "}".repeat(5000)
    );
    post(json_body(&deep)).await.expect(400);
}

async fn oversized_bodies_are_refused(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let sid = id(&app.scene_type(pid, json!({})).await);
    // A valid JSON document just over 1 MiB.
    let label = "x".repeat(1 << 20);
    let big = serde_json::to_vec(&json!({"name": label})).unwrap();
    assert!(big.len() > 1 << 20);
    app.request(
        Method::POST,
        "/api/projects",
        Some(&app.admin),
        Body::Raw(big.clone(), Some("application/json")),
        &[],
    )
    .await
    .expect_error(413, "payload_too_large", None);
    let big_batch = serde_json::to_vec(&json!({"segments": (0..60_000).map(|_| json!({"scene_type_id": sid})).collect::<Vec<_>>()})).unwrap();
    assert!(big_batch.len() > 1 << 20);
    app.request(
        Method::POST,
        "/api/segments",
        Some(&app.creator),
        Body::Raw(big_batch, Some("application/json")),
        &[],
    )
    .await
    .expect_error(413, "payload_too_large", None);
    app.request(
        Method::PUT,
        &format!("/api/scene-types/{sid}/retry-policy"),
        Some(&app.admin),
        Body::Raw(big, Some("application/json")),
        &[],
    )
    .await
    .expect_error(413, "payload_too_large", None);
    // Just under the limit is read (and judged on its content).
    let under = serde_json::to_vec(&json!({"name": "y".repeat((1 << 20) - 100)})).unwrap();
    app.request(
        Method::POST,
        "/api/projects",
        Some(&app.admin),
        Body::Raw(under, Some("application/json")),
        &[],
    )
    .await
    .expect_error(422, "validation_failed", Some("name"));
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

async fn unknown_ids_and_routes_are_not_found(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let a = app.admin.as_str();
    let missing = [
        (Method::GET, "/api/projects/424242"),
        (Method::DELETE, "/api/projects/424242"),
        (Method::GET, "/api/projects/424242/retry-policy"),
        (Method::GET, "/api/scene-types/424242"),
        (Method::DELETE, "/api/scene-types/424242"),
        (Method::GET, "/api/scene-types/424242/retry-policy"),
        (Method::GET, "/api/scene-types/424242/failure-patterns"),
        (Method::GET, "/api/segments/424242"),
        (Method::GET, "/api/segments/424242/retry-history"),
        (Method::POST, "/api/segments/424242/cancel"),
        (Method::POST, "/api/segments/424242/attempts/1/select"),
        (Method::GET, "/api/segments/424242/attempts/1/media"),
        (Method::POST, "/api/review/424242/reject"),
        (Method::DELETE, "/api/comfyui/servers/nope"),
        (Method::GET, "/api/segments/-1"),
        (Method::GET, "/api/segments/9223372036854775807"),
        (Method::GET, "/api/nothing-here"),
        (Method::POST, "/api/projects/1/archive"),
        (Method::GET, "/api/segments/1/attempts"),
        (Method::GET, "/api/projects/1/retry-policy/extra"),
    ];
    for (m, path) in missing {
        let body = if m == Method::POST {
            Body::Json(json!({}))
        } else {
            Body::None
        };
        app.request(m.clone(), path, Some(a), body, &[])
            .await
            .expect_error(404, "not_found", None);
    }
    // POST bodies to missing ids.
    app.accept(a, 424242, json!({"attempt_number": 1}))
        .await
        .expect_error(404, "not_found", None);
    app.rerun(a, 424242, json!({}))
        .await
        .expect_error(404, "not_found", None);
    app.external_qa(a, 424242, json!({"scores": [{"check": "x", "score": 0.5}]}))
        .await
        .expect_error(404, "not_found", None);
    app.update_project(a, 424242, json!({}), None)
        .await
        .expect_error(404, "not_found", None);
    app.put_project_policy(a, 424242, json!({}), None)
        .await
        .expect_error(404, "not_found", None);
    app.update_scene_type(a, 424242, json!({}), None)
        .await
        .expect_error(404, "not_found", None);
    app.put_scene_policy(a, 424242, json!({}), None)
        .await
        .expect_error(404, "not_found", None);
    // A method a route does not serve is a 405 in the same shape.
    for (m, path) in [
        (Method::DELETE, "/api/segments"),
        (Method::PUT, "/api/projects"),
        (Method::POST, "/api/health"),
        (Method::PATCH, "/metrics"),
    ] {
        let r = app
            .request(m.clone(), path, Some(a), Body::Json(json!({})), &[])
            .await;
        r.expect_error(405, "method_not_allowed", None);
        assert!(
            r.header("allow").is_some(),
            "{m} {path}: a 405 says what is allowed"
        );
    }
}

async fn bad_path_parameters_are_bad_requests(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let a = app.admin.as_str();
    for path in [
        "/api/segments/abc",
        "/api/segments/1.5",
        "/api/segments/%20",
        "/api/segments/99999999999999999999",
        "/api/segments/abc/retry-history",
        "/api/segments/1/attempts/x/media",
        "/api/segments/1/attempts/-1/media",
        "/api/segments/1/attempts/4294967296/media",
        "/api/segments/%2e%2e/attempts/1/media",
        "/api/segments/..%2F..%2Fetc%2Fpasswd/attempts/1/media",
        "/api/projects/0x10",
        "/api/projects/%FF",
        "/api/scene-types/1e3",
        "/api/scene-types/null/retry-policy",
    ] {
        let auth = format!("Bearer {a}");
        app.raw("GET", path, &[("authorization", &auth)], b"")
            .await
            .expect_error(400, "bad_request", Some("path"));
    }
    for path in [
        "/api/segments/x/cancel",
        "/api/segments/1/attempts/one/select",
        "/api/review/abc/reject",
        "/api/attempts/abc/qa",
    ] {
        app.request(Method::POST, path, Some(a), Body::Json(json!({})), &[])
            .await
            .expect_error(400, "bad_request", Some("path"));
    }
    // The path is checked before the body is parsed, whatever the body.
    app.request(
        Method::POST,
        "/api/attempts/abc/qa",
        Some(a),
        Body::Raw(b"{".to_vec(), Some("application/json")),
        &[],
    )
    .await
    .expect(400);
}

/// PostgreSQL refuses NUL characters in text and JSONB (it was a 500 there): every store refuses
/// them alike, naming the field.
async fn strings_a_database_cannot_store_are_refused(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let pid = id(&app.project(json!({})).await);
    let sid = id(&app.scene_type(pid, json!({})).await);
    let nul = "bad\u{0}name";
    let cases = [
        ("/api/projects", json!({"name": nul}), "name"),
        (
            "/api/scene-types",
            json!({"project_id": pid, "name": nul}),
            "name",
        ),
        (
            "/api/scene-types",
            json!({"project_id": pid, "name": "ok", "backend_config": {"profile": nul}}),
            "backend_config.profile",
        ),
        (
            "/api/scene-types",
            json!({"project_id": pid, "name": "ok", "qa_checks": [{"check": nul, "warn": 0.7, "fail": 0.5}]}),
            "qa_checks[0].check",
        ),
        (
            "/api/segments",
            json!({"scene_type_id": sid, "label": nul}),
            "label",
        ),
        (
            "/api/segments",
            json!({"scene_type_id": sid, "parameters": {"prompt": nul}}),
            "parameters.prompt",
        ),
        (
            "/api/segments",
            json!({"scene_type_id": sid, "parameters": {nul: 1}}),
            "parameters.bad\\u0000name",
        ),
        (
            "/api/segments",
            json!({"segments": [{"scene_type_id": sid}, {"scene_type_id": sid, "label": nul}]}),
            "segments[1].label",
        ),
        (
            "/api/tokens",
            json!({"name": nul, "role": "viewer"}),
            "name",
        ),
    ];
    for (path, body, field) in cases {
        let tok = if path == "/api/segments" {
            &app.creator
        } else {
            &app.admin
        };
        app.post(path, tok, body)
            .await
            .expect_error(422, "validation_failed", Some(field));
    }
    app.put_server(&app.admin, "gpu", json!({"url": format!("http://{nul}")}))
        .await
        .expect_error(422, "validation_failed", Some("url"));
    app.put_scene_policy(&app.admin, sid, json!({"trigger_checks": [nul]}), None)
        .await
        .expect_error(422, "validation_failed", Some("trigger_checks[0]"));
    // A literal backslash-u text is not a NUL.
    let p = app
        .create_project(&app.admin, json!({"name": "C:\\u0000 folder"}))
        .await
        .expect(201);
    assert_eq!(p["name"], "C:\\u0000 folder");
    assert_eq!(
        app.list_segments(&app.viewer, "").await.expect(200)["items"],
        json!([]),
        "nothing was saved"
    );
}
