//! Crash test: three `retake worker` processes share one PostgreSQL database and a slow simulated
//! backend; replicas are killed with SIGKILL at random points and restarted. When the run ends,
//! the database must account for everything: every segment terminal, no duplicated or excess
//! attempt, distinct seeds, spend within the budget, nothing left running without an owner.
//!
//! `RETAKE_FULL_TESTS=1` (CI) runs the full 500 segments; otherwise a shorter run of 60.

use rand::{Rng, SeedableRng};
use retake_core::{CheckConfig, Parameters};
use retake_store::{NewProject, NewSceneType, NewSegment};
use serde_json::json;
use sqlx::Row;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const SCENARIO: &str = r#"
description = "slow generation for the crash test"
speed = 0.02
[profiles.slow]
systematic_fraction = 0.05
systematic_checks = ["face_confidence"]
gpu_seconds = { mean = 10.0, sd = 3.0, min = 4.0, max = 20.0 }
[profiles.slow.checks.face_confidence]
fail_probability = 0.4
"#;

fn spawn(bin: &str, url: &str, scenario: &std::path::Path, id: &str) -> Child {
    Command::new(bin)
        .args([
            "--database-url",
            url,
            "worker",
            "--slots",
            "4",
            "--lease-seconds",
            "2",
            "--worker-id",
            id,
        ])
        .arg("--scenario")
        .arg(scenario)
        .env("RETAKE_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start retake worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_killed_at_random_lose_nothing() {
    let Some((store, db)) = retake_store::testing::postgres().await else {
        return;
    };
    let full = std::env::var("RETAKE_FULL_TESTS").is_ok_and(|v| v == "1");
    let n: u32 = if full { 500 } else { 60 };
    let kills = if full { 12 } else { 4 };
    let budget = n as f64 * 14.0;

    let p = store
        .create_project(NewProject {
            name: "crash".into(),
            gpu_budget_seconds: Some(budget),
            default_gpu_estimate_seconds: 15.0,
            default_retry_policy: Default::default(),
        })
        .await
        .unwrap();
    let st = store
        .create_scene_type(NewSceneType {
            project_id: p.id,
            name: "slow".into(),
            backend: "simulated".into(),
            backend_config: json!({"profile": "slow"}),
            workflow_template: json!({}),
            parameter_bindings: Default::default(),
            default_parameters: Parameters::new()
                .with("cfg_scale", 7.0)
                .with("denoise_strength", 0.9),
            qa_checks: vec![CheckConfig::new("face_confidence", 0.7, 0.5)],
            qa_commands: vec![],
            retry_policy: serde_json::from_value(json!({"enabled": true, "max_attempts": 3}))
                .unwrap(),
            parameter_domains: Default::default(),
        })
        .await
        .unwrap();
    store
        .submit_segments(
            (0..n)
                .map(|i| NewSegment {
                    scene_type_id: st.id,
                    label: None,
                    parameters: Parameters::new(),
                    rng_seed: i as u64,
                })
                .collect(),
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("slow.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let bin = env!("CARGO_BIN_EXE_retake");
    let url = db.url();
    let mut gen = 0;
    let mut workers: Vec<Child> = (0..3)
        .map(|i| {
            gen += 1;
            spawn(bin, &url, &scenario, &format!("w{i}-{gen}"))
        })
        .collect();

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let deadline = Instant::now() + Duration::from_secs(if full { 900 } else { 300 });
    let mut killed = 0;
    loop {
        let stats = store.project_stats(p.id).await.unwrap();
        if stats.in_progress == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not finish: {stats:?}"
        );
        if killed < kills {
            tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
            let victim = rng.random_range(0..workers.len());
            workers[victim].start_kill().expect("SIGKILL");
            let _ = workers[victim].wait().await;
            gen += 1;
            workers[victim] = spawn(bin, &url, &scenario, &format!("w{victim}-{gen}"));
            killed += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    for w in workers.iter_mut() {
        let _ = w.start_kill();
        let _ = w.wait().await;
    }

    // Audit from the database alone.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let q = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query(sql).fetch_one(&pool).await.unwrap() }
    };
    let r = q("SELECT COUNT(*) FROM segments WHERE status NOT IN ('passed','needs_review','approved','rejected','cancelled')").await;
    assert_eq!(r.get::<i64, _>(0), 0, "every segment is terminal");
    let r = q("SELECT COUNT(*) FROM (SELECT segment_id, attempt_number FROM retry_attempts GROUP BY 1, 2 HAVING COUNT(*) > 1) d").await;
    assert_eq!(r.get::<i64, _>(0), 0, "no attempt number is duplicated");
    let r = q("SELECT COALESCE(MAX(attempt_number), 0) FROM retry_attempts").await;
    assert!(r.get::<i32, _>(0) <= 3, "no attempt beyond max_attempts");
    let r = q("SELECT COUNT(*) FROM (SELECT segment_id, seed FROM retry_attempts GROUP BY 1, 2 HAVING COUNT(*) > 1) d").await;
    assert_eq!(r.get::<i64, _>(0), 0, "seeds within a segment are distinct");
    let r = q("SELECT COUNT(*) FROM retry_attempts WHERE overall_status IN ('queued','generating','scoring') OR (worker IS NOT NULL)").await;
    assert_eq!(r.get::<i64, _>(0), 0, "no attempt is left running or owned");
    // The budget as readers see it: the project row plus the deltas not folded into it yet.
    let r = q("SELECT gpu_budget_seconds,
        gpu_spent_seconds + COALESCE((SELECT SUM(value) FROM project_deltas WHERE key = 'gpu_spent'), 0),
        gpu_reserved_seconds + COALESCE((SELECT SUM(value) FROM project_deltas WHERE key = 'gpu_reserved'), 0),
        (SELECT COALESCE(SUM(spent_seconds), 0) FROM gpu_ledger) FROM projects").await;
    let (b, spent, reserved, ledger): (f64, f64, f64, f64) =
        (r.get(0), r.get(1), r.get(2), r.get(3));
    assert!(spent <= b + 1e-6, "spent {spent} within budget {b}");
    assert!(reserved.abs() < 1e-6, "nothing stays reserved: {reserved}");
    assert!(
        (ledger - spent).abs() < 1e-6,
        "the ledger ({ledger}) accounts for the spend ({spent})"
    );
    let r = q("SELECT COUNT(*) FROM events WHERE kind = 'lease_rescued'").await;
    let rescued: i64 = r.get(0);
    let r = q("SELECT COUNT(*) FROM segments WHERE status = 'passed'").await;
    let passed: i64 = r.get(0);
    eprintln!("crash test: {n} segments, {killed} kills, {rescued} attempts rescued, {passed} passed, {spent:.0}/{b:.0} GPU-s");
    assert!(
        rescued > 0,
        "killing busy workers left attempts for the rescuer"
    );
    pool.close().await;
}
