//! Tokens a team manages (list, revoke, expiry, last use) and the browser's cookie session.

use crate::helpers::*;
use reqwest::Method;
use retake_server::auth::hash_token;
use retake_store::{Role, Store};
use serde_json::json;
use std::sync::Arc;

retake_store::contract_tests!(
    admins_list_and_revoke_tokens,
    expired_tokens_are_refused_with_the_reason,
    a_browser_signs_in_once_and_carries_a_cookie,
    a_session_ends_with_sign_out_or_its_token,
);

async fn admins_list_and_revoke_tokens(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let made = app
        .create_token(
            &app.admin,
            json!({"name": "render-farm", "role": "creator", "expires_in": "30d"}),
        )
        .await
        .expect(201);
    let token = made["token"].as_str().unwrap().to_owned();
    let tid = made["id"].as_i64().unwrap();
    let exp = chrono::DateTime::parse_from_rfc3339(made["expires_at"].as_str().unwrap()).unwrap();
    let days = (exp.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((29.9..=30.0).contains(&days), "expires in {days} days");

    // Not used yet; only admins may list.
    let list = app.get("/api/tokens", &app.admin).await.expect(200);
    let row = token_row(&list, tid);
    assert_eq!(row["name"], "render-farm");
    assert_eq!(row["role"], "creator");
    assert!(row["last_used_at"].is_null() && row["revoked_at"].is_null());
    assert!(
        !list.to_string().contains(&token) && !list.to_string().contains(&hash_token(&token)),
        "the list shows neither tokens nor their hashes"
    );
    app.get("/api/tokens", &app.creator)
        .await
        .expect_error(403, "forbidden", None);
    app.delete(&format!("/api/tokens/{tid}"), &app.creator)
        .await
        .expect_error(403, "forbidden", None);

    // Using it records the time (in the background: the request does not wait for the write).
    app.me(&token).await.expect(200);
    let mut used = serde_json::Value::Null;
    for _ in 0..100 {
        let list = app.get("/api/tokens", &app.admin).await.expect(200);
        used = token_row(&list, tid);
        if used["last_used_at"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(used["last_used_at"].is_string(), "{used}");

    // Revoked: refused at once, with the reason; still listed.
    let r = app
        .delete(&format!("/api/tokens/{tid}"), &app.admin)
        .await
        .expect(200);
    assert!(r["revoked_at"].is_string());
    let b = app.me(&token).await.expect_error(401, "unauthorized", None);
    assert!(
        b["error"]["message"].as_str().unwrap().contains("revoked"),
        "{b}"
    );
    app.delete("/api/tokens/999999", &app.admin)
        .await
        .expect_error(404, "not_found", None);

    // Lifetimes are checked.
    for bad in ["10s", "soon", "11y", ""] {
        let b = app
            .create_token(
                &app.admin,
                json!({"name": "x", "role": "viewer", "expires_in": bad}),
            )
            .await
            .expect_error(422, "validation_failed", Some("expires_in"));
        assert!(
            b["error"]["message"].as_str().unwrap().contains("30d"),
            "{b}"
        );
    }
}

async fn expired_tokens_are_refused_with_the_reason(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store.clone()).await;
    let secret = "rtk_expired_for_the_test";
    store
        .create_token(
            "old",
            Role::Admin,
            &hash_token(secret),
            Some(chrono::Utc::now() - chrono::Duration::minutes(1)),
        )
        .await
        .unwrap();
    let b = app.me(secret).await.expect_error(401, "unauthorized", None);
    assert!(
        b["error"]["message"].as_str().unwrap().contains("expired"),
        "{b}"
    );
    // Nor can it start a browser session.
    app.request(
        Method::POST,
        "/api/session",
        None,
        Body::Json(json!({"token": secret})),
        &[],
    )
    .await
    .expect_error(401, "unauthorized", None);
}

/// The `retake_session=…` pair from a response's Set-Cookie.
fn session_cookie(r: &Resp) -> String {
    let c = r.header("set-cookie").expect("a Set-Cookie header");
    c.split(';').next().unwrap().trim().to_owned()
}

async fn sign_in(app: &TestApp, token: &str) -> (Resp, String) {
    let r = app
        .request(
            Method::POST,
            "/api/session",
            None,
            Body::Json(json!({"token": token})),
            &[],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let c = session_cookie(&r);
    (r, c)
}

async fn with_cookie(app: &TestApp, method: Method, path: &str, cookie: &str, body: Body) -> Resp {
    app.request(method, path, None, body, &[("cookie", cookie)])
        .await
}

async fn a_browser_signs_in_once_and_carries_a_cookie(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let (r, cookie) = sign_in(&app, &app.admin).await;
    let set = r.header("set-cookie").unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(set.contains(attr), "{attr} missing from {set}");
    }
    assert!(!set.contains(&app.admin), "the cookie is not the token");
    assert_eq!(r.json()["role"], "admin");

    // Every request now works without the token: reads, writes from this site, the event
    // stream and a video URL (what a shared link opened in a new tab does).
    let me = with_cookie(&app, Method::GET, "/api/me", &cookie, Body::None).await;
    assert_eq!(me.expect(200)["name"], "admin");
    let p = with_cookie(
        &app,
        Method::POST,
        "/api/projects",
        &cookie,
        Body::Json(json!({"name": "from-the-browser"})),
    )
    .await;
    p.expect(201);
    let sse = app
        .raw("GET", "/api/events", &[("cookie", cookie.as_str())], b"")
        .await;
    assert_eq!(sse.status, 200);
    let pid = id(&app.project(json!({})).await);
    let st = id(&app.scene_type(pid, json!({})).await);
    let s = app.submit(st).await;
    app.script(
        id(&s),
        Script {
            faces: vec![0.9],
            media: Some(Media::Bytes(b"0123456789".to_vec())),
        },
    );
    app.run().await;
    let v = app
        .request(
            Method::GET,
            &format!("/api/segments/{}/attempts/1/media", id(&s)),
            None,
            Body::None,
            &[("cookie", cookie.as_str()), ("range", "bytes=2-4")],
        )
        .await;
    assert_eq!(v.status, 206);
    assert_eq!(v.bytes, b"234");

    // A write signed in with the cookie from another site is refused.
    let cross = app
        .request(
            Method::POST,
            "/api/projects",
            None,
            Body::Json(json!({"name": "csrf"})),
            &[
                ("cookie", cookie.as_str()),
                ("origin", "https://evil.example"),
            ],
        )
        .await;
    cross.expect_error(403, "forbidden", None);
    // Bearer tokens keep working beside it.
    app.me(&app.viewer).await.expect(200);

    // A viewer's session is a viewer.
    let (_, vc) = sign_in(&app, &app.viewer).await;
    with_cookie(
        &app,
        Method::POST,
        "/api/projects",
        &vc,
        Body::Json(json!({"name": "nope"})),
    )
    .await
    .expect_error(403, "forbidden", None);

    // Wrong tokens start nothing.
    app.request(
        Method::POST,
        "/api/session",
        None,
        Body::Json(json!({"token": "rtk_not_a_token"})),
        &[],
    )
    .await
    .expect_error(401, "unauthorized", None);
    app.request(
        Method::POST,
        "/api/session",
        None,
        Body::Json(json!({"token": ""})),
        &[],
    )
    .await
    .expect_error(422, "validation_failed", Some("token"));
    with_cookie(
        &app,
        Method::GET,
        "/api/me",
        "retake_session=forged",
        Body::None,
    )
    .await
    .expect_error(401, "unauthorized", None);
}

async fn a_session_ends_with_sign_out_or_its_token(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let (_, cookie) = sign_in(&app, &app.creator).await;
    let out = with_cookie(&app, Method::DELETE, "/api/session", &cookie, Body::None).await;
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let b = with_cookie(&app, Method::GET, "/api/me", &cookie, Body::None)
        .await
        .expect_error(401, "unauthorized", None);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign in again"),
        "{b}"
    );

    // Revoking the token ends its sessions too.
    let made = app
        .create_token(&app.admin, json!({"name": "laptop", "role": "viewer"}))
        .await
        .expect(201);
    let (_, c2) = sign_in(&app, made["token"].as_str().unwrap()).await;
    with_cookie(&app, Method::GET, "/api/me", &c2, Body::None)
        .await
        .expect(200);
    app.delete(&format!("/api/tokens/{}", made["id"]), &app.admin)
        .await
        .expect(200);
    with_cookie(&app, Method::GET, "/api/me", &c2, Body::None)
        .await
        .expect_error(401, "unauthorized", None);
}

/// The row of token `id` in a `GET /api/tokens` answer.
fn token_row(list: &serde_json::Value, id: i64) -> serde_json::Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("token {id} not in {list}"))
        .clone()
}
