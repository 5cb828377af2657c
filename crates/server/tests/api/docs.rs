//! `/api/openapi.json` (OpenAPI 3.1 with every route) and `/api/docs` (Swagger UI, offline).

use crate::helpers::*;
use reqwest::Method;
use retake_store::Store;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

retake_store::contract_tests!(
    openapi_document_lists_every_route,
    api_docs_load_without_external_urls,
    the_document_states_the_servers_limits_and_statuses,
);

/// Every operation the router serves, as `(method, path template)`.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/health"),
    ("get", "/api/me"),
    ("post", "/api/tokens"),
    ("get", "/api/tokens"),
    ("delete", "/api/tokens/{id}"),
    ("post", "/api/session"),
    ("delete", "/api/session"),
    ("get", "/api/events"),
    ("get", "/api/projects"),
    ("post", "/api/projects"),
    ("get", "/api/projects/{id}"),
    ("patch", "/api/projects/{id}"),
    ("delete", "/api/projects/{id}"),
    ("get", "/api/projects/{id}/retry-policy"),
    ("put", "/api/projects/{id}/retry-policy"),
    ("patch", "/api/projects/{id}/retry-policy"),
    ("get", "/api/scene-types"),
    ("post", "/api/scene-types"),
    ("get", "/api/scene-types/{id}"),
    ("patch", "/api/scene-types/{id}"),
    ("delete", "/api/scene-types/{id}"),
    ("get", "/api/scene-types/{id}/retry-policy"),
    ("put", "/api/scene-types/{id}/retry-policy"),
    ("patch", "/api/scene-types/{id}/retry-policy"),
    ("get", "/api/scene-types/{id}/failure-patterns"),
    ("get", "/api/failure-patterns"),
    ("get", "/api/segments"),
    ("post", "/api/segments"),
    ("get", "/api/segments/{id}"),
    ("get", "/api/segments/{id}/retry-history"),
    ("post", "/api/segments/{id}/cancel"),
    ("post", "/api/segments/{id}/attempts/{n}/select"),
    ("get", "/api/segments/{id}/attempts/{n}/media"),
    ("get", "/api/review"),
    ("post", "/api/review/bulk"),
    ("get", "/api/queue"),
    ("get", "/api/projects/{id}/ledger"),
    ("get", "/api/projects/{id}/spend"),
    ("post", "/api/review/{segment_id}/accept"),
    ("post", "/api/review/{segment_id}/rerun"),
    ("post", "/api/review/{segment_id}/reject"),
    ("post", "/api/attempts/{id}/qa"),
    ("get", "/api/comfyui/servers"),
    ("put", "/api/comfyui/servers/{name}"),
    ("delete", "/api/comfyui/servers/{name}"),
    ("get", "/metrics"),
];

/// Routes of the router that are not API operations: the document itself, its docs page, and
/// the catch-all that answers unknown `/api/...` paths with a 404.
const NOT_OPERATIONS: &[&str] = &["/api/openapi.json", "/api/{*rest}", "/api/docs"];

/// The `(method, path)` pairs `crates/server/src/lib.rs` registers, read from its source, so a
/// route added there without a line in [`ROUTES`] (and in the document) fails this test.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs")).unwrap();
    // Independent of how rustfmt wraps the calls: no path or handler name holds whitespace.
    let src: String = src.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = BTreeSet::new();
    for chunk in src.split(".route(\"").skip(1) {
        let (path, rest) = chunk.split_once('"').unwrap();
        let call = &rest[..rest.find(';').unwrap_or(rest.len())];
        for m in ["get", "post", "put", "patch", "delete"] {
            if call.contains(&format!("{m}(")) {
                out.insert((m.to_owned(), path.to_owned()));
            }
        }
        if NOT_OPERATIONS.contains(&path) {
            out.retain(|(_, p)| p != path);
        }
    }
    out
}

async fn openapi_document_lists_every_route(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let r = app.openapi().await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let doc = r.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "OpenAPI 3.1: {}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "retake");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());

    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        routes_in_source(),
        listed,
        "the router and this list disagree"
    );

    let paths = doc["paths"].as_object().expect("paths");
    let mut missing = vec![];
    for (method, path) in ROUTES {
        if paths.get(*path).and_then(|p| p.get(*method)).is_none() {
            missing.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}"
    );
    let mut documented: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, item) in paths {
        for m in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
        {
            documented.entry(path.clone()).or_default().push(m.clone());
            assert!(
                listed.contains(&(m.clone(), path.clone())),
                "the document describes {m} {path}, which the router does not serve"
            );
        }
    }
    // The docs page serves the same document.
    let again = app
        .request(Method::GET, "/api/docs/openapi.json", None, Body::None, &[])
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["paths"], doc["paths"]);
}

/// `src`/`href` attribute values in an HTML page.
fn references(html: &str) -> Vec<String> {
    let mut out = vec![];
    for attr in ["src=\"", "href=\"", "src='", "href='"] {
        let quote = attr.chars().last().unwrap();
        for chunk in html.split(attr).skip(1) {
            out.push(chunk.split(quote).next().unwrap().to_owned());
        }
    }
    out
}

async fn api_docs_load_without_external_urls(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    // `/api/docs` leads to the page.
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .unwrap();
    let res = client
        .get(format!("{}/api/docs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let page_url = res.url().clone();
    let html = res.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"),
        "the docs page must work offline:\n{html}"
    );

    let refs = references(&html);
    assert!(refs.len() >= 3, "the page references its assets: {refs:?}");
    let mut js = vec![];
    for r in &refs {
        assert!(
            !r.starts_with("//") && !r.contains("://"),
            "external asset `{r}`"
        );
        let url = page_url.join(r).unwrap();
        assert!(
            url.path().starts_with("/api/docs/"),
            "asset outside the docs: {url}"
        );
        let res = app.client.get(url.clone()).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "{url}");
        let body = res.text().await.unwrap();
        assert!(!body.is_empty(), "{url} is empty");
        if r.ends_with(".js") {
            js.push((r.clone(), body));
        }
    }
    // The initializer points at the local document.
    let (_, init) = js
        .iter()
        .find(|(r, _)| r.contains("initializer"))
        .expect("a swagger-initializer script");
    assert!(init.contains("/api/docs/openapi.json"), "{init}");
    assert!(!init.contains("petstore"), "{init}");
}

/// Issue 15 item 6/7: the limits in the document are the ones the server enforces (one source:
/// `retake_core::limits`), and each operation lists the statuses it can answer.
async fn the_document_states_the_servers_limits_and_statuses(store: Arc<dyn Store>) {
    use retake_core::limits;
    let app = TestApp::spawn(store).await;
    let doc = app.openapi().await.expect(200);
    let schemas = &doc["components"]["schemas"];
    for s in ["RetryPolicy", "PolicyOverrides"] {
        let p = &schemas[s]["properties"];
        assert_eq!(p["max_attempts"]["minimum"], limits::MAX_ATTEMPTS.0, "{s}");
        assert_eq!(p["max_attempts"]["maximum"], limits::MAX_ATTEMPTS.1, "{s}");
        assert_eq!(p["parallelism"]["maximum"], limits::PARALLELISM.1, "{s}");
        assert_eq!(p["cfg_jitter"]["maximum"], limits::CFG_JITTER_MAX, "{s}");
    }
    // What the document says is what the server does: one past each bound is refused.
    let pid = id(&app.project(json!({})).await);
    for (v, ok) in [
        (limits::MAX_ATTEMPTS.0, true),
        (limits::MAX_ATTEMPTS.1, true),
        (limits::MAX_ATTEMPTS.1 + 1, false),
        (limits::MAX_ATTEMPTS.0 - 1, false),
    ] {
        let r = app
            .patch_project_policy(&app.admin, pid, json!({"max_attempts": v}), None)
            .await;
        assert_eq!(r.status == 200, ok, "max_attempts {v}: {}", r.text());
    }
    let limit = doc["paths"]["/api/segments"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()["schema"]
        .clone();
    assert_eq!(
        (limit["minimum"].as_u64(), limit["maximum"].as_u64()),
        (Some(1), Some(200))
    );
    app.list_segments(&app.viewer, "?limit=0")
        .await
        .expect_error(422, "validation_failed", Some("limit"));
    assert_eq!(schemas["ExternalQa"]["minProperties"], 1);
    assert_eq!(schemas["ExternalQa"]["properties"]["scores"]["minItems"], 1);

    let responses = |method: &str, path: &str| -> Vec<String> {
        doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    for code in ["400", "401", "403", "404", "412", "422", "428", "503"] {
        assert!(
            responses("patch", "/api/scene-types/{id}/retry-policy").contains(&code.to_owned()),
            "{code}"
        );
    }
    for code in ["400", "401", "403", "404", "409"] {
        assert!(
            responses("delete", "/api/projects/{id}").contains(&code.to_owned()),
            "{code}"
        );
    }
    assert!(responses("get", "/api/segments").contains(&"422".to_owned()));
    assert!(
        !responses("get", "/api/segments").contains(&"403".to_owned()),
        "any token reads"
    );
}
