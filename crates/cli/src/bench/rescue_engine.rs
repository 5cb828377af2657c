//! Runs the corpus under one retry policy through the real engine: a fresh SQLite database in a
//! temporary directory (or at a kept path), the simulated backend at speed 0, one slot (so the
//! order in which the scene types learn is deterministic), segments submitted in waves as a
//! studio would.

use super::corpus::{Corpus, SegmentSpec};
use super::outcome::{AttemptOutcome, SegmentOutcome};
use anyhow::Context;
use retake_core::{AttemptStatus, PolicyOverrides, RetryPolicy, SegmentStatus};
use retake_engine::backends::{Scenario, SimulatedBackend};
use retake_engine::{Backends, Engine, EngineConfig};
use retake_store::{NewProject, NewSceneType, NewSegment, SegmentFilter, Store};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

/// What one engine strategy configures.
#[derive(Debug, Clone)]
pub struct EnginePlan {
    pub policy: RetryPolicy,
    /// Every check is a trigger (the naive baseline) instead of the scene type's trigger checks.
    pub all_checks_trigger: bool,
    /// The project's GPU budget (GPU-seconds); `None` is unlimited.
    pub budget: Option<f64>,
}

pub async fn run(
    scenario: &Scenario,
    corpus: &Corpus,
    plan: &EnginePlan,
    wave: usize,
    keep: Option<&std::path::Path>,
) -> anyhow::Result<Vec<SegmentOutcome>> {
    // The engine's data directory (clips, logs) is always throwaway; the database is kept when
    // asked for.
    let dir = scratch_dir().context("temporary directory for the benchmark database")?;
    let db = match keep {
        Some(path) => {
            remove_database(path)?;
            path.to_path_buf()
        }
        None => dir.path().join("x.db"),
    };
    let url = format!("sqlite:{}", db.display());
    let store = retake_store::connect(&url)
        .await
        .context("opening the benchmark database")?;
    let project = store
        .create_project(NewProject {
            name: "rescue bench".into(),
            gpu_budget_seconds: plan.budget,
            default_gpu_estimate_seconds: 30.0,
            default_retry_policy: plan.policy.clone(),
        })
        .await?;
    let mut scene_ids = Vec::with_capacity(corpus.scenes.len());
    for s in &corpus.scenes {
        let triggers: BTreeSet<String> = if plan.all_checks_trigger {
            s.all_checks()
        } else {
            s.triggers.clone()
        };
        let st = store
            .create_scene_type(NewSceneType {
                project_id: project.id,
                name: s.name.clone(),
                backend: "simulated".into(),
                backend_config: json!({"profile": s.name}),
                workflow_template: json!({}),
                parameter_bindings: Default::default(),
                default_parameters: s.parameters.clone(),
                qa_checks: s.checks.clone(),
                qa_commands: vec![],
                retry_policy: PolicyOverrides {
                    trigger_checks: Some(triggers),
                    ..Default::default()
                },
                parameter_domains: Default::default(),
            })
            .await?;
        scene_ids.push(st.id);
    }

    let mut scenario = scenario.clone();
    scenario.render_clips = false;
    let backends = Backends::new().with(
        "simulated",
        Arc::new(SimulatedBackend::new(scenario, Some(0.0), None)),
    );
    let mut cfg = EngineConfig::new(dir.path());
    cfg.worker_id = "bench-rescue".into();
    cfg.slots = 1;
    let engine = Engine::new(store.clone(), backends, None, cfg);

    let mut ids = Vec::with_capacity(corpus.segments.len());
    for chunk in corpus.segments.chunks(wave.max(1)) {
        let submitted = store
            .submit_segments(
                chunk
                    .iter()
                    .map(|g| NewSegment {
                        scene_type_id: scene_ids[g.scene],
                        label: Some(super::corpus::label(g.index)),
                        parameters: retake_core::Parameters::new(),
                        rng_seed: g.rng_seed,
                    })
                    .collect(),
            )
            .await?;
        ids.extend(submitted.iter().map(|s| s.id));
        engine.run_until_idle().await?;
    }
    collect(store.as_ref(), project.id, corpus, &ids).await
}

/// Removes a kept database of an earlier run (with its WAL files), so this run starts empty.
fn remove_database(path: &std::path::Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = std::path::PathBuf::from(p);
        if let Err(e) = std::fs::remove_file(&p) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(e).with_context(|| format!("replacing {}", p.display()));
            }
        }
    }
    Ok(())
}

/// A throwaway directory for one run's database, in memory (`/dev/shm`) where there is one: the
/// benchmark measures decisions, not the disk.
fn scratch_dir() -> std::io::Result<tempfile::TempDir> {
    let shm = std::path::Path::new("/dev/shm");
    let mut b = tempfile::Builder::new();
    b.prefix("retake-bench-rescue-");
    if shm.is_dir() {
        if let Ok(d) = b.tempdir_in(shm) {
            return Ok(d);
        }
    }
    b.tempdir()
}

async fn collect(
    store: &dyn Store,
    project_id: i64,
    corpus: &Corpus,
    ids: &[i64],
) -> anyhow::Result<Vec<SegmentOutcome>> {
    let mut segments = std::collections::HashMap::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_segments(&SegmentFilter {
                project_id: Some(project_id),
                before_id: cursor,
                limit: 1000,
                ..Default::default()
            })
            .await?;
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|s| s.id);
        segments.extend(page.into_iter().map(|s| (s.id, s)));
    }
    let mut out = Vec::with_capacity(ids.len());
    for (spec, id) in corpus.segments.iter().zip(ids) {
        let seg = segments
            .remove(id)
            .with_context(|| format!("segment {id} is missing"))?;
        anyhow::ensure!(
            seg.status.is_terminal(),
            "segment {id} is still {} after the run",
            seg.status
        );
        anyhow::ensure!(
            seg.parameters == spec.parameters,
            "segment {id}'s stored parameters differ from the corpus (first seed convention changed?)"
        );
        let attempts = store.list_attempts(*id).await?;
        out.push(outcome(spec, &seg, &attempts));
    }
    Ok(out)
}

fn outcome(
    spec: &SegmentSpec,
    seg: &retake_store::Segment,
    attempts: &[retake_store::Attempt],
) -> SegmentOutcome {
    let attempts: Vec<AttemptOutcome> = attempts
        .iter()
        .map(|a| AttemptOutcome {
            number: a.attempt_number,
            gpu_seconds: a.gpu_seconds,
            passed: a.overall_status == AttemptStatus::Passed,
            judged: matches!(
                a.overall_status,
                AttemptStatus::Passed | AttemptStatus::Failed
            ),
            overall: a.quality_scores.as_ref().map(|q| q.overall),
            failed_checks: a
                .quality_scores
                .as_ref()
                .map(|q| q.failed_checks().into_iter().map(str::to_owned).collect())
                .unwrap_or_default(),
            arm: a.arm,
        })
        .collect();
    SegmentOutcome {
        index: spec.index,
        scene: spec.scene,
        systematic: spec.systematic,
        passed: seg.status == SegmentStatus::Passed,
        selected: seg.selected_attempt_number,
        review_reason: seg.review_reason.map(|r| r.as_str().to_owned()),
        attempts,
    }
}
