//! The benchmark corpus: scene types derived from a scenario file's profiles, and the segments
//! every strategy runs (same scene type, same `rng_seed`, same attempt 1 for segment `i`).
//!
//! A scenario file describes how generations fail, not how a studio configured its scene types,
//! so the scene-type side follows fixed conventions, printed with every run:
//! - one scene type per profile, segments spread evenly over them by a hash of (seed, index);
//! - each profile check becomes a QA check whose `fail` threshold sits halfway between the top of
//!   its failing (and systematic) score range and the bottom of its passing range, and whose
//!   `warn` is the bottom of the passing range — so a simulated failure is a QA failure;
//! - trigger checks (what a studio would turn retries on for) are the checks that fail often
//!   (`fail_probability` ≥ 5%) or depend on a parameter (`sensitivity`); rarely failing checks go
//!   to review, as the demo's portrait `black_frames` does;
//! - the submitted parameters are cfg_scale 7.0, denoise_strength 0.85, steps 24.

use retake_core::params::MAX_SEED;
use retake_core::{attempt_rng, CheckConfig, Parameters};
use retake_engine::backends::scenario::Profile;
use retake_engine::backends::simulated::is_systematic;
use retake_engine::backends::Scenario;
use std::collections::BTreeSet;

/// Failure share at or above which a check is a trigger check by convention.
pub const TRIGGER_MIN_FAIL_PROBABILITY: f64 = 0.05;

pub const DEFAULT_CFG: f64 = 7.0;
pub const DEFAULT_DENOISE: f64 = 0.85;
pub const DEFAULT_STEPS: i64 = 24;

#[derive(Debug, Clone)]
pub struct SceneSetup {
    pub name: String,
    pub profile: Profile,
    pub checks: Vec<CheckConfig>,
    pub triggers: BTreeSet<String>,
    pub parameters: Parameters,
}

impl SceneSetup {
    pub fn all_checks(&self) -> BTreeSet<String> {
        self.checks.iter().map(|c| c.check.clone()).collect()
    }
}

/// The label the engine runs give corpus segment `index` (`shot-00001` is index 0), so a report
/// line and a kept database name the same segment.
pub fn label(index: usize) -> String {
    format!("shot-{:05}", index + 1)
}

#[derive(Debug, Clone)]
pub struct SegmentSpec {
    pub index: usize,
    pub scene: usize,
    pub rng_seed: u64,
    /// The segment's parameters as the store records them: the scene type's, with attempt 1's seed.
    pub parameters: Parameters,
    /// Broken whatever the seed, according to the simulation (only the oracle may look).
    pub systematic: bool,
}

pub struct Corpus {
    pub scenes: Vec<SceneSetup>,
    pub segments: Vec<SegmentSpec>,
}

/// Deterministic 64-bit mix (the same as the demo's, so `--seed` means the same thing).
pub fn mix(a: u64, b: u64) -> u64 {
    crate::common::mix(a, b)
}

/// Every behaviour a check has in a profile: the profile's own and each class's.
fn behaviours(
    p: &Profile,
    check: &str,
) -> Vec<(f64, retake_engine::backends::scenario::CheckProfile)> {
    if p.classes.is_empty() {
        return p
            .check_for(check, None)
            .map(|c| (1.0, c))
            .into_iter()
            .collect();
    }
    p.classes
        .iter()
        .filter_map(|class| {
            let mut cp = p.check_for(check, Some(class))?;
            if class.hopeless && p.broken_checks(Some(class)).contains(&check) {
                cp.fail_probability = 1.0;
            }
            Some((class.share, cp))
        })
        .collect()
}

fn check_config(p: &Profile, name: &str) -> CheckConfig {
    let b = behaviours(p, name);
    let failing_top = b
        .iter()
        .map(|(_, cp)| cp.fail_score[1].max(cp.systematic_score[1]))
        .fold(0.0, f64::max);
    let pass_bottom = b.iter().map(|(_, cp)| cp.pass_score[0]).fold(1.0, f64::min);
    let fail = ((failing_top + pass_bottom) / 2.0 * 1000.0).round() / 1000.0;
    let warn = pass_bottom.max(fail);
    CheckConfig::new(name, warn, fail)
}

/// Scene types for a scenario, in profile order.
pub fn scenes(scenario: &Scenario) -> Vec<SceneSetup> {
    scenario
        .profiles
        .iter()
        .map(|(name, p)| {
            let checks: Vec<CheckConfig> = p.checks.keys().map(|c| check_config(p, c)).collect();
            let mut triggers: BTreeSet<String> = p
                .checks
                .iter()
                .filter(|(c, cp)| {
                    let mean_fail: f64 = behaviours(p, c)
                        .iter()
                        .map(|(share, b)| share * b.fail_probability)
                        .sum();
                    mean_fail >= TRIGGER_MIN_FAIL_PROBABILITY || !cp.sensitivity.is_empty()
                })
                .map(|(c, _)| c.clone())
                .collect();
            if triggers.is_empty() {
                triggers = checks.iter().map(|c| c.check.clone()).collect();
            }
            SceneSetup {
                name: name.clone(),
                profile: p.clone(),
                checks,
                triggers,
                parameters: Parameters::new()
                    .with("cfg_scale", DEFAULT_CFG)
                    .with("denoise_strength", DEFAULT_DENOISE)
                    .with("steps", DEFAULT_STEPS),
            }
        })
        .collect()
}

/// Attempt 1's seed as the store draws it: the first draw of the segment's RNG stream 1.
pub fn first_seed(rng_seed: u64) -> u64 {
    use rand::Rng;
    attempt_rng(rng_seed, 1).random_range(0..=MAX_SEED)
}

pub fn build(scenario: &Scenario, segments: usize, seed: u64) -> Corpus {
    let scenes = scenes(scenario);
    let segments = (0..segments)
        .map(|index| {
            let scene = (mix(seed, index as u64 ^ 0xD3A0) % scenes.len() as u64) as usize;
            let rng_seed = mix(seed, index as u64);
            let mut parameters = scenes[scene].parameters.clone();
            parameters.set("seed", serde_json::Value::from(first_seed(rng_seed)));
            let systematic = is_systematic(&scenes[scene].profile, rng_seed);
            SegmentSpec {
                index,
                scene,
                rng_seed,
                parameters,
                systematic,
            }
        })
        .collect();
    Corpus { scenes, segments }
}

/// One line per scene type describing the conventions applied.
pub fn describe(c: &Corpus) -> Vec<String> {
    c.scenes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let n = c.segments.iter().filter(|g| g.scene == i).count();
            let sys = c
                .segments
                .iter()
                .filter(|g| g.scene == i && g.systematic)
                .count();
            let checks: Vec<String> = s
                .checks
                .iter()
                .map(|k| {
                    let t = if s.triggers.contains(&k.check) {
                        "trigger"
                    } else {
                        "review"
                    };
                    format!("{} (fail < {:.3}, {t})", k.check, k.fail)
                })
                .collect();
            let classes: Vec<String> = s
                .profile
                .classes
                .iter()
                .map(|k| {
                    format!(
                        "{} {:.0}%{}",
                        k.name,
                        k.share * 100.0,
                        if k.hopeless { " hopeless" } else { "" }
                    )
                })
                .collect();
            let classes = if classes.is_empty() {
                String::new()
            } else {
                format!(" [classes: {}]", classes.join(", "))
            };
            format!(
                "{}: {n} segments ({sys} systematically broken){classes}, GPU ~{:.0}±{:.0} s{}; {}",
                s.name,
                s.profile.gpu_seconds.mean,
                s.profile.gpu_seconds.sd,
                if s.profile.gpu_seconds.shape
                    == retake_engine::backends::scenario::Shape::LogNormal
                {
                    " log-normal"
                } else {
                    ""
                },
                checks.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_separate_the_simulated_ranges() {
        let s = Scenario::demo();
        for scene in scenes(&s) {
            for (name, cp) in &scene.profile.checks {
                let c = scene.checks.iter().find(|c| &c.check == name).unwrap();
                assert!(
                    cp.fail_score[1] < c.fail && cp.systematic_score[1] < c.fail,
                    "{name}"
                );
                assert!(cp.pass_score[0] >= c.fail, "{name}");
            }
        }
        let portrait = scenes(&s)
            .into_iter()
            .find(|s| s.name == "portrait")
            .unwrap();
        assert!(portrait.triggers.contains("face_confidence"));
        assert!(!portrait.triggers.contains("black_frames"));
    }

    #[test]
    fn classes_set_thresholds_and_triggers() {
        let s = Scenario::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/scenarios/rescue-classes.toml"
        )))
        .unwrap();
        let dialogue = scenes(&s)
            .into_iter()
            .find(|x| x.name == "dialogue")
            .unwrap();
        let face = dialogue
            .checks
            .iter()
            .find(|c| c.check == "face_confidence")
            .unwrap();
        // Above every failing range (the classes' too), below every passing one.
        assert!(face.fail > 0.48 && face.fail <= 0.70, "{}", face.fail);
        // Face fails a quarter of the time over the classes: a trigger; lip sync rarely: review.
        assert!(dialogue.triggers.contains("face_confidence"));
        assert!(!dialogue.triggers.contains("lip_sync"));
        let c = build(&s, 2000, 5);
        let broken = c.segments.iter().filter(|g| g.systematic).count();
        // 8% of dialogue and 15% of establishing segments are hopeless.
        assert!((180..=280).contains(&broken), "{broken}");
    }

    #[test]
    fn the_corpus_is_a_function_of_the_seed() {
        let s = Scenario::demo();
        let a = build(&s, 50, 7);
        let b = build(&s, 50, 7);
        assert!(a
            .segments
            .iter()
            .zip(&b.segments)
            .all(|(x, y)| x.rng_seed == y.rng_seed && x.scene == y.scene));
        assert_ne!(build(&s, 1, 8).segments[0].rng_seed, a.segments[0].rng_seed);
    }
}
