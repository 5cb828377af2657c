//! Prometheus exposition through `metrics-exporter-prometheus`: the engine's process metrics
//! (recorded with the `metrics` facade wherever they happen) and, on each scrape of
//! `retake serve`, the store's gauges (queue depth by state, budgets, retries and rescues by scene
//! type). Workers serve the same registry with `retake worker --metrics-listen`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use retake_engine::metrics as m;
use retake_store::MetricsSnapshot;
use std::sync::OnceLock;

/// The process's registry, installed as the global `metrics` recorder on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &m::LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(m::COMPLETION_BATCH.into()),
                        &m::BATCH_BUCKETS,
                    )
                })
                .expect("static, non-empty bucket lists")
        };
        let handle = match builder().install_recorder() {
            Ok(h) => h,
            Err(e) => {
                // Another recorder owns the process (an embedding program): serve the store's
                // gauges from a private registry.
                tracing::warn!(error = %e, "metrics recorder already installed; /metrics shows store gauges only");
                builder().build_recorder().handle()
            }
        };
        m::describe();
        describe_store_gauges();
        handle
    })
}

const ATTEMPTS: &str = "retake_attempts";
const SEGMENTS: &str = "retake_segments";
const QUEUE_DEPTH: &str = "retake_queue_depth";
const RESCUES: &str = "retake_rescues";
const ESCALATIONS: &str = "retake_escalations";
const GPU_SPENT: &str = "retake_gpu_seconds_spent";
const BUDGET_REMAINING: &str = "retake_budget_remaining_seconds";
const PROJECT_SPENT: &str = "retake_project_gpu_spent_seconds";
const PROJECT_RESERVED: &str = "retake_project_gpu_reserved_seconds";
const PROJECT_BUDGET: &str = "retake_project_gpu_budget_seconds";
const SCENE_RETRIES: &str = "retake_scene_type_retries";
const SCENE_RESCUES: &str = "retake_scene_type_rescues";
const WAITING: &str = "retake_attempts_waiting_for_server";
const WAITING_SINCE: &str = "retake_waiting_for_server_since_seconds";

/// Every series name `/metrics` can show (the Grafana dashboard's test checks against these).
pub const SERIES: &[&str] = &[
    ATTEMPTS,
    SEGMENTS,
    QUEUE_DEPTH,
    RESCUES,
    ESCALATIONS,
    GPU_SPENT,
    BUDGET_REMAINING,
    PROJECT_SPENT,
    PROJECT_RESERVED,
    PROJECT_BUDGET,
    SCENE_RETRIES,
    SCENE_RESCUES,
    WAITING,
    WAITING_SINCE,
    m::DECISION_LATENCY_NAME,
    m::DISPATCH_LATENCY,
    m::ATTEMPTS_FINISHED,
    m::ATTEMPTS_CLAIMED,
    m::INFRA_ERRORS,
    m::COMPLETION_BATCH,
];

fn describe_store_gauges() {
    use metrics::{describe_gauge, Unit};
    describe_gauge!(ATTEMPTS, "Attempts by status.");
    describe_gauge!(SEGMENTS, "Segments by status.");
    describe_gauge!(QUEUE_DEPTH, "Attempts waiting to run.");
    describe_gauge!(RESCUES, "Segments that passed after a failed attempt.");
    describe_gauge!(ESCALATIONS, "Segments sent to review, by reason.");
    describe_gauge!(
        GPU_SPENT,
        Unit::Seconds,
        "GPU seconds charged to all projects."
    );
    describe_gauge!(
        BUDGET_REMAINING,
        Unit::Seconds,
        "GPU seconds left per project (absent when unlimited)."
    );
    describe_gauge!(
        PROJECT_SPENT,
        Unit::Seconds,
        "GPU seconds spent, per project."
    );
    describe_gauge!(
        PROJECT_RESERVED,
        Unit::Seconds,
        "GPU seconds reserved by running attempts, per project."
    );
    describe_gauge!(
        PROJECT_BUDGET,
        Unit::Seconds,
        "GPU budget per project (absent when unlimited)."
    );
    describe_gauge!(
        WAITING,
        "Queued attempts waiting for a healthy ComfyUI server (not failures)."
    );
    describe_gauge!(
        WAITING_SINCE,
        Unit::Seconds,
        "Unix time the longest current wait for a healthy ComfyUI server began (0: none)."
    );
    describe_gauge!(SCENE_RETRIES, "Retry attempts scheduled, per scene type.");
    describe_gauge!(
        SCENE_RESCUES,
        "Segments rescued by a retry, per scene type."
    );
}

/// Sets the store's gauges from a snapshot.
pub fn record_store(s: &MetricsSnapshot) {
    use metrics::gauge;
    for (k, v) in &s.attempts_by_status {
        gauge!(ATTEMPTS, "status" => k.clone()).set(*v as f64);
    }
    for (k, v) in &s.segments_by_status {
        gauge!(SEGMENTS, "status" => k.clone()).set(*v as f64);
    }
    for (k, v) in &s.escalations_by_reason {
        gauge!(ESCALATIONS, "reason" => k.clone()).set(*v as f64);
    }
    gauge!(RESCUES).set(s.rescues as f64);
    gauge!(GPU_SPENT).set(s.gpu_seconds_spent);
    gauge!(QUEUE_DEPTH).set(s.queue_depth as f64);
    for (name, rem) in &s.budget_remaining {
        if let Some(r) = rem {
            gauge!(BUDGET_REMAINING, "project" => name.clone()).set(*r);
        }
    }
    for p in &s.projects {
        gauge!(PROJECT_SPENT, "project" => p.project.clone()).set(p.spent);
        gauge!(PROJECT_RESERVED, "project" => p.project.clone()).set(p.reserved);
        if let Some(b) = p.budget {
            gauge!(PROJECT_BUDGET, "project" => p.project.clone()).set(b);
        }
    }
    for st in &s.scene_types {
        let labels = [
            ("project", st.project.clone()),
            ("scene_type", st.scene_type.clone()),
        ];
        gauge!(SCENE_RETRIES, &labels).set(st.retries as f64);
        gauge!(SCENE_RESCUES, &labels).set(st.rescues as f64);
    }
}

/// Sets the gauges of work waiting for a healthy ComfyUI server.
pub fn record_waiting(attempts: u64, since: Option<chrono::DateTime<chrono::Utc>>) {
    metrics::gauge!(WAITING).set(attempts as f64);
    metrics::gauge!(WAITING_SINCE).set(since.map_or(0.0, |t| t.timestamp() as f64));
}

/// The exposition text.
pub fn render() -> String {
    let h = handle();
    h.run_upkeep();
    h.render()
}

/// A router answering `GET /metrics` with this process's metrics only (for `retake worker`).
pub fn process_router() -> axum::Router {
    handle();
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4",
                )],
                render(),
            )
        }),
    )
}
