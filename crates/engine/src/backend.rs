//! The seams between the engine and the outside: generation backends and QA scorers.

use async_trait::async_trait;
use retake_core::{CheckConfig, CommandCheck, QaVerdict};
use retake_store::{Attempt, SceneType, Store};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One attempt to generate.
pub struct GenerationJob {
    pub attempt: Attempt,
    pub scene_type: Arc<SceneType>,
    pub segment_rng_seed: u64,
    /// Where outputs go: `DATA_DIR/media/segment-<id>/attempt-<n>/`.
    pub output_dir: PathBuf,
}

/// What a finished generation produced.
#[derive(Debug, Clone)]
pub struct Generated {
    pub output_path: Option<PathBuf>,
    pub gpu_seconds: f64,
    /// Scores, when the backend judges its own output (the simulated backend without real media).
    pub verdict: Option<QaVerdict>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum GenerationError {
    /// Servers down, out of memory, interrupted, …: not a quality failure. `retriable: false` is a
    /// broken workflow (the server refused it).
    #[error("{message}")]
    Infra {
        message: String,
        retriable: bool,
        gpu_seconds: f64,
    },
    /// The work never reached a generation server (none is healthy): it has not failed. The
    /// engine returns it to the queue to wait, without using up an infrastructure retry.
    #[error("{message}")]
    NoServer { message: String },
    /// The budget could not cover the generation any longer; it was stopped.
    #[error("stopped by the budget after {gpu_seconds:.1} GPU-s")]
    StoppedByBudget { gpu_seconds: f64 },
}

/// What a running generation may ask of the engine.
#[async_trait]
pub trait AttemptControl: Send + Sync {
    /// Report progress in 0..=1 (shown on the attempt and in the event stream).
    async fn progress(&self, fraction: f64);
    /// Record what was submitted (workflow hash, server, prompt id).
    async fn provenance(&self, value: Value);
    /// A healthy generation server was found (it accepted the work, or is busy with other
    /// work): nothing waits for a server to come back any longer.
    async fn server_available(&self) {}
    /// Ask for `seconds` more GPU budget beyond the reservation; false means stop now.
    async fn reserve_more(&self, seconds: f64) -> bool;
    /// The GPU seconds reserved so far for this attempt.
    fn reserved(&self) -> f64;
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    fn name(&self) -> &str;
    async fn generate(
        &self,
        job: &GenerationJob,
        ctl: &dyn AttemptControl,
    ) -> Result<Generated, GenerationError>;
    /// Stop a pending or running generation of this attempt (segment cancelled or rejected).
    async fn cancel(&self, _attempt: &Attempt) {}
}

/// Scores an output video (the built-in QA runner, in `retake-qa`).
#[async_trait]
pub trait Scorer: Send + Sync + 'static {
    /// The verdict on `video` (a video it cannot read is a verdict with an `error`), or
    /// `QaUnavailable` when the scorer itself cannot run here (ffmpeg cannot be started): an
    /// infrastructure problem, not a quality failure of the attempt.
    async fn score(
        &self,
        video: &Path,
        checks: &[CheckConfig],
        commands: &[CommandCheck],
    ) -> Result<QaVerdict, QaUnavailable>;
}

/// The QA runner cannot run on this machine; the message says why (e.g. "ffmpeg: cannot start:
/// No such file or directory").
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the QA runner cannot run: {0}")]
pub struct QaUnavailable(pub String);

/// The backends a process can run, by the name scene types use (`simulated`, `comfyui`).
#[derive(Clone, Default)]
pub struct Backends {
    by_name: HashMap<String, Arc<dyn Backend>>,
}

impl Backends {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with(mut self, name: &str, b: Arc<dyn Backend>) -> Self {
        self.by_name.insert(name.to_owned(), b);
        self
    }
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Backend>> {
        self.by_name.get(name)
    }
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<_> = self.by_name.keys().cloned().collect();
        v.sort();
        v
    }
    /// Stop generations of cancelled attempts on their backends.
    pub async fn cancel_all<S: Store + ?Sized>(&self, store: &S, attempts: &[Attempt]) {
        for a in attempts {
            if let Some(b) = a.backend.as_deref().and_then(|n| self.get(n)) {
                b.cancel(a).await;
            } else if let Ok(seg) = store.get_segment(a.segment_id).await {
                if let Ok(st) = store.get_scene_type(seg.scene_type_id).await {
                    if let Some(b) = self.get(&st.backend) {
                        b.cancel(a).await;
                    }
                }
            }
        }
    }
}
