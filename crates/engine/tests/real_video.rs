//! A real video's QA failure triggers a retry whose clip passes: attempt 1 renders a heavily
//! blurred clip, the QA runner's face detection fails it, the engine retries with a new seed, and
//! attempt 2's clean clip passes.

use async_trait::async_trait;
use retake_core::{
    AttemptStatus, CheckConfig, CommandCheck, Parameters, QaVerdict, RetryPolicy, SegmentStatus,
};
use retake_engine::{
    AttemptControl, Backend, Backends, Engine, EngineConfig, Generated, GenerationError,
    GenerationJob, QaUnavailable, Scorer,
};
use retake_store::{NewProject, NewSceneType, NewSegment};
use std::path::Path;
use std::sync::Arc;

struct Renders;

#[async_trait]
impl Backend for Renders {
    fn name(&self) -> &str {
        "simulated"
    }
    async fn generate(
        &self,
        job: &GenerationJob,
        _ctl: &dyn AttemptControl,
    ) -> Result<Generated, GenerationError> {
        let blur = if job.attempt.attempt_number == 1 {
            9.0
        } else {
            0.0
        };
        let spec = retake_qa::ClipSpec {
            seed: job.attempt.seed,
            blur_sigma: blur,
            seconds: 2.0,
            ..retake_qa::ClipSpec::default()
        };
        std::fs::create_dir_all(&job.output_dir).unwrap();
        let out = job.output_dir.join("output.mp4");
        retake_qa::render_clip(&spec, &out)
            .await
            .map_err(|e| GenerationError::Infra {
                message: e.to_string(),
                retriable: false,
                gpu_seconds: 0.0,
            })?;
        Ok(Generated {
            output_path: Some(out),
            gpu_seconds: 5.0,
            verdict: None,
        })
    }
}

struct Qa(retake_qa::QaRunner);

#[async_trait]
impl Scorer for Qa {
    async fn score(
        &self,
        video: &Path,
        checks: &[CheckConfig],
        commands: &[CommandCheck],
    ) -> Result<QaVerdict, QaUnavailable> {
        Ok(self.0.score(video, checks, commands).await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blurred_clip_fails_face_confidence_and_the_retry_passes() {
    let (store, db) = retake_store::testing::sqlite().await;
    let p = store
        .create_project(NewProject {
            name: "real".into(),
            gpu_budget_seconds: Some(1000.0),
            default_gpu_estimate_seconds: 10.0,
            default_retry_policy: RetryPolicy::default(),
        })
        .await
        .unwrap();
    let mut face = CheckConfig::new("face_confidence", 0.7, 0.5);
    face.options = serde_json::json!({"reference": retake_qa::reference_image_path()});
    let st = store
        .create_scene_type(NewSceneType {
            project_id: p.id,
            name: "portrait".into(),
            backend: "simulated".into(),
            backend_config: serde_json::json!({}),
            workflow_template: serde_json::json!({}),
            parameter_bindings: Default::default(),
            default_parameters: Parameters::new().with("cfg_scale", 7.0),
            qa_checks: vec![face, CheckConfig::new("black_frames", 0.9, 0.8)],
            qa_commands: vec![],
            retry_policy: serde_json::from_value(serde_json::json!({"enabled": true})).unwrap(),
            parameter_domains: Default::default(),
        })
        .await
        .unwrap();
    let seg = store
        .submit_segments(vec![NewSegment {
            scene_type_id: st.id,
            label: None,
            parameters: Parameters::new(),
            rng_seed: 3,
        }])
        .await
        .unwrap()
        .remove(0);
    let data = db.dir().unwrap().to_path_buf();
    let engine = Engine::new(
        store.clone(),
        Backends::new().with("simulated", Arc::new(Renders)),
        Some(Arc::new(Qa(retake_qa::QaRunner::new(
            retake_qa::QaSettings::default(),
        )))),
        EngineConfig::new(&data),
    );
    engine.run_until_idle().await.unwrap();

    let seg = store.get_segment(seg.id).await.unwrap();
    let attempts = store.list_attempts(seg.id).await.unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    let face1 = attempts[0].quality_scores.as_ref().unwrap().checks["face_confidence"].score;
    let face2 = attempts[1].quality_scores.as_ref().unwrap().checks["face_confidence"].score;
    assert_eq!(
        attempts[0].overall_status,
        AttemptStatus::Failed,
        "blurred clip: face {face1}"
    );
    assert_eq!(
        attempts[1].overall_status,
        AttemptStatus::Passed,
        "clean clip: face {face2}"
    );
    assert_eq!(attempts[0].qa_source.as_deref(), Some("builtin"));
    assert_ne!(attempts[0].seed, attempts[1].seed);
    assert_eq!(seg.status, SegmentStatus::Passed);
    assert_eq!(seg.selected_attempt_number, Some(2));
    assert!(std::path::Path::new(seg.output_video_path.as_deref().unwrap()).is_file());
}
