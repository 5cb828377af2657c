//! `/metrics`: Prometheus text.

use crate::helpers::*;
use retake_store::Store;
use serde_json::json;
use std::sync::Arc;

retake_store::contract_tests!(
    metrics_count_attempts_rescues_escalations_gpu_budget_queue_and_latency,
    every_series_the_grafana_dashboard_queries_is_exposed,
    a_wait_for_a_server_shows_in_health_metrics_and_history
);

fn value(text: &str, series: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no `{series}` in\n{text}"));
    line[series.len()..]
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("`{line}`: {e}"))
}

async fn metrics_count_attempts_rescues_escalations_gpu_budget_queue_and_latency(
    store: Arc<dyn Store>,
) {
    let app = TestApp::spawn(store).await;
    let p = app
        .project(json!({"name": "Budgeted \"quoted\"", "gpu_budget_seconds": 1000.0}))
        .await;
    let st = id(&app.retrying_scene_type(id(&p), 2).await);
    app.run_scripted(st, &[0.3, 0.9]).await; // rescued
    app.run_scripted(st, &[0.3, 0.3]).await; // escalated: all attempts failed
    app.run_scripted(st, &[0.9]).await; // passed first time
    app.submit(st).await; // still queued
    app.submit(st).await;

    let r = app.metrics(&app.viewer).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let t = r.text();
    for family in [
        "retake_attempts",
        "retake_segments",
        "retake_rescues",
        "retake_escalations",
        "retake_gpu_seconds_spent",
        "retake_budget_remaining_seconds",
        "retake_queue_depth",
        "retake_decision_latency_seconds",
    ] {
        assert!(
            t.contains(&format!("# TYPE {family} ")),
            "no TYPE line for {family}:\n{t}"
        );
        assert!(
            t.contains(&format!("# HELP {family} ")),
            "no HELP line for {family}:\n{t}"
        );
    }
    assert_eq!(value(&t, "retake_attempts{status=\"passed\"}"), 2.0);
    assert_eq!(value(&t, "retake_attempts{status=\"failed\"}"), 3.0);
    assert_eq!(value(&t, "retake_attempts{status=\"queued\"}"), 2.0);
    assert_eq!(value(&t, "retake_segments{status=\"passed\"}"), 2.0);
    assert_eq!(value(&t, "retake_segments{status=\"needs_review\"}"), 1.0);
    assert_eq!(value(&t, "retake_rescues"), 1.0);
    assert_eq!(
        value(&t, "retake_escalations{reason=\"all_attempts_failed\"}"),
        1.0
    );
    assert!((value(&t, "retake_gpu_seconds_spent") - 5.0 * SCRIPTED_GPU).abs() < 1e-6);
    // Label values are escaped.
    assert!(
        (value(
            &t,
            "retake_budget_remaining_seconds{project=\"Budgeted \\\"quoted\\\"\"}"
        ) - (1000.0 - 5.0 * SCRIPTED_GPU))
            .abs()
            < 1e-6
    );
    assert_eq!(value(&t, "retake_queue_depth"), 2.0);
    // The histogram is cumulative and has observed the decisions this process made.
    let count = value(&t, "retake_decision_latency_seconds_count");
    assert!(count >= 5.0, "{count}");
    assert_eq!(
        value(&t, "retake_decision_latency_seconds_bucket{le=\"+Inf\"}"),
        count
    );
    let buckets: Vec<f64> = t
        .lines()
        .filter(|l| l.starts_with("retake_decision_latency_seconds_bucket{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        buckets.len() >= 2 && buckets.windows(2).all(|w| w[0] <= w[1]),
        "{buckets:?}"
    );
    assert!(value(&t, "retake_decision_latency_seconds_sum") >= 0.0);
    // Every sample line is `name{labels} number`.
    for l in t.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let v = l.rsplit(' ').next().unwrap();
        assert!(
            v.parse::<f64>().is_ok() || v == "+Inf",
            "bad sample line `{l}`"
        );
    }

    let r = app
        .request(reqwest::Method::GET, "/metrics", None, Body::None, &[])
        .await;
    r.expect_error(401, "unauthorized", None);
}

/// The metric names a PromQL expression refers to (`retake_…`, without histogram suffixes).
fn series_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("retake_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        out.push(base.to_owned());
        rest = &tail[end..];
    }
    out
}

async fn every_series_the_grafana_dashboard_queries_is_exposed(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store).await;
    let p = app
        .project(json!({"name": "dash", "gpu_budget_seconds": 1000.0}))
        .await;
    let st = id(&app.retrying_scene_type(id(&p), 2).await);
    app.run_scripted(st, &[0.3, 0.9]).await;
    app.run_scripted(st, &[0.3, 0.3]).await;
    // What a worker counts when a ComfyUI server fails it (the fake-server tests drive the real path).
    retake_engine::metrics::infra_error("comfyui", Some("gpu-1"));
    retake_engine::metrics::dispatched(std::time::Duration::from_millis(3), true);
    let t = app.metrics(&app.viewer).await.text();

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/grafana/retake-dashboard.json"
    );
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut seen = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let names = series_in(expr);
            assert!(!names.is_empty(), "{expr} queries no retake series");
            for n in names {
                assert!(
                    retake_server::metrics::SERIES.contains(&n.as_str()),
                    "the dashboard queries `{n}`, which retake does not define"
                );
                assert!(
                    t.contains(&format!("# TYPE {n} ")),
                    "the dashboard queries `{n}`, absent from /metrics:\n{t}"
                );
                seen += 1;
            }
        }
    }
    assert!(seen >= 10, "{seen}");
    // Per-project budgets and per-scene-type counts carry their labels.
    assert!(
        (value(&t, "retake_project_gpu_budget_seconds{project=\"dash\"}") - 1000.0).abs() < 1e-9
    );
    assert!(
        t.contains("retake_scene_type_rescues{project=\"dash\","),
        "{t}"
    );
}

/// Work that found no healthy ComfyUI server waits; `/api/health`, `/metrics` and the segment's
/// retry history say so (and since when), and nothing counts as failed.
async fn a_wait_for_a_server_shows_in_health_metrics_and_history(store: Arc<dyn Store>) {
    let app = TestApp::spawn(store.clone()).await;
    let p = app.project(json!({"name": "waits"})).await;
    let st = id(&app.retrying_scene_type(id(&p), 2).await);
    let s = app.submit(st).await;
    let body = app.health().await.json();
    assert_eq!(body["status"], json!("ok"));
    assert!(body.get("waiting_for_server").is_none());

    let work = store
        .claim("w", 1, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    store
        .record_infra_failure(retake_store::InfraFailure {
            attempt_id: work[0].attempt.id,
            worker: "w".into(),
            message: "no_healthy_server — no healthy ComfyUI server: gpu-1: connection refused"
                .into(),
            retriable: true,
            gpu_seconds_spent: 0.0,
            max_infra_retries: 0,
            backoff: std::time::Duration::from_secs(60),
            reached_server: false,
        })
        .await
        .unwrap();

    let body = app.health().await.json();
    assert_eq!(body["status"], json!("waiting_for_server"));
    let w = &body["waiting_for_server"];
    assert_eq!(w["attempts"], json!(1));
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .contains("waiting for a healthy ComfyUI server since"),
        "{w}"
    );
    let t = app.metrics(&app.viewer).await.text();
    assert_eq!(value(&t, "retake_attempts_waiting_for_server"), 1.0);
    assert!(value(&t, "retake_waiting_for_server_since_seconds") > 1.0e9);
    let h = app
        .get(
            &format!("/api/segments/{}/retry-history", id(&s)),
            &app.viewer,
        )
        .await
        .json();
    assert_eq!(h["waiting_for_server_since"], w["since"]);
    let a = &h["attempts"][0];
    assert_eq!(a["status"], json!("queued"), "still attempt 1, queued");
    assert_eq!(a["waiting_since"], w["since"]);
    assert!(a["infra_errors"].as_array().unwrap().is_empty());
    assert!(a["failure_reason"]
        .as_str()
        .unwrap()
        .starts_with("waiting for a healthy ComfyUI server since"));
}
