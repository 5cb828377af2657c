//! Shared set-up: fast pool timings, jobs from the example workflow, bounded waits.

use retake_comfyui::fake::{example_bindings, example_workflow, FakeComfy};
use retake_comfyui::{inject, ComfyPool, PoolOptions, Progress, PromptJob, ServerConfig};
use retake_core::Parameters;
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn fast_options() -> PoolOptions {
    PoolOptions {
        health_interval: Duration::from_millis(200),
        health_timeout: Duration::from_secs(2),
        reconnect_initial: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(400),
        poll_interval: Duration::from_millis(300),
        poll_interval_disconnected: Duration::from_millis(100),
        lost_after: Duration::from_secs(5),
    }
}

pub async fn pool_of(fakes: &[&FakeComfy], max_concurrency: usize) -> ComfyPool {
    let configs = fakes
        .iter()
        .map(|f| ServerConfig::new(f.name(), &f.url(), max_concurrency))
        .collect();
    ComfyPool::new(configs, fast_options()).await
}

/// The example workflow with `seed` and `cfg_scale` injected.
pub fn workflow(seed: u64, cfg: f64) -> Value {
    let params = Parameters::new()
        .with("seed", seed)
        .with("cfg_scale", cfg)
        .with("denoise_strength", 0.9);
    inject(&example_workflow(), &example_bindings(), &params)
        .expect("example bindings fit")
        .prompt
}

/// The installation the crate's tests submit as.
pub const INSTALLATION: &str = "test-installation";

pub fn job(prompt_id: &str, workflow: Value, dir: &Path) -> PromptJob {
    PromptJob {
        prompt_id: prompt_id.to_owned(),
        installation: INSTALLATION.to_owned(),
        workflow,
        output_dir: dir.join(prompt_id),
        exclude_server: None,
        timeout: Duration::from_secs(30),
    }
}

/// A progress callback that records what it is told.
pub fn recorder() -> (
    Arc<Mutex<Vec<Progress>>>,
    impl Fn(Progress) + Send + Sync + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    (seen, move |p| sink.lock().unwrap().push(p))
}

pub fn ignore(_: Progress) {}

/// Polls `condition` every 10 ms for up to 15 s.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

pub fn healthy(pool: &ComfyPool, name: &str) -> bool {
    pool.servers().iter().any(|s| s.name == name && s.healthy)
}
