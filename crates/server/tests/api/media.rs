//! `GET /api/segments/{id}/attempts/{n}/media`: byte ranges, and nothing outside the data
//! directory, whatever path an attempt has stored.

use crate::helpers::*;
use reqwest::Method;
use retake_store::Store;
use serde_json::json;
use std::sync::Arc;

retake_store::contract_tests!(
    media_is_served_whole_or_by_byte_range,
    media_is_served_from_s3_with_byte_ranges,
    media_outside_the_data_directory_is_never_served,
    encoded_dot_dot_in_urls_serves_no_file
);

const LEN: usize = 1000;

/// A segment whose attempt(s) report `media`; returns its id.
async fn segment_with(app: &TestApp, media: Media) -> i64 {
    let pid = id(&app.project(json!({})).await);
    let st = id(&app.scene_type(pid, json!({})).await);
    let s = app.submit(st).await;
    app.script(
        id(&s),
        Script {
            faces: vec![0.9],
            media: Some(media),
        },
    );
    app.run().await;
    id(&s)
}

async fn media_is_served_whole_or_by_byte_range(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let bytes = pattern(LEN);
    let sid = segment_with(&app, Media::Bytes(bytes.clone())).await;
    let h = app.get_retry_history(&app.viewer, sid).await.expect(200);
    assert_eq!(h["attempts"][0]["has_media"], true);

    let full = app.get_media(&app.viewer, sid, 1, None).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.bytes, bytes);
    assert_eq!(full.header("accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(full.header("content-length").as_deref(), Some("1000"));

    let part = app.get_media(&app.viewer, sid, 1, Some("bytes=0-99")).await;
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range").as_deref(),
        Some("bytes 0-99/1000")
    );
    assert_eq!(part.bytes, bytes[..100]);

    let mid = app.get_media(&app.viewer, sid, 1, Some("bytes=500-")).await;
    assert_eq!(mid.status, 206);
    assert_eq!(
        mid.header("content-range").as_deref(),
        Some("bytes 500-999/1000")
    );
    assert_eq!(mid.bytes, bytes[500..]);

    let tail = app.get_media(&app.viewer, sid, 1, Some("bytes=-10")).await;
    assert_eq!(tail.status, 206);
    assert_eq!(tail.bytes, bytes[990..]);

    let r = app
        .get_media(&app.viewer, sid, 1, Some("bytes=5000-6000"))
        .await;
    r.expect_error(416, "range_not_satisfiable", None);

    // Media elements cannot send headers: the token may come in the query.
    let q = app
        .request(
            Method::GET,
            &format!(
                "/api/segments/{sid}/attempts/1/media?access_token={}",
                app.viewer
            ),
            None,
            Body::None,
            &[("range", "bytes=0-9")],
        )
        .await;
    assert_eq!(q.status, 206);
    assert_eq!(q.bytes, bytes[..10]);

    app.request(
        Method::GET,
        &format!("/api/segments/{sid}/attempts/1/media"),
        None,
        Body::None,
        &[],
    )
    .await
    .expect_error(401, "unauthorized", None);
    app.get_media(&app.viewer, sid, 2, None)
        .await
        .expect_error(404, "not_found", None);
    // An attempt without a video.
    let pid = id(&app.project(json!({})).await);
    let st = id(&app.scene_type(pid, json!({})).await);
    let plain = app.run_scripted(st, &[0.9]).await;
    assert_eq!(plain["attempts"][0]["has_media"], false);
    app.get_media(&app.viewer, plain["segment_id"].as_i64().unwrap(), 1, None)
        .await
        .expect_error(404, "not_found", None);
    // A video removed from disk.
    std::fs::remove_dir_all(app.data_dir().join("media").join(format!("segment-{sid}"))).unwrap();
    app.get_media(&app.viewer, sid, 1, None)
        .await
        .expect_error(404, "not_found", None);
}

async fn media_outside_the_data_directory_is_never_served(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let secret = app.root.path().join("secret.txt");
    std::fs::write(&secret, "TOP SECRET CONTENT").unwrap();
    let data = app.data_dir();

    let cases = [
        Media::Path("/etc/passwd".into()),
        Media::Path(secret.clone()),
        Media::Path(data.join("..").join("secret.txt")),
        Media::Path(data.join("media").join("..").join("..").join("secret.txt")),
        Media::Path("../secret.txt".into()),
        Media::Path("media/../../secret.txt".into()),
        Media::Symlink(secret.clone()),
        Media::Symlink("/etc/passwd".into()),
        Media::Path(data.clone()),
        Media::Path("".into()),
    ];
    for media in cases {
        let what = format!("{media:?}");
        let sid = segment_with(&app, media).await;
        let h = app.get_retry_history(&app.viewer, sid).await.expect(200);
        assert_eq!(h["attempts"][0]["status"], "passed", "{what}");
        for range in [None, Some("bytes=0-99")] {
            let r = app.get_media(&app.viewer, sid, 1, range).await;
            let body = r.text();
            assert!(
                !body.contains("TOP SECRET") && !body.contains("root:"),
                "{what} leaked: {body}"
            );
            assert_eq!(r.status, 404, "{what}: {body}");
        }
    }
    // The data directory's other files (the database above all) are outside the media store.
    std::fs::write(data.join("retake.db"), "SQLite format 3 TOP SECRET").unwrap();
    for media in [
        Media::Path(data.join("retake.db")),
        Media::Path("retake.db".into()),
        Media::Path("../retake.db".into()),
        Media::Symlink(data.join("retake.db")),
    ] {
        let what = format!("{media:?}");
        let sid = segment_with(&app, media).await;
        let r = app.get_media(&app.viewer, sid, 1, None).await;
        assert!(!r.text().contains("TOP SECRET"), "{what} leaked");
        assert_eq!(r.status, 404, "{what}");
    }
    // A path relative to the media store is fine.
    std::fs::create_dir_all(data.join("media").join("clips")).unwrap();
    std::fs::write(data.join("media").join("clips").join("ok.mp4"), pattern(10)).unwrap();
    let sid = segment_with(&app, Media::Path("clips/ok.mp4".into())).await;
    let r = app.get_media(&app.viewer, sid, 1, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.bytes, pattern(10));
    assert_eq!(r.header("content-type").as_deref(), Some("video/mp4"));
}

/// The same route over an S3-compatible store (moto, `scripts/s3-test-server start`): the engine
/// uploaded the output, the route streams it from the store, by byte range too. Skipped loudly
/// without a server; required in CI (`RETAKE_REQUIRE_S3=1`).
async fn media_is_served_from_s3_with_byte_ranges(store: Arc<dyn Store>) {
    let endpoint =
        std::env::var("RETAKE_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9787".into());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    if client.get(format!("{endpoint}/")).send().await.is_err() {
        if std::env::var("RETAKE_REQUIRE_S3").as_deref() == Ok("1") {
            panic!("an S3-compatible server is required (RETAKE_REQUIRE_S3=1) but none answers at {endpoint}");
        }
        eprintln!("\n*** SKIPPED: S3 media route test — no S3-compatible server at {endpoint} (scripts/s3-test-server start) ***\n");
        return;
    }
    let _ = client.put(format!("{endpoint}/retake-test")).send().await;
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_REGION", "us-east-1");
    let url = format!("s3://retake-test/api-{}", uuid::Uuid::new_v4().simple());
    let app = TestApp::spawn_with_storage(
        store,
        Some(retake_engine::media::StorageConfig {
            url: Some(url.clone()),
            endpoint: Some(endpoint),
            region: None,
        }),
    )
    .await;
    let bytes = pattern(LEN);
    let sid = segment_with(&app, Media::Bytes(bytes.clone())).await;
    let h = app.get_retry_history(&app.viewer, sid).await.expect(200);
    assert_eq!(h["attempts"][0]["has_media"], true);
    assert_eq!(h["attempts"][0]["ran_on"], "test-worker");
    let a = app.store.list_attempts(sid).await.unwrap().remove(0);
    assert_eq!(
        a.output_video_path.as_deref(),
        Some(format!("{url}/segment-{sid}/attempt-1/output.mp4").as_str())
    );
    assert!(
        !app.data_dir()
            .join("staging")
            .join(format!("segment-{sid}"))
            .exists(),
        "nothing stays on the worker's disk"
    );

    let full = app.get_media(&app.viewer, sid, 1, None).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.bytes, bytes);
    assert_eq!(full.header("accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(full.header("content-length").as_deref(), Some("1000"));
    let part = app
        .get_media(&app.viewer, sid, 1, Some("bytes=100-199"))
        .await;
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range").as_deref(),
        Some("bytes 100-199/1000")
    );
    assert_eq!(part.bytes, bytes[100..200]);
    let tail = app.get_media(&app.viewer, sid, 1, Some("bytes=-10")).await;
    assert_eq!(tail.status, 206);
    assert_eq!(tail.bytes, bytes[990..]);
    app.get_media(&app.viewer, sid, 1, Some("bytes=5000-6000"))
        .await
        .expect_error(416, "range_not_satisfiable", None);
}

async fn encoded_dot_dot_in_urls_serves_no_file(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let secret = app.root.path().join("secret.txt");
    std::fs::write(&secret, "TOP SECRET CONTENT").unwrap();
    let sid = segment_with(&app, Media::Bytes(pattern(LEN))).await;
    for path in [
        format!("/api/segments/{sid}/attempts/1/media/..%2F..%2F..%2Fsecret.txt"),
        format!("/api/segments/{sid}/attempts/1/media%2F..%2F..%2Fsecret.txt"),
        format!("/api/segments/{sid}/attempts/%2e%2e%2f%2e%2e%2fsecret.txt/media"),
        format!("/api/segments/{sid}/attempts/1/%2e%2e/%2e%2e/%2e%2e/secret.txt"),
        "/api/segments/..%2f..%2f..%2fsecret.txt/attempts/1/media".to_owned(),
        "/api/docs/..%2F..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/api/docs/%2e%2e/%2e%2e/%2e%2e/etc/passwd".to_owned(),
        "/..%2F..%2F..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd".to_owned(),
        "/static/..%5c..%5c..%5cetc%5cpasswd".to_owned(),
    ] {
        let r = app
            .raw(
                "GET",
                &path,
                &[("authorization", &format!("Bearer {}", app.viewer))],
                b"",
            )
            .await;
        let body = r.text();
        assert!(
            !body.contains("TOP SECRET") && !body.contains("root:x:"),
            "{path} leaked: {body}"
        );
        if path.starts_with("/api/") && !path.starts_with("/api/docs") {
            assert!(
                r.status == 400 || r.status == 404,
                "{path}: {} {body}",
                r.status
            );
        }
    }
}
