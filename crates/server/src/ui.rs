//! The web UI's static files. If the bundle has not been built, `/` says how to build it.

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use std::path::PathBuf;
use tower_http::services::{ServeDir, ServeFile};

const MISSING: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>retake</title>
<style>body{font:16px system-ui;background:#111;color:#ddd;max-width:46rem;margin:4rem auto;line-height:1.5}code{background:#222;padding:.1rem .3rem}</style></head>
<body><h1>retake</h1><p>The API is running (<a style="color:#8cf" href="/api/docs">API docs</a>), but the web UI has not been built.</p>
<p>Build it with <code>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</code>, then reload this page
(or start retake with <code>scripts/demo</code>, which builds it first). Set <code>RETAKE_UI_DIR</code> if the bundle lives elsewhere.</p></body></html>"#;

/// The directory holding the built UI: `RETAKE_UI_DIR`, else `frontend/dist` of this checkout.
pub fn default_ui_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("RETAKE_UI_DIR") {
        return Some(PathBuf::from(d));
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../frontend/dist");
    Some(here)
}

pub fn service(dir: Option<PathBuf>) -> Router {
    match dir.filter(|d| d.join("index.html").is_file()) {
        Some(d) => {
            let index = d.join("index.html");
            // Client-side routes fall back to index.html.
            Router::new().fallback_service(ServeDir::new(d).fallback(ServeFile::new(index)))
        }
        None => Router::new().fallback(get(|| async { Html(MISSING) })),
    }
}
