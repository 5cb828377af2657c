//! `retake bench throughput`: attempts orchestrated per second and CPU-µs per attempt with a
//! zero-latency simulated backend (about half of first attempts fail), on SQLite with one worker
//! loop and on PostgreSQL with 1 and 4 `retake worker` processes; and the latency from a QA
//! failure being recorded to its retry being dispatched, on PostgreSQL with LISTEN/NOTIFY.

use crate::common::GlobalArgs;
use anyhow::Context;
use retake_core::{CheckConfig, CheckScore, Parameters, QaVerdict};
use retake_engine::backends::{Scenario, SimulatedBackend};
use retake_engine::{Backends, Engine, EngineConfig};
use retake_store::{NewProject, NewSceneType, NewSegment, Store};
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 10_000)]
    pub segments: u32,
    /// Replica counts to run on PostgreSQL.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    pub replicas: Vec<u32>,
    /// PostgreSQL server for the PostgreSQL runs (a database is created and dropped per run).
    #[arg(
        long,
        env = "RETAKE_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub postgres_url: String,
    /// Skip the PostgreSQL runs.
    #[arg(long)]
    pub skip_postgres: bool,
    /// Failure-to-dispatch samples.
    #[arg(long, default_value_t = 200)]
    pub latency_samples: u32,
    /// Print `{"runs": [...], "dispatch_latency_ms": {"p50", "p99"}}`.
    #[arg(long)]
    pub json: bool,
}

const SCENARIO: &str = r#"
description = "throughput: zero latency, about half of first attempts fail face_confidence"
[profiles.bench]
gpu_seconds = { mean = 10.0, sd = 2.0, min = 1.0, max = 30.0 }
[profiles.bench.checks.face_confidence]
fail_probability = 0.5
"#;

#[derive(serde::Serialize, Clone)]
struct Run {
    store: &'static str,
    replicas: u32,
    attempts: u64,
    wall_s: f64,
    attempts_per_s: f64,
    cpu_us_per_attempt: f64,
}

fn cpu_seconds(who: i32) -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

async fn setup(store: &dyn Store, n: u32, external_qa: bool) -> anyhow::Result<()> {
    let p = store
        .create_project(NewProject {
            name: "bench".into(),
            gpu_budget_seconds: None,
            default_gpu_estimate_seconds: 10.0,
            default_retry_policy: Default::default(),
        })
        .await?;
    let st = store
        .create_scene_type(NewSceneType {
            project_id: p.id,
            name: "bench".into(),
            backend: "simulated".into(),
            backend_config: json!({"profile": "bench", "external_qa": external_qa}),
            workflow_template: json!({}),
            parameter_bindings: Default::default(),
            default_parameters: Parameters::new()
                .with("cfg_scale", 7.0)
                .with("denoise_strength", 0.9),
            qa_checks: vec![CheckConfig::new("face_confidence", 0.7, 0.5)],
            qa_commands: vec![],
            retry_policy: serde_json::from_value(json!({"enabled": true, "max_attempts": 3}))?,
            parameter_domains: Default::default(),
        })
        .await?;
    let mut i = 0u32;
    while i < n {
        let batch: Vec<NewSegment> = (i..(i + 1000).min(n))
            .map(|k| NewSegment {
                scene_type_id: st.id,
                label: None,
                parameters: Parameters::new(),
                rng_seed: k as u64,
            })
            .collect();
        i += batch.len() as u32;
        store.submit_segments(batch).await?;
    }
    Ok(())
}

async fn count_attempts(store: &dyn Store) -> anyhow::Result<u64> {
    Ok(store.metrics().await?.attempts_by_status.values().sum())
}

async fn sqlite_run(n: u32) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let store =
        retake_store::connect(&format!("sqlite:{}", dir.path().join("bench.db").display())).await?;
    setup(store.as_ref(), n, false).await?;
    let backend = SimulatedBackend::new(
        Scenario::parse(SCENARIO).map_err(anyhow::Error::msg)?,
        Some(0.0),
        None,
    );
    let mut cfg = EngineConfig::new(dir.path());
    cfg.slots = 16;
    cfg.claim_batch = 64;
    let engine = Engine::new(
        store.clone(),
        Backends::new().with("simulated", Arc::new(backend)),
        None,
        cfg,
    );
    let cpu0 = cpu_seconds(libc::RUSAGE_SELF);
    let t0 = Instant::now();
    engine.run_until_idle().await?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(libc::RUSAGE_SELF) - cpu0;
    let attempts = count_attempts(store.as_ref()).await?;
    Ok(Run {
        store: "sqlite",
        replicas: 1,
        attempts,
        wall_s: wall,
        attempts_per_s: attempts as f64 / wall,
        cpu_us_per_attempt: cpu * 1e6 / attempts as f64,
    })
}

struct PgDb {
    admin: String,
    name: String,
    url: String,
}

impl PgDb {
    async fn create(admin: &str) -> anyhow::Result<PgDb> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(admin)
            .await
            .with_context(|| format!("connecting to {admin}"))?;
        let name = format!("retake_bench_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&pool)
            .await?;
        pool.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
        Ok(PgDb {
            admin: admin.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }
    async fn drop_db(self) {
        if let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.admin)
            .await
        {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .execute(&pool)
            .await;
        }
    }
}

fn worker_cmd(
    url: &str,
    scenario: &Path,
    id: &str,
    exit_when_idle: bool,
) -> anyhow::Result<tokio::process::Command> {
    let mut c = tokio::process::Command::new(std::env::current_exe()?);
    c.args([
        "--database-url",
        url,
        "worker",
        "--slots",
        "16",
        "--speed",
        "0",
        "--worker-id",
        id,
    ]);
    c.arg("--scenario").arg(scenario);
    if exit_when_idle {
        c.arg("--exit-when-idle");
    }
    c.stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    Ok(c)
}

async fn postgres_run(admin: &str, n: u32, replicas: u32, scenario: &Path) -> anyhow::Result<Run> {
    let db = PgDb::create(admin).await?;
    let result = async {
        let store = retake_store::connect(&db.url).await?;
        setup(store.as_ref(), n, false).await?;
        let cpu0 = cpu_seconds(libc::RUSAGE_CHILDREN);
        let t0 = Instant::now();
        let mut kids = vec![];
        for r in 0..replicas {
            kids.push(worker_cmd(&db.url, scenario, &format!("bench-{r}"), true)?.spawn()?);
        }
        for mut k in kids {
            let st = k.wait().await?;
            anyhow::ensure!(st.success(), "a worker failed: {st}");
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds(libc::RUSAGE_CHILDREN) - cpu0;
        let m = store.metrics().await?;
        anyhow::ensure!(m.queue_depth == 0, "work left in the queue");
        let attempts = count_attempts(store.as_ref()).await?;
        Ok(Run {
            store: "postgres",
            replicas,
            attempts,
            wall_s: wall,
            attempts_per_s: attempts as f64 / wall,
            cpu_us_per_attempt: cpu * 1e6 / attempts as f64,
        })
    }
    .await;
    db.drop_db().await;
    result
}

/// A worker process waits idle; this process records QA failures one at a time (as an external
/// QA service would) and measures how long until the retry is claimed.
async fn latency_run(admin: &str, samples: u32, scenario: &Path) -> anyhow::Result<Vec<f64>> {
    let db = PgDb::create(admin).await?;
    let result = async {
        let store = retake_store::connect(&db.url).await?;
        setup(store.as_ref(), 0, true).await?;
        let st = store.list_scene_types(None).await?.remove(0);
        let mut worker = worker_cmd(&db.url, scenario, "latency", false)?.spawn()?;
        let mut out = vec![];
        let deadline = Instant::now() + Duration::from_secs(120);
        for i in 0..samples {
            let seg = store
                .submit_segments(vec![NewSegment {
                    scene_type_id: st.id,
                    label: None,
                    parameters: Parameters::new(),
                    rng_seed: i as u64,
                }])
                .await?
                .remove(0);
            // Wait for attempt 1 to be generated and waiting for QA.
            let a1 = loop {
                let a = store.list_attempts(seg.id).await?.remove(0);
                if a.overall_status == retake_core::AttemptStatus::Scoring {
                    break a;
                }
                anyhow::ensure!(Instant::now() < deadline, "the worker did not pick up work");
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            let v = QaVerdict {
                scores: vec![CheckScore {
                    check: "face_confidence".into(),
                    score: 0.1,
                    details: serde_json::Value::Null,
                }],
                error: None,
                source: "bench".into(),
            };
            store.deliver_verdict(a1.id, v, None).await?;
            let recorded = store
                .list_events(0, Some(seg.id), 100)
                .await?
                .into_iter()
                .find(|e| e.kind == "retry_scheduled")
                .context("retry event")?
                .created_at;
            let started = loop {
                let atts = store.list_attempts(seg.id).await?;
                if let Some(t) = atts.get(1).and_then(|a| a.started_at) {
                    break t;
                }
                anyhow::ensure!(Instant::now() < deadline, "the retry was not dispatched");
                tokio::time::sleep(Duration::from_micros(500)).await;
            };
            out.push(
                ((started - recorded).num_microseconds().unwrap_or(0) as f64 / 1000.0).max(0.0),
            );
        }
        let _ = worker.kill().await;
        Ok(out)
    }
    .await;
    db.drop_db().await;
    result
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[(((v.len() - 1) as f64) * p).round() as usize]
}

pub async fn run(_g: GlobalArgs, a: Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let scenario = dir.path().join("throughput.toml");
    std::fs::write(&scenario, SCENARIO)?;
    if !a.json {
        eprintln!("running {} segments on SQLite…", a.segments);
    }
    let mut runs = vec![sqlite_run(a.segments).await?];
    let mut latency = vec![];
    if !a.skip_postgres {
        for r in &a.replicas {
            if !a.json {
                eprintln!(
                    "running {} segments on PostgreSQL with {r} worker process(es)…",
                    a.segments
                );
            }
            runs.push(postgres_run(&a.postgres_url, a.segments, *r, &scenario).await?);
        }
        if !a.json {
            eprintln!(
                "measuring failure-to-dispatch latency ({} samples)…",
                a.latency_samples
            );
        }
        latency = latency_run(&a.postgres_url, a.latency_samples, &scenario).await?;
    }
    let p50 = percentile(&mut latency, 0.5);
    let p99 = percentile(&mut latency, 0.99);
    if a.json {
        let runs: Vec<_> = runs
            .iter()
            .map(|r| json!({"store": r.store, "replicas": r.replicas, "attempts": r.attempts, "wall_s": round(r.wall_s), "attempts_per_s": round(r.attempts_per_s), "cpu_us_per_attempt": round(r.cpu_us_per_attempt)}))
            .collect();
        let lat = if latency.is_empty() {
            serde_json::Value::Null
        } else {
            json!({"p50": round(p50), "p99": round(p99)})
        };
        println!("{}", json!({"runs": runs, "dispatch_latency_ms": lat}));
    } else {
        println!(
            "{:<10}{:>9}{:>11}{:>10}{:>14}{:>18}",
            "store", "replicas", "attempts", "wall s", "attempts/s", "CPU µs/attempt"
        );
        for r in &runs {
            println!(
                "{:<10}{:>9}{:>11}{:>10.2}{:>14.0}{:>18.0}",
                r.store, r.replicas, r.attempts, r.wall_s, r.attempts_per_s, r.cpu_us_per_attempt
            );
        }
        if !latency.is_empty() {
            println!("\nfailure → retry dispatched (PostgreSQL, LISTEN/NOTIFY, {} samples): p50 {p50:.2} ms, p99 {p99:.2} ms", latency.len());
        }
        println!("(CPU is retake's own: this process for SQLite, the worker processes for PostgreSQL; the database server's CPU is not included.)");
    }
    Ok(())
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
