//! Read latency at scale: the UI's landing page (`GET /api/projects`, with every project's
//! statistics) and a segment's retry history, answered by the real router in-process (no network:
//! the server-side time), with `attempts` attempts stored — on SQLite and on PostgreSQL.
//!
//! The rows are inserted in bulk with SQL (a million attempts through the engine would take the
//! whole benchmark); the project counters are then built the way the migration builds them for
//! an existing database.

use crate::common::GlobalArgs;
use anyhow::Context;
use axum::body::Body;
use axum::http::Request;
use retake_core::{CheckConfig, Parameters};
use retake_engine::Backends;
use retake_store::{NewProject, NewSceneType, Role, Store};
use serde_json::json;
use std::time::Instant;
use tower::ServiceExt;

#[derive(serde::Serialize, Clone)]
pub struct ReadLatency {
    pub store: &'static str,
    pub attempts: u64,
    pub request: String,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

const SAMPLES: usize = 300;

pub async fn run(attempts: u64, postgres_admin: Option<&str>) -> anyhow::Result<Vec<ReadLatency>> {
    let mut out = vec![];
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite:{}", dir.path().join("reads.db").display());
    out.extend(measure("sqlite", &url, attempts, dir.path()).await?);
    if let Some(admin) = postgres_admin {
        let db = super::throughput::PgDb::create(admin).await?;
        let r = measure("postgres", &db.url, attempts, dir.path()).await;
        db.drop_db().await;
        out.extend(r?);
    }
    Ok(out)
}

async fn measure(
    name: &'static str,
    url: &str,
    attempts: u64,
    data_dir: &std::path::Path,
) -> anyhow::Result<Vec<ReadLatency>> {
    let store = retake_store::connect(url).await?;
    let (project, scene) = setup(store.as_ref()).await?;
    fill(url, project, scene, attempts)
        .await
        .with_context(|| format!("storing {attempts} attempts on {name}"))?;
    let token = retake_server::auth::create_token(store.as_ref(), Role::Viewer, "bench").await?;
    let g = GlobalArgs {
        data_dir: data_dir.to_owned(),
        database_url: Some(url.to_owned()),
        ui_dir: None,
    };
    let app = retake_server::app(crate::wiring::app_state(
        &g,
        store.clone(),
        Backends::new(),
        None,
        retake_engine::media::MediaStore::local(&data_dir.join("media"))?,
        None,
    ));
    let segment = store
        .list_segments(&retake_store::SegmentFilter {
            project_id: Some(project),
            limit: 1,
            ..Default::default()
        })
        .await?
        .first()
        .map(|s| s.id)
        .context("a stored segment")?;
    let mut results = vec![];
    for path in [
        "/api/projects".to_owned(),
        format!("/api/segments/{segment}/retry-history"),
    ] {
        let mut times = Vec::with_capacity(SAMPLES);
        for i in 0..SAMPLES + 20 {
            let req = Request::get(&path)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())?;
            let t = Instant::now();
            let res = app.clone().oneshot(req).await?;
            let status = res.status();
            axum::body::to_bytes(res.into_body(), usize::MAX).await?;
            anyhow::ensure!(status.is_success(), "{path} answered {status}");
            if i >= 20 {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(f64::total_cmp);
        results.push(ReadLatency {
            store: name,
            attempts,
            request: format!("GET {}", path.replace(&segment.to_string(), "{id}")),
            p50_ms: times[times.len() / 2],
            p99_ms: times[(times.len() as f64 * 0.99) as usize - 1],
        });
    }
    Ok(results)
}

async fn setup(store: &dyn Store) -> anyhow::Result<(i64, i64)> {
    let p = store
        .create_project(NewProject {
            name: "reads".into(),
            gpu_budget_seconds: Some(1e12),
            default_gpu_estimate_seconds: 10.0,
            default_retry_policy: Default::default(),
        })
        .await?;
    let st = store
        .create_scene_type(NewSceneType {
            project_id: p.id,
            name: "reads".into(),
            backend: "simulated".into(),
            backend_config: json!({}),
            workflow_template: json!({}),
            parameter_bindings: Default::default(),
            default_parameters: Parameters::new().with("cfg_scale", 7.0),
            qa_checks: vec![CheckConfig::new("face_confidence", 0.7, 0.5)],
            qa_commands: vec![],
            retry_policy: Default::default(),
            parameter_domains: Default::default(),
        })
        .await?;
    Ok((p.id, st.id))
}

/// `attempts` attempts: segments of two attempts each (a QA failure, then a pass), with an event
/// per attempt, in the proportions a real project has; then the project's counters, recounted the way
/// deleting a scene type recounts them.
async fn fill(url: &str, project: i64, scene: i64, attempts: u64) -> anyhow::Result<()> {
    let segments = (attempts / 2).max(1) as i64;
    // Real scores, as the store records them.
    let verdict = retake_core::QaVerdict {
        scores: vec![retake_core::CheckScore {
            check: "face_confidence".into(),
            score: 0.8,
            details: serde_json::Value::Null,
        }],
        error: None,
        source: "bench".into(),
    };
    let scores = serde_json::to_string(
        &retake_core::qa::evaluate(&verdict, &[CheckConfig::new("face_confidence", 0.7, 0.5)])
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    )?;
    let stmts = [
        format!(
            "INSERT INTO segments (project_id, scene_type_id, parameters, rng_seed, status, attempt_count, had_failure,
               first_pass, selected_attempt_number, review_evidence, created_at, updated_at)
             WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {segments})
             SELECT {project}, {scene}, '{{\"cfg_scale\": 7.0}}', x, 'passed', 2, TRUE, 2, 2, 'null', NOW_TS, NOW_TS FROM g"
        ),
        format!(
            "INSERT INTO retry_attempts (segment_id, project_id, scene_type_id, attempt_number, seed, parameters,
               original_parameters, overall_status, quality_scores, gpu_seconds, is_selected, infra_errors, provenance,
               created_at, updated_at)
             SELECT s.id, {project}, {scene}, n.n, s.id * 10 + n.n, '{{\"cfg_scale\": 7.0}}', '{{\"cfg_scale\": 7.0}}',
               CASE n.n WHEN 1 THEN 'failed' ELSE 'passed' END, '{scores}', 10.0, n.n = 2, '[]', '{{}}', NOW_TS, NOW_TS
             FROM segments s CROSS JOIN (SELECT 1 AS n UNION ALL SELECT 2) n WHERE s.project_id = {project}"
        ),
        format!(
            "INSERT INTO events (project_id, segment_id, attempt_id, kind, message, data, created_at)
             SELECT {project}, a.segment_id, a.id, 'attempt_started', 'attempt started', 'null', NOW_TS
             FROM retry_attempts a WHERE a.project_id = {project}"
        ),
    ];
    if url.starts_with("postgres") {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await?;
        for s in &stmts {
            let s = s.replace("NOW_TS", "now()");
            sqlx::query(&s).execute(&pool).await?;
        }
        for sql in retake_store::ops::RECOUNT_PROJECT {
            sqlx::query(sql).bind(project).execute(&pool).await?;
        }
        // What autovacuum would do within a minute of the bulk load (statistics, visibility
        // map); without it the requests were timed while it ran on the same 2 cores.
        sqlx::query("VACUUM ANALYZE").execute(&pool).await?;
        pool.close().await;
    } else {
        let path = url.trim_start_matches("sqlite:");
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(path))
            .await?;
        for s in &stmts {
            let s = s
                .replace("NOW_TS", "strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')")
                .replace("TRUE", "1");
            sqlx::query(&s).execute(&pool).await?;
        }
        for sql in retake_store::ops::RECOUNT_PROJECT {
            sqlx::query(&retake_store::ops::sqlite_sql(sql))
                .bind(project)
                .execute(&pool)
                .await?;
        }
        sqlx::query("ANALYZE").execute(&pool).await?;
        pool.close().await;
    }
    Ok(())
}
