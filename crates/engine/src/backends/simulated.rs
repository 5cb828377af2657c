//! The simulated generation backend, for demos, tests and benchmarks. Everything it produces is
//! a deterministic function of the segment's RNG seed, the attempt's seed and its parameters, so
//! a scenario replays exactly. With `render_clips` it renders a real short clip per attempt whose
//! degradations follow the simulated outcome, and leaves scoring to the real QA runner.

use super::scenario::{CheckProfile, Distribution, Profile, Scenario, SegmentClass, Shape};
use crate::backend::{AttemptControl, Backend, Generated, GenerationError, GenerationJob};
use async_trait::async_trait;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use rand_distr::{Distribution as _, LogNormal, Normal};
use retake_core::{CheckConfig, CheckScore, Parameters, QaVerdict};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How a rendered clip is damaged, following the simulated outcome.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Degradation {
    pub blur_sigma: f64,
    pub noise: f64,
    pub warp: f64,
    pub black_fraction: f64,
    pub frozen: bool,
}

/// Renders a real clip for an attempt (wired to `retake-qa`'s ffmpeg renderer by the binary).
#[async_trait]
pub trait ClipRenderer: Send + Sync + 'static {
    async fn render(&self, seed: u64, degradation: Degradation, out: &Path) -> Result<(), String>;
}

/// One simulated attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOutcome {
    pub gpu_seconds: f64,
    pub scores: Vec<CheckScore>,
    pub systematic: bool,
    pub degradation: Degradation,
}

fn mix(a: u64, b: u64) -> u64 {
    // SplitMix64 finaliser over the pair; any fixed bijective mix works.
    let mut z = a ^ b.rotate_left(32) ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn uniform(rng: &mut ChaCha12Rng, r: [f64; 2]) -> f64 {
    if r[1] <= r[0] {
        r[0]
    } else {
        rng.random_range(r[0]..=r[1])
    }
}

fn draw(rng: &mut ChaCha12Rng, d: Distribution) -> f64 {
    let x = if d.sd <= 0.0 {
        d.mean
    } else if d.shape == Shape::LogNormal {
        // The log-normal with this mean and standard deviation.
        let s2 = (1.0 + (d.sd / d.mean).powi(2)).ln();
        LogNormal::new(d.mean.ln() - s2 / 2.0, s2.sqrt())
            .expect("valid log-normal")
            .sample(rng)
    } else {
        Normal::new(d.mean, d.sd).expect("valid normal").sample(rng)
    };
    x.clamp(d.min.max(0.01), d.max)
}

/// The class a segment belongs to (profiles with `classes`), a fixed function of its RNG seed.
pub fn segment_class(profile: &Profile, segment_rng_seed: u64) -> Option<&SegmentClass> {
    if profile.classes.is_empty() {
        return None;
    }
    let mut rng = ChaCha12Rng::seed_from_u64(mix(segment_rng_seed, 0x0C1A_55E5));
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for c in &profile.classes {
        acc += c.share;
        if u < acc {
            return Some(c);
        }
    }
    profile.classes.last()
}

/// Whether a segment is systematically broken (hopeless) under this profile.
pub fn is_systematic(profile: &Profile, segment_rng_seed: u64) -> bool {
    if !profile.classes.is_empty() {
        return segment_class(profile, segment_rng_seed).is_some_and(|c| c.hopeless);
    }
    let mut rng = ChaCha12Rng::seed_from_u64(mix(segment_rng_seed, 0x5157_E3A7));
    rng.random::<f64>() < profile.systematic_fraction
}

/// Simulate one attempt. `checks` are the scene type's enabled checks; each gets a score.
pub fn simulate(
    profile: &Profile,
    checks: &[CheckConfig],
    segment_rng_seed: u64,
    attempt_seed: u64,
    params: &Parameters,
) -> SimOutcome {
    let systematic = is_systematic(profile, segment_rng_seed);
    let class = segment_class(profile, segment_rng_seed);
    let broken: Vec<&str> = profile.broken_checks(class);
    let mut rng = ChaCha12Rng::seed_from_u64(mix(segment_rng_seed, attempt_seed));
    let gpu_seconds = (draw(&mut rng, profile.gpu_seconds) * 1000.0).round() / 1000.0;
    let default = CheckProfile {
        fail_probability: 0.0,
        pass_score: [0.8, 0.99],
        fail_score: [0.1, 0.45],
        systematic_score: [0.3, 0.33],
        sensitivity: vec![],
    };
    let mut scores = Vec::new();
    let mut deg = Degradation {
        blur_sigma: rng.random_range(0.0..0.6),
        noise: rng.random_range(0.0..4.0),
        ..Default::default()
    };
    for c in checks.iter().filter(|c| c.enabled) {
        let cp = profile
            .check_for(&c.check, class)
            .unwrap_or_else(|| default.clone());
        let cp = &cp;
        let u: f64 = rng.random();
        let mut p = cp.fail_probability;
        for s in &cp.sensitivity {
            if let Some(v) = params.get_f64(&s.param) {
                p += s.per_unit * (v - s.optimum).abs();
            }
        }
        let p = p.clamp(0.0, 1.0);
        let sys = systematic && broken.contains(&c.check.as_str());
        let (score, failed) = if sys {
            (uniform(&mut rng, cp.systematic_score), true)
        } else if u < p {
            (uniform(&mut rng, cp.fail_score), true)
        } else {
            (uniform(&mut rng, cp.pass_score), false)
        };
        let score = (score * 1000.0).round() / 1000.0;
        if failed {
            let damage = 1.0 - score;
            match c.check.as_str() {
                "face_confidence" => {
                    // Graded so the real detector scores roughly the simulated value
                    // (crates/qa/CALIBRATION.md: blur σ3 ≈ 0.57, σ4 ≈ 0.40, σ6 ≈ 0.10).
                    deg.blur_sigma = deg
                        .blur_sigma
                        .max((4.0 + (0.40 - score) * 13.0).clamp(3.5, 8.0));
                }
                "black_frames" => {
                    deg.black_fraction = deg.black_fraction.max(damage.clamp(0.3, 1.0))
                }
                "frozen_frames" => deg.frozen = true,
                "sharpness" => deg.blur_sigma = deg.blur_sigma.max(3.0 + 6.0 * damage),
                _ => deg.noise = deg.noise.max(40.0 * damage),
            }
        }
        scores.push(CheckScore {
            check: c.check.clone(),
            score,
            details: json!({"simulated": true, "fail_probability": (p * 1000.0).round() / 1000.0, "systematic": sys}),
        });
    }
    SimOutcome {
        gpu_seconds,
        scores,
        systematic,
        degradation: deg,
    }
}

pub struct SimulatedBackend {
    scenario: Arc<Scenario>,
    speed: f64,
    renderer: Option<Arc<dyn ClipRenderer>>,
}

impl SimulatedBackend {
    /// `speed` overrides the scenario's (real seconds slept per simulated GPU-second).
    pub fn new(
        scenario: Scenario,
        speed: Option<f64>,
        renderer: Option<Arc<dyn ClipRenderer>>,
    ) -> Self {
        let speed = speed.unwrap_or(scenario.speed);
        let renderer = if scenario.render_clips {
            renderer
        } else {
            None
        };
        Self {
            scenario: Arc::new(scenario),
            speed,
            renderer,
        }
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The profile a scene type uses: `backend_config.profile`, else its name, else the first.
    pub fn profile_for(
        &self,
        backend_config: &serde_json::Value,
        scene_name: &str,
    ) -> Option<&Profile> {
        let key = backend_config
            .get("profile")
            .and_then(|v| v.as_str())
            .unwrap_or(scene_name);
        self.scenario
            .profiles
            .get(key)
            .or_else(|| self.scenario.profiles.values().next())
    }
}

#[async_trait]
impl Backend for SimulatedBackend {
    fn name(&self) -> &str {
        "simulated"
    }

    async fn generate(
        &self,
        job: &GenerationJob,
        ctl: &dyn AttemptControl,
    ) -> Result<Generated, GenerationError> {
        let scene = &job.scene_type;
        let profile = self
            .profile_for(&scene.backend_config, &scene.name)
            .ok_or_else(|| GenerationError::Infra {
                message: "the scenario has no profiles".into(),
                retriable: false,
                gpu_seconds: 0.0,
            })?;
        let out = simulate(
            profile,
            &scene.qa_checks,
            job.segment_rng_seed,
            job.attempt.seed,
            &job.attempt.parameters,
        );
        let mut gpu = out.gpu_seconds;
        let mut stopped = false;
        if gpu > ctl.reserved() && !ctl.reserve_more(gpu - ctl.reserved()).await {
            // The budget cannot cover the whole generation: it runs until its reservation is used.
            gpu = ctl.reserved();
            stopped = true;
        }
        if self.speed > 0.0 {
            let total = Duration::from_secs_f64(gpu * self.speed);
            for step in 1..=4 {
                tokio::time::sleep(total / 4).await;
                ctl.progress(step as f64 / 4.0).await;
            }
        }
        if stopped {
            return Err(GenerationError::StoppedByBudget { gpu_seconds: gpu });
        }
        if let Some(r) = &self.renderer {
            let path = job.output_dir.join("output.mp4");
            if let Err(e) = tokio::fs::create_dir_all(&job.output_dir).await {
                return Err(GenerationError::Infra {
                    message: format!("cannot create {}: {e}", job.output_dir.display()),
                    retriable: true,
                    gpu_seconds: 0.0,
                });
            }
            r.render(job.attempt.seed, out.degradation, &path)
                .await
                .map_err(|e| GenerationError::Infra {
                    message: format!("rendering the clip failed: {e}"),
                    retriable: true,
                    gpu_seconds: gpu,
                })?;
            return Ok(Generated {
                output_path: Some(path),
                gpu_seconds: gpu,
                verdict: None,
            });
        }
        Ok(Generated {
            output_path: None,
            gpu_seconds: gpu,
            verdict: Some(QaVerdict {
                scores: out.scores,
                error: None,
                source: "simulated".into(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_outcome_and_systematic_segments_stay_broken() {
        let s = Scenario::demo();
        let p = s.profiles.values().next().unwrap();
        let checks: Vec<CheckConfig> = p
            .checks
            .keys()
            .map(|k| CheckConfig::new(k, 0.7, 0.5))
            .collect();
        let params = Parameters::new().with("cfg_scale", 7.0);
        assert_eq!(
            simulate(p, &checks, 1, 2, &params),
            simulate(p, &checks, 1, 2, &params)
        );
        let broken = (0..2000u64)
            .find(|s| is_systematic(p, *s))
            .expect("some segment is broken");
        for seed in 0..20 {
            let o = simulate(p, &checks, broken, seed, &params);
            assert!(o.systematic);
        }
    }

    #[test]
    fn classes_take_their_shares_and_hopeless_segments_always_fail() {
        let s = Scenario::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/scenarios/rescue-classes.toml"
        )))
        .unwrap();
        let p = &s.profiles["establishing"];
        let checks = vec![CheckConfig::new("sharpness", 0.6, 0.5)];
        let params = Parameters::new();
        let hopeless: Vec<u64> = (0..4000u64)
            .filter(|seed| is_systematic(p, *seed))
            .collect();
        let share = hopeless.len() as f64 / 4000.0;
        assert!((share - 0.15).abs() < 0.02, "hopeless share {share}");
        for seg in hopeless.iter().take(20) {
            for seed in 0..10 {
                let o = simulate(p, &checks, *seg, seed, &params);
                let score = o.scores[0].score;
                assert!((0.15..=0.32).contains(&score), "{score}");
            }
        }
        // Log-normal GPU time: a long right tail (max well above twice the mean).
        let gpu: Vec<f64> = (0..4000u64)
            .map(|seed| simulate(p, &checks, 1, seed, &params).gpu_seconds)
            .collect();
        let mean = gpu.iter().sum::<f64>() / gpu.len() as f64;
        let max = gpu.iter().cloned().fold(0.0, f64::max);
        assert!((mean - 18.0).abs() < 1.5, "mean {mean}");
        assert!(max > 3.0 * mean, "max {max}");
    }
}
