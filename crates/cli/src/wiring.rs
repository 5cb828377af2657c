//! Connects the engine's seams to the real parts: the QA runner scores videos, ffmpeg renders
//! the simulated backend's clips, and the HTTP server shares the engine's store and backends.

use crate::common::GlobalArgs;
use async_trait::async_trait;
use retake_core::{CheckConfig, CommandCheck, QaVerdict};
use retake_engine::backends::simulated::{ClipRenderer, Degradation};
use retake_engine::backends::{Scenario, SimulatedBackend};
use retake_engine::{Backends, Scorer};
use std::path::Path;
use std::sync::Arc;

/// The built-in QA runner (`retake-qa`). Face and sharpness checks without a reference of their
/// own are compared against the shipped reference image, the subject of the simulated clips.
pub struct BuiltinQa {
    runner: retake_qa::QaRunner,
    default_reference: bool,
}

impl BuiltinQa {
    pub fn new(default_reference: bool) -> Self {
        Self { runner: retake_qa::QaRunner::new(retake_qa::QaSettings::default()), default_reference }
    }
}

#[async_trait]
impl Scorer for BuiltinQa {
    async fn score(&self, video: &Path, checks: &[CheckConfig], commands: &[CommandCheck]) -> QaVerdict {
        let mut checks = checks.to_vec();
        if self.default_reference {
            for c in checks.iter_mut().filter(|c| c.check == "face_confidence" || c.check == "sharpness") {
                if c.options.get("reference").is_none() {
                    let mut o = c.options.as_object().cloned().unwrap_or_default();
                    o.insert("reference".into(), serde_json::json!(retake_qa::reference_image_path()));
                    c.options = serde_json::Value::Object(o);
                }
            }
        }
        self.runner.score(video, &checks, commands).await
    }
}

/// Renders the simulated backend's clips with ffmpeg.
pub struct FfmpegClips;

#[async_trait]
impl ClipRenderer for FfmpegClips {
    async fn render(&self, seed: u64, d: Degradation, out: &Path) -> Result<(), String> {
        let spec = retake_qa::ClipSpec {
            seed,
            blur_sigma: d.blur_sigma,
            noise: d.noise,
            warp: d.warp,
            black_fraction: d.black_fraction,
            frozen: d.frozen,
            ..retake_qa::ClipSpec::default()
        };
        retake_qa::render_clip(&spec, out).await.map_err(|e| e.to_string())
    }
}

/// The simulated backend for a scenario, rendering real clips when the scenario asks for them.
pub fn simulated(scenario: Scenario, speed: Option<f64>) -> Arc<SimulatedBackend> {
    Arc::new(SimulatedBackend::new(scenario, speed, Some(Arc::new(FfmpegClips))))
}

pub fn backends(sim: Arc<SimulatedBackend>) -> Backends {
    Backends::new().with("simulated", sim)
}

pub fn app_state(g: &GlobalArgs, store: Arc<dyn retake_store::Store>, backends: Backends) -> retake_server::AppState {
    retake_server::AppState {
        store,
        backends,
        data_dir: g.data_dir.clone(),
        ui_dir: retake_server::ui::default_ui_dir(),
        workflow_validator: None,
        comfy_admin: None,
    }
}

/// Bind and serve the API and UI in the background.
pub async fn start_http(state: retake_server::AppState, listen: &str, shutdown: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let mut rx = shutdown;
    let h = tokio::spawn(async move {
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        if let Err(e) = retake_server::launch(state, listener, stop).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    Ok((addr, h))
}
