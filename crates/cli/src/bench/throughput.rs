//! `retake bench throughput`: attempts orchestrated per second and CPU-µs per attempt with a
//! zero-latency simulated backend (about half of first attempts fail), on SQLite with one worker
//! loop and on PostgreSQL with 1, 2, 4 and 8 `retake worker` processes (plotted against
//! replicas); a budgeted 4-replica run with `parallelism` 4 whose budget invariant is audited
//! from the database while it runs; the latency from a QA failure being recorded to its retry
//! being claimed, idle and while a 4-replica run drains; and the read latency of the UI's
//! landing page and a retry history with a million attempts stored (`reads.rs`).

use crate::common::GlobalArgs;
use anyhow::Context;
use retake_core::{CheckConfig, CheckScore, Parameters, QaVerdict};
use retake_engine::backends::{Scenario, SimulatedBackend};
use retake_engine::{Backends, Engine, EngineConfig};
use retake_store::{NewProject, NewSceneType, NewSegment, Store};
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 10_000)]
    pub segments: u32,
    /// Replica counts to run on PostgreSQL.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
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
    /// Print `{"runs": [...], "dispatch_latency_ms": {"p50", "p99"}, ...}`.
    #[arg(long)]
    pub json: bool,
    /// Attempts stored for the read-latency case (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    pub read_attempts: u64,
    /// Write the attempts/s-against-replicas plot (SVG) into this directory.
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,
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
    setup_with(store, n, external_qa, None, 1).await
}

async fn setup_with(
    store: &dyn Store,
    n: u32,
    external_qa: bool,
    budget: Option<f64>,
    parallelism: u32,
) -> anyhow::Result<()> {
    let p = store
        .create_project(NewProject {
            name: "bench".into(),
            gpu_budget_seconds: budget,
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
            retry_policy: serde_json::from_value(
                json!({"enabled": true, "max_attempts": 3, "parallelism": parallelism}),
            )?,
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

pub(crate) struct PgDb {
    admin: String,
    name: String,
    pub url: String,
}

impl PgDb {
    pub async fn create(admin: &str) -> anyhow::Result<PgDb> {
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
        // Keep the query (`?options=-c synchronous_commit=off`, `sslmode=…`): the workers must
        // run with the same settings as the URL given.
        let (path, query) = admin.split_once('?').unwrap_or((admin, ""));
        let base = path.rsplit_once('/').map(|(b, _)| b).unwrap_or(path);
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        Ok(PgDb {
            admin: admin.to_owned(),
            url: format!("{base}/{name}{query}"),
            name,
        })
    }
    /// Refresh the planner's statistics after the bench loaded its segments: a steady-state
    /// server has them (autovacuum analyzes a table within a minute of a bulk load), and plans
    /// made for an empty table sort the whole queue on every claim.
    pub async fn analyze(&self) -> anyhow::Result<()> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await?;
        sqlx::query("ANALYZE").execute(&pool).await?;
        pool.close().await;
        Ok(())
    }

    pub async fn drop_db(self) {
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
        db.analyze().await?;
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
        let out = sample_latency(store.as_ref(), st.id, samples, || async { Ok(true) }).await;
        let _ = worker.kill().await;
        out
    }
    .await;
    db.drop_db().await;
    result
}

/// Submit a segment of the external-QA scene type, wait for its attempt 1 to await QA, record a
/// failing verdict and time the retry from its `retry_scheduled` event to its claim; repeat
/// while `go_on` says so.
async fn sample_latency<F, Fut>(
    store: &dyn Store,
    scene_type_id: i64,
    samples: u32,
    go_on: F,
) -> anyhow::Result<Vec<f64>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let mut out = vec![];
    let deadline = Instant::now() + Duration::from_secs(300);
    for i in 0..samples {
        if !go_on().await? {
            break;
        }
        let seg = store
            .submit_segments(vec![NewSegment {
                scene_type_id,
                label: None,
                parameters: Parameters::new(),
                rng_seed: 1_000_000 + i as u64,
            }])
            .await?
            .remove(0);
        let a1 = loop {
            let a = store.list_attempts(seg.id).await?.remove(0);
            if a.overall_status == retake_core::AttemptStatus::Scoring {
                break a;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the workers did not pick up work"
            );
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
        out.push(((started - recorded).num_microseconds().unwrap_or(0) as f64 / 1000.0).max(0.0));
    }
    Ok(out)
}

/// What the budget sampler saw during the audited run.
#[derive(serde::Serialize, Clone, Default)]
struct Audit {
    samples: u64,
    violations: u64,
    /// Largest (spent + reserved) / budget seen on the project row.
    max_row_share: f64,
    /// Largest (GPU-s in the ledger + reservations of running attempts) / budget.
    max_true_share: f64,
    final_spent: f64,
    budget: f64,
    escalated_budget: u64,
}

/// 4 replicas, `parallelism` 4, a budget that pays for about half the work; a sampler reads the
/// project row, the ledger and the running reservations in one statement every 20 ms and counts
/// any instant at which `spent + reserved` exceeded the budget.
async fn audited_run(admin: &str, n: u32, scenario: &Path) -> anyhow::Result<(Run, Audit)> {
    let db = PgDb::create(admin).await?;
    let result = async {
        let store = retake_store::connect(&db.url).await?;
        let budget = n as f64 * 10.0 * 0.8;
        setup_with(store.as_ref(), n, false, Some(budget), 4).await?;
        db.analyze().await?;
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&db.url).await?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut audit = Audit { budget, ..Default::default() };
                while !stop.load(Ordering::Relaxed) {
                    let r: Result<(f64, f64, f64, f64), _> = sqlx::query_as(
                        "SELECT p.gpu_spent_seconds, p.gpu_reserved_seconds,
                                (SELECT COALESCE(SUM(spent_seconds), 0) FROM gpu_ledger WHERE project_id = p.id),
                                (SELECT COALESCE(SUM(reserved_gpu_seconds), 0) FROM retry_attempts
                                  WHERE project_id = p.id AND overall_status IN ('generating','scoring'))
                         FROM projects p",
                    )
                    .fetch_one(&pool)
                    .await;
                    if let Ok((spent, reserved, ledger, running)) = r {
                        audit.samples += 1;
                        let row = (spent + reserved) / budget;
                        let truth = (ledger + running) / budget;
                        audit.max_row_share = audit.max_row_share.max(row);
                        audit.max_true_share = audit.max_true_share.max(truth);
                        if row > 1.0 + 1e-9 || truth > 1.0 + 1e-9 {
                            audit.violations += 1;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                audit
            })
        };
        let cpu0 = cpu_seconds(libc::RUSAGE_CHILDREN);
        let t0 = Instant::now();
        let mut kids = vec![];
        for r in 0..4 {
            kids.push(worker_cmd(&db.url, scenario, &format!("audit-{r}"), true)?.spawn()?);
        }
        for mut k in kids {
            let st = k.wait().await?;
            anyhow::ensure!(st.success(), "a worker failed: {st}");
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds(libc::RUSAGE_CHILDREN) - cpu0;
        stop.store(true, Ordering::Relaxed);
        let mut audit = sampler.await?;
        let p = store.list_projects().await?.remove(0);
        audit.final_spent = p.gpu_spent_seconds;
        audit.escalated_budget = store
            .project_stats(p.id)
            .await?
            .escalations_by_reason
            .get("budget_exhausted")
            .copied()
            .unwrap_or(0);
        let attempts = count_attempts(store.as_ref()).await?;
        Ok((
            Run {
                store: "postgres (budget, parallelism 4)",
                replicas: 4,
                attempts,
                wall_s: wall,
                attempts_per_s: attempts as f64 / wall,
                cpu_us_per_attempt: cpu * 1e6 / attempts as f64,
            },
            audit,
        ))
    }
    .await;
    db.drop_db().await;
    result
}

/// Segments of the load kept queued while the loaded latency is sampled.
const LOAD_BACKLOG: u64 = 200;
/// The load stops after this many segments even if the samples are not all taken.
const LOAD_CAP: u32 = 200_000;

/// The failure-to-dispatch latency while 4 other worker processes drain up to `n` segments in
/// a separate project of the same database.
async fn loaded_latency_run(
    admin: &str,
    samples: u32,
    n: u32,
    scenario: &Path,
) -> anyhow::Result<Vec<f64>> {
    let db = PgDb::create(admin).await?;
    let result = async {
        let store = retake_store::connect(&db.url).await?;
        setup(store.as_ref(), 0, true).await?;
        let st = store.list_scene_types(None).await?.remove(0);
        // The load: another project whose scene type scores in the backend.
        let p = store
            .create_project(NewProject {
                name: "load".into(),
                gpu_budget_seconds: None,
                default_gpu_estimate_seconds: 10.0,
                default_retry_policy: Default::default(),
            })
            .await?;
        let load = store
            .create_scene_type(NewSceneType {
                project_id: p.id,
                name: "load".into(),
                backend: "simulated".into(),
                backend_config: json!({"profile": "bench"}),
                workflow_template: json!({}),
                parameter_bindings: Default::default(),
                default_parameters: Parameters::new().with("cfg_scale", 7.0),
                qa_checks: vec![CheckConfig::new("face_confidence", 0.7, 0.5)],
                qa_commands: vec![],
                retry_policy: serde_json::from_value(json!({"enabled": true, "max_attempts": 3}))?,
                parameter_domains: Default::default(),
            })
            .await?;
        // The load is kept draining, with a short backlog topped up as it goes (up to `n`
        // segments in all), so a sample's own first attempt does not wait behind the whole load
        // and every sample is taken while the 4 replicas are busy.
        let submitted = Arc::new(AtomicU32::new(0));
        let top_up = {
            let store = store.clone();
            let submitted = submitted.clone();
            let load = load.id;
            tokio::spawn(async move {
                loop {
                    let i = submitted.load(Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    if store.pending_work().await.unwrap_or(0) < LOAD_BACKLOG {
                        let batch: Vec<NewSegment> = (i..(i + LOAD_BACKLOG as u32).min(n))
                            .map(|k| NewSegment {
                                scene_type_id: load,
                                label: None,
                                parameters: Parameters::new(),
                                rng_seed: k as u64,
                            })
                            .collect();
                        submitted.fetch_add(batch.len() as u32, Ordering::Relaxed);
                        if store.submit_segments(batch).await.is_err() {
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let mut kids = vec![];
        for r in 0..4 {
            kids.push(worker_cmd(&db.url, scenario, &format!("load-{r}"), false)?.spawn()?);
        }
        let out = sample_latency(store.as_ref(), st.id, samples, || async {
            Ok(store.pending_work().await? > 0 || submitted.load(Ordering::Relaxed) < n)
        })
        .await;
        top_up.abort();
        for mut k in kids {
            let _ = k.kill().await;
        }
        out
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
    let say = |m: String| {
        if !a.json {
            eprintln!("{m}");
        }
    };
    say(format!("running {} segments on SQLite…", a.segments));
    let mut runs = vec![sqlite_run(a.segments).await?];
    let mut latency = vec![];
    let mut loaded = vec![];
    let mut audit = None;
    if !a.skip_postgres {
        for r in &a.replicas {
            say(format!(
                "running {} segments on PostgreSQL with {r} worker process(es)…",
                a.segments
            ));
            runs.push(postgres_run(&a.postgres_url, a.segments, *r, &scenario).await?);
        }
        say(format!("running {} segments on PostgreSQL, 4 replicas, parallelism 4, with a budget audited every 20 ms…", a.segments));
        let (run, au) = audited_run(&a.postgres_url, a.segments, &scenario).await?;
        runs.push(run);
        audit = Some(au);
        say(format!(
            "measuring failure-to-dispatch latency, idle ({} samples)…",
            a.latency_samples
        ));
        latency = latency_run(&a.postgres_url, a.latency_samples, &scenario).await?;
        say(format!(
            "measuring failure-to-dispatch latency while 4 replicas drain work ({} samples, {LOAD_BACKLOG} segments kept queued)…",
            a.latency_samples
        ));
        loaded =
            loaded_latency_run(&a.postgres_url, a.latency_samples, LOAD_CAP, &scenario).await?;
    }
    let reads = if a.read_attempts > 0 {
        say(format!(
            "storing {} attempts for the read-latency case…",
            a.read_attempts
        ));
        super::reads::run(
            a.read_attempts,
            (!a.skip_postgres).then_some(a.postgres_url.as_str()),
        )
        .await?
    } else {
        vec![]
    };
    if let Some(dir) = &a.plot {
        let path = plot_replicas(dir, &runs)?;
        say(format!("wrote {}", path.display()));
    }
    let (p50, p99) = (
        percentile(&mut latency, 0.5),
        percentile(&mut latency, 0.99),
    );
    let (l50, l99) = (percentile(&mut loaded, 0.5), percentile(&mut loaded, 0.99));
    if a.json {
        let runs: Vec<_> = runs
            .iter()
            .map(|r| json!({"store": r.store, "replicas": r.replicas, "attempts": r.attempts, "wall_s": round(r.wall_s), "attempts_per_s": round(r.attempts_per_s), "cpu_us_per_attempt": round(r.cpu_us_per_attempt)}))
            .collect();
        let lat = |v: &Vec<f64>, p50: f64, p99: f64| {
            if v.is_empty() {
                serde_json::Value::Null
            } else {
                json!({"p50": round(p50), "p99": round(p99), "samples": v.len()})
            }
        };
        println!(
            "{}",
            json!({"runs": runs, "dispatch_latency_ms": lat(&latency, p50, p99),
                   "dispatch_latency_loaded_ms": lat(&loaded, l50, l99), "budget_audit": audit, "reads": reads})
        );
        return Ok(());
    }
    println!(
        "{:<34}{:>9}{:>11}{:>10}{:>14}{:>18}",
        "store", "replicas", "attempts", "wall s", "attempts/s", "CPU µs/attempt"
    );
    for r in &runs {
        println!(
            "{:<34}{:>9}{:>11}{:>10.2}{:>14.0}{:>18.0}",
            r.store, r.replicas, r.attempts, r.wall_s, r.attempts_per_s, r.cpu_us_per_attempt
        );
    }
    if !latency.is_empty() {
        println!("\nQA failure → retry claimed (PostgreSQL, durable commits, LISTEN/NOTIFY):");
        println!(
            "  idle:                         p50 {p50:.2} ms, p99 {p99:.2} ms ({} samples)",
            latency.len()
        );
    }
    if !loaded.is_empty() {
        println!(
            "  while 4 replicas drain work:  p50 {l50:.2} ms, p99 {l99:.2} ms ({} samples)",
            loaded.len()
        );
    }
    if let Some(au) = &audit {
        println!(
            "\nbudget audit (4 replicas, parallelism 4, budget {:.0} GPU-s): {} samples, {} violations; max (spent+reserved)/budget {:.4} on the project row, {:.4} from the ledger and running reservations; {:.0} GPU-s spent, {} segments escalated for budget",
            au.budget, au.samples, au.violations, au.max_row_share, au.max_true_share, au.final_spent, au.escalated_budget
        );
    }
    if !reads.is_empty() {
        println!(
            "\n{:<10}{:>12}{:<40}{:>10}{:>10}",
            "store", "attempts", "  request (server side, in-process)", "p50 ms", "p99 ms"
        );
        for r in &reads {
            println!(
                "{:<10}{:>12}  {:<38}{:>10.2}{:>10.2}",
                r.store, r.attempts, r.request, r.p50_ms, r.p99_ms
            );
        }
    }
    println!("(CPU is retake's own: this process for SQLite, the worker processes for PostgreSQL; the database server's CPU is not included.)");
    Ok(())
}

/// attempts/s against worker replicas on PostgreSQL, with SQLite's single process for reference.
fn plot_replicas(dir: &Path, runs: &[Run]) -> anyhow::Result<std::path::PathBuf> {
    use plotters::prelude::*;
    std::fs::create_dir_all(dir)?;
    let path = dir.join("throughput-replicas.svg");
    let pg: Vec<(u32, f64)> = runs
        .iter()
        .filter(|r| r.store == "postgres")
        .map(|r| (r.replicas, r.attempts_per_s))
        .collect();
    let sqlite = runs
        .iter()
        .find(|r| r.store == "sqlite")
        .map(|r| r.attempts_per_s);
    let ymax = pg.iter().map(|p| p.1).chain(sqlite).fold(100.0, f64::max) * 1.2;
    let xmax = pg.iter().map(|p| p.0).max().unwrap_or(8) + 1;
    let e = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing the plot failed: {e}");
    {
        let root = SVGBackend::new(&path, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "attempts/s against worker replicas (2 cores)",
                ("sans-serif", 20),
            )
            .margin(20)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0u32..xmax, 0f64..ymax)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc("retake worker processes")
            .y_desc("attempts/s")
            .draw()
            .map_err(|x| e(&x))?;
        chart
            .draw_series(LineSeries::new(pg.iter().copied(), BLUE.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label("PostgreSQL")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .draw_series(pg.iter().map(|p| Circle::new(*p, 4, BLUE.filled())))
            .map_err(|x| e(&x))?;
        if let Some(s) = sqlite {
            chart
                .draw_series(std::iter::once(Circle::new((1, s), 5, RED.filled())))
                .map_err(|x| e(&x))?
                .label("SQLite (one process)")
                .legend(|(x, y)| Circle::new((x + 10, y), 4, RED.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(&x))?;
        root.present().map_err(|x| e(&x))?;
    }
    Ok(path)
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
