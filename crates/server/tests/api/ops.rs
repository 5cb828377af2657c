//! Health, the caller (`/api/me`) and API tokens.

use crate::helpers::*;
use reqwest::Method;
use retake_store::Store;
use serde_json::json;
use std::sync::Arc;

retake_store::contract_tests!(
    health_needs_no_token_and_names_the_store,
    me_names_the_caller_and_role,
    admins_create_tokens_shown_once
);

async fn health_needs_no_token_and_names_the_store(store: Arc<dyn Store>) {
    let name = store.backend_name();
    let app = TestApp::spawn(store).await;
    let b = app.health().await.expect(200);
    assert_eq!(b["status"], "ok");
    assert_eq!(b["store"], name);
    assert!(b["version"].as_str().is_some_and(|v| !v.is_empty()));
}

async fn me_names_the_caller_and_role(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    for (token, role) in [
        (&app.admin, "admin"),
        (&app.creator, "creator"),
        (&app.viewer, "viewer"),
    ] {
        let b = app.me(token).await.expect(200);
        assert_eq!(b["role"], role);
        assert_eq!(b["name"], role);
    }
    // Browsers' EventSource and <video> cannot send headers: the token may come in the query.
    let b = app
        .request(
            Method::GET,
            &format!("/api/me?access_token={}", app.viewer),
            None,
            Body::None,
            &[],
        )
        .await
        .expect(200);
    assert_eq!(b["role"], "viewer");

    let r = app
        .request(Method::GET, "/api/me", None, Body::None, &[])
        .await;
    r.expect_error(401, "unauthorized", None);
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
    app.me("rtk_not_a_token")
        .await
        .expect_error(401, "unauthorized", None);
    app.request(
        Method::GET,
        "/api/me",
        None,
        Body::None,
        &[("authorization", &format!("Basic {}", app.admin))],
    )
    .await
    .expect_error(401, "unauthorized", None);
    app.request(
        Method::GET,
        "/api/me",
        None,
        Body::None,
        &[("authorization", "Bearer ")],
    )
    .await
    .expect_error(401, "unauthorized", None);
    let long = "x".repeat(4096);
    app.me(&long).await.expect_error(401, "unauthorized", None);
}

async fn admins_create_tokens_shown_once(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let b = app
        .create_token(
            &app.admin,
            json!({"name": "ci pipeline", "role": "creator"}),
        )
        .await
        .expect(201);
    assert_eq!(b["name"], "ci pipeline");
    assert_eq!(b["role"], "creator");
    let token = b["token"]
        .as_str()
        .expect("the token is shown once")
        .to_owned();
    let me = app.me(&token).await.expect(200);
    assert_eq!(me["role"], "creator");
    assert_eq!(me["name"], "ci pipeline");
    // The new creator can submit work but not mint tokens.
    app.create_token(&token, json!({"name": "x", "role": "admin"}))
        .await
        .expect_error(403, "forbidden", None);
    app.create_token(&app.creator, json!({"name": "x", "role": "viewer"}))
        .await
        .expect_error(403, "forbidden", None);
    app.create_token(&app.viewer, json!({"name": "x", "role": "viewer"}))
        .await
        .expect_error(403, "forbidden", None);

    app.create_token(&app.admin, json!({"name": "  ", "role": "viewer"}))
        .await
        .expect_error(422, "validation_failed", Some("name"));
    app.create_token(
        &app.admin,
        json!({"name": "n".repeat(101), "role": "viewer"}),
    )
    .await
    .expect_error(422, "validation_failed", Some("name"));
    app.create_token(&app.admin, json!({"name": "x", "role": "root"}))
        .await
        .expect_error(400, "bad_request", Some("role"));
    app.create_token(&app.admin, json!({"name": "x"}))
        .await
        .expect_error(400, "bad_request", Some("role"));
    app.create_token(
        &app.admin,
        json!({"name": "x", "role": "viewer", "expires": 3}),
    )
    .await
    .expect_error(400, "bad_request", Some("expires"));
}
