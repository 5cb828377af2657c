//! Scenario files (TOML) for the simulated backend and the benchmarks: per scene-type profile,
//! how often each check fails, the score distributions, the share of systematically broken
//! segments (or segment classes with shares: ok / flaky / hopeless …), parameter sensitivity,
//! and GPU-time distributions (normal or log-normal); per scenario, the bench's `max_attempts`
//! and GPU budget. See `examples/scenarios/`.

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
    /// `retake bench rescue`: attempts per segment, the original included (default 4).
    #[serde(default)]
    pub max_attempts: Option<u8>,
    /// `retake bench rescue`: the GPU budget of its budget-limited runs, in GPU-seconds per
    /// submitted segment (default: what the oracle spends, which fixed-N cannot cover).
    #[serde(default)]
    pub budget_per_segment: Option<f64>,
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
    /// Kinds of segment with their shares (summing to 1), each with its own failure behaviour.
    /// Replaces `systematic_fraction` (which must then be 0).
    #[serde(default)]
    pub classes: Vec<SegmentClass>,
}

/// A kind of segment within a profile: e.g. `ok` (rarely fails), `flaky` (fails often, a new
/// seed fixes it) or `hopeless` (fails whatever the seed).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentClass {
    pub name: String,
    /// Share of the profile's segments (0..=1).
    pub share: f64,
    /// Fails its checks (the ones listed under `checks`, else the profile's
    /// `systematic_checks`, else the first check) on every attempt.
    #[serde(default)]
    pub hopeless: bool,
    /// Per-check changes to the profile's behaviour for this class.
    #[serde(default)]
    pub checks: BTreeMap<String, ClassCheck>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassCheck {
    pub fail_probability: Option<f64>,
    /// Failing scores (of every attempt, for a hopeless class).
    pub fail_score: Option<[f64; 2]>,
    pub pass_score: Option<[f64; 2]>,
}

impl Profile {
    /// The checks a hopeless segment of this profile fails.
    pub fn broken_checks<'a>(&'a self, class: Option<&'a SegmentClass>) -> Vec<&'a str> {
        if let Some(c) = class.filter(|c| !c.checks.is_empty()) {
            return c.checks.keys().map(String::as_str).collect();
        }
        if self.systematic_checks.is_empty() {
            self.checks.keys().take(1).map(String::as_str).collect()
        } else {
            self.systematic_checks.iter().map(String::as_str).collect()
        }
    }

    /// A check's behaviour for segments of `class`: the profile's, with the class's changes.
    pub fn check_for(&self, check: &str, class: Option<&SegmentClass>) -> Option<CheckProfile> {
        let mut cp = self.checks.get(check)?.clone();
        if let Some(cc) = class.and_then(|c| c.checks.get(check)) {
            if let Some(p) = cc.fail_probability {
                cp.fail_probability = p;
            }
            if let Some(r) = cc.fail_score {
                cp.fail_score = r;
                cp.systematic_score = r;
            }
            if let Some(r) = cc.pass_score {
                cp.pass_score = r;
            }
        }
        Some(cp)
    }
}

fn default_gpu() -> Distribution {
    Distribution {
        mean: 20.0,
        sd: 4.0,
        min: 1.0,
        max: 120.0,
        shape: Shape::Normal,
    }
}

/// The shape of a GPU-time distribution given by its mean and standard deviation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    #[default]
    Normal,
    /// Heavy right tail: a few generations take many times the median.
    LogNormal,
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
    #[serde(default)]
    pub shape: Shape,
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
        if let Some(m) = self.max_attempts {
            if !(2..=10).contains(&m) {
                return Err(format!("max_attempts must be in 2..=10; got {m}"));
            }
        }
        if let Some(b) = self.budget_per_segment {
            if !(b.is_finite() && b > 0.0) {
                return Err(format!(
                    "budget_per_segment must be a number > 0 (GPU-seconds per segment); got {b}"
                ));
            }
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
            if !p.classes.is_empty() {
                if p.systematic_fraction > 0.0 {
                    return Err(format!("profiles.{name}: use either classes or systematic_fraction (a hopeless class replaces it)"));
                }
                let total: f64 = p.classes.iter().map(|c| c.share).sum();
                if (total - 1.0).abs() > 1e-6 {
                    return Err(format!(
                        "profiles.{name}.classes: shares must sum to 1; they sum to {total}"
                    ));
                }
                for c in &p.classes {
                    if !(0.0..=1.0).contains(&c.share) {
                        return Err(format!(
                            "profiles.{name}.classes.{}.share must be in 0..=1",
                            c.name
                        ));
                    }
                    for (check, cc) in &c.checks {
                        if !p.checks.contains_key(check) {
                            return Err(format!("profiles.{name}.classes.{}.checks names `{check}`, which has no [profiles.{name}.checks.{check}]", c.name));
                        }
                        if cc
                            .fail_probability
                            .is_some_and(|x| !(0.0..=1.0).contains(&x))
                        {
                            return Err(format!("profiles.{name}.classes.{}.checks.{check}.fail_probability must be in 0..=1", c.name));
                        }
                        for (field, r) in
                            [("fail_score", cc.fail_score), ("pass_score", cc.pass_score)]
                        {
                            if let Some(r) = r {
                                if !(0.0 <= r[0] && r[0] <= r[1] && r[1] <= 1.0) {
                                    return Err(format!("profiles.{name}.classes.{}.checks.{check}.{field} must be [low, high] within 0..=1", c.name));
                                }
                            }
                        }
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/scenarios");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 5, "{n} scenario files");
    }

    const CLASSES: &str = r#"
max_attempts = 5
budget_per_segment = 30.0
[profiles.p]
gpu_seconds = { mean = 30.0, sd = 20.0, shape = "log_normal" }
[profiles.p.checks.face]
fail_probability = 0.1
[[profiles.p.classes]]
name = "ok"
share = 0.7
[[profiles.p.classes]]
name = "hopeless"
share = 0.3
hopeless = true
checks = { face = { fail_score = [0.2, 0.4] } }
"#;

    #[test]
    fn classes_log_normal_and_bench_settings_parse() {
        let s = Scenario::parse(CLASSES).unwrap();
        assert_eq!(s.max_attempts, Some(5));
        assert_eq!(s.budget_per_segment, Some(30.0));
        let p = &s.profiles["p"];
        assert_eq!(p.gpu_seconds.shape, Shape::LogNormal);
        assert_eq!(p.classes.len(), 2);
        let hopeless = &p.classes[1];
        assert_eq!(p.broken_checks(Some(hopeless)), vec!["face"]);
        assert_eq!(
            p.check_for("face", Some(hopeless))
                .unwrap()
                .systematic_score,
            [0.2, 0.4]
        );
    }

    #[test]
    fn bad_classes_name_the_field() {
        let e = Scenario::parse(&CLASSES.replace("share = 0.3", "share = 0.2")).unwrap_err();
        assert!(
            e.contains("profiles.p.classes: shares must sum to 1"),
            "{e}"
        );
        let e = Scenario::parse(&CLASSES.replace("checks = { face =", "checks = { teeth ="))
            .unwrap_err();
        assert!(e.contains("classes.hopeless.checks names `teeth`"), "{e}");
        let e = Scenario::parse(
            &CLASSES
                .replace(
                    "[profiles.p.checks.face]",
                    "[profiles.p.checks.face]\nsystematic_score = [0.3, 0.33]",
                )
                .replace(
                    "[profiles.p]\n",
                    "[profiles.p]\nsystematic_fraction = 0.1\n",
                ),
        )
        .unwrap_err();
        assert!(e.contains("either classes or systematic_fraction"), "{e}");
        let e =
            Scenario::parse(&CLASSES.replace("max_attempts = 5", "max_attempts = 11")).unwrap_err();
        assert!(e.contains("max_attempts must be in 2..=10"), "{e}");
    }
}
