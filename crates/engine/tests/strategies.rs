//! The opt-in retry strategies end to end on both stores: the adaptive bandit, systematic-failure
//! detection, cost-aware stopping in best-of-N, parallel retries under a tight budget, and the
//! explanation every choice leaves behind. A rule-based backend decides each attempt's scores
//! from what the engine asked it to generate.

use async_trait::async_trait;
use retake_core::{
    Arm, AttemptStatus, CheckConfig, CheckScore, Parameters, PolicyOverrides, QaVerdict,
    RetryPolicy, ReviewReason, SegmentStatus,
};
use retake_engine::{
    AttemptControl, Backend, Backends, Engine, EngineConfig, Generated, GenerationError,
    GenerationJob,
};
use retake_store::testing::{budget_audit, current_db_url, BudgetAudit};
use retake_store::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

retake_store::contract_tests!(
    bandit_converges_on_the_arm_that_rescues,
    stuck_scores_are_systematic_but_scattered_failures_are_retried,
    a_broken_scene_type_stops_retrying_at_attempt_one,
    cost_aware_stopping_ends_best_of_n_early,
    parallel_retries_never_exceed_the_budget_or_max_attempts,
    every_choice_is_explained,
    the_stopping_rule_learns_per_scene_type,
    a_retry_regression_is_retried_only_when_the_policy_says_so,
);

type Rule = dyn Fn(&GenerationJob) -> Vec<(&'static str, f64)> + Send + Sync;

/// Scores each attempt with `rule`; optionally audits the project's budget from the database
/// (on a connection of its own) every time a generation starts.
struct RuleBackend {
    rule: Box<Rule>,
    gpu: f64,
    audit: Option<(String, i64)>,
    audits: Mutex<Vec<BudgetAudit>>,
}

impl RuleBackend {
    fn new(
        gpu: f64,
        rule: impl Fn(&GenerationJob) -> Vec<(&'static str, f64)> + Send + Sync + 'static,
    ) -> Self {
        Self {
            rule: Box::new(rule),
            gpu,
            audit: None,
            audits: Mutex::new(vec![]),
        }
    }
}

#[async_trait]
impl Backend for RuleBackend {
    fn name(&self) -> &str {
        "simulated"
    }
    async fn generate(
        &self,
        job: &GenerationJob,
        ctl: &dyn AttemptControl,
    ) -> Result<Generated, GenerationError> {
        if let Some((url, project)) = &self.audit {
            let a = budget_audit(url, *project).await;
            self.audits.lock().unwrap().push(a);
        }
        let mut gpu = self.gpu;
        if gpu > ctl.reserved() && !ctl.reserve_more(gpu - ctl.reserved()).await {
            gpu = ctl.reserved();
            return Err(GenerationError::StoppedByBudget { gpu_seconds: gpu });
        }
        let scores = (self.rule)(job)
            .into_iter()
            .map(|(check, score)| CheckScore {
                check: check.into(),
                score,
                details: serde_json::Value::Null,
            })
            .collect();
        Ok(Generated {
            output_path: None,
            gpu_seconds: gpu,
            verdict: Some(QaVerdict {
                scores,
                error: None,
                source: "rule".into(),
            }),
        })
    }
}

struct Fixture {
    store: Arc<dyn Store>,
    project: Project,
    scene: SceneType,
}

const ORIGINAL_CFG: f64 = 7.0;

async fn fixture(
    store: Arc<dyn Store>,
    budget: Option<f64>,
    policy: serde_json::Value,
    checks: Vec<CheckConfig>,
) -> Fixture {
    let project = store
        .create_project(NewProject {
            name: "p".into(),
            gpu_budget_seconds: budget,
            default_gpu_estimate_seconds: 10.0,
            default_retry_policy: RetryPolicy::default(),
        })
        .await
        .unwrap();
    let overrides: PolicyOverrides = serde_json::from_value(policy).unwrap();
    let scene = store
        .create_scene_type(NewSceneType {
            project_id: project.id,
            name: "crowd".into(),
            backend: "simulated".into(),
            backend_config: serde_json::json!({}),
            workflow_template: serde_json::json!({}),
            parameter_bindings: Default::default(),
            default_parameters: Parameters::new()
                .with("cfg_scale", ORIGINAL_CFG)
                .with("denoise_strength", 0.9),
            qa_checks: checks,
            qa_commands: vec![],
            retry_policy: overrides,
            parameter_domains: Default::default(),
        })
        .await
        .unwrap();
    Fixture {
        store,
        project,
        scene,
    }
}

fn face_only() -> Vec<CheckConfig> {
    vec![CheckConfig::new("face_confidence", 0.7, 0.5)]
}

impl Fixture {
    async fn submit(&self, n: usize, first_rng_seed: u64) -> Vec<Segment> {
        self.submit_to(self.scene.id, n, first_rng_seed).await
    }

    async fn submit_to(&self, scene_type_id: i64, n: usize, first_rng_seed: u64) -> Vec<Segment> {
        self.store
            .submit_segments(
                (0..n)
                    .map(|i| NewSegment {
                        scene_type_id,
                        label: None,
                        parameters: Parameters::new(),
                        rng_seed: first_rng_seed + i as u64,
                    })
                    .collect(),
            )
            .await
            .unwrap()
    }

    /// Another scene type in the fixture's project, like the first but for its name, checks and
    /// policy overrides.
    async fn scene_type(
        &self,
        name: &str,
        checks: Vec<CheckConfig>,
        policy: serde_json::Value,
    ) -> SceneType {
        self.store
            .create_scene_type(NewSceneType {
                project_id: self.project.id,
                name: name.into(),
                backend: "simulated".into(),
                backend_config: serde_json::json!({}),
                workflow_template: serde_json::json!({}),
                parameter_bindings: Default::default(),
                default_parameters: self.scene.default_parameters.clone(),
                qa_checks: checks,
                qa_commands: vec![],
                retry_policy: serde_json::from_value(policy).unwrap(),
                parameter_domains: Default::default(),
            })
            .await
            .unwrap()
    }

    fn engine(
        &self,
        backend: Arc<RuleBackend>,
        worker: &str,
        slots: usize,
    ) -> Arc<Engine<dyn Store>> {
        let mut cfg = EngineConfig::new(std::env::temp_dir());
        cfg.worker_id = worker.into();
        cfg.slots = slots;
        cfg.infra_backoff = Duration::ZERO;
        Engine::new(
            self.store.clone(),
            Backends::new().with("simulated", backend),
            None,
            cfg,
        )
    }

    async fn segment(&self, id: i64) -> (Segment, Vec<Attempt>) {
        (
            self.store.get_segment(id).await.unwrap(),
            self.store.list_attempts(id).await.unwrap(),
        )
    }
}

/// A failing score that varies widely with the attempt's seed (bad luck, not a broken workflow).
fn scattered_failure(seed: u64) -> f64 {
    0.05 + (seed % 40) as f64 / 100.0
}

/// Face scores per segment id, by attempt number (the last one repeats).
fn scripted(
    scripts: Arc<Mutex<HashMap<i64, Vec<f64>>>>,
) -> impl Fn(&GenerationJob) -> Vec<(&'static str, f64)> + Send + Sync {
    move |job| {
        let m = scripts.lock().unwrap();
        let list = m
            .get(&job.attempt.segment_id)
            .cloned()
            .unwrap_or_else(|| vec![0.9]);
        vec![(
            "face_confidence",
            list[(job.attempt.attempt_number as usize - 1).min(list.len() - 1)],
        )]
    }
}

async fn bandit_converges_on_the_arm_that_rescues(store: Arc<dyn Store>) {
    // One retry per segment, so each segment is one arm choice. A retry passes exactly when it
    // lowered cfg: cfg_down always does, the jitter arms half the time, the others never.
    let f = fixture(
        store,
        None,
        serde_json::json!({"enabled": true, "adaptive_variation": true, "max_attempts": 2}),
        face_only(),
    )
    .await;
    let backend = Arc::new(RuleBackend::new(8.0, |job| {
        let cfg = job.attempt.parameters.get_f64("cfg_scale").unwrap();
        let face = if job.attempt.attempt_number > 1 && cfg < ORIGINAL_CFG - 1e-9 {
            0.9
        } else {
            scattered_failure(job.attempt.seed)
        };
        vec![("face_confidence", face)]
    }));
    let engine = f.engine(backend, "w1", 1);
    let mut segments = vec![];
    // Segments arrive in waves, as a studio submits shots; the scene type learns between waves.
    for wave in 0..16u64 {
        segments.extend(f.submit(10, 1_000 + wave * 10).await);
        engine.run_until_idle().await.unwrap();
    }
    let mut arms = vec![];
    for s in &segments {
        let (seg, attempts) = f.segment(s.id).await;
        assert_eq!(
            attempts.len(),
            2,
            "segment {}: attempt 1 always fails and max_attempts is 2",
            seg.id
        );
        let retry = &attempts[1];
        let arm = retry.arm.expect("a retry records its arm");
        assert_eq!(
            retry.jitter.as_ref().map(|j| j.arm),
            Some(arm),
            "the provenance names the same arm"
        );
        let why = retry.why.as_deref().unwrap_or_default();
        assert!(
            why.contains(arm.as_str()),
            "the attempt's why names its arm: {why}"
        );
        if arm == Arm::CfgDown {
            assert_eq!(
                retry.overall_status,
                AttemptStatus::Passed,
                "cfg_down lowers cfg, which always rescues here"
            );
        }
        arms.push(arm);
    }
    let late = &arms[arms.len() - 60..];
    let mut counts: BTreeMap<Arm, usize> = BTreeMap::new();
    for a in late {
        *counts.entry(*a).or_default() += 1;
    }
    let (top, n) = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(a, n)| (*a, *n))
        .unwrap();
    assert_eq!(top, Arm::CfgDown, "the last 60 retries chose {counts:?}");
    assert!(
        n * 10 >= late.len() * 6,
        "cfg_down chosen {n} of the last {} retries: {counts:?}",
        late.len()
    );
    let early = arms[..40].iter().filter(|a| **a == Arm::CfgDown).count();
    assert!(
        n * 40 > early * 60,
        "the choice improved with experience (early {early}/40, late {n}/60)"
    );
    // The learning table the decisions read says the same.
    let patterns = f.store.failure_patterns(Some(f.scene.id)).await.unwrap();
    let face = patterns
        .iter()
        .find(|p| p.check == "face_confidence")
        .unwrap();
    let cfg_down = face.arms["cfg_down"];
    assert_eq!(
        cfg_down.tries, cfg_down.rescues,
        "cfg_down rescued every time it was tried"
    );
    assert!(face.arms.get("cfg_up").is_none_or(|s| s.rescues == 0));
}

async fn stuck_scores_are_systematic_but_scattered_failures_are_retried(store: Arc<dyn Store>) {
    let f = fixture(
        store,
        None,
        serde_json::json!({"enabled": true, "systematic_detection": true, "max_attempts": 5}),
        face_only(),
    )
    .await;
    let scripts = Arc::new(Mutex::new(HashMap::new()));
    let engine = f.engine(
        Arc::new(RuleBackend::new(8.0, scripted(scripts.clone()))),
        "w1",
        1,
    );
    let segs = f.submit(3, 1).await;
    {
        let mut m = scripts.lock().unwrap();
        // A broken workflow: the same check fails with nearly the same score whatever the seed.
        m.insert(segs[0].id, vec![0.31, 0.32, 0.315, 0.31, 0.32]);
        // Bad luck: failing scores all over the place, then a pass.
        m.insert(segs[1].id, vec![0.12, 0.41, 0.25, 0.9]);
        // Bad luck throughout.
        m.insert(segs[2].id, vec![0.12, 0.41, 0.25, 0.45, 0.2]);
    }
    engine.run_until_idle().await.unwrap();

    let (broken, attempts) = f.segment(segs[0].id).await;
    assert_eq!(
        attempts.len(),
        2,
        "two seeds with the same score are enough evidence"
    );
    assert_eq!(broken.status, SegmentStatus::NeedsReview);
    assert_eq!(broken.review_reason, Some(ReviewReason::SystematicFailure));
    let ev = &broken.review_evidence;
    assert_eq!(ev["check"], "face_confidence");
    assert_eq!(ev["rule"], "stuck_scores");
    assert_eq!(ev["scores"], serde_json::json!([0.31, 0.32]));
    assert!(
        ev["explanation"]
            .as_str()
            .unwrap()
            .contains("a new seed is not moving it"),
        "{ev}"
    );
    assert!(broken
        .decision_note
        .unwrap()
        .contains("face_confidence failed on 2 different seeds"));

    let (lucky, attempts) = f.segment(segs[1].id).await;
    assert_eq!(attempts.len(), 4);
    assert_eq!(lucky.status, SegmentStatus::Passed);
    assert_eq!(lucky.selected_attempt_number, Some(4));

    let (unlucky, attempts) = f.segment(segs[2].id).await;
    assert_eq!(
        attempts.len(),
        5,
        "scattered failures keep being retried up to max_attempts"
    );
    assert_eq!(unlucky.review_reason, Some(ReviewReason::AllAttemptsFailed));
}

async fn a_broken_scene_type_stops_retrying_at_attempt_one(store: Arc<dyn Store>) {
    // Every generation of this scene type fails, with scores that do not look stuck: the scene
    // type's own history (at least 20 judged, 90% failing) is the evidence.
    let f = fixture(
        store,
        None,
        serde_json::json!({"enabled": true, "systematic_detection": true, "max_attempts": 3}),
        face_only(),
    )
    .await;
    let engine = f.engine(
        Arc::new(RuleBackend::new(8.0, |job| {
            vec![("face_confidence", scattered_failure(job.attempt.seed))]
        })),
        "w1",
        1,
    );
    let early = f.submit(10, 1).await;
    engine.run_until_idle().await.unwrap();
    let late = f.submit(5, 100).await;
    engine.run_until_idle().await.unwrap();
    let early_attempts: usize = {
        let mut n = 0;
        for s in &early {
            n += f.segment(s.id).await.1.len();
        }
        n
    };
    assert!(
        early_attempts >= 20,
        "the first segments were retried while the history was short ({early_attempts} attempts)"
    );
    for s in &late {
        let (seg, attempts) = f.segment(s.id).await;
        assert_eq!(
            attempts.len(),
            1,
            "segment {} was retried after the scene type proved broken",
            seg.id
        );
        assert_eq!(seg.review_reason, Some(ReviewReason::SystematicFailure));
        assert_eq!(seg.review_evidence["rule"], "broken_workflow");
        assert!(
            seg.decision_note
                .as_deref()
                .unwrap()
                .contains("the workflow looks broken"),
            "{:?}",
            seg.decision_note
        );
    }
}

async fn cost_aware_stopping_ends_best_of_n_early(store: Arc<dyn Store>) {
    let f = fixture(
        store,
        None,
        serde_json::json!({"enabled": true, "selection_mode": "best_of_n", "min_gain_per_gpu_second": 0.001, "max_attempts": 5}),
        face_only(),
    )
    .await;
    let scripts = Arc::new(Mutex::new(HashMap::new()));
    let engine = f.engine(
        Arc::new(RuleBackend::new(8.0, scripted(scripts.clone()))),
        "w1",
        1,
    );
    // History: passing scores around 0.8.
    let history = f.submit(6, 1).await;
    {
        let mut m = scripts.lock().unwrap();
        for (s, score) in history.iter().zip([0.80, 0.82, 0.78, 0.81, 0.79, 0.80]) {
            m.insert(s.id, vec![score]);
        }
    }
    engine.run_until_idle().await.unwrap();
    let segs = f.submit(2, 50).await;
    {
        let mut m = scripts.lock().unwrap();
        // A retry that beats everything seen: nothing more to gain.
        m.insert(segs[0].id, vec![0.3, 0.97, 0.99, 0.99, 0.99]);
        // A modest pass is worth improving on; a great one is not.
        m.insert(segs[1].id, vec![0.3, 0.71, 0.98, 0.99, 0.99]);
    }
    engine.run_until_idle().await.unwrap();

    let (seg, attempts) = f.segment(segs[0].id).await;
    assert_eq!(attempts.len(), 2, "stopped before max_attempts (5)");
    assert_eq!(seg.status, SegmentStatus::Passed);
    assert_eq!(seg.selected_attempt_number, Some(2));
    let note = seg.decision_note.unwrap();
    assert!(
        note.starts_with("cost-aware stop: attempt 2 (overall 0.97) kept"),
        "{note}"
    );
    assert!(note.contains("expected to gain"), "{note}");

    let (seg, attempts) = f.segment(segs[1].id).await;
    assert_eq!(
        attempts.len(),
        3,
        "a modest pass (0.71) is improved on, a great one (0.98) ends the search"
    );
    assert_eq!(seg.selected_attempt_number, Some(3));
    assert!(seg
        .decision_note
        .unwrap()
        .starts_with("cost-aware stop: attempt 3"));
}

async fn parallel_retries_never_exceed_the_budget_or_max_attempts(store: Arc<dyn Store>) {
    const BUDGET: f64 = 420.0;
    let f = fixture(
        store,
        Some(BUDGET),
        serde_json::json!({"enabled": true, "parallelism": 3, "max_attempts": 4}),
        face_only(),
    )
    .await;
    let mut backend = RuleBackend::new(8.0, |job| {
        // Scattered failures, with a pass now and then.
        let face = if job.attempt.seed % 7 == 0 {
            0.9
        } else {
            scattered_failure(job.attempt.seed)
        };
        vec![("face_confidence", face)]
    });
    backend.audit = Some((current_db_url(), f.project.id));
    let backend = Arc::new(backend);
    let segs = f.submit(40, 1).await;
    // Two workers with four slots each race for the same budget.
    let (a, b) = (
        f.engine(backend.clone(), "w1", 4),
        f.engine(backend.clone(), "w2", 4),
    );
    let (ra, rb) = tokio::join!(a.run_until_idle(), b.run_until_idle());
    ra.unwrap();
    rb.unwrap();

    let audits = backend.audits.lock().unwrap().clone();
    assert!(
        audits.len() >= 30,
        "every generation audited the budget ({} audits)",
        audits.len()
    );
    for a in &audits {
        assert!(
            a.spent + a.reserved <= BUDGET + 1e-9,
            "spent {} + reserved {} > budget {BUDGET}",
            a.spent,
            a.reserved
        );
    }
    let end = budget_audit(&current_db_url(), f.project.id).await;
    assert!(end.spent + end.reserved <= BUDGET + 1e-9);
    assert!(
        end.reserved.abs() < 1e-9,
        "nothing stays reserved once idle"
    );
    assert!(
        (end.spent - end.ledger_spent).abs() < 1e-6,
        "the ledger adds up to what was spent"
    );

    let mut budget_escalations = 0;
    for s in &segs {
        let (seg, attempts) = f.segment(s.id).await;
        assert!(
            seg.status.is_terminal(),
            "segment {} is {}",
            seg.id,
            seg.status
        );
        assert!(
            attempts.iter().all(|a| a.attempt_number <= 4),
            "segment {}: an attempt beyond max_attempts",
            seg.id
        );
        let numbers: Vec<u32> = attempts.iter().map(|a| a.attempt_number).collect();
        assert_eq!(
            numbers,
            (1..=attempts.len() as u32).collect::<Vec<_>>(),
            "no gap or duplicate"
        );
        budget_escalations += (seg.review_reason == Some(ReviewReason::BudgetExhausted)) as usize;
    }
    assert!(budget_escalations > 0, "the budget ran out and said so");
    // Per segment: those reads show what has committed at once (the whole-store cursor waits
    // for other tests' transactions on a shared PostgreSQL server).
    let mut events = vec![];
    for s in &segs {
        events.extend(f.store.list_events(0, Some(s.id), 10_000).await.unwrap());
    }
    let widest = events
        .iter()
        .filter(|e| e.kind == "retry_scheduled")
        .map(|e| e.data["attempts"].as_array().map(Vec::len).unwrap_or(0))
        .max()
        .unwrap_or(0);
    assert!(
        (2..=3).contains(&widest),
        "retries were scheduled several at once, never more than 3 (widest {widest})"
    );
}

async fn every_choice_is_explained(store: Arc<dyn Store>) {
    let f = fixture(
        store,
        None,
        serde_json::json!({"enabled": true, "adaptive_variation": true, "systematic_detection": true, "max_attempts": 4, "parallelism": 2}),
        vec![CheckConfig::new("face_confidence", 0.7, 0.5), CheckConfig::new("black_frames", 0.9, 0.8)],
    )
    .await;
    // Per segment, the (face, black) scores of its attempts in order.
    let scripts = Arc::new(Mutex::new(HashMap::<i64, Vec<(f64, f64)>>::new()));
    let s2 = scripts.clone();
    let engine = f.engine(
        Arc::new(RuleBackend::new(8.0, move |job| {
            let m = s2.lock().unwrap();
            let list = m
                .get(&job.attempt.segment_id)
                .cloned()
                .unwrap_or_else(|| vec![(0.9, 1.0)]);
            let (face, black) = list[(job.attempt.attempt_number as usize - 1).min(list.len() - 1)];
            vec![("face_confidence", face), ("black_frames", black)]
        })),
        "w1",
        1,
    );
    let segs = f.submit(5, 1).await;
    {
        let mut m = scripts.lock().unwrap();
        m.insert(segs[0].id, vec![(0.9, 1.0)]);
        m.insert(
            segs[1].id,
            vec![(0.2, 1.0), (0.45, 1.0), (0.1, 1.0), (0.8, 1.0)],
        );
        m.insert(segs[2].id, vec![(0.31, 1.0), (0.32, 1.0), (0.31, 1.0)]);
        m.insert(
            segs[3].id,
            vec![(0.1, 1.0), (0.4, 1.0), (0.2, 1.0), (0.45, 1.0)],
        );
        m.insert(segs[4].id, vec![(0.9, 0.2)]);
    }
    engine.run_until_idle().await.unwrap();
    let mut retries = 0;
    for s in &segs {
        let (seg, attempts) = f.segment(s.id).await;
        assert!(seg.status.is_terminal());
        let note = seg.decision_note.clone().unwrap_or_default();
        assert!(
            !note.is_empty(),
            "segment {} ended {} without a decision note",
            seg.id,
            seg.status
        );
        if seg.status == SegmentStatus::NeedsReview {
            assert!(
                seg.review_reason.is_some(),
                "an escalation names its reason"
            );
        }
        assert_eq!(attempts[0].why.as_deref(), Some("the original generation"));
        for a in attempts.iter().skip(1) {
            retries += 1;
            let why = a.why.as_deref().unwrap_or_default();
            let arm = a.arm.expect("a retry records its arm");
            assert!(
                why.contains(&format!("variation {}", arm.as_str())),
                "attempt {} why names its arm: {why}",
                a.attempt_number
            );
            assert!(
                why.contains("failure"),
                "the bandit says what it knows: {why}"
            );
            assert!(
                why.contains("failed (face_confidence"),
                "and what failed: {why}"
            );
        }
    }
    assert!(retries >= 5);
    let (seg, _) = f.segment(segs[0].id).await;
    assert_eq!(
        seg.decision_note.as_deref(),
        Some("attempt 1 passed (overall 0.95)")
    );
    let (seg, _) = f.segment(segs[1].id).await;
    assert_eq!(seg.status, SegmentStatus::Passed);
    assert!(seg
        .decision_note
        .unwrap()
        .contains("attempt 4 is the first to pass"));
    let (seg, _) = f.segment(segs[2].id).await;
    assert_eq!(seg.review_reason, Some(ReviewReason::SystematicFailure));
    assert_eq!(seg.review_evidence["rule"], "stuck_scores");
    let (seg, _) = f.segment(segs[3].id).await;
    assert_eq!(seg.review_reason, Some(ReviewReason::AllAttemptsFailed));
    assert!(seg.decision_note.unwrap().contains("all 4 attempts failed"));
    let (seg, _) = f.segment(segs[4].id).await;
    assert_eq!(seg.review_reason, Some(ReviewReason::NonRetriableCheck));
    assert!(seg.decision_note.unwrap().contains("black_frames"));
}

/// The stopping rule (`min_rescue_probability`): a scene type whose failures never pass stops
/// retrying once it has evidence, one whose failures pass on the next seed keeps retrying, and a
/// third scene type with no history of its own still retries like fixed-N.
async fn the_stopping_rule_learns_per_scene_type(store: Arc<dyn Store>) {
    let policy =
        serde_json::json!({"enabled": true, "max_attempts": 4, "min_rescue_probability": 0.1});
    let f = fixture(store.clone(), None, policy.clone(), face_only()).await;
    let mut scenes = vec![f.scene.clone()];
    for name in ["lucky", "fresh"] {
        scenes.push(f.scene_type(name, face_only(), policy.clone()).await);
    }
    let (broken, lucky, fresh) = (scenes[0].id, scenes[1].id, scenes[2].id);
    // "crowd" never passes; "lucky" fails attempt 1 and passes any retry; "fresh" never passes.
    let engine = f.engine(
        Arc::new(RuleBackend::new(8.0, |job| {
            let score = match (job.scene_type.name.as_str(), job.attempt.attempt_number) {
                ("lucky", 1) => 0.3,
                ("lucky", _) => 0.9,
                _ => scattered_failure(job.attempt.seed),
            };
            vec![("face_confidence", score)]
        })),
        "w1",
        1,
    );
    let non_exploring: Vec<u64> = (1u64..)
        .filter(|s| !retake_core::rescue::explores(*s))
        .take(90)
        .collect();
    let submit = |scene: i64, seeds: &[u64]| {
        let store = store.clone();
        let seeds = seeds.to_vec();
        async move {
            store
                .submit_segments(
                    seeds
                        .iter()
                        .map(|s| NewSegment {
                            scene_type_id: scene,
                            label: None,
                            parameters: Parameters::new(),
                            rng_seed: *s,
                        })
                        .collect(),
                )
                .await
                .unwrap()
        }
    };
    let mut early = vec![];
    for wave in non_exploring[..60].chunks(10) {
        early.extend(submit(broken, &wave[..5]).await);
        submit(lucky, &wave[5..]).await;
        engine.run_until_idle().await.unwrap();
    }
    // No history yet: the first broken segments ran every attempt, like fixed-N.
    for s in &early[..5] {
        let (seg, attempts) = f.segment(s.id).await;
        assert_eq!(
            attempts.len(),
            4,
            "segment {} (early) was not retried like fixed-N",
            seg.id
        );
        assert_eq!(seg.review_reason, Some(ReviewReason::AllAttemptsFailed));
    }
    let late_broken = submit(broken, &non_exploring[60..70]).await;
    let late_lucky = submit(lucky, &non_exploring[70..80]).await;
    let late_fresh = submit(fresh, &non_exploring[80..90]).await;
    engine.run_until_idle().await.unwrap();
    for s in &late_broken {
        let (seg, attempts) = f.segment(s.id).await;
        assert!(
            attempts.len() < 4,
            "segment {} ran {} attempts",
            seg.id,
            attempts.len()
        );
        assert_eq!(seg.review_reason, Some(ReviewReason::SystematicFailure));
        let ev = &seg.review_evidence;
        assert_eq!(ev["rule"], "rescue_model");
        assert!(ev["p_pass_next"].as_f64().unwrap() < 0.1, "{ev}");
        assert!(
            ev["model"]["hopeless_share"].as_f64().unwrap() > 0.5,
            "{ev}"
        );
        let note = seg.decision_note.unwrap();
        assert!(note.starts_with("stopping: P(pass next) 0.0"), "{note}");
        assert!(note.contains("of this scene type's"), "{note}");
    }
    for s in &late_lucky {
        let (seg, attempts) = f.segment(s.id).await;
        assert_eq!(seg.status, SegmentStatus::Passed, "segment {}", seg.id);
        assert_eq!(attempts.len(), 2);
        // The retry's reason carries the rule's numbers.
        assert!(
            attempts[1]
                .why
                .as_deref()
                .unwrap()
                .contains("P(pass next) 0."),
            "{:?}",
            attempts[1].why
        );
    }
    // The broken scene type's history does not leak: "fresh" retries like fixed-N.
    for s in &late_fresh {
        let (seg, attempts) = f.segment(s.id).await;
        assert_eq!(
            attempts.len(),
            4,
            "segment {} of a scene type without history",
            seg.id
        );
        assert_eq!(seg.review_reason, Some(ReviewReason::AllAttemptsFailed));
    }
    // Each retry event records the numbers it used, for replay.
    for s in &late_lucky {
        let events = store.list_events(0, Some(s.id), 100).await.unwrap();
        let retry = events
            .iter()
            .find(|e| e.kind == "retry_scheduled")
            .expect("a retry event");
        let m = &retry.data["rescue_model"];
        assert!(m["p_pass_next"].as_f64().unwrap() >= 0.1, "{m}");
        assert!(m["model"]["pass_rate"].as_f64().unwrap() > 0.5, "{m}");
    }
}

/// `retry_regressions`: attempt 1 fails face confidence (a trigger) and passes black frames;
/// attempt 2 fixes the face but comes out black. With the knob on, the segment is retried and
/// attempt 3 passes; off (the default), attempt 2's black frames go to review. Each retry and its
/// decision say why.
async fn a_retry_regression_is_retried_only_when_the_policy_says_so(store: Arc<dyn Store>) {
    let checks = vec![
        CheckConfig::new("face_confidence", 0.7, 0.5),
        CheckConfig::new("black_frames", 0.9, 0.8),
    ];
    let f = fixture(
        store.clone(),
        None,
        serde_json::json!({"enabled": true, "max_attempts": 4, "retry_regressions": true}),
        checks.clone(),
    )
    .await;
    // The same scene type with the knob off (the default).
    let off = f
        .scene_type(
            "crowd, regressions off",
            checks,
            serde_json::json!({"enabled": true, "max_attempts": 4}),
        )
        .await;
    let engine = f.engine(
        Arc::new(RuleBackend::new(8.0, |job| {
            match job.attempt.attempt_number {
                1 => vec![("face_confidence", 0.3), ("black_frames", 1.0)],
                2 => vec![("face_confidence", 0.9), ("black_frames", 0.1)],
                _ => vec![("face_confidence", 0.9), ("black_frames", 1.0)],
            }
        })),
        "w1",
        1,
    );
    let on_seg = f.submit(1, 11).await.remove(0);
    let off_seg = f.submit_to(off.id, 1, 12).await.remove(0);
    engine.run_until_idle().await.unwrap();

    let (seg, attempts) = f.segment(on_seg.id).await;
    assert_eq!(seg.status, SegmentStatus::Passed, "{:?}", seg.decision_note);
    assert_eq!(attempts.len(), 3);
    assert_eq!(seg.selected_attempt_number, Some(3));
    let why = attempts[2].why.as_deref().unwrap_or_default();
    assert!(
        why.contains("black_frames passed on an earlier attempt"),
        "attempt 3 says why it was queued: {why}"
    );

    let (seg, attempts) = f.segment(off_seg.id).await;
    assert_eq!(seg.status, SegmentStatus::NeedsReview);
    assert_eq!(seg.review_reason, Some(ReviewReason::NonRetriableCheck));
    assert_eq!(attempts.len(), 2);
    assert!(seg.decision_note.unwrap().contains("black_frames"));
}
