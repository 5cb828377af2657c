//! Outputs in an S3-compatible store (moto's server, started by `scripts/s3-test-server start`):
//! the round trip through the media store, and the engine uploading what a backend produced and
//! scoring it from the store. Skipped, loudly, when no server answers; required in CI
//! (`RETAKE_REQUIRE_S3=1`).

use async_trait::async_trait;
use retake_core::{CheckConfig, CheckScore, CommandCheck, Parameters, QaVerdict, RetryPolicy};
use retake_engine::media::{MediaStore, StorageConfig};
use retake_engine::{
    AttemptControl, Backend, Backends, Engine, EngineConfig, Generated, GenerationError,
    GenerationJob, Scorer,
};
use retake_store::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An S3 media store under a fresh prefix of the test bucket, or `None` (skip) when no server.
async fn s3_store(data_dir: &Path) -> Option<(MediaStore, String)> {
    let endpoint =
        std::env::var("RETAKE_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9787".into());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    if client.get(format!("{endpoint}/")).send().await.is_err() {
        if std::env::var("RETAKE_REQUIRE_S3").as_deref() == Ok("1") {
            panic!("an S3-compatible server is required (RETAKE_REQUIRE_S3=1) but none answers at {endpoint}");
        }
        eprintln!("\n*** SKIPPED: S3 media tests — no S3-compatible server at {endpoint} (scripts/s3-test-server start) ***\n");
        return None;
    }
    let bucket = "retake-test";
    let _ = client.put(format!("{endpoint}/{bucket}")).send().await;
    // moto accepts any credentials; the store reads them from the usual variables.
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_REGION", "us-east-1");
    let url = format!("s3://{bucket}/t-{}", uuid::Uuid::new_v4().simple());
    let cfg = StorageConfig {
        url: Some(url.clone()),
        endpoint: Some(endpoint),
        region: None,
    };
    Some((
        MediaStore::open(&cfg, data_dir).expect("open the S3 store"),
        url,
    ))
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn outputs_round_trip_through_s3_with_byte_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let Some((media, url)) = s3_store(dir.path()).await else {
        return;
    };
    assert!(!media.is_local());
    assert_eq!(media.describe(), url);
    let work = media.work_dir(12, 3);
    assert!(work.starts_with(dir.path().join("staging")), "{work:?}");
    std::fs::create_dir_all(&work).unwrap();
    let video = work.join("output.mp4");
    let bytes = pattern(300_000);
    std::fs::write(&video, &bytes).unwrap();
    std::fs::write(work.join("preview.png"), b"png").unwrap();

    let reference = media.publish(12, 3, &work, &video).await.unwrap();
    assert_eq!(reference, format!("{url}/segment-12/attempt-3/output.mp4"));
    assert!(
        !work.exists(),
        "the staging folder is removed once uploaded"
    );

    let path = media.locate(&reference).unwrap();
    let meta = media.head(&path).await.unwrap();
    assert_eq!(meta.size, bytes.len() as u64);
    let part = media
        .get(&path, Some(1000..1100))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&part[..], &bytes[1000..1100]);
    // Every file of the attempt was uploaded, ComfyUI's extra outputs included.
    let png = media
        .locate(&format!("{url}/segment-12/attempt-3/preview.png"))
        .unwrap();
    assert_eq!(media.head(&png).await.unwrap().size, 3);

    // QA tools get a local copy with the same bytes.
    let copy = media.local_copy(&reference).await.unwrap();
    assert_eq!(std::fs::read(copy.path()).unwrap(), bytes);
    assert_eq!(copy.path().extension().unwrap(), "mp4");

    // Nothing outside this store resolves.
    for other in [
        "s3://another-bucket/segment-12/attempt-3/output.mp4".to_owned(),
        format!("{url}-other/segment-12/attempt-3/output.mp4"),
        format!("{url}/../secret"),
        "/etc/passwd".to_owned(),
        "retake.db".to_owned(),
        String::new(),
    ] {
        assert!(media.locate(&other).is_err(), "{other} resolved");
    }
    let missing = media
        .locate(&format!("{url}/segment-99/attempt-1/output.mp4"))
        .unwrap();
    assert!(matches!(
        media.head(&missing).await,
        Err(retake_engine::media::MediaError::NotFound)
    ));
}

/// Writes a clip into the attempt's work folder and leaves scoring to the QA runner.
struct ClipBackend(Vec<u8>);

#[async_trait]
impl Backend for ClipBackend {
    fn name(&self) -> &str {
        "simulated"
    }
    async fn generate(
        &self,
        job: &GenerationJob,
        _ctl: &dyn AttemptControl,
    ) -> Result<Generated, GenerationError> {
        std::fs::create_dir_all(&job.output_dir).unwrap();
        let p = job.output_dir.join("clip.mp4");
        std::fs::write(&p, &self.0).unwrap();
        Ok(Generated {
            output_path: Some(p),
            gpu_seconds: 2.0,
            verdict: None,
        })
    }
}

/// Records what it was given to score.
#[derive(Default)]
struct RecordingQa(Mutex<Vec<(PathBuf, Vec<u8>)>>);

#[async_trait]
impl Scorer for RecordingQa {
    async fn score(
        &self,
        video: &Path,
        _: &[CheckConfig],
        _: &[CommandCheck],
    ) -> Result<QaVerdict, retake_engine::QaUnavailable> {
        let bytes = std::fs::read(video).unwrap_or_default();
        self.0.lock().unwrap().push((video.to_owned(), bytes));
        Ok(QaVerdict {
            scores: vec![CheckScore {
                check: "face_confidence".into(),
                score: 0.9,
                details: serde_json::Value::Null,
            }],
            error: None,
            source: "builtin".into(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_uploads_outputs_and_scores_them_from_s3() {
    let dir = tempfile::tempdir().unwrap();
    let Some((media, url)) = s3_store(dir.path()).await else {
        return;
    };
    let (store, _db) = retake_store::testing::sqlite().await;
    let project = store
        .create_project(NewProject {
            name: "p".into(),
            gpu_budget_seconds: None,
            default_gpu_estimate_seconds: 10.0,
            default_retry_policy: RetryPolicy::default(),
        })
        .await
        .unwrap();
    let scene = store
        .create_scene_type(NewSceneType {
            project_id: project.id,
            name: "portrait".into(),
            backend: "simulated".into(),
            backend_config: serde_json::json!({}),
            workflow_template: serde_json::json!({}),
            parameter_bindings: Default::default(),
            default_parameters: Parameters::new().with("cfg_scale", 7.0),
            qa_checks: vec![CheckConfig::new("face_confidence", 0.7, 0.5)],
            qa_commands: vec![],
            retry_policy: Default::default(),
            parameter_domains: Default::default(),
        })
        .await
        .unwrap();
    let seg = store
        .submit_segments(vec![NewSegment {
            scene_type_id: scene.id,
            label: None,
            parameters: Parameters::new(),
            rng_seed: 1,
        }])
        .await
        .unwrap()
        .remove(0);
    let clip = pattern(50_000);
    let qa = Arc::new(RecordingQa::default());
    let mut cfg = EngineConfig::new(dir.path());
    cfg.worker_id = "gpu-host-1".into();
    cfg.media = Some(media.clone());
    let engine = Engine::new(
        store.clone(),
        Backends::new().with("simulated", Arc::new(ClipBackend(clip.clone()))),
        Some(qa.clone()),
        cfg,
    );
    engine.run_until_idle().await.unwrap();

    let a = store.list_attempts(seg.id).await.unwrap().remove(0);
    assert_eq!(a.overall_status, retake_core::AttemptStatus::Passed);
    let reference = a.output_video_path.clone().unwrap();
    assert_eq!(
        reference,
        format!("{url}/segment-{}/attempt-1/clip.mp4", seg.id)
    );
    assert_eq!(a.provenance["worker"], "gpu-host-1", "who ran it is kept");
    // QA scored the stored bytes, from a copy read back through the store.
    let scored = qa.0.lock().unwrap().clone();
    assert_eq!(scored.len(), 1);
    assert_eq!(scored[0].1, clip);
    assert!(!scored[0].0.starts_with(media.work_dir(seg.id, 1)));
    // Nothing is left in the local data directory but the staging root.
    assert!(!media.work_dir(seg.id, 1).exists());
    let obj = media.locate(&reference).unwrap();
    assert_eq!(media.head(&obj).await.unwrap().size, clip.len() as u64);
}
