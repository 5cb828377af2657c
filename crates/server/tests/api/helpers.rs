//! The test harness: the real server on `127.0.0.1:0` over a fresh database, a data directory, a
//! token per role, one helper per endpoint, and an engine that runs queued work to idle.
//!
//! Every request made through [`TestApp`] asserts the two things no response may break: no 5xx,
//! and every API error uses the one error shape `{"error": {"code", "message", "field"?}}`.
// Shared by the `api` and `fuzz` test binaries; each uses part of it.
#![allow(dead_code, unused_imports)]

mod backend;
mod sse;

pub use backend::{Media, Script, TestBackend, SCRIPTED_GPU};
pub use sse::{EventStream, SseEvent};

use reqwest::header::HeaderMap;
use reqwest::Method;
use retake_engine::{Backends, Engine, EngineConfig};
use retake_server::auth::create_token;
use retake_server::AppState;
use retake_store::{Role, Store};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The estimate a project made by [`TestApp::project`] reserves per attempt.
pub const DEFAULT_ESTIMATE: f64 = 10.0;

/// A response: status, headers and body, already read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("<binary>").to_owned())
    }
    /// Asserts the status, and returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        if self.bytes.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }
    /// Asserts an error response: status, `error.code`, and `error.field` (`None`: no field).
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str, field: Option<&str>) -> Value {
        let b = self.expect(status);
        assert_eq!(b["error"]["code"], code, "wrong error code: {b}");
        match field {
            Some(f) => assert_eq!(b["error"]["field"], f, "wrong error field: {b}"),
            None => assert!(
                b["error"].get("field").is_none(),
                "unexpected error field: {b}"
            ),
        }
        b
    }
}

/// Panics unless `body` is exactly the API's one error shape.
#[track_caller]
pub fn assert_error_shape(status: u16, body: &[u8], what: &str) {
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "{what}: error {status} has a non-JSON body ({e}): {:?}",
            String::from_utf8_lossy(body)
        )
    });
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{what}: error body is not an object: {v}"));
    assert_eq!(
        obj.len(),
        1,
        "{what}: error body has other top-level keys: {v}"
    );
    let e = v["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{what}: no `error` object: {v}"));
    assert!(
        e["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{what}: no error.code: {v}"
    );
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: no error.message: {v}"
    );
    for k in e.keys() {
        assert!(
            ["code", "message", "field", "budget"].contains(&k.as_str()),
            "{what}: unexpected key error.{k}: {v}"
        );
    }
    // The figures of a refused budget, and only there.
    if let Some(b) = e.get("budget") {
        assert!(
            e["code"] == "conflict" && e["field"] == "gpu_budget_seconds",
            "{what}: error.budget on another error: {v}"
        );
        for k in ["requested_seconds", "spent_seconds", "reserved_seconds"] {
            assert!(b[k].is_number(), "{what}: error.budget.{k}: {v}");
        }
    }
    if let Some(f) = e.get("field") {
        let f = f
            .as_str()
            .unwrap_or_else(|| panic!("{what}: error.field must be a string: {v}"));
        assert!(!f.is_empty(), "{what}: error.field must name a field: {v}");
    }
    let code = e["code"].as_str().unwrap();
    let expected = match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        412 => "precondition_failed",
        413 => "payload_too_large",
        416 => "range_not_satisfiable",
        422 => "validation_failed",
        428 => "precondition_required",
        other => panic!("{what}: unexpected error status {other}: {v}"),
    };
    assert_eq!(
        code, expected,
        "{what}: status {status} with code {code}: {v}"
    );
}

/// No 5xx, ever; and every error of the JSON API (not the docs' or the UI's static files) has the
/// one error shape.
#[track_caller]
fn check(method: &str, target: &str, status: u16, bytes: &[u8]) {
    let what = format!("{method} {target}");
    assert!(
        status < 500,
        "{what} answered {status}: {}",
        String::from_utf8_lossy(bytes)
    );
    let path = target.split('?').next().unwrap_or("");
    let api = (path.starts_with("/api/") && !path.starts_with("/api/docs"))
        || path.starts_with("/metrics");
    if status >= 400 && method != "HEAD" && api {
        assert_error_shape(status, bytes, &what);
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..eol])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let Some(data) = b.get(eol + 2..eol + 2 + size) else {
            return out;
        };
        out.extend_from_slice(data);
        b = b.get(eol + 2 + size + 2..).unwrap_or_default();
    }
}

/// A request body.
pub enum Body {
    None,
    Json(Value),
    /// Raw bytes with a content type (`None`: no Content-Type header).
    Raw(Vec<u8>, Option<&'static str>),
}

static NAMES: AtomicU64 = AtomicU64::new(1);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", NAMES.fetch_add(1, Ordering::Relaxed))
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub engine: Arc<Engine<dyn Store>>,
    pub backend: Arc<TestBackend>,
    pub admin: String,
    /// A second admin, for concurrent edits.
    pub admin2: String,
    pub creator: String,
    pub viewer: String,
    /// `root/data` is the data directory; `root` itself is outside it.
    pub root: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
    }
}

/// Warnings and errors of the engine and the server go to the test's captured output, so a
/// failing test shows why (`RETAKE_LOG` overrides the level).
fn init_test_log() {
    let filter = std::env::var("RETAKE_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
}

impl TestApp {
    pub async fn spawn(store: Arc<dyn Store>) -> TestApp {
        Self::spawn_with_storage(store, None).await
    }

    /// With outputs in the media store `storage` names (default: the data directory's).
    pub async fn spawn_with_storage(
        store: Arc<dyn Store>,
        storage: Option<retake_engine::media::StorageConfig>,
    ) -> TestApp {
        init_test_log();
        let root = tempfile::tempdir().expect("temp dir");
        let data_dir = root.path().join("data");
        let ui_dir = root.path().join("ui");
        std::fs::create_dir_all(&data_dir).unwrap();
        std::fs::create_dir_all(&ui_dir).unwrap();
        std::fs::write(
            ui_dir.join("index.html"),
            "<!doctype html><title>retake ui</title>",
        )
        .unwrap();

        let media = retake_engine::media::MediaStore::open(&storage.unwrap_or_default(), &data_dir)
            .expect("open the media store");
        let backend = Arc::new(TestBackend::new());
        let backends = Backends::new().with("simulated", backend.clone());
        let state = AppState {
            store: store.clone(),
            backends: backends.clone(),
            data_dir: data_dir.clone(),
            media: media.clone(),
            ui_dir: Some(ui_dir),
            workflow_validator: None,
            comfy_admin: None,
            token_touches: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(retake_server::launch(state, listener, async move {
            let _ = rx.await;
        }));

        let mut cfg = EngineConfig::new(&data_dir);
        cfg.worker_id = "test-worker".into();
        cfg.infra_backoff = Duration::ZERO;
        cfg.media = Some(media);
        let engine = Engine::new(store.clone(), backends, None, cfg);

        let token = |role, name: &'static str| {
            let store = store.clone();
            async move {
                create_token(store.as_ref(), role, name)
                    .await
                    .expect("create token")
            }
        };
        TestApp {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            admin: token(Role::Admin, "admin").await,
            admin2: token(Role::Admin, "admin2").await,
            creator: token(Role::Creator, "creator").await,
            viewer: token(Role::Viewer, "viewer").await,
            store,
            engine,
            backend,
            root,
            shutdown: Some(tx),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Run every queued attempt (and the retries it leads to) until nothing is left.
    pub async fn run(&self) {
        self.engine.run_until_idle().await.expect("engine run");
    }

    pub fn script(&self, segment_id: i64, script: Script) {
        self.backend
            .scripts
            .lock()
            .unwrap()
            .insert(segment_id, script);
    }

    /// Script `face_confidence` scores per attempt.
    pub fn faces(&self, segment_id: i64, faces: &[f64]) {
        self.script(
            segment_id,
            Script {
                faces: faces.to_vec(),
                media: None,
            },
        );
    }

    // ---- raw requests ----

    /// Any request. Asserts no 5xx and the error shape of every API error.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut rb = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb = match body {
            Body::None => rb,
            Body::Json(v) => rb
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&v).unwrap()),
            Body::Raw(b, ct) => {
                let rb = rb.body(b);
                match ct {
                    Some(ct) => rb.header("content-type", ct),
                    None => rb,
                }
            }
        };
        let res = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: request failed: {e}"));
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body failed: {e}"))
            .to_vec();
        check(method.as_str(), path, status, &bytes);
        Resp {
            status,
            headers,
            bytes,
        }
    }

    /// A request whose target is sent exactly as given (reqwest would resolve `%2e%2e` and `..`
    /// before sending), over a fresh connection. Asserts what [`TestApp::request`] asserts.
    pub async fn raw(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut req = format!("{method} {target} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len()).into_bytes();
        for (k, v) in headers {
            req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        s.write_all(&req).await.expect("send");
        let mut raw = vec![];
        let mut chunk = [0u8; 8192];
        let split = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = s.read(&mut chunk).await.expect("read the response");
            assert!(
                n > 0,
                "{method} {target}: the connection closed before the headers ended: {:?}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        // An event stream never ends: the headers are the answer.
        let streaming = head
            .to_ascii_lowercase()
            .contains("content-type: text/event-stream");
        if !streaming {
            s.read_to_end(&mut raw).await.expect("read the response");
        }
        let mut bytes = if streaming {
            vec![]
        } else {
            raw[split + 4..].to_vec()
        };
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let mut hm = HeaderMap::new();
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                hm.append(
                    reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                    v.trim().parse().unwrap(),
                );
            }
        }
        if hm.get("transfer-encoding").is_some_and(|v| v == "chunked") {
            bytes = dechunk(&bytes);
        }
        check(method, target, status, &bytes);
        Resp {
            status,
            headers: hm,
            bytes,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.request(Method::GET, path, Some(token), Body::None, &[])
            .await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.request(Method::POST, path, Some(token), Body::Json(body), &[])
            .await
    }
    pub async fn put(&self, path: &str, token: &str, body: Value, if_match: Option<&str>) -> Resp {
        let h: Vec<(&str, &str)> = if_match.map(|m| vec![("if-match", m)]).unwrap_or_default();
        self.request(Method::PUT, path, Some(token), Body::Json(body), &h)
            .await
    }
    pub async fn patch(
        &self,
        path: &str,
        token: &str,
        body: Value,
        if_match: Option<&str>,
    ) -> Resp {
        let h: Vec<(&str, &str)> = if_match.map(|m| vec![("if-match", m)]).unwrap_or_default();
        self.request(Method::PATCH, path, Some(token), Body::Json(body), &h)
            .await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.request(Method::DELETE, path, Some(token), Body::None, &[])
            .await
    }

    /// The `updated_at` a write's `If-Match` needs: the one given, else the resource's current
    /// one (read with GET at `read_path`), else a placeholder for a resource that does not exist
    /// (the write then answers 404). Tests of the precondition itself use `put`/`patch` directly.
    async fn etag(&self, given: Option<&str>, read_path: &str) -> String {
        if let Some(g) = given {
            return g.to_owned();
        }
        let r = self.get(read_path, &self.admin).await;
        if r.status == 200 {
            r.json()["updated_at"].as_str().unwrap().to_owned()
        } else {
            "2000-01-01T00:00:00Z".to_owned()
        }
    }

    // ---- one helper per endpoint ----

    pub async fn health(&self) -> Resp {
        self.request(Method::GET, "/api/health", None, Body::None, &[])
            .await
    }
    pub async fn me(&self, token: &str) -> Resp {
        self.get("/api/me", token).await
    }
    pub async fn create_token(&self, token: &str, body: Value) -> Resp {
        self.post("/api/tokens", token, body).await
    }

    pub async fn create_project(&self, token: &str, body: Value) -> Resp {
        self.post("/api/projects", token, body).await
    }
    pub async fn list_projects(&self, token: &str) -> Resp {
        self.get("/api/projects", token).await
    }
    pub async fn get_project(&self, token: &str, id: i64) -> Resp {
        self.get(&format!("/api/projects/{id}"), token).await
    }
    pub async fn update_project(
        &self,
        token: &str,
        id: i64,
        body: Value,
        if_match: Option<&str>,
    ) -> Resp {
        let path = format!("/api/projects/{id}");
        let etag = self.etag(if_match, &path).await;
        self.patch(&path, token, body, Some(&etag)).await
    }
    pub async fn delete_project(&self, token: &str, id: i64) -> Resp {
        self.delete(&format!("/api/projects/{id}"), token).await
    }
    pub async fn get_project_policy(&self, token: &str, id: i64) -> Resp {
        self.get(&format!("/api/projects/{id}/retry-policy"), token)
            .await
    }
    pub async fn put_project_policy(
        &self,
        token: &str,
        id: i64,
        body: Value,
        if_match: Option<&str>,
    ) -> Resp {
        let path = format!("/api/projects/{id}/retry-policy");
        let etag = self.etag(if_match, &path).await;
        self.put(&path, token, body, Some(&etag)).await
    }
    pub async fn patch_project_policy(
        &self,
        token: &str,
        id: i64,
        body: Value,
        if_match: Option<&str>,
    ) -> Resp {
        let path = format!("/api/projects/{id}/retry-policy");
        let etag = self.etag(if_match, &path).await;
        self.patch(&path, token, body, Some(&etag)).await
    }

    pub async fn create_scene_type(&self, token: &str, body: Value) -> Resp {
        self.post("/api/scene-types", token, body).await
    }
    pub async fn list_scene_types(&self, token: &str, query: &str) -> Resp {
        self.get(&format!("/api/scene-types{query}"), token).await
    }
    pub async fn get_scene_type(&self, token: &str, id: i64) -> Resp {
        self.get(&format!("/api/scene-types/{id}"), token).await
    }
    pub async fn update_scene_type(
        &self,
        token: &str,
        id: i64,
        body: Value,
        if_match: Option<&str>,
    ) -> Resp {
        let path = format!("/api/scene-types/{id}");
        let etag = self.etag(if_match, &path).await;
        self.patch(&path, token, body, Some(&etag)).await
    }
    pub async fn delete_scene_type(&self, token: &str, id: i64) -> Resp {
        self.delete(&format!("/api/scene-types/{id}"), token).await
    }
    pub async fn get_scene_policy(&self, token: &str, id: i64) -> Resp {
        self.get(&format!("/api/scene-types/{id}/retry-policy"), token)
            .await
    }
    pub async fn put_scene_policy(
        &self,
        token: &str,
        id: i64,
        body: Value,
        if_match: Option<&str>,
    ) -> Resp {
        let path = format!("/api/scene-types/{id}/retry-policy");
        let etag = self.etag(if_match, &path).await;
        self.put(&path, token, body, Some(&etag)).await
    }
    pub async fn patch_scene_policy(
        &self,
        token: &str,
        id: i64,
        body: Value,
        if_match: Option<&str>,
    ) -> Resp {
        let path = format!("/api/scene-types/{id}/retry-policy");
        let etag = self.etag(if_match, &path).await;
        self.patch(&path, token, body, Some(&etag)).await
    }
    pub async fn scene_failure_patterns(&self, token: &str, id: i64) -> Resp {
        self.get(&format!("/api/scene-types/{id}/failure-patterns"), token)
            .await
    }
    pub async fn failure_patterns(&self, token: &str) -> Resp {
        self.get("/api/failure-patterns", token).await
    }

    pub async fn submit_segments(&self, token: &str, body: Value) -> Resp {
        self.post("/api/segments", token, body).await
    }
    pub async fn list_segments(&self, token: &str, query: &str) -> Resp {
        self.get(&format!("/api/segments{query}"), token).await
    }
    pub async fn get_segment(&self, token: &str, id: i64) -> Resp {
        self.get(&format!("/api/segments/{id}"), token).await
    }
    pub async fn get_retry_history(&self, token: &str, id: i64) -> Resp {
        self.get(&format!("/api/segments/{id}/retry-history"), token)
            .await
    }
    pub async fn cancel_segment(&self, token: &str, id: i64) -> Resp {
        self.request(
            Method::POST,
            &format!("/api/segments/{id}/cancel"),
            Some(token),
            Body::None,
            &[],
        )
        .await
    }
    pub async fn select_attempt(&self, token: &str, id: i64, n: u32) -> Resp {
        self.request(
            Method::POST,
            &format!("/api/segments/{id}/attempts/{n}/select"),
            Some(token),
            Body::None,
            &[],
        )
        .await
    }
    pub async fn get_media(&self, token: &str, id: i64, n: u32, range: Option<&str>) -> Resp {
        let h: Vec<(&str, &str)> = range.map(|r| vec![("range", r)]).unwrap_or_default();
        self.request(
            Method::GET,
            &format!("/api/segments/{id}/attempts/{n}/media"),
            Some(token),
            Body::None,
            &h,
        )
        .await
    }

    pub async fn review_queue(&self, token: &str, query: &str) -> Resp {
        self.get(&format!("/api/review{query}"), token).await
    }
    pub async fn accept(&self, token: &str, segment_id: i64, body: Value) -> Resp {
        self.post(&format!("/api/review/{segment_id}/accept"), token, body)
            .await
    }
    pub async fn rerun(&self, token: &str, segment_id: i64, body: Value) -> Resp {
        self.post(&format!("/api/review/{segment_id}/rerun"), token, body)
            .await
    }
    pub async fn reject(&self, token: &str, segment_id: i64, body: Value) -> Resp {
        self.post(&format!("/api/review/{segment_id}/reject"), token, body)
            .await
    }
    pub async fn external_qa(&self, token: &str, attempt_id: i64, body: Value) -> Resp {
        self.post(&format!("/api/attempts/{attempt_id}/qa"), token, body)
            .await
    }

    pub async fn list_servers(&self, token: &str) -> Resp {
        self.get("/api/comfyui/servers", token).await
    }
    pub async fn put_server(&self, token: &str, name: &str, body: Value) -> Resp {
        self.put(&format!("/api/comfyui/servers/{name}"), token, body, None)
            .await
    }
    pub async fn delete_server(&self, token: &str, name: &str) -> Resp {
        self.delete(&format!("/api/comfyui/servers/{name}"), token)
            .await
    }

    pub async fn metrics(&self, token: &str) -> Resp {
        self.get("/metrics", token).await
    }
    pub async fn openapi(&self) -> Resp {
        self.request(Method::GET, "/api/openapi.json", None, Body::None, &[])
            .await
    }

    /// Open `/api/events` (`query` like `?segment_id=3`); headers are in when this returns.
    pub async fn events(
        &self,
        token: &str,
        query: &str,
        last_event_id: Option<i64>,
    ) -> EventStream {
        let mut rb = self
            .client
            .get(format!("{}/api/events{query}", self.base))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            rb = rb.header("last-event-id", id.to_string());
        }
        let res = rb.send().await.expect("open the event stream");
        assert_eq!(res.status().as_u16(), 200, "the event stream did not open");
        let ct = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(ct.starts_with("text/event-stream"), "content type {ct}");
        EventStream {
            body: Box::pin(res.bytes_stream()),
            buf: String::new(),
        }
    }

    // ---- fixtures ----

    /// A project (admin) with a unique name, `default_gpu_estimate_seconds` 10, and `extra` merged in.
    pub async fn project(&self, extra: Value) -> Value {
        let mut body =
            json!({"name": unique("project"), "default_gpu_estimate_seconds": DEFAULT_ESTIMATE});
        merge(&mut body, extra);
        self.create_project(&self.admin, body).await.expect(201)
    }

    /// A scene type with `face_confidence` (warn 0.7, fail 0.5) and `black_frames` (warn 0.9,
    /// fail 0.8), `cfg_scale` 7.0, and `extra` merged in.
    pub async fn scene_type(&self, project_id: i64, extra: Value) -> Value {
        let mut body = json!({
            "project_id": project_id,
            "name": unique("portrait"),
            "default_parameters": {"cfg_scale": 7.0, "denoise_strength": 0.9},
            "qa_checks": [
                {"check": "face_confidence", "warn": 0.7, "fail": 0.5},
                {"check": "black_frames", "warn": 0.9, "fail": 0.8}
            ],
        });
        merge(&mut body, extra);
        self.create_scene_type(&self.admin, body).await.expect(201)
    }

    /// A scene type whose retries are on (`max_attempts`), triggering on `face_confidence`.
    pub async fn retrying_scene_type(&self, project_id: i64, max_attempts: u8) -> Value {
        self.scene_type(project_id, json!({"retry_policy": {"enabled": true, "max_attempts": max_attempts, "trigger_checks": ["face_confidence"]}})).await
    }

    /// Submit one segment (creator) and return it.
    pub async fn submit(&self, scene_type_id: i64) -> Value {
        let b = self
            .submit_segments(&self.creator, json!({"scene_type_id": scene_type_id}))
            .await
            .expect(201);
        b["segments"][0].clone()
    }

    /// Submit a segment scripted with `faces`, run the engine, and return its retry history.
    pub async fn run_scripted(&self, scene_type_id: i64, faces: &[f64]) -> Value {
        let s = self.submit(scene_type_id).await;
        let id = id(&s);
        self.faces(id, faces);
        self.run().await;
        self.get_retry_history(&self.viewer, id).await.expect(200)
    }
}

/// Shallow-merge `extra`'s keys into `body`.
pub fn merge(body: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

pub fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap_or_else(|| panic!("no id in {v}"))
}

/// `a` and `b` are equal to within a thousandth.
#[track_caller]
pub fn approx(a: &Value, b: f64) {
    let x = a.as_f64().unwrap_or_else(|| panic!("{a} is not a number"));
    assert!((x - b).abs() < 1e-3, "{x} != {b}");
}

/// Write `len` bytes of a recognisable pattern to `path`.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
