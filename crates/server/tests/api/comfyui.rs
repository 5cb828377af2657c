//! ComfyUI servers: PUT (add or change), GET, DELETE.

use crate::helpers::*;
use retake_store::Store;
use serde_json::json;
use std::sync::Arc;

retake_store::contract_tests!(
    comfyui_servers_are_added_changed_listed_and_removed,
    comfyui_server_input_is_validated
);

async fn comfyui_servers_are_added_changed_listed_and_removed(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let b = app.list_servers(&app.viewer).await.expect(200);
    assert_eq!(b["servers"], json!([]));
    assert!(b["live"].is_null(), "no pool runs in this process");

    let s = app
        .put_server(&app.admin, "gpu-1", json!({"url": "http://10.0.0.5:8188/"}))
        .await
        .expect(200);
    assert_eq!(s["name"], "gpu-1");
    assert_eq!(
        s["url"], "http://10.0.0.5:8188",
        "a trailing slash is dropped"
    );
    assert_eq!(s["max_concurrency"], 1);
    assert_eq!(s["drained"], false);
    app.put_server(
        &app.admin,
        "gpu_2.local",
        json!({"url": "https://gpu2.example", "max_concurrency": 4}),
    )
    .await
    .expect(200);
    // PUT again changes it in place.
    let s2 = app
        .put_server(
            &app.admin,
            "gpu-1",
            json!({"url": "http://10.0.0.6:8188", "max_concurrency": 2, "drained": true}),
        )
        .await
        .expect(200);
    assert_eq!(s2["id"], s["id"]);
    assert_eq!(s2["drained"], true);

    let list = app.list_servers(&app.viewer).await.expect(200);
    let servers = list["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    let g1 = servers.iter().find(|s| s["name"] == "gpu-1").unwrap();
    assert_eq!(g1["url"], "http://10.0.0.6:8188");
    assert_eq!(g1["max_concurrency"], 2);

    app.delete_server(&app.admin, "gpu-1").await.expect(204);
    app.delete_server(&app.admin, "gpu-1")
        .await
        .expect_error(404, "not_found", None);
    let list = app.list_servers(&app.viewer).await.expect(200);
    assert_eq!(list["servers"].as_array().unwrap().len(), 1);
}

async fn comfyui_server_input_is_validated(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let a = &app.admin;
    app.put_server(a, "gpu-1", json!({"url": "ftp://x"}))
        .await
        .expect_error(422, "validation_failed", Some("url"));
    app.put_server(
        a,
        "gpu-1",
        json!({"url": format!("http://{}", "x".repeat(600))}),
    )
    .await
    .expect_error(422, "validation_failed", Some("url"));
    app.put_server(a, "gpu-1", json!({"url": "http://x", "max_concurrency": 0}))
        .await
        .expect_error(422, "validation_failed", Some("max_concurrency"));
    app.put_server(
        a,
        "gpu-1",
        json!({"url": "http://x", "max_concurrency": 65}),
    )
    .await
    .expect_error(422, "validation_failed", Some("max_concurrency"));
    app.put_server(
        a,
        "gpu-1",
        json!({"url": "http://x", "max_concurrency": -1}),
    )
    .await
    .expect_error(400, "bad_request", Some("max_concurrency"));
    app.put_server(a, "gpu-1", json!({"max_concurrency": 1}))
        .await
        .expect_error(400, "bad_request", Some("url"));
    app.put_server(a, "gpu-1", json!({"url": "http://x", "weight": 3}))
        .await
        .expect_error(400, "bad_request", Some("weight"));
    app.put_server(a, "gpu%201", json!({"url": "http://x"}))
        .await
        .expect_error(422, "validation_failed", Some("name"));
    app.put_server(a, "%2E%2E%2Fetc", json!({"url": "http://x"}))
        .await
        .expect_error(422, "validation_failed", Some("name"));
    app.put_server(a, &"n".repeat(65), json!({"url": "http://x"}))
        .await
        .expect_error(422, "validation_failed", Some("name"));
    app.delete_server(a, "never-added")
        .await
        .expect_error(404, "not_found", None);
    assert_eq!(app.list_servers(a).await.expect(200)["servers"], json!([]));
}
