//! The generation backend the tests run: scripted scores and media, or the simulated backend.

use async_trait::async_trait;
use retake_core::{CheckScore, QaVerdict};
use retake_engine::backends::{Scenario, SimulatedBackend};
use retake_engine::{AttemptControl, Backend, Generated, GenerationError, GenerationJob};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// The GPU seconds a scripted attempt spends.
pub const SCRIPTED_GPU: f64 = 8.0;

/// What a scripted segment's attempts produce.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// `face_confidence` score of attempt n (the last one repeats); other checks score 0.99.
    pub faces: Vec<f64>,
    /// The output each attempt reports.
    pub media: Option<Media>,
}

#[derive(Clone, Debug)]
pub enum Media {
    /// Written to `<output_dir>/output.mp4`.
    Bytes(Vec<u8>),
    /// Reported as the output path as it is (it may point anywhere).
    Path(PathBuf),
    /// `<output_dir>/output.mp4` is a symlink to this target.
    Symlink(PathBuf),
}

/// The generation backend the tests run: scripted segments get the scores and media their script
/// says; the rest go to the simulated backend (demo scenario, zero latency). A scene type with
/// `backend_config.external_qa` gets no verdict, so its attempts wait in `scoring`.
pub struct TestBackend {
    simulated: SimulatedBackend,
    pub(super) scripts: Mutex<HashMap<i64, Script>>,
}

impl TestBackend {
    pub(super) fn new() -> Self {
        Self {
            simulated: SimulatedBackend::new(Scenario::demo(), Some(0.0), None),
            scripts: Mutex::new(HashMap::new()),
        }
    }
}

fn external_qa(job: &GenerationJob) -> bool {
    job.scene_type
        .backend_config
        .get("external_qa")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

#[async_trait]
impl Backend for TestBackend {
    fn name(&self) -> &str {
        "simulated"
    }

    async fn generate(
        &self,
        job: &GenerationJob,
        ctl: &dyn AttemptControl,
    ) -> Result<Generated, GenerationError> {
        let script = self
            .scripts
            .lock()
            .unwrap()
            .get(&job.attempt.segment_id)
            .cloned();
        let Some(script) = script else {
            if external_qa(job) {
                return Ok(Generated {
                    output_path: None,
                    gpu_seconds: SCRIPTED_GPU,
                    verdict: None,
                });
            }
            return self.simulated.generate(job, ctl).await;
        };
        let mut gpu = SCRIPTED_GPU;
        if gpu > ctl.reserved() && !ctl.reserve_more(gpu - ctl.reserved()).await {
            gpu = ctl.reserved();
            return Err(GenerationError::StoppedByBudget { gpu_seconds: gpu });
        }
        let n = job.attempt.attempt_number as usize;
        let face = if script.faces.is_empty() {
            0.95
        } else {
            script.faces[(n - 1).min(script.faces.len() - 1)]
        };
        let output_path = match &script.media {
            None => None,
            Some(Media::Path(p)) => Some(p.clone()),
            Some(Media::Bytes(b)) => {
                std::fs::create_dir_all(&job.output_dir).unwrap();
                let p = job.output_dir.join("output.mp4");
                std::fs::write(&p, b).unwrap();
                Some(p)
            }
            Some(Media::Symlink(target)) => {
                std::fs::create_dir_all(&job.output_dir).unwrap();
                let p = job.output_dir.join("output.mp4");
                let _ = std::fs::remove_file(&p);
                std::os::unix::fs::symlink(target, &p).unwrap();
                Some(p)
            }
        };
        let verdict = (!external_qa(job)).then(|| QaVerdict {
            scores: job
                .scene_type
                .qa_checks
                .iter()
                .filter(|c| c.enabled)
                .map(|c| CheckScore {
                    check: c.check.clone(),
                    score: if c.check == "face_confidence" {
                        face
                    } else {
                        0.99
                    },
                    details: Value::Null,
                })
                .collect(),
            error: None,
            source: "scripted".into(),
        });
        Ok(Generated {
            output_path,
            gpu_seconds: gpu,
            verdict,
        })
    }
}
