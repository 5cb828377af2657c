//! The optional configuration file (`--config FILE`, TOML). Every section and value is optional.
//!
//! ```toml
//! [engine]
//! slots = 4               # attempts generating at once in this process
//! lease_seconds = 30      # a worker that stops heartbeating loses its attempts after this
//! max_infra_retries = 3   # infrastructure errors retried with the same parameters
//!
//! [simulated]
//! scenario = "examples/scenarios/demo.toml"
//! speed = 0.05
//!
//! [[comfyui.servers]]
//! name = "gpu-1"
//! url = "http://10.0.0.5:8188"
//! max_concurrency = 2
//!
//! [storage]
//! url = "s3://bucket/prefix"          # default: DATA_DIR/media; credentials from AWS_* variables
//! endpoint = "http://10.0.0.9:9000"   # an S3-compatible server (MinIO, Ceph, …)
//! ```

use anyhow::Context;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub engine: EngineSection,
    #[serde(default)]
    pub simulated: SimulatedSection,
    #[serde(default)]
    pub comfyui: ComfySection,
    /// Where attempt outputs are stored (default: `DATA_DIR/media`).
    #[serde(default)]
    pub storage: retake_engine::media::StorageConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    #[serde(default = "slots")]
    pub slots: usize,
    #[serde(default = "lease")]
    pub lease_seconds: f64,
    #[serde(default = "infra")]
    pub max_infra_retries: u32,
}

fn slots() -> usize {
    4
}
fn lease() -> f64 {
    30.0
}
fn infra() -> u32 {
    3
}

impl Default for EngineSection {
    fn default() -> Self {
        Self {
            slots: slots(),
            lease_seconds: lease(),
            max_infra_retries: infra(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedSection {
    pub scenario: Option<PathBuf>,
    pub speed: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComfySection {
    #[serde(default)]
    pub servers: Vec<ComfyServerConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComfyServerConfig {
    pub name: String,
    pub url: String,
    #[serde(default = "one")]
    pub max_concurrency: u32,
    #[serde(default)]
    pub drained: bool,
}

fn one() -> u32 {
    1
}

impl Config {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(p) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("reading config {}", p.display()))?;
        let c: Config =
            toml::from_str(&text).with_context(|| format!("config {} is invalid", p.display()))?;
        if !(c.engine.lease_seconds.is_finite() && (1.0..=3600.0).contains(&c.engine.lease_seconds))
        {
            anyhow::bail!(
                "config {}: engine.lease_seconds must be in 1..=3600",
                p.display()
            );
        }
        Ok(c)
    }
}
