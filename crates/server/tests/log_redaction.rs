//! A token never reaches the log: with request logging at debug (`RETAKE_LOG=debug`), a request
//! that carries its token in the query string is logged with the path and the token redacted.
//! Its own test binary, because it installs the process-wide log subscriber.

#[path = "api"]
mod api {
    pub mod helpers;
}

use api::helpers::*;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_logs_never_show_a_token() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let (store, _db) = retake_store::testing::sqlite().await;
    let app = TestApp::spawn(store).await;
    let r = app
        .request(
            reqwest::Method::GET,
            &format!("/api/me?access_token={}&view=full", app.viewer),
            None,
            Body::None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Bearer and cookie credentials are headers, which are not logged either.
    app.me(&app.admin).await.expect(200);
    drop(app);

    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(log.contains("path=/api/me"), "the request is logged: {log}");
    assert!(
        log.contains("access_token=[redacted]&view=full"),
        "the query is logged, redacted: {log}"
    );
    assert!(!log.contains("rtk_"), "a token reached the log: {log}");
}

#[test]
fn credential_looking_query_values_are_redacted() {
    use retake_server::redact_query;
    assert_eq!(
        redact_query("access_token=rtk_abc&after=5"),
        "access_token=[redacted]&after=5"
    );
    assert_eq!(redact_query("segment_id=3"), "segment_id=3");
    assert_eq!(
        redact_query("Token=x&password=y&api_secret=z"),
        "Token=[redacted]&password=[redacted]&api_secret=[redacted]"
    );
    assert_eq!(redact_query("flag&x=1"), "flag&x=1");
}
