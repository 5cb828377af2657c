//! Thousands of malformed requests against one running server (SQLite): every path template of
//! the OpenAPI document × random methods, hostile path parameters, random query strings, random
//! JSON of random shapes, mutated valid bodies, truncated JSON, numbers no f64 holds, wrong types,
//! unicode, wrong content types, missing and invalid credentials. None may get a 5xx, and every
//! error body must have the one error shape (`TestApp::raw` asserts both on every response).
//!
//! Bounded: a fixed number of cases, each one request; proptest shrinks a failing request.
//! For a longer hunt: `RETAKE_FUZZ_CASES=50000`, and `RETAKE_FUZZ_STORE=postgres` to run it
//! against PostgreSQL instead.

/// The API suite's harness (`tests/api/helpers.rs` and its submodules).
#[path = "api"]
mod api {
    pub mod helpers;
}

use api::helpers::*;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Requests sent. Each is a fresh connection to a debug build: keep the run well under a minute.
const CASES: u32 = 6000;
/// Fuzzed admins delete things: the world is rebuilt this often so that ids keep finding rows.
const REBUILD_EVERY: u32 = 750;

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE",
];

const FIELDS: &[&str] = &[
    "name",
    "gpu_budget_seconds",
    "default_gpu_estimate_seconds",
    "default_retry_policy",
    "project_id",
    "backend",
    "backend_config",
    "workflow_template",
    "parameter_bindings",
    "default_parameters",
    "qa_checks",
    "qa_commands",
    "retry_policy",
    "scene_type_id",
    "parameters",
    "label",
    "rng_seed",
    "segments",
    "attempt_number",
    "note",
    "jitter_scale",
    "scores",
    "error",
    "check",
    "score",
    "details",
    "url",
    "max_concurrency",
    "drained",
    "role",
    "enabled",
    "max_attempts",
    "trigger_checks",
    "seed_variation",
    "cfg_jitter",
    "denoise_jitter",
    "extra_jitter",
    "selection_mode",
    "target_score",
    "systematic_detection",
    "systematic_max_spread",
    "adaptive_variation",
    "min_gain_per_gpu_second",
    "parallelism",
    "retry_priority",
    "action",
    "segment_ids",
    "min_rescue_probability",
    "retry_regressions",
    "warn",
    "fail",
    "options",
    "seed",
    "cfg_scale",
    "denoise_strength",
    "steps",
    "external_qa",
    "profile",
];

const QUERY_KEYS: &[&str] = &[
    "project_id",
    "scene_type_id",
    "status",
    "cursor",
    "limit",
    "after",
    "segment_id",
    "access_token",
    "offset",
    "format",
    "buckets",
    "review_reason",
    "label",
];

/// Numbers as JSON text that no i64/u64/f64 holds exactly, or at all.
const HUGE: &[&str] = &[
    "1e400",
    "-1e400",
    "1e308",
    "-1e308",
    "18446744073709551616",
    "9223372036854775808",
    "-9223372036854775809",
    "123456789012345678901234567890",
    "1e-400",
    "-0",
    "0.0000000000000000000000001",
    "4294967296",
    "255.9999999999999999",
];

const PATH_ODDITIES: &[&str] = &[
    "0",
    "-1",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999999",
    "1e3",
    "0x1F",
    "1.5",
    "NaN",
    "inf",
    "..",
    "%2e%2e",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%00",
    "%ff%fe",
    "%",
    "%zz",
    "%2",
    "gpu-1",
    "a%2Fb",
    "~",
    "'%20OR%201=1--",
    "%F0%9F%92%A5",
    "%E2%80%AE",
    "+1",
    "%2B1",
    "%20",
    "1%00",
    "",
];

/// Valid bodies per operation, to be mutated one field at a time.
fn templates() -> BTreeMap<(&'static str, &'static str), Value> {
    let policy = json!({"enabled": true, "max_attempts": 3, "trigger_checks": ["face_confidence"], "seed_variation": true, "cfg_jitter": 0.5,
        "denoise_jitter": 0.05, "extra_jitter": {"steps": 2}, "selection_mode": "best_of_n", "target_score": 0.8, "systematic_detection": true,
        "systematic_max_spread": 0.05, "adaptive_variation": false, "min_gain_per_gpu_second": 0.01, "parallelism": 2, "retry_priority": 10, "min_rescue_probability": 0.1,
        "retry_regressions": true});
    let scene = json!({"project_id": 1, "name": "fuzz scene", "backend": "simulated", "backend_config": {"profile": "portrait"},
        "workflow_template": {}, "parameter_bindings": {"cfg_scale": "3.cfg"}, "default_parameters": {"cfg_scale": 7.0, "steps": 20},
        "qa_checks": [{"check": "face_confidence", "warn": 0.7, "fail": 0.5, "enabled": true, "options": {}}],
        "qa_commands": [], "retry_policy": {"enabled": true, "max_attempts": 2, "trigger_checks": ["face_confidence"]}});
    BTreeMap::from([
        (
            ("post", "/api/tokens"),
            json!({"name": "fuzz", "role": "viewer"}),
        ),
        (
            ("post", "/api/projects"),
            json!({"name": "fuzz project", "gpu_budget_seconds": 100.0, "default_gpu_estimate_seconds": 5.0, "default_retry_policy": policy}),
        ),
        (
            ("patch", "/api/projects/{id}"),
            json!({"name": "renamed", "gpu_budget_seconds": null, "default_gpu_estimate_seconds": 3.0}),
        ),
        (("put", "/api/projects/{id}/retry-policy"), policy.clone()),
        (("post", "/api/scene-types"), scene.clone()),
        (("patch", "/api/scene-types/{id}"), {
            let mut s = scene;
            s.as_object_mut().unwrap().remove("project_id");
            s.as_object_mut().unwrap().remove("retry_policy");
            s
        }),
        (
            ("put", "/api/scene-types/{id}/retry-policy"),
            json!({"enabled": true, "max_attempts": 4, "cfg_jitter": null, "trigger_checks": ["face_confidence"]}),
        ),
        (
            ("post", "/api/segments"),
            json!({"scene_type_id": 1, "parameters": {"cfg_scale": 7.0, "seed": 5, "prompt": "a face"}, "label": "shot", "rng_seed": 7}),
        ),
        (
            ("post", "/api/review/{segment_id}/accept"),
            json!({"attempt_number": 1, "note": "fine"}),
        ),
        (
            ("post", "/api/review/{segment_id}/rerun"),
            json!({"parameters": {"cfg_scale": 6.0}, "jitter_scale": 2.0}),
        ),
        (
            ("post", "/api/review/bulk"),
            json!({"action": "accept", "segment_ids": [1, 2, 3], "note": "fine"}),
        ),
        (
            ("post", "/api/review/{segment_id}/reject"),
            json!({"note": "no"}),
        ),
        (
            ("post", "/api/attempts/{id}/qa"),
            json!({"scores": [{"check": "face_confidence", "score": 0.9, "details": {"m": 1}}], "error": null}),
        ),
        (
            ("put", "/api/comfyui/servers/{name}"),
            json!({"url": "http://gpu:8188", "max_concurrency": 2, "drained": false}),
        ),
    ])
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn path_param() -> BoxedStrategy<String> {
    prop_oneof![
        6 => (1i64..16).prop_map(|i| i.to_string()),
        1 => any::<i64>().prop_map(|i| i.to_string()),
        2 => select(PATH_ODDITIES).prop_map(str::to_owned),
        2 => any::<String>().prop_map(|s| encode(&s)),
        1 => "[a-zA-Z0-9._~-]{0,70}",
    ]
    .boxed()
}

fn query() -> BoxedStrategy<String> {
    let key = prop_oneof![3 => select(QUERY_KEYS).prop_map(str::to_owned), 1 => "[a-z_]{1,10}", 1 => any::<String>().prop_map(|s| encode(&s))];
    let value = prop_oneof![
        2 => (-3i64..300).prop_map(|i| i.to_string()),
        1 => any::<i64>().prop_map(|i| i.to_string()),
        1 => select(HUGE).prop_map(str::to_owned),
        1 => select(&["queued", "passed", "needs_review", "bogus", "", "true", "null"][..]).prop_map(str::to_owned),
        1 => any::<String>().prop_map(|s| encode(&s)),
        1 => select(PATH_ODDITIES).prop_map(str::to_owned),
    ];
    prop_oneof![
        3 => Just(String::new()),
        4 => prop::collection::vec((key, value), 1..4).prop_map(|kv| format!("?{}", kv.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"))),
        1 => select(&["?", "?&&", "?a", "?=", "?limit=1&limit=2", "?%", "?limit", "?after=1&after=x"][..]).prop_map(str::to_owned),
    ]
    .boxed()
}

fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-20i64..20).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1.5f64..1.5).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        any::<String>().prop_map(Value::from),
        "[a-z_]{0,12}".prop_map(Value::from),
        select(
            &[
                "face_confidence",
                "black_frames",
                "first_pass",
                "best_of_n",
                "target_score",
                "admin",
                "viewer",
                "simulated",
                "comfyui",
                "http://x",
                "3.cfg",
                "\u{0}",
                "\u{202e}x",
                "💥"
            ][..]
        )
        .prop_map(Value::from),
    ]
    .boxed()
}

fn json_value() -> BoxedStrategy<Value> {
    let key = prop_oneof![3 => select(FIELDS).prop_map(str::to_owned), 1 => "[a-z_]{1,12}", 1 => any::<String>()];
    json_leaf()
        .prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// How a body is made.
#[derive(Debug, Clone)]
enum BodyKind {
    None,
    Random(Value),
    /// The operation's valid body (or another's) with one field, maybe one level down, changed.
    Mutated {
        key: Index,
        deeper: Index,
        change: Change,
    },
    /// A valid body cut short.
    Truncated(Index),
    /// A valid body with one field set to a number no f64 holds.
    Huge {
        key: Index,
        number: &'static str,
    },
    Bytes(Vec<u8>),
    /// A valid body as it is (the request is malformed elsewhere, if at all).
    Valid,
}

#[derive(Debug, Clone)]
enum Change {
    Set(Value),
    Remove,
    Add(String, Value),
}

fn body_kind() -> BoxedStrategy<BodyKind> {
    let change = prop_oneof![
        4 => json_leaf().prop_map(Change::Set),
        2 => json_value().prop_map(Change::Set),
        1 => Just(Change::Remove),
        1 => ("[a-z_]{1,10}", json_leaf()).prop_map(|(k, v)| Change::Add(k, v)),
    ];
    prop_oneof![
        2 => Just(BodyKind::None),
        3 => json_value().prop_map(BodyKind::Random),
        6 => (any::<Index>(), any::<Index>(), change).prop_map(|(key, deeper, change)| BodyKind::Mutated { key, deeper, change }),
        1 => any::<Index>().prop_map(BodyKind::Truncated),
        1 => (any::<Index>(), select(HUGE)).prop_map(|(key, number)| BodyKind::Huge { key, number }),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(BodyKind::Bytes),
        1 => Just(BodyKind::Valid),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    Token(usize),
    Invalid(String),
    Header(&'static str),
    Query(usize),
}

fn auth() -> BoxedStrategy<Auth> {
    prop_oneof![
        2 => Just(Auth::None),
        12 => (0usize..3).prop_map(Auth::Token),
        1 => "[ -~]{0,40}".prop_map(Auth::Invalid),
        1 => select(&["Basic YWRtaW46YWRtaW4=", "Bearer", "bearer rtk_x", "Token rtk_x", "Bearer  ", "Bearer rtk_\u{e9}"][..]).prop_map(Auth::Header),
        1 => (0usize..3).prop_map(Auth::Query),
    ]
    .boxed()
}

fn extra_headers() -> BoxedStrategy<Vec<(&'static str, String)>> {
    let h = prop_oneof![
        (
            Just("if-match"),
            prop_oneof![
                Just("2024-01-01T00:00:00Z".to_owned()),
                Just("\"W/2024\"".to_owned()),
                "[ -~]{0,30}"
            ]
        ),
        (
            Just("range"),
            prop_oneof![
                Just("bytes=0-10".to_owned()),
                Just("bytes=-5".to_owned()),
                Just("bytes=99999999999999999999-".to_owned()),
                Just("bytes=5-1".to_owned()),
                "[ -~]{0,30}"
            ]
        ),
        (
            Just("last-event-id"),
            prop_oneof![
                Just("0".to_owned()),
                Just("-1".to_owned()),
                Just("9223372036854775808".to_owned()),
                "[ -~]{0,20}"
            ]
        ),
        (
            Just("accept"),
            prop_oneof![
                Just("text/event-stream".to_owned()),
                Just("application/xml".to_owned())
            ]
        ),
    ];
    prop::collection::vec(h, 0..2).boxed()
}

fn content_type() -> BoxedStrategy<Option<&'static str>> {
    prop_oneof![
        6 => Just(Some("application/json")),
        1 => Just(Some("application/json; charset=utf-8")),
        1 => Just(None),
        1 => select(&["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/vnd.api+json", "application/jsonx", "*/*"][..]).prop_map(Some),
    ]
    .boxed()
}

/// Everything one request needs, drawn at random; [`Ctx::build`] turns it into bytes.
#[derive(Debug, Clone)]
struct Draw {
    route: Index,
    documented_method: bool,
    method: &'static str,
    params: [String; 2],
    query: String,
    body: BodyKind,
    template: Index,
    content_type: Option<&'static str>,
    auth: Auth,
    headers: Vec<(&'static str, String)>,
}

fn draw() -> impl Strategy<Value = Draw> {
    (
        (
            any::<Index>(),
            prop::bool::weighted(0.85),
            select(METHODS),
            [path_param(), path_param()],
            query(),
        ),
        (
            body_kind(),
            any::<Index>(),
            content_type(),
            auth(),
            extra_headers(),
        ),
    )
        .prop_map(
            |(
                (route, documented_method, method, params, query),
                (body, template, content_type, auth, headers),
            )| Draw {
                route,
                documented_method,
                method,
                params,
                query,
                body,
                template,
                content_type,
                auth,
                headers,
            },
        )
}

struct Ctx {
    /// `(path template, documented methods)` from the OpenAPI document.
    routes: Vec<(String, Vec<String>)>,
    templates: BTreeMap<(&'static str, &'static str), Value>,
    tokens: [String; 3],
}

struct Built {
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Ctx {
    fn build(&self, d: &Draw) -> Built {
        let (template, methods) = d.route.get(&self.routes);
        let method = if d.documented_method && !methods.is_empty() {
            METHODS
                .iter()
                .copied()
                .find(|m| m.eq_ignore_ascii_case(d.template.get(methods.as_slice()).as_str()))
                .unwrap()
        } else {
            d.method
        };
        // A random method may still be DELETE on the tokens route: keep the run's own tokens.
        let method = if template == "/api/tokens/{id}" && method.eq_ignore_ascii_case("delete") {
            "GET"
        } else {
            method
        };
        let mut path = String::new();
        let mut n = 0;
        for part in template.split('/').skip(1) {
            path.push('/');
            if part.starts_with('{') {
                path.push_str(&d.params[n.min(1)]);
                n += 1;
            } else {
                path.push_str(part);
            }
        }
        let mut target = format!("{path}{}", d.query);
        let mut headers = d.headers.clone();
        match &d.auth {
            Auth::None => {}
            Auth::Token(i) => {
                headers.push(("authorization", format!("Bearer {}", self.tokens[*i])))
            }
            Auth::Invalid(s) => headers.push(("authorization", format!("Bearer {s}"))),
            Auth::Header(h) => headers.push(("authorization", (*h).to_owned())),
            Auth::Query(i) => target.push_str(&format!(
                "{}access_token={}",
                if target.contains('?') { "&" } else { "?" },
                self.tokens[*i]
            )),
        }
        let valid = self
            .templates
            .iter()
            .find(|((m, t), _)| m.eq_ignore_ascii_case(method) && *t == template.as_str())
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| {
                d.template
                    .get(&self.templates.values().cloned().collect::<Vec<_>>())
                    .clone()
            });
        let body = match &d.body {
            BodyKind::None => vec![],
            BodyKind::Random(v) => serde_json::to_vec(v).unwrap(),
            BodyKind::Valid => serde_json::to_vec(&valid).unwrap(),
            BodyKind::Bytes(b) => b.clone(),
            BodyKind::Truncated(at) => {
                let s = serde_json::to_vec(&valid).unwrap();
                s[..at.index(s.len())].to_vec()
            }
            BodyKind::Huge { key, number } => {
                let mut v = valid;
                let keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
                v[key.get(&keys).as_str()] = json!("__HUGE__");
                serde_json::to_string(&v)
                    .unwrap()
                    .replace("\"__HUGE__\"", number)
                    .into_bytes()
            }
            BodyKind::Mutated {
                key,
                deeper,
                change,
            } => {
                let mut v = valid;
                mutate(&mut v, key, deeper, change);
                serde_json::to_vec(&v).unwrap()
            }
        };
        if !body.is_empty() || d.content_type.is_some_and(|_| method != "GET") {
            if let Some(ct) = d.content_type {
                headers.push(("content-type", ct.to_owned()));
            }
        }
        Built {
            method,
            target,
            headers,
            body,
        }
    }
}

/// Change one field of `v`, one level down when that field is an object and `deeper` says so.
fn mutate(v: &mut Value, key: &Index, deeper: &Index, change: &Change) {
    let Some(obj) = v.as_object_mut() else { return };
    let keys: Vec<String> = obj.keys().cloned().collect();
    if keys.is_empty() {
        return;
    }
    let k = key.get(&keys).clone();
    if deeper.index(2) == 1 {
        if let Some(inner) = obj
            .get_mut(&k)
            .filter(|x| x.is_object() && !x.as_object().unwrap().is_empty())
        {
            return mutate(inner, deeper, key, change);
        }
    }
    match change {
        Change::Set(x) => {
            obj.insert(k, x.clone());
        }
        Change::Remove => {
            obj.remove(&k);
        }
        Change::Add(name, x) => {
            obj.insert(name.clone(), x.clone());
        }
    }
}

/// Something for every kind of id to point at: a project with a budget, a scene type, a passed
/// segment with a video, one in review, one whose attempt waits for external QA, one queued, a
/// ComfyUI server.
async fn world(app: &TestApp) {
    let pid = id(&app.project(json!({"gpu_budget_seconds": 10_000.0})).await);
    let st = id(&app.retrying_scene_type(pid, 2).await);
    let s = app.submit(st).await;
    app.script(
        id(&s),
        Script {
            faces: vec![0.9],
            media: Some(Media::Bytes(pattern(300))),
        },
    );
    app.run().await;
    app.run_scripted(st, &[0.3]).await;
    let ext = id(&app
        .scene_type(pid, json!({"backend_config": {"external_qa": true}}))
        .await);
    app.submit(ext).await;
    app.run().await;
    app.submit(st).await;
    app.put_server(&app.admin, "gpu-1", json!({"url": "http://gpu:8188"}))
        .await
        .expect(200);
}

#[test]
fn malformed_requests_never_get_a_5xx_and_errors_have_one_shape() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (store, _db) = if std::env::var("RETAKE_FUZZ_STORE").is_ok_and(|s| s == "postgres") {
        rt.block_on(retake_store::testing::postgres())
            .expect("RETAKE_FUZZ_STORE=postgres needs a PostgreSQL server")
    } else {
        rt.block_on(retake_store::testing::sqlite())
    };
    let cases = std::env::var("RETAKE_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CASES);
    let app = rt.block_on(TestApp::spawn(store));
    rt.block_on(world(&app));
    let doc = rt.block_on(app.openapi()).json();
    let routes: Vec<(String, Vec<String>)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, item)| {
            (
                p.clone(),
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| METHODS.iter().any(|m| m.eq_ignore_ascii_case(k)))
                    // Revoking the run's own tokens would leave the rest of it at the front door
                    // (401); revocation has its own tests (`tests/api/tokens.rs`).
                    .filter(|k| {
                        !(p.as_str() == "/api/tokens/{id}" && k.eq_ignore_ascii_case("delete"))
                    })
                    .cloned()
                    .collect(),
            )
        })
        .collect();
    assert!(
        routes.len() >= 25,
        "the document lists the routes: {}",
        routes.len()
    );
    let ctx = Arc::new(Ctx {
        routes,
        templates: templates(),
        tokens: [app.admin.clone(), app.creator.clone(), app.viewer.clone()],
    });

    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 300,
        ..Config::default()
    });
    let statuses: std::sync::Mutex<BTreeMap<u16, u32>> = Default::default();
    let sent = std::sync::atomic::AtomicU32::new(0);
    let result = runner.run(&draw(), |d| {
        if sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % REBUILD_EVERY
            == REBUILD_EVERY - 1
        {
            rt.block_on(world(&app));
        }
        let b = ctx.build(&d);
        let headers: Vec<(&str, &str)> = b.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = rt.block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(30),
                app.raw(b.method, &b.target, &headers, &b.body),
            )
            .await
            .unwrap_or_else(|_| panic!("{} {} did not answer", b.method, b.target))
        });
        *statuses.lock().unwrap().entry(r.status).or_default() += 1;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The run reached past the front door: successes, validation failures and missing ids too.
    let statuses = statuses.into_inner().unwrap();
    eprintln!("fuzz statuses: {statuses:?}");
    let total: u32 = statuses.values().sum();
    assert!(total >= cases, "{total} requests");
    for s in [200, 400, 401, 403, 404, 422] {
        assert!(
            statuses.get(&s).is_some_and(|n| *n > 0),
            "no {s} in {statuses:?}"
        );
    }
}
