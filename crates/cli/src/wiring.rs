//! Connects the engine's seams to the real parts: the QA runner scores videos, ffmpeg renders
//! the simulated backend's clips, and the HTTP server shares the engine's store and backends.

use crate::common::GlobalArgs;
use async_trait::async_trait;
use retake_core::{CheckConfig, CommandCheck, QaVerdict};
use retake_engine::backends::simulated::{ClipRenderer, Degradation};
use retake_engine::backends::{Scenario, SimulatedBackend};
use retake_engine::{Backends, QaUnavailable, Scorer};
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
        Self {
            runner: retake_qa::QaRunner::new(retake_qa::QaSettings::default()),
            default_reference,
        }
    }
}

#[async_trait]
impl Scorer for BuiltinQa {
    async fn score(
        &self,
        video: &Path,
        checks: &[CheckConfig],
        commands: &[CommandCheck],
    ) -> Result<QaVerdict, QaUnavailable> {
        let mut checks = checks.to_vec();
        if self.default_reference {
            for c in checks
                .iter_mut()
                .filter(|c| c.check == "face_confidence" || c.check == "sharpness")
            {
                if c.options.get("reference").is_none() {
                    let mut o = c.options.as_object().cloned().unwrap_or_default();
                    o.insert(
                        "reference".into(),
                        serde_json::json!(retake_qa::reference_image_path()),
                    );
                    c.options = serde_json::Value::Object(o);
                }
            }
        }
        let verdict = self.runner.score(video, &checks, commands).await;
        if verdict.error.is_some() {
            // Was it the video, or can the runner not run at all here?
            retake_qa::check_tools().map_err(|e| QaUnavailable(e.to_string()))?;
        }
        Ok(verdict)
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
        retake_qa::render_clip(&spec, out)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The simulated backend for a scenario, rendering real clips when the scenario asks for them.
pub fn simulated(scenario: Scenario, speed: Option<f64>) -> Arc<SimulatedBackend> {
    Arc::new(SimulatedBackend::new(
        scenario,
        speed,
        Some(Arc::new(FfmpegClips)),
    ))
}

pub fn backends(sim: Arc<SimulatedBackend>) -> Backends {
    Backends::new().with("simulated", sim)
}

/// Generation timeout of one ComfyUI prompt before it counts as hung.
pub const COMFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Adds the ComfyUI backend; `installation` is the store's installation id.
pub fn with_comfy(
    b: Backends,
    pool: &Arc<retake_comfyui::ComfyPool>,
    installation: String,
) -> Backends {
    b.with(
        "comfyui",
        Arc::new(retake_engine::backends::comfyui::ComfyBackend::new(
            pool.clone(),
            installation,
            COMFY_TIMEOUT,
        )),
    )
}

/// `ui_dir`: a checked UI folder (`preflight::ui_bundle`), or `None` for the bundle built into the
/// binary.
pub fn app_state(
    g: &GlobalArgs,
    store: Arc<dyn retake_store::Store>,
    backends: Backends,
    pool: Option<&Arc<retake_comfyui::ComfyPool>>,
    media: retake_engine::media::MediaStore,
    ui_dir: Option<std::path::PathBuf>,
) -> retake_server::AppState {
    let comfy = pool.map(|p| Arc::new(ComfyWiring(p.clone())));
    retake_server::AppState {
        store,
        backends,
        data_dir: g.data_dir.clone(),
        media,
        ui_dir,
        workflow_validator: comfy
            .clone()
            .map(|c| c as Arc<dyn retake_server::WorkflowValidator>),
        comfy_admin: comfy.map(|c| c as Arc<dyn retake_server::ComfyAdmin>),
        token_touches: Default::default(),
    }
}

/// Bind and serve the API and UI in the background.
pub async fn start_http(
    state: retake_server::AppState,
    listen: &str,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let ui = retake_server::ui::UiSource::resolve(state.ui_dir.clone())
        .map_err(|e| anyhow::anyhow!(e))?;
    if ui == retake_server::ui::UiSource::Missing {
        eprintln!("note: {}", ui.describe());
    }
    if listen.parse::<std::net::SocketAddr>().is_err() && listen.rsplit_once(':').is_none() {
        anyhow::bail!(
            "--listen takes host:port, e.g. 127.0.0.1:{0} (this machine only) or 0.0.0.0:{0} (every interface); got `{listen}`",
            if listen.parse::<u16>().is_ok() { listen } else { "8080" }
        );
    }
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {listen} (host:port, e.g. 127.0.0.1:8080): {e}")
    })?;
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

/// The ComfyUI server pool: servers from the config file are recorded in the store (so the API
/// lists and edits them), then the pool runs with the store's list.
pub async fn comfy_pool(
    store: &dyn retake_store::Store,
    configured: &[crate::config::ComfyServerConfig],
) -> anyhow::Result<Arc<retake_comfyui::ComfyPool>> {
    for s in configured {
        store
            .upsert_comfy_server(
                &s.name,
                s.url.trim_end_matches('/'),
                s.max_concurrency,
                s.drained,
            )
            .await?;
    }
    let servers = store.list_comfy_servers().await?;
    let pool = retake_comfyui::ComfyPool::new(
        servers.iter().map(to_config).collect(),
        retake_comfyui::PoolOptions::default(),
    )
    .await;
    Ok(Arc::new(pool))
}

fn to_config(s: &retake_store::ComfyServer) -> retake_comfyui::ServerConfig {
    let mut c = retake_comfyui::ServerConfig::new(&s.name, &s.url, s.max_concurrency as usize);
    c.drained = s.drained;
    c
}

use retake_server::WorkflowRejection;

/// Validates ComfyUI scene types against a server's `/object_info`, and administers the pool.
pub struct ComfyWiring(pub Arc<retake_comfyui::ComfyPool>);

#[async_trait]
impl retake_server::WorkflowValidator for ComfyWiring {
    async fn validate(
        &self,
        template: &serde_json::Value,
        bindings: &std::collections::BTreeMap<String, String>,
    ) -> Result<std::collections::BTreeMap<String, retake_store::DomainRecord>, WorkflowRejection>
    {
        let reject = |field, problems| WorkflowRejection { field, problems };
        let b = retake_engine::backends::comfyui::bindings(bindings)
            .map_err(|e| reject("parameter_bindings", vec![e]))?;
        let info = self.0.object_info().await.map_err(|e| {
            reject(
                "workflow_template",
                vec![format!(
                    "cannot validate the workflow: no ComfyUI server answered /object_info ({e})"
                )],
            )
        })?;
        // The whole workflow, as ComfyUI validates a prompt, then each binding.
        retake_comfyui::validate_workflow(template, &info).map_err(|problems| {
            reject(
                "workflow_template",
                problems.iter().map(|p| p.to_string()).collect(),
            )
        })?;
        retake_comfyui::validate(template, &b, &info)
            .map(|d| d.into_iter().map(|(k, v)| (k, v.into())).collect())
            .map_err(|errs| {
                reject(
                    "parameter_bindings",
                    errs.iter().map(|e| e.to_string()).collect(),
                )
            })
    }
}

#[async_trait]
impl retake_server::ComfyAdmin for ComfyWiring {
    fn status(&self) -> serde_json::Value {
        serde_json::to_value(self.0.servers()).unwrap_or_default()
    }
    async fn reload(&self, servers: Vec<retake_store::ComfyServer>) {
        self.0
            .set_servers(servers.iter().map(to_config).collect())
            .await;
    }
}
