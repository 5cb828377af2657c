//! The web UI's static files.
//!
//! A release build carries the bundle (`frontend/dist` as it was when the binary was built) inside
//! the binary, so a copied or `cargo install`-ed `retake` serves the UI with nothing beside it. A
//! debug build reads the same folder from disk, so a rebuilt bundle shows without recompiling.
//! `--ui-dir` / `RETAKE_UI_DIR` serve a folder instead (UI development). Without any bundle, `/`
//! says how to build one.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;
use std::path::PathBuf;
use tower_http::services::{ServeDir, ServeFile};

const MISSING: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>retake</title>
<style>body{font:16px system-ui;background:#111;color:#ddd;max-width:46rem;margin:4rem auto;line-height:1.5}code{background:#222;padding:.1rem .3rem}</style></head>
<body><h1>retake</h1><p>The API is running (<a style="color:#8cf" href="/api/docs">API docs</a>), but this retake was built without the web UI.</p>
<p>Build it with <code>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</code>, then rebuild retake (a release build embeds the bundle)
or start retake with <code>--ui-dir frontend/dist</code>. <code>scripts/demo</code> does all of this.</p></body></html>"#;

/// The bundle built into the binary (read from disk in debug builds).
#[derive(RustEmbed)]
#[folder = "../../frontend/dist"]
#[allow_missing = true]
struct Bundle;

/// Where the UI comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiSource {
    /// A folder on disk (`--ui-dir`, `RETAKE_UI_DIR`).
    Dir(PathBuf),
    /// The bundle inside the binary.
    Embedded,
    /// No bundle: `/` explains how to build one.
    Missing,
}

impl UiSource {
    /// `dir` if given (it must hold `index.html`), else the embedded bundle if there is one.
    pub fn resolve(dir: Option<PathBuf>) -> Result<Self, String> {
        if let Some(d) = dir {
            return if d.join("index.html").is_file() {
                Ok(UiSource::Dir(d))
            } else {
                Err(format!(
                    "--ui-dir {}: no index.html there (build the UI with `cd frontend && npm run build`)",
                    d.display()
                ))
            };
        }
        Ok(if Bundle::get("index.html").is_some() {
            UiSource::Embedded
        } else {
            UiSource::Missing
        })
    }

    /// For start-up messages.
    pub fn describe(&self) -> String {
        match self {
            UiSource::Dir(d) => format!("web UI from {}", d.display()),
            UiSource::Embedded => "web UI built into the binary".into(),
            UiSource::Missing => {
                "no web UI in this build (the API works; build frontend/ and rebuild, or pass --ui-dir)"
                    .into()
            }
        }
    }
}

pub fn service(dir: Option<PathBuf>) -> Router {
    match UiSource::resolve(dir).unwrap_or(UiSource::Missing) {
        UiSource::Dir(d) => {
            let index = d.join("index.html");
            // Client-side routes fall back to index.html.
            Router::new().fallback_service(ServeDir::new(d).fallback(ServeFile::new(index)))
        }
        UiSource::Embedded => Router::new().fallback(get(embedded)),
        UiSource::Missing => Router::new().fallback(get(|| async { Html(MISSING) })),
    }
}

async fn embedded(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    let (file, name) = match Bundle::get(path).filter(|_| !path.is_empty()) {
        Some(f) => (f, path),
        // A missing asset is a 404; any other path is a client-side route.
        None if path.starts_with("assets/") => return StatusCode::NOT_FOUND.into_response(),
        None => match Bundle::get("index.html") {
            Some(f) => (f, "index.html"),
            None => return Html(MISSING).into_response(),
        },
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    // Vite names assets by content hash, so they never change; index.html must be revalidated.
    let cache = if name.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut res = Response::new(Body::from(file.data.into_owned()));
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(file.metadata.mimetype()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ui_dir_must_hold_the_bundle() {
        let d = tempfile::tempdir().unwrap();
        let err = UiSource::resolve(Some(d.path().to_owned())).unwrap_err();
        assert!(err.contains("no index.html"), "{err}");
        std::fs::write(d.path().join("index.html"), "<!doctype html>").unwrap();
        assert_eq!(
            UiSource::resolve(Some(d.path().to_owned())).unwrap(),
            UiSource::Dir(d.path().to_owned())
        );
    }

    #[test]
    fn without_a_dir_the_built_in_bundle_is_used_when_there_is_one() {
        let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../frontend/dist/index.html")
            .is_file();
        let expected = if built {
            UiSource::Embedded
        } else {
            UiSource::Missing
        };
        assert_eq!(UiSource::resolve(None).unwrap(), expected);
    }

    #[tokio::test]
    async fn embedded_files_carry_types_and_client_routes_fall_back_to_the_index() {
        if Bundle::get("index.html").is_none() {
            eprintln!("*** SKIPPED: no frontend/dist bundle (npm run build) ***");
            return;
        }
        let get = |p: &str| embedded(p.parse().unwrap(), HeaderMap::new());
        let index = get("/").await;
        assert_eq!(index.status(), StatusCode::OK);
        assert!(index.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let etag = index.headers()[header::ETAG].clone();
        // A client-side route gets the index; a missing asset is a 404.
        let route = get("/segments/12").await;
        assert_eq!(route.headers()[header::ETAG], etag);
        assert_eq!(get("/assets/nope.js").await.status(), StatusCode::NOT_FOUND);
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        let again = embedded("/".parse().unwrap(), h).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }
}
