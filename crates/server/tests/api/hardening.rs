//! The server under hostile or heavy clients: slow headers and wide pages.

use crate::helpers::*;
use retake_store::Store;
use serde_json::json;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

retake_store::contract_tests!(
    a_client_that_never_finishes_its_headers_is_disconnected,
    a_page_of_segments_carries_each_segments_own_attempts
);

async fn a_client_that_never_finishes_its_headers_is_disconnected(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Never send the blank line. The server must hang up after its header timeout rather than
    // hold the socket; the bound here is generous (the timeout is 10 s), it only tells "closed"
    // from "held forever".
    let limit = retake_server::HEADER_READ_TIMEOUT * 6;
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(limit, s.read(&mut buf)).await;
    match read {
        Ok(Ok(_)) | Ok(Err(_)) => {} // EOF, a 408, or a reset: the connection is over.
        Err(_) => panic!("the connection was still open after {limit:?}"),
    }
    // A normal client is unaffected.
    let r = app
        .request(reqwest::Method::GET, "/api/health", None, Body::None, &[])
        .await;
    assert_eq!(r.status, 200);
}

async fn a_page_of_segments_carries_each_segments_own_attempts(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let p = app.project(json!({"name": "wide page"})).await;
    let st = id(&app.retrying_scene_type(id(&p), 3).await);
    let mut expected = Vec::new();
    for faces in [&[0.3, 0.9][..], &[0.9], &[0.3, 0.3, 0.95], &[0.2, 0.2, 0.2]] {
        let h = app.run_scripted(st, faces).await;
        expected.push((h["segment_id"].as_i64().unwrap(), faces.len()));
    }
    let page = app
        .request(
            reqwest::Method::GET,
            &format!("/api/segments?scene_type_id={st}&limit=50"),
            Some(&app.viewer),
            Body::None,
            &[],
        )
        .await
        .expect(200);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), expected.len());
    for (sid, n) in expected {
        let item = items
            .iter()
            .find(|i| i["id"].as_i64() == Some(sid))
            .unwrap_or_else(|| panic!("segment {sid} missing from {page}"));
        assert_eq!(item["attempt_count"].as_u64(), Some(n as u64), "{item}");
        assert_eq!(item["retry_count"].as_u64(), Some(n as u64 - 1), "{item}");
        // The summary is built from this segment's attempts, not a neighbour's.
        let summary = item["summary"].as_str().unwrap();
        assert!(summary.starts_with(&format!("Segment {sid}")), "{summary}");
        assert!(summary.contains(&format!("attempt {n}")), "{summary}");
    }
}
