//! `retake serve` (engine + HTTP API + web UI) and `retake worker` (engine only). Any number of
//! either can share one PostgreSQL database.

use crate::common::{open_store, GlobalArgs};
use crate::config::Config;
use crate::wiring;
use clap::Args;
use retake_engine::{Engine, EngineConfig};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// Configuration file (TOML): engine, simulated backend, QA and ComfyUI servers.
    #[arg(long, env = "RETAKE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Attempts generating at once in this process (overrides the config).
    #[arg(long)]
    pub slots: Option<usize>,
    /// Scenario for the simulated backend (overrides the config).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Real seconds slept per simulated GPU-second (overrides the scenario).
    #[arg(long)]
    pub speed: Option<f64>,
    /// Name of this worker in leases and events (default: host-pid).
    #[arg(long)]
    pub worker_id: Option<String>,
    /// Render a real clip per simulated attempt and score it with the QA runner.
    #[arg(long)]
    pub clips: bool,
    /// Exit once no attempt is queued and none runs in this process.
    #[arg(long)]
    pub exit_when_idle: bool,
    /// Seconds without a heartbeat before another worker takes over an attempt (overrides the config).
    #[arg(long)]
    pub lease_seconds: Option<f64>,
    /// Serve this process's Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9464), so
    /// every replica is scraped. `retake serve` has them at its own /metrics already.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Address for the API and web UI.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Serve the API only; run no engine in this process.
    #[arg(long)]
    pub no_engine: bool,
    /// Start without requiring a web UI bundle (the API serves; `/` says how to build the UI).
    #[arg(long)]
    pub no_ui: bool,
}

pub struct Running {
    pub engine: Arc<Engine<dyn retake_store::Store>>,
    pub backends: retake_engine::Backends,
    pub pool: Arc<retake_comfyui::ComfyPool>,
    pub media: retake_engine::media::MediaStore,
}

pub async fn build_engine(
    g: &GlobalArgs,
    a: &EngineArgs,
    store: Arc<dyn retake_store::Store>,
) -> anyhow::Result<Running> {
    let cfg = Config::load(a.config.as_deref())?;
    let scenario_path = a.scenario.clone().or(cfg.simulated.scenario.clone());
    let mut scenario = match scenario_path {
        Some(p) => retake_engine::backends::Scenario::load(&p)?,
        None => retake_engine::backends::Scenario::demo(),
    };
    scenario.render_clips |= a.clips;
    let clips = scenario.render_clips;
    let sim = wiring::simulated(scenario, a.speed.or(cfg.simulated.speed));
    let pool = wiring::comfy_pool(store.as_ref(), &cfg.comfyui.servers).await?;
    if clips {
        crate::preflight::media_tools("to render the simulated backend's clips and score them")?;
    } else if !pool.servers().is_empty() {
        crate::preflight::media_tools("to score ComfyUI outputs with the built-in QA")?;
    }
    let installation = store
        .installation_id()
        .await
        .map_err(|e| anyhow::anyhow!("reading the installation id from the store: {e}"))?;
    let backends = wiring::with_comfy(wiring::backends(sim), &pool, installation);
    let media = retake_engine::media::MediaStore::open(&cfg.storage, &g.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot open the media store: {e}"))?;
    let mut ec = EngineConfig::new(&g.data_dir);
    ec.media = Some(media.clone());
    ec.slots = a.slots.unwrap_or(cfg.engine.slots);
    let lease = a.lease_seconds.unwrap_or(cfg.engine.lease_seconds);
    if !(lease.is_finite() && (0.5..=3600.0).contains(&lease)) {
        anyhow::bail!("--lease-seconds must be in 0.5..=3600; got {lease}");
    }
    ec.lease = std::time::Duration::from_secs_f64(lease);
    ec.exit_when_idle = a.exit_when_idle;
    ec.heartbeat = ec.lease / 3;
    ec.max_infra_retries = cfg.engine.max_infra_retries;
    if let Some(w) = &a.worker_id {
        ec.worker_id = w.clone();
    }
    if ec.slots == 0 || ec.slots > 256 {
        anyhow::bail!("slots must be in 1..=256; got {}", ec.slots);
    }
    let engine = Engine::new(
        store,
        backends.clone(),
        Some(Arc::new(wiring::BuiltinQa::new(true))),
        ec,
    );
    Ok(Running {
        engine,
        backends,
        pool,
        media,
    })
}

async fn ctrl_c(tx: tokio::sync::watch::Sender<bool>) {
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("stopping: finishing running attempts (Ctrl-C again to abort)…");
    let _ = tx.send(true);
    let _ = tokio::signal::ctrl_c().await;
    std::process::exit(130);
}

pub async fn serve(g: GlobalArgs, a: ServeArgs) -> anyhow::Result<()> {
    let ui_dir = if a.no_ui {
        None
    } else {
        crate::preflight::ui_bundle(g.ui_dir.clone(), "--no-ui")?
    };
    let store = open_store(&g).await?;
    let running = build_engine(&g, &a.engine, store.clone()).await?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let state = wiring::app_state(
        &g,
        store.clone(),
        running.backends.clone(),
        Some(&running.pool),
        running.media.clone(),
        ui_dir,
    );
    let (addr, http) = wiring::start_http(state, &a.listen, rx.clone()).await?;
    println!(
        "retake serving on http://{addr} ({} store: {}; media: {})",
        store.backend_name(),
        crate::common::describe_url(&g),
        running.media.describe()
    );
    tokio::spawn(ctrl_c(tx));
    if !a.no_engine {
        running.engine.clone().run(rx).await;
    }
    let _ = http.await;
    Ok(())
}

pub async fn worker(g: GlobalArgs, a: EngineArgs) -> anyhow::Result<()> {
    let store = open_store(&g).await?;
    let running = build_engine(&g, &a, store.clone()).await?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    eprintln!(
        "retake worker {} running ({} store; media: {})",
        running.engine.config().worker_id,
        store.backend_name(),
        running.media.describe()
    );
    if let Some(addr) = &a.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!("--metrics-listen {addr}: {e} (give host:port, e.g. 0.0.0.0:9464)")
        })?;
        eprintln!("metrics at http://{}/metrics", listener.local_addr()?);
        let app = retake_server::metrics::process_router();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics listener stopped");
            }
        });
    }
    tokio::spawn(ctrl_c(tx));
    running.engine.clone().run(rx).await;
    Ok(())
}
