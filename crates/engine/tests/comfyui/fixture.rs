//! Set-up shared by the ComfyUI engine tests: a project and a `comfyui` scene type bound to the
//! fake's example workflow, a pool with short timings, an engine with fast infrastructure
//! backoff, a QA scorer whose scores each test scripts per segment and attempt, and bounded waits.

use async_trait::async_trait;
use retake_comfyui::fake::{example_workflow, object_info, FakeComfy};
use retake_comfyui::{canonical_hash, prompt_id_for, ComfyPool, PoolOptions, ServerConfig};
use retake_core::{
    CheckConfig, CheckScore, CommandCheck, Parameters, PolicyOverrides, QaVerdict, RetryPolicy,
};
use retake_engine::backends::comfyui::{bindings, ComfyBackend};
use retake_engine::{Backends, Engine, EngineConfig, QaUnavailable, Scorer};
use retake_store::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const PASS: f64 = 0.9;
pub const FAIL: f64 = 0.2;
pub const ORIGINAL_CFG: f64 = 7.0;
pub const ORIGINAL_DENOISE: f64 = 0.9;

/// Where the scene type's parameters live in `example_workflow()`.
pub fn parameter_bindings() -> BTreeMap<String, String> {
    [
        ("seed", "3.seed"),
        ("cfg_scale", "3.cfg"),
        ("denoise_strength", "3.denoise"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub fn fast_pool_options() -> PoolOptions {
    PoolOptions {
        health_interval: Duration::from_millis(200),
        health_timeout: Duration::from_secs(2),
        reconnect_initial: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(300),
        poll_interval: Duration::from_millis(100),
        poll_interval_disconnected: Duration::from_millis(100),
        lost_after: Duration::from_secs(10),
    }
}

/// A pool over `fakes`, each taking `max_concurrency` prompts at once.
pub async fn pool_of(fakes: &[&FakeComfy], max_concurrency: usize) -> Arc<ComfyPool> {
    let configs = fakes
        .iter()
        .map(|f| ServerConfig::new(f.name(), &f.url(), max_concurrency))
        .collect();
    Arc::new(ComfyPool::new(configs, fast_pool_options()).await)
}

/// Face-confidence scores by segment id, one per attempt number (the last one repeats). Scores
/// the file the engine downloaded; what it saw is kept for the test to check.
#[derive(Default)]
pub struct ScriptedQa {
    scripts: Mutex<HashMap<i64, Vec<f64>>>,
    /// Every video scored, with its size in bytes (0 when missing).
    pub scored: Mutex<Vec<(PathBuf, u64)>>,
    /// When set, the scorer cannot run (as QA without ffmpeg): this is its reason.
    pub unavailable: Mutex<Option<String>>,
}

impl ScriptedQa {
    pub fn script(&self, segment_id: i64, faces: Vec<f64>) {
        self.scripts.lock().unwrap().insert(segment_id, faces);
    }

    pub fn scored(&self) -> Vec<(PathBuf, u64)> {
        self.scored.lock().unwrap().clone()
    }
}

/// `(segment id, attempt number)` from `…/media/segment-<id>/attempt-<n>/<file>`.
pub fn segment_and_attempt(video: &Path) -> Option<(i64, u32)> {
    let attempt_dir = video.parent()?;
    let n = attempt_dir
        .file_name()?
        .to_str()?
        .strip_prefix("attempt-")?
        .parse()
        .ok()?;
    let id = attempt_dir
        .parent()?
        .file_name()?
        .to_str()?
        .strip_prefix("segment-")?
        .parse()
        .ok()?;
    Some((id, n))
}

#[async_trait]
impl Scorer for ScriptedQa {
    async fn score(
        &self,
        video: &Path,
        _checks: &[CheckConfig],
        _commands: &[CommandCheck],
    ) -> Result<QaVerdict, QaUnavailable> {
        if let Some(why) = self.unavailable.lock().unwrap().clone() {
            return Err(QaUnavailable(why));
        }
        let size = std::fs::metadata(video).map(|m| m.len()).unwrap_or(0);
        self.scored.lock().unwrap().push((video.to_owned(), size));
        // Never panic here (it would strand the attempt in `scoring`): a verdict error shows up
        // as a `qa_error` attempt, which the tests assert against.
        if size == 0 {
            return Ok(QaVerdict {
                scores: vec![],
                error: Some(format!("{} is missing or empty", video.display())),
                source: "scripted".into(),
            });
        }
        let Some((segment, n)) = segment_and_attempt(video) else {
            return Ok(QaVerdict {
                scores: vec![],
                error: Some(format!("{} is not in an attempt folder", video.display())),
                source: "scripted".into(),
            });
        };
        let faces = self
            .scripts
            .lock()
            .unwrap()
            .get(&segment)
            .cloned()
            .unwrap_or_else(|| vec![PASS]);
        let face = faces[(n as usize - 1).min(faces.len() - 1)];
        Ok(QaVerdict {
            scores: vec![CheckScore {
                check: "face_confidence".into(),
                score: face,
                details: Value::Null,
            }],
            error: None,
            source: "scripted".into(),
        })
    }
}

/// A project with one `comfyui` scene type, a data directory and a scripted scorer.
pub struct Rig {
    pub store: Arc<dyn Store>,
    pub project: Project,
    pub scene: SceneType,
    pub qa: Arc<ScriptedQa>,
    pub data: tempfile::TempDir,
    /// The store's installation id, part of every prompt id.
    pub installation: String,
}

/// Engine knobs a test may change.
#[derive(Clone)]
pub struct EngineOpts {
    pub worker: String,
    pub slots: usize,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub max_infra_retries: u32,
    pub timeout: Duration,
}

impl Default for EngineOpts {
    fn default() -> Self {
        Self {
            worker: "engine".into(),
            slots: 4,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            max_infra_retries: 3,
            timeout: Duration::from_secs(20),
        }
    }
}

pub async fn rig(store: Arc<dyn Store>, policy: Value) -> Rig {
    rig_with(store, policy, example_workflow(), parameter_bindings()).await
}

/// `rig` with another workflow and bindings.
pub async fn rig_with(
    store: Arc<dyn Store>,
    policy: Value,
    workflow: Value,
    map: BTreeMap<String, String>,
) -> Rig {
    let project = store
        .create_project(NewProject {
            name: "comfy".into(),
            gpu_budget_seconds: None,
            default_gpu_estimate_seconds: 10.0,
            default_retry_policy: RetryPolicy::default(),
        })
        .await
        .unwrap();
    let overrides: PolicyOverrides = serde_json::from_value(policy).unwrap();
    // As the server does when a scene type is saved: jitter stays inside the nodes' ranges.
    retake_comfyui::validate_workflow(&workflow, &object_info()).expect("a valid workflow");
    let domains = retake_comfyui::validate(&workflow, &bindings(&map).unwrap(), &object_info())
        .expect("the bindings fit the fake's nodes")
        .into_iter()
        .map(|(k, d)| (k, DomainRecord::from(d)))
        .collect();
    let scene = store
        .create_scene_type(NewSceneType {
            project_id: project.id,
            name: "lighthouse".into(),
            backend: "comfyui".into(),
            backend_config: json!({}),
            workflow_template: workflow,
            parameter_bindings: map,
            default_parameters: Parameters::new()
                .with("cfg_scale", ORIGINAL_CFG)
                .with("denoise_strength", ORIGINAL_DENOISE),
            qa_checks: vec![CheckConfig::new("face_confidence", 0.7, 0.5)],
            qa_commands: vec![],
            retry_policy: overrides,
            parameter_domains: domains,
        })
        .await
        .unwrap();
    let installation = store.installation_id().await.unwrap();
    Rig {
        installation,
        store,
        project,
        scene,
        qa: Arc::new(ScriptedQa::default()),
        data: tempfile::tempdir().unwrap(),
    }
}

impl Rig {
    /// Submits one segment per script (face scores by attempt number).
    pub async fn submit(&self, scripts: Vec<Vec<f64>>) -> Vec<Segment> {
        let segs = self
            .store
            .submit_segments(
                (0..scripts.len())
                    .map(|i| NewSegment {
                        scene_type_id: self.scene.id,
                        label: None,
                        parameters: Parameters::new(),
                        rng_seed: 40 + i as u64,
                    })
                    .collect(),
            )
            .await
            .unwrap();
        for (s, script) in segs.iter().zip(scripts) {
            self.qa.script(s.id, script);
        }
        segs
    }

    pub fn engine(&self, pool: &Arc<ComfyPool>, o: EngineOpts) -> Arc<Engine<dyn Store>> {
        let mut cfg = EngineConfig::new(self.data.path());
        cfg.worker_id = o.worker;
        cfg.slots = o.slots;
        cfg.lease = o.lease;
        cfg.heartbeat = o.heartbeat;
        cfg.poll = Duration::from_millis(50);
        cfg.max_infra_retries = o.max_infra_retries;
        cfg.infra_backoff = Duration::from_millis(20);
        cfg.server_wait = Duration::from_millis(50);
        let backend = ComfyBackend::new(pool.clone(), self.installation.clone(), o.timeout);
        Engine::new(
            self.store.clone(),
            Backends::new().with("comfyui", Arc::new(backend)),
            Some(self.qa.clone()),
            cfg,
        )
    }

    /// `run_until_idle`, bounded.
    pub async fn run(&self, engine: &Arc<Engine<dyn Store>>) {
        tokio::time::timeout(Duration::from_secs(40), engine.run_until_idle())
            .await
            .expect("the engine went idle within 40 s")
            .unwrap();
    }

    pub async fn segment(&self, id: i64) -> (Segment, Vec<Attempt>) {
        (
            self.store.get_segment(id).await.unwrap(),
            self.store.list_attempts(id).await.unwrap(),
        )
    }

    /// The folder the engine gives an attempt's outputs.
    pub fn attempt_dir(&self, a: &Attempt) -> PathBuf {
        self.data
            .path()
            .join("media")
            .join(format!("segment-{}", a.segment_id))
            .join(format!("attempt-{}", a.attempt_number))
    }

    /// The attempt's output: inside its own folder, a real non-empty file.
    pub fn assert_output_in_attempt_folder(&self, a: &Attempt) -> PathBuf {
        let out = PathBuf::from(
            a.output_video_path
                .as_deref()
                .unwrap_or_else(|| panic!("attempt {} has no output", a.attempt_number)),
        );
        assert_eq!(
            out.parent(),
            Some(self.attempt_dir(a).as_path()),
            "attempt {} output {out:?}",
            a.attempt_number
        );
        let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        assert!(
            len > 0,
            "attempt {} output {out:?} is missing or empty",
            a.attempt_number
        );
        out
    }
}

/// `(seed, cfg, denoise)` as written into the KSampler of a submitted workflow.
pub fn sampler_inputs(workflow: &Value) -> (u64, f64, f64) {
    let inputs = &workflow["3"]["inputs"];
    (
        inputs["seed"].as_u64().expect("seed is an integer"),
        inputs["cfg"].as_f64().expect("cfg is a number"),
        inputs["denoise"].as_f64().expect("denoise is a number"),
    )
}

/// `(seed, cfg, denoise)` of an attempt's recorded parameters.
pub fn attempt_inputs(a: &Attempt) -> (u64, f64, f64) {
    (
        a.parameters.seed().expect("attempts carry a seed"),
        a.parameters.get_f64("cfg_scale").expect("cfg_scale"),
        a.parameters
            .get_f64("denoise_strength")
            .expect("denoise_strength"),
    )
}

/// The workflow the backend submitted for `try_number` of an attempt is the template with exactly
/// the attempt's parameters in; an infrastructure retry also names its output file apart.
pub fn assert_workflow_carries(workflow: &Value, a: &Attempt, try_number: u32) {
    assert_eq!(
        sampler_inputs(workflow),
        attempt_inputs(a),
        "submitted sampler inputs = attempt {} parameters",
        a.attempt_number
    );
    let mut rest = workflow.clone();
    let mut template = example_workflow();
    if try_number > 0 {
        let prefix = format!(
            "{}_retry{try_number}",
            template["9"]["inputs"]["filename_prefix"].as_str().unwrap()
        );
        template["9"]["inputs"]["filename_prefix"] = json!(prefix);
    }
    for w in [&mut rest, &mut template] {
        let inputs = w["3"]["inputs"].as_object_mut().unwrap();
        for k in ["seed", "cfg", "denoise"] {
            inputs.remove(k);
        }
    }
    assert_eq!(
        rest, template,
        "nothing but the bound inputs (and a retry's output name) differs from the template"
    );
}

impl Rig {
    /// The prompt id the backend uses for `try_number` of an attempt.
    pub fn prompt_id(&self, a: &Attempt, try_number: u32) -> String {
        prompt_id_for(&self.installation, &a.id.to_string(), try_number)
    }

    /// The provenance points at the workflow the fake received.
    pub fn assert_provenance_matches(
        &self,
        a: &Attempt,
        workflow: &Value,
        try_number: u32,
        server: &str,
    ) {
        let p = &a.provenance;
        assert_eq!(
            p["prompt_id"],
            json!(self.prompt_id(a, try_number)),
            "attempt {} provenance {p}",
            a.attempt_number
        );
        assert_eq!(p["try"], json!(try_number));
        assert_eq!(p["workflow_hash"], json!(canonical_hash(workflow)));
        assert_eq!(&p["workflow"], workflow);
        assert_eq!(p["server"], json!(server));
    }
}

/// Polls an async condition every 20 ms for up to 20 s.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Budget columns and ledger agree with what the attempts were charged.
pub async fn assert_charged(url: &str, project_id: i64, attempts: &[&Attempt]) {
    let audit = retake_store::testing::budget_audit(url, project_id).await;
    let charged: f64 = attempts.iter().map(|a| a.gpu_seconds).sum();
    assert!(
        (audit.spent - charged).abs() < 1e-6,
        "project spent {} vs attempts {charged}",
        audit.spent
    );
    assert!(
        (audit.ledger_spent - charged).abs() < 1e-6,
        "ledger {} vs attempts {charged}",
        audit.ledger_spent
    );
    assert!(
        audit.reserved.abs() < 1e-6,
        "nothing stays reserved once idle: {}",
        audit.reserved
    );
}
