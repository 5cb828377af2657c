//! `retake demo`: a demo project with three scene types, N segments through the simulated
//! backend, a progress bar, the transparency lines and a summary table — then, unless
//! `--no-serve`, the API and web UI keep serving so every attempt can be inspected.

use crate::common::{mix, open_store, GlobalArgs};
use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use retake_core::{
    summary_sentence_with, CheckConfig, Parameters, PolicyOverrides, RetryPolicy, SegmentStatus,
};
use retake_engine::backends::Scenario;
use retake_engine::{Engine, EngineConfig};
use retake_store::{NewProject, NewSceneType, NewSegment, SegmentFilter, Store};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// How many segments to generate.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub segments: u32,
    /// Scenario file for the simulated backend (default: the shipped examples/scenarios/demo.toml).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Seeds every segment's randomness; the same seed gives the same results.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Run to the end, print the summary and exit without serving.
    #[arg(long)]
    pub no_serve: bool,
    /// Real seconds per simulated GPU-second (default: 0.04 while serving so retries can be watched, 0 with --no-serve).
    #[arg(long)]
    pub speed: Option<f64>,
    /// Address for the API and web UI.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Render a real clip per attempt and score it with the QA runner (default while serving).
    #[arg(long, conflicts_with = "no_clips")]
    pub clips: bool,
    /// Skip real clips: the simulated backend reports scores directly (default with --no-serve).
    #[arg(long)]
    pub no_clips: bool,
    /// Run no engine here: set up and submit, then wait while other processes (`retake worker`
    /// on a shared PostgreSQL) run the segments, and print the summary (`scripts/cluster-demo`).
    #[arg(long)]
    pub no_engine: bool,
}

struct DemoScene {
    name: &'static str,
    profile: &'static str,
    share: u32,
    checks: Vec<CheckConfig>,
    policy: serde_json::Value,
    params: Parameters,
}

fn demo_scenes() -> Vec<DemoScene> {
    vec![
        DemoScene {
            name: "Portrait close-up",
            profile: "portrait",
            share: 50,
            checks: vec![
                CheckConfig::new("face_confidence", 0.7, 0.5),
                CheckConfig::new("black_frames", 0.9, 0.8),
            ],
            policy: json!({"enabled": true}),
            params: Parameters::new()
                .with("cfg_scale", 7.0)
                .with("denoise_strength", 0.85)
                .with("steps", 24),
        },
        DemoScene {
            name: "Crowd wide shot",
            profile: "crowd",
            share: 30,
            checks: vec![
                CheckConfig::new("face_confidence", 0.65, 0.5),
                CheckConfig::new("frozen_frames", 0.85, 0.7),
            ],
            policy: json!({"enabled": true, "max_attempts": 4, "selection_mode": "best_of_n", "cfg_jitter": 0.8}),
            params: Parameters::new()
                .with("cfg_scale", 7.5)
                .with("denoise_strength", 0.9)
                .with("steps", 28),
        },
        DemoScene {
            name: "Landscape establishing",
            profile: "landscape",
            share: 20,
            // Auto-retry stays off here (it is opt-in): failures go straight to review.
            checks: vec![CheckConfig::new("sharpness", 0.5, 0.4)],
            policy: json!({}),
            params: Parameters::new()
                .with("cfg_scale", 6.0)
                .with("denoise_strength", 0.8)
                .with("steps", 20),
        },
    ]
}

pub async fn run(g: GlobalArgs, args: DemoArgs) -> anyhow::Result<()> {
    let mut scenario = match &args.scenario {
        Some(p) => Scenario::load(p)?,
        None => Scenario::demo(),
    };
    let serve = !args.no_serve;
    let clips =
        args.clips || (serve && !args.no_clips) || (scenario.render_clips && !args.no_clips);
    scenario.render_clips = clips;
    let speed = args.speed.unwrap_or(if serve { 0.04 } else { 0.0 });
    if !(speed.is_finite() && (0.0..=10.0).contains(&speed)) {
        anyhow::bail!("--speed must be a number in 0..=10 (real seconds per simulated GPU-second); got {speed}");
    }
    if clips {
        crate::preflight::media_tools(
            "to render the demo's clips and score them (or run `retake demo --no-serve --no-clips`)",
        )?;
    }
    let ui_dir = if serve {
        crate::preflight::ui_bundle(g.ui_dir.clone(), "--no-serve")?
    } else {
        None
    };
    let store = open_store(&g).await?;
    let (project, scene_ids) = setup(store.as_ref(), &args, &scenario).await?;

    let backends = crate::wiring::backends(crate::wiring::simulated(scenario, Some(speed)));
    let mut cfg = EngineConfig::new(&g.data_dir);
    cfg.worker_id = format!("demo-{}", std::process::id());
    cfg.slots = if speed > 0.0 || clips { 6 } else { 1 };
    let scorer: Option<Arc<dyn retake_engine::Scorer>> =
        Some(Arc::new(crate::wiring::BuiltinQa::new(true)));
    let engine = Engine::new(store.clone(), backends.clone(), scorer, cfg);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut http = None;
    if serve {
        let token = retake_server::auth::create_token(
            store.as_ref(),
            retake_store::Role::Admin,
            "demo admin",
        )
        .await?;
        let media = engine.media().map_err(anyhow::Error::msg)?.clone();
        let state =
            crate::wiring::app_state(&g, store.clone(), backends.clone(), None, media, ui_dir);
        let (addr, h) = crate::wiring::start_http(state, &args.listen, stop_rx.clone()).await?;
        http = Some(h);
        println!("Open the web UI:  http://{addr}/#token={token}");
        println!("Admin API token:  {token}");
        println!("API docs:         http://{addr}/api/docs\n");
    }

    let n = args.segments as usize;
    let segments: Vec<NewSegment> = (0..n)
        .map(|i| {
            let pick = (mix(args.seed, i as u64 ^ 0xD3A0) % 100) as u32;
            let mut acc = 0;
            let scene = scene_ids.iter().find(|(share, _)| {
                acc += share;
                pick < acc
            });
            let st = scene.map(|s| s.1).unwrap_or(scene_ids[0].1);
            NewSegment {
                scene_type_id: st,
                label: Some(format!("shot-{:04}", i + 1)),
                parameters: Parameters::new(),
                rng_seed: mix(args.seed, i as u64) & retake_core::params::MAX_SEED,
            }
        })
        .collect();
    let submitted = store.submit_segments(segments).await?;
    let first_id = submitted.first().map(|s| s.id).unwrap_or(0);

    println!(
        "retake demo: project \"{}\" (id {}), {} segments, GPU budget {:.0} s",
        project.name,
        project.id,
        n,
        project.gpu_budget_seconds.unwrap_or(0.0)
    );
    println!("data: {}", crate::common::describe_url(&g));

    let bar = ProgressBar::new(n as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40.cyan/blue} {pos}/{len} segments done {msg}",
        )?
        .progress_chars("=> "),
    );
    let runner = if args.no_engine {
        println!("no engine in this process: waiting for workers to run the segments");
        tokio::spawn(async {})
    } else {
        tokio::spawn(engine.clone().run(stop_rx.clone()))
    };
    let mut deleted = false;
    loop {
        let stats = match store.project_stats(project.id).await {
            Ok(s) => s,
            // Someone deleted the demo project through the API: the server stays up.
            Err(retake_store::StoreError::NotFound { .. }) => {
                deleted = true;
                break;
            }
            Err(e) => return Err(e.into()),
        };
        let done = stats.segments - stats.in_progress;
        bar.set_position(done);
        bar.set_message(format!(
            "({} rescued, {} to review)",
            stats.rescued_by_retry, stats.needs_review
        ));
        if stats.in_progress == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    bar.finish();
    if deleted {
        println!(
            "\nThe demo project was deleted (through the API); nothing left to report.{}",
            if http.is_some() {
                " The server keeps running."
            } else {
                ""
            }
        );
    } else {
        match print_report(store.as_ref(), project.id, first_id).await {
            Err(e)
                if e.downcast_ref::<retake_store::StoreError>()
                    .is_some_and(|s| matches!(s, retake_store::StoreError::NotFound { .. })) =>
            {
                println!("\nThe demo project was deleted (through the API) while the report was being written.");
            }
            other => other?,
        }
    }
    match http {
        Some(h) => {
            println!(
                "\nStill serving (the engine keeps running for review actions). Ctrl-C to stop."
            );
            let _ = tokio::signal::ctrl_c().await;
            let _ = stop_tx.send(true);
            let _ = runner.await;
            let _ = h.await;
        }
        None => {
            let _ = stop_tx.send(true);
            let _ = runner.await;
        }
    }
    Ok(())
}

async fn setup(
    store: &dyn Store,
    args: &DemoArgs,
    scenario: &Scenario,
) -> anyhow::Result<(retake_store::Project, Vec<(u32, i64)>)> {
    let existing = store.list_projects().await?;
    let base = "Demo project";
    let mut name = base.to_owned();
    let mut k = 2;
    while existing.iter().any(|p| p.name == name) {
        name = format!("{base} #{k}");
        k += 1;
    }
    let budget = 55.0 * args.segments as f64;
    let project = store
        .create_project(NewProject {
            name,
            gpu_budget_seconds: Some(budget),
            default_gpu_estimate_seconds: 30.0,
            default_retry_policy: RetryPolicy::default(),
        })
        .await?;
    let mut ids = vec![];
    for s in demo_scenes() {
        if !scenario.profiles.contains_key(s.profile) && args.scenario.is_some() {
            eprintln!(
                "note: scenario has no profile `{}`; scene type \"{}\" uses its first profile",
                s.profile, s.name
            );
        }
        let policy: PolicyOverrides = serde_json::from_value(s.policy).context("demo policy")?;
        let st = store
            .create_scene_type(NewSceneType {
                project_id: project.id,
                name: s.name.into(),
                backend: "simulated".into(),
                backend_config: json!({"profile": s.profile}),
                workflow_template: json!({}),
                parameter_bindings: Default::default(),
                default_parameters: s.params,
                qa_checks: s.checks,
                qa_commands: vec![],
                retry_policy: policy,
                parameter_domains: Default::default(),
            })
            .await?;
        ids.push((s.share, st.id));
    }
    Ok((project, ids))
}

async fn print_report(store: &dyn Store, project_id: i64, first_id: i64) -> anyhow::Result<()> {
    let project = store.get_project(project_id).await?;
    let stats = store.project_stats(project_id).await?;
    let scenes = store.list_scene_types(Some(project_id)).await?;

    // Transparency: a sample of segments that were retried or escalated, oldest first.
    let mut all = vec![];
    let mut cursor = None;
    loop {
        let page = store
            .list_segments(&SegmentFilter {
                project_id: Some(project_id),
                before_id: cursor,
                limit: 500,
                ..Default::default()
            })
            .await?;
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|s| s.id);
        all.extend(page);
    }
    all.sort_by_key(|s| s.id);
    println!("\nA sample of what happened (every attempt is kept and shown in the UI and API):");
    let mut shown = 0;
    let mut escalated_shown = 0;
    for s in all
        .iter()
        .filter(|s| s.attempt_count > 1 || s.status == SegmentStatus::NeedsReview)
    {
        let is_review = s.status == SegmentStatus::NeedsReview;
        if (is_review && escalated_shown >= 3) || (!is_review && shown >= 7) {
            continue;
        }
        let attempts = store.list_attempts(s.id).await?;
        let views: Vec<_> = attempts.iter().map(|a| a.view()).collect();
        let scene = scenes.iter().find(|t| t.id == s.scene_type_id);
        let triggers: Vec<String> = scene
            .map(|t| t.qa_checks.iter().map(|c| c.check.clone()).collect())
            .unwrap_or_default();
        let actions = retake_store::human_actions(&attempts);
        let mut line = summary_sentence_with(s.id, &views, &actions, &triggers);
        if let Some(r) = s.review_reason {
            line.push_str(&format!(" → needs review ({r})"));
        } else if let Some(n) = s.selected_attempt_number {
            line.push_str(&format!(" → attempt {n} selected"));
        }
        println!("  {line}");
        if is_review {
            escalated_shown += 1;
        } else {
            shown += 1;
        }
    }
    let _ = first_id;

    let escalated: u64 = stats.escalations_by_reason.values().sum();
    let best_of_n_segments = all
        .iter()
        .filter(|s| {
            scenes.iter().any(|t| {
                t.id == s.scene_type_id
                    && t.retry_policy.selection_mode == Some(retake_core::SelectionMode::BestOfN)
            })
        })
        .filter(|s| s.status == SegmentStatus::Passed && s.attempt_count > 1)
        .count();
    println!("\nSummary");
    println!("  {:<44}{:>10}", "segments", stats.segments);
    println!(
        "  {:<44}{:>10}",
        "passed first time", stats.passed_first_time
    );
    println!("  {:<44}{:>10}", "rescued by retry", stats.rescued_by_retry);
    println!("  {:<44}{:>10}", "escalated to review", escalated);
    for reason in retake_core::ReviewReason::ALL {
        if let Some(c) = stats.escalations_by_reason.get(reason.as_str()) {
            println!("    {:<42}{:>10}", reason.as_str(), c);
        }
    }
    println!(
        "  {:<44}{:>10}",
        "attempts (1 original + retries per segment)", stats.attempts
    );
    let budget = project.gpu_budget_seconds.unwrap_or(f64::INFINITY);
    println!(
        "  {:<44}{:>10.1} of {:.1} ({:.1}%)",
        "GPU seconds used against the budget",
        project.gpu_spent_seconds,
        budget,
        100.0 * project.gpu_spent_seconds / budget
    );
    println!(
        "  {:<44}{:>10} of {} best-of-N rescues",
        "best-of-N beat the first passing attempt",
        stats.best_of_n_beat_first_pass,
        best_of_n_segments
    );
    if let Some(r) = stats.rescue_rate {
        println!(
            "  {:<44}{:>9.1}%",
            "rescue rate (of segments that failed once)",
            r * 100.0
        );
    }
    Ok(())
}
