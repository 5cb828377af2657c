//! Scenario files (TOML) for the simulated backend and the benchmarks: per scene-type profile,
//! how often each check fails, the score distributions, the share of systematically broken
//! segments, parameter sensitivity, and GPU-time distributions. See `examples/scenarios/`.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub description: String,
    /// Real seconds slept per simulated GPU-second (0 = no sleep). `--speed` overrides it.
    #[serde(default)]
    pub speed: f64,
    /// Render a real clip per attempt with ffmpeg and let the QA runner score it.
    #[serde(default)]
    pub render_clips: bool,
    pub profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Share of segments broken whatever the seed (0..=1).
    #[serde(default)]
    pub systematic_fraction: f64,
    /// Checks a broken segment fails (default: the first check listed).
    #[serde(default)]
    pub systematic_checks: Vec<String>,
    #[serde(default = "default_gpu")]
    pub gpu_seconds: Distribution,
    #[serde(default)]
    pub checks: BTreeMap<String, CheckProfile>,
}

fn default_gpu() -> Distribution {
    Distribution {
        mean: 20.0,
        sd: 4.0,
        min: 1.0,
        max: 120.0,
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distribution {
    pub mean: f64,
    #[serde(default)]
    pub sd: f64,
    #[serde(default)]
    pub min: f64,
    #[serde(default = "big")]
    pub max: f64,
}

fn big() -> f64 {
    f64::MAX
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckProfile {
    /// Probability that an attempt fails this check (stochastic failures).
    #[serde(default)]
    pub fail_probability: f64,
    /// Uniform score range of a passing attempt.
    #[serde(default = "pass_range")]
    pub pass_score: [f64; 2],
    /// Uniform score range of a stochastic failure.
    #[serde(default = "fail_range")]
    pub fail_score: [f64; 2],
    /// Uniform score range of a systematic failure (narrow: a broken workflow's score barely moves).
    #[serde(default = "systematic_range")]
    pub systematic_score: [f64; 2],
    /// Failure probability rises with a parameter's distance from an optimum.
    #[serde(default)]
    pub sensitivity: Vec<Sensitivity>,
}

fn pass_range() -> [f64; 2] {
    [0.72, 0.98]
}
fn fail_range() -> [f64; 2] {
    [0.10, 0.48]
}
fn systematic_range() -> [f64; 2] {
    [0.30, 0.33]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sensitivity {
    pub param: String,
    pub optimum: f64,
    /// Added failure probability per unit of distance from the optimum.
    pub per_unit: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("scenario {path} is invalid: {message}")]
    Invalid { path: String, message: String },
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ScenarioError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), String> {
        if !(self.speed.is_finite() && self.speed >= 0.0) {
            return Err("speed must be a number >= 0".into());
        }
        if self.profiles.is_empty() {
            return Err("at least one [profiles.NAME] is required".into());
        }
        for (name, p) in &self.profiles {
            if !(0.0..=1.0).contains(&p.systematic_fraction) {
                return Err(format!(
                    "profiles.{name}.systematic_fraction must be in 0..=1"
                ));
            }
            if !(p.gpu_seconds.mean.is_finite()
                && p.gpu_seconds.mean > 0.0
                && p.gpu_seconds.sd >= 0.0)
            {
                return Err(format!(
                    "profiles.{name}.gpu_seconds needs mean > 0 and sd >= 0"
                ));
            }
            for c in &p.systematic_checks {
                if !p.checks.contains_key(c) {
                    return Err(format!("profiles.{name}.systematic_checks names `{c}`, which has no [profiles.{name}.checks.{c}]"));
                }
            }
            for (check, cp) in &p.checks {
                if !(0.0..=1.0).contains(&cp.fail_probability) {
                    return Err(format!(
                        "profiles.{name}.checks.{check}.fail_probability must be in 0..=1"
                    ));
                }
                for (field, r) in [
                    ("pass_score", cp.pass_score),
                    ("fail_score", cp.fail_score),
                    ("systematic_score", cp.systematic_score),
                ] {
                    if !(0.0 <= r[0] && r[0] <= r[1] && r[1] <= 1.0) {
                        return Err(format!("profiles.{name}.checks.{check}.{field} must be [low, high] within 0..=1"));
                    }
                }
            }
        }
        Ok(())
    }

    /// The scenario shipped with retake (`examples/scenarios/demo.toml`).
    pub fn demo() -> Scenario {
        Self::parse(include_str!("../../../../examples/scenarios/demo.toml"))
            .expect("the shipped demo scenario is valid")
    }
}
