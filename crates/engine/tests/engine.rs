//! The engine end to end on both stores, with a scripted backend whose scores each test chooses.

use async_trait::async_trait;
use retake_core::rng::{draw_attempt, Arm, DrawInput};
use retake_core::{
    AttemptStatus, CheckConfig, CheckScore, EffectivePolicy, Parameters, PolicyOverrides,
    QaVerdict, RetryPolicy, ReviewReason, SegmentStatus,
};
use retake_engine::{
    AttemptControl, Backend, Backends, Engine, EngineConfig, Generated, GenerationError,
    GenerationJob,
};
use retake_store::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

retake_store::contract_tests!(
    retry_happens_only_when_enabled,
    max_attempts_is_respected_and_seeds_differ,
    best_of_n_selects_the_best_passing_attempt,
    non_trigger_check_escalates,
    budget_is_never_exceeded,
    attempts_replay_from_the_recorded_rng_seed,
    restart_mid_run_loses_nothing,
    duplicate_external_qa_is_ignored,
    finished_attempts_are_never_taken_for_lost_leases,
);

/// Face scores per segment, by attempt (the last one repeats).
#[derive(Default)]
struct Scripted {
    scores: Mutex<HashMap<i64, Vec<(f64, f64)>>>,
    gpu: f64,
}

#[async_trait]
impl Backend for Scripted {
    fn name(&self) -> &str {
        "simulated"
    }
    async fn generate(
        &self,
        job: &GenerationJob,
        ctl: &dyn AttemptControl,
    ) -> Result<Generated, GenerationError> {
        let list = self
            .scores
            .lock()
            .unwrap()
            .get(&job.attempt.segment_id)
            .cloned()
            .unwrap_or_else(|| vec![(0.9, 1.0)]);
        let (face, black) = list[(job.attempt.attempt_number as usize - 1).min(list.len() - 1)];
        let mut gpu = self.gpu;
        if gpu > ctl.reserved() && !ctl.reserve_more(gpu - ctl.reserved()).await {
            gpu = ctl.reserved();
            return Err(GenerationError::StoppedByBudget { gpu_seconds: gpu });
        }
        Ok(Generated {
            output_path: None,
            gpu_seconds: gpu,
            verdict: Some(QaVerdict {
                scores: vec![
                    CheckScore {
                        check: "face_confidence".into(),
                        score: face,
                        details: serde_json::Value::Null,
                    },
                    CheckScore {
                        check: "black_frames".into(),
                        score: black,
                        details: serde_json::Value::Null,
                    },
                ],
                error: None,
                source: "scripted".into(),
            }),
        })
    }
}

struct Fixture {
    store: Arc<dyn Store>,
    backend: Arc<Scripted>,
    project: Project,
    scene: SceneType,
}

async fn fixture(
    store: Arc<dyn Store>,
    budget: Option<f64>,
    policy: serde_json::Value,
    external_qa: bool,
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
            name: "portrait".into(),
            backend: "simulated".into(),
            backend_config: serde_json::json!({"external_qa": external_qa}),
            workflow_template: serde_json::json!({}),
            parameter_bindings: Default::default(),
            default_parameters: Parameters::new()
                .with("cfg_scale", 7.0)
                .with("denoise_strength", 0.9),
            qa_checks: vec![
                CheckConfig::new("face_confidence", 0.7, 0.5),
                CheckConfig::new("black_frames", 0.9, 0.8),
            ],
            qa_commands: vec![],
            retry_policy: overrides,
            parameter_domains: Default::default(),
        })
        .await
        .unwrap();
    Fixture {
        store,
        backend: Arc::new(Scripted {
            gpu: 8.0,
            ..Default::default()
        }),
        project,
        scene,
    }
}

impl Fixture {
    async fn submit(&self, scripts: Vec<Vec<(f64, f64)>>) -> Vec<Segment> {
        let segs = self
            .store
            .submit_segments(
                (0..scripts.len())
                    .map(|i| NewSegment {
                        scene_type_id: self.scene.id,
                        label: None,
                        parameters: Parameters::new(),
                        rng_seed: 7 + i as u64,
                    })
                    .collect(),
            )
            .await
            .unwrap();
        let mut m = self.backend.scores.lock().unwrap();
        for (s, script) in segs.iter().zip(scripts) {
            m.insert(s.id, script);
        }
        segs
    }

    fn engine(&self, worker: &str) -> Arc<Engine<dyn Store>> {
        self.engine_with(worker, |_| {})
    }

    fn engine_with(
        &self,
        worker: &str,
        tune: impl FnOnce(&mut EngineConfig),
    ) -> Arc<Engine<dyn Store>> {
        let mut cfg = EngineConfig::new(std::env::temp_dir());
        cfg.worker_id = worker.into();
        cfg.infra_backoff = Duration::ZERO;
        tune(&mut cfg);
        Engine::new(
            self.store.clone(),
            Backends::new().with("simulated", self.backend.clone()),
            None,
            cfg,
        )
    }

    async fn run(&self) {
        self.engine("w1").run_until_idle().await.unwrap();
    }

    async fn segment(&self, id: i64) -> (Segment, Vec<Attempt>) {
        (
            self.store.get_segment(id).await.unwrap(),
            self.store.list_attempts(id).await.unwrap(),
        )
    }
}

const FAIL: (f64, f64) = (0.3, 1.0);

/// `n` segments' scripts: even ones fail once then pass, odd ones pass at once.
fn every_other_fails_once(n: usize) -> Vec<Vec<(f64, f64)>> {
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                vec![FAIL, (0.9, 1.0)]
            } else {
                vec![(0.9, 1.0)]
            }
        })
        .collect()
}

async fn retry_happens_only_when_enabled(store: Arc<dyn Store>) {
    let off = fixture(store.clone(), None, serde_json::json!({}), false).await;
    let s = off.submit(vec![vec![FAIL, (0.9, 1.0)]]).await;
    off.run().await;
    let (seg, attempts) = off.segment(s[0].id).await;
    assert_eq!(attempts.len(), 1, "no retry while auto-retry is off");
    assert_eq!(seg.status, SegmentStatus::NeedsReview);
    assert_eq!(seg.review_reason, Some(ReviewReason::RetryDisabled));

    off.store
        .update_scene_type(
            off.scene.id,
            SceneTypePatch {
                retry_policy: Some(PolicyOverrides {
                    enabled: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let s = off.submit(vec![vec![FAIL, (0.9, 1.0)]]).await;
    off.run().await;
    let (seg, attempts) = off.segment(s[0].id).await;
    assert_eq!(attempts.len(), 2);
    assert_eq!(seg.status, SegmentStatus::Passed);
    assert_eq!(seg.selected_attempt_number, Some(2));
}

async fn max_attempts_is_respected_and_seeds_differ(store: Arc<dyn Store>) {
    let f = fixture(
        store,
        None,
        serde_json::json!({"enabled": true, "max_attempts": 4}),
        false,
    )
    .await;
    let segs = f.submit(vec![vec![FAIL]; 5]).await;
    f.run().await;
    for s in segs {
        let (seg, attempts) = f.segment(s.id).await;
        assert_eq!(attempts.len(), 4, "max_attempts counts the original");
        assert_eq!(seg.status, SegmentStatus::NeedsReview);
        assert_eq!(seg.review_reason, Some(ReviewReason::AllAttemptsFailed));
        let mut seeds: Vec<u64> = attempts.iter().map(|a| a.seed).collect();
        seeds.sort();
        seeds.dedup();
        assert_eq!(seeds.len(), 4, "every attempt has its own seed");
        assert!(attempts
            .iter()
            .all(|a| a.overall_status == AttemptStatus::Failed && !a.is_selected));
    }
}

async fn best_of_n_selects_the_best_passing_attempt(store: Arc<dyn Store>) {
    let f = fixture(
        store,
        None,
        serde_json::json!({"enabled": true, "max_attempts": 4, "selection_mode": "best_of_n"}),
        false,
    )
    .await;
    let s = f
        .submit(vec![vec![FAIL, (0.8, 1.0), (0.97, 1.0), (0.85, 1.0)]])
        .await;
    f.run().await;
    let (seg, attempts) = f.segment(s[0].id).await;
    assert_eq!(attempts.len(), 4);
    assert_eq!(seg.selected_attempt_number, Some(3));
    assert_eq!(attempts.iter().filter(|a| a.is_selected).count(), 1);
    assert!(seg
        .decision_note
        .unwrap()
        .contains("beat the first passing attempt 2"));
}

async fn non_trigger_check_escalates(store: Arc<dyn Store>) {
    let f = fixture(store, None, serde_json::json!({"enabled": true}), false).await;
    let s = f.submit(vec![vec![(0.9, 0.2)]]).await;
    f.run().await;
    let (seg, attempts) = f.segment(s[0].id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(seg.review_reason, Some(ReviewReason::NonRetriableCheck));
    assert!(seg.decision_note.unwrap().contains("black_frames"));
}

async fn budget_is_never_exceeded(store: Arc<dyn Store>) {
    let f = fixture(
        store,
        Some(100.0),
        serde_json::json!({"enabled": true, "max_attempts": 5}),
        false,
    )
    .await;
    let segs = f.submit(vec![vec![FAIL]; 10]).await;
    f.run().await;
    let p = f.store.get_project(f.project.id).await.unwrap();
    assert!(
        p.gpu_spent_seconds + p.gpu_reserved_seconds <= 100.0 + 1e-9,
        "spent {} reserved {}",
        p.gpu_spent_seconds,
        p.gpu_reserved_seconds
    );
    assert!(
        p.gpu_reserved_seconds.abs() < 1e-9,
        "nothing stays reserved once idle"
    );
    let mut budget_escalations = 0;
    for s in segs {
        let (seg, _) = f.segment(s.id).await;
        assert!(seg.status.is_terminal());
        if seg.review_reason == Some(ReviewReason::BudgetExhausted) {
            budget_escalations += 1;
        }
    }
    assert!(budget_escalations > 0, "the budget ran out and said so");
}

async fn attempts_replay_from_the_recorded_rng_seed(store: Arc<dyn Store>) {
    let f = fixture(
        store,
        None,
        serde_json::json!({"enabled": true, "max_attempts": 5, "extra_jitter": {"steps": 2.0}}),
        false,
    )
    .await;
    let s = f.submit(vec![vec![FAIL, FAIL, FAIL, (0.9, 1.0)]]).await;
    f.run().await;
    let (seg, attempts) = f.segment(s[0].id).await;
    assert_eq!(attempts.len(), 4);
    let project = f.store.get_project(f.project.id).await.unwrap();
    let scene = f.store.get_scene_type(f.scene.id).await.unwrap();
    let policy = EffectivePolicy::resolve(&project.default_retry_policy, &scene.retry_policy)
        .unwrap()
        .policy;
    let domains = BTreeMap::new();
    // From the database alone: the segment's rng_seed and parameters, each attempt's arm.
    for a in attempts.iter().skip(1) {
        let previous: Vec<u64> = attempts
            .iter()
            .filter(|p| p.attempt_number < a.attempt_number)
            .map(|p| p.seed)
            .collect();
        let (seed, params, prov) = draw_attempt(&DrawInput {
            policy: &policy,
            original: &seg.parameters,
            rng_seed: seg.rng_seed,
            attempt_number: a.attempt_number,
            previous_seeds: &previous,
            arm: a.arm.unwrap_or(Arm::Jitter),
            domains: &domains,
        });
        assert_eq!(seed, a.seed, "attempt {} seed replays", a.attempt_number);
        assert_eq!(
            params, a.parameters,
            "attempt {} parameters replay",
            a.attempt_number
        );
        assert_eq!(Some(prov), a.jitter);
    }
}

async fn restart_mid_run_loses_nothing(store: Arc<dyn Store>) {
    let f = fixture(
        store,
        None,
        serde_json::json!({"enabled": true, "max_attempts": 3}),
        false,
    )
    .await;
    let segs = f.submit(every_other_fails_once(12)).await;
    // A worker claims work and dies mid-generation: its leases expire.
    let lost = f
        .store
        .claim("crashed", 5, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(lost.len(), 5);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(f.store.rescue_expired().await.unwrap().len(), 5);
    // A new process picks everything up.
    f.engine("restarted").run_until_idle().await.unwrap();
    // Per segment: those reads show what has committed at once (the whole-store cursor waits
    // for other tests' transactions on a shared PostgreSQL server).
    let mut events = vec![];
    for s in segs {
        let (seg, attempts) = f.segment(s.id).await;
        assert!(
            seg.status.is_terminal(),
            "segment {} is {}",
            seg.id,
            seg.status
        );
        let numbers: Vec<u32> = attempts.iter().map(|a| a.attempt_number).collect();
        assert_eq!(
            numbers,
            (1..=attempts.len() as u32).collect::<Vec<_>>(),
            "no gap or duplicate"
        );
        assert!(attempts.iter().all(|a| a.overall_status.is_terminal()));
        events.extend(f.store.list_events(0, Some(s.id), 10_000).await.unwrap());
    }
    assert_eq!(
        events.iter().filter(|e| e.kind == "lease_rescued").count(),
        5
    );
}

async fn duplicate_external_qa_is_ignored(store: Arc<dyn Store>) {
    let f = fixture(store, None, serde_json::json!({"enabled": true}), true).await;
    // The backend still returns scores; with external QA the engine must wait for the API.
    struct NoScores;
    #[async_trait]
    impl Backend for NoScores {
        fn name(&self) -> &str {
            "simulated"
        }
        async fn generate(
            &self,
            _job: &GenerationJob,
            _ctl: &dyn AttemptControl,
        ) -> Result<Generated, GenerationError> {
            Ok(Generated {
                output_path: Some("/tmp/x.mp4".into()),
                gpu_seconds: 5.0,
                verdict: None,
            })
        }
    }
    let s = f.submit(vec![vec![FAIL]]).await;
    let engine = Engine::new(
        f.store.clone(),
        Backends::new().with("simulated", Arc::new(NoScores)),
        None,
        EngineConfig::new(std::env::temp_dir()),
    );
    engine.run_until_idle().await.unwrap();
    let (_, attempts) = f.segment(s[0].id).await;
    assert_eq!(attempts[0].overall_status, AttemptStatus::Scoring);
    let v = QaVerdict {
        scores: vec![
            CheckScore {
                check: "face_confidence".into(),
                score: 0.2,
                details: serde_json::Value::Null,
            },
            CheckScore {
                check: "black_frames".into(),
                score: 1.0,
                details: serde_json::Value::Null,
            },
        ],
        error: None,
        source: "api".into(),
    };
    assert!(
        f.store
            .deliver_verdict(attempts[0].id, v.clone(), None)
            .await
            .unwrap()
            .applied
    );
    assert!(
        !f.store
            .deliver_verdict(attempts[0].id, v, None)
            .await
            .unwrap()
            .applied
    );
    let (seg, attempts) = f.segment(s[0].id).await;
    assert_eq!(attempts.len(), 2, "one retry, not two");
    assert_eq!(seg.status, SegmentStatus::Retrying);
}

/// The heartbeat renews the leases of attempts this process runs. An attempt whose completion
/// has just been written is no longer leased to anyone: it finished here, and must not be
/// reported (and aborted) as a lost lease — with instant generations and a heartbeat every
/// millisecond, every heartbeat races with completions.
async fn finished_attempts_are_never_taken_for_lost_leases(store: Arc<dyn Store>) {
    let f = fixture(
        store,
        None,
        serde_json::json!({"enabled": true, "max_attempts": 3}),
        false,
    )
    .await;
    let segs = f.submit(every_other_fails_once(150)).await;
    let engine = f.engine_with("busy", |cfg| {
        cfg.slots = 8;
        cfg.heartbeat = Duration::from_millis(1);
        cfg.exit_when_idle = true;
    });
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    engine.clone().run(stopped).await;
    let stats = engine.stats();
    assert_eq!(stats.leases_lost, 0, "{stats:?}");
    let mut attempts = 0;
    for s in &segs {
        let (seg, list) = f.segment(s.id).await;
        assert_eq!(seg.status, SegmentStatus::Passed, "segment {}", seg.id);
        assert!(list.iter().all(|a| a.overall_status.is_terminal()));
        attempts += list.len() as u64;
    }
    assert_eq!(attempts, 225);
    assert_eq!(
        stats.attempts, attempts,
        "every attempt ran to its end here"
    );
}
