//! Retry policies: the project's default, a scene type's overrides, and the effective policy with
//! where each value came from.
//!
//! Parse, don't validate: a [`RetryPolicy`] or [`PolicyOverrides`] that exists — built in code or
//! deserialized — is valid. Deserialization goes through the raw shapes and `TryFrom`.

use crate::params::{CFG_SCALE, DENOISE_STRENGTH};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::limits;

pub const MAX_ATTEMPTS_LIMIT: u8 = limits::MAX_ATTEMPTS.1 as u8;
pub const MAX_PARALLELISM: u8 = limits::PARALLELISM.1 as u8;
/// The highest queue priority a retry can be given (originals are queued at 0).
pub const MAX_RETRY_PRIORITY: u8 = limits::RETRY_PRIORITY.1 as u8;
/// Retries go ahead of new originals unless a policy says otherwise.
pub const DEFAULT_RETRY_PRIORITY: u8 = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, utoipa::ToSchema)]
#[error("{field}: {message}")]
pub struct PolicyError {
    pub field: String,
    pub message: String,
}

impl PolicyError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SelectionMode {
    /// Stop at the first passing attempt.
    #[default]
    FirstPass,
    /// Once retrying, run up to `max_attempts` and keep the best passing attempt.
    BestOfN,
    /// Stop once a passing attempt reaches `target_score` overall.
    TargetScore,
}

/// The largest jitter range allowed for a parameter; beyond it a "jitter" is a different shot.
pub fn max_jitter(param: &str) -> f64 {
    match param {
        CFG_SCALE => limits::CFG_JITTER_MAX,
        DENOISE_STRENGTH => limits::DENOISE_JITTER_MAX,
        "steps" => limits::STEPS_JITTER_MAX,
        _ => limits::OTHER_JITTER_MAX,
    }
}

/// A complete, valid retry policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "RetryPolicyRaw")]
pub struct RetryPolicy {
    /// Off unless turned on: retake never retries silently.
    pub enabled: bool,
    /// All attempts, the original (attempt 1) included: 1..=10.
    pub max_attempts: u8,
    /// Checks whose failure may be retried; any other failed check escalates.
    pub trigger_checks: BTreeSet<String>,
    /// Draw a new seed for each retry.
    pub seed_variation: bool,
    /// ± range for `cfg_scale`.
    pub cfg_jitter: f64,
    /// ± range for `denoise_strength`.
    pub denoise_jitter: f64,
    /// ± ranges for other numeric parameters (e.g. `steps`); integers stay integers.
    pub extra_jitter: BTreeMap<String, f64>,
    pub selection_mode: SelectionMode,
    /// Required by `target_score`: the `overall` that ends the search (0..=1).
    pub target_score: Option<f64>,
    /// Stop early with `systematic_failure` when the evidence says a new seed will not help.
    pub systematic_detection: bool,
    /// Scores of the same failing check within this spread across seeds count as "not moving".
    pub systematic_max_spread: f64,
    /// Choose each retry's variation with a bandit learned per scene type and check.
    pub adaptive_variation: bool,
    /// In `best_of_n`: keep retrying after a pass only while the expected gain in `overall` per
    /// GPU-second exceeds this. `None` always runs to `max_attempts`.
    pub min_gain_per_gpu_second: Option<f64>,
    /// Up to this many retries run at once (1..=4); the budget is reserved for all of them.
    pub parallelism: u8,
    /// The stopping rule: retry a failed segment only while the probability that the next
    /// attempt passes, learnt per scene type and check, is at least this (0.01..=0.9). `None`
    /// retries up to `max_attempts`. With no history it retries like `None`.
    #[schema(minimum = 0.01, maximum = 0.9)]
    pub min_rescue_probability: Option<f64>,
    /// On a retry, a failed check that is not a trigger but that an earlier attempt of the
    /// segment passed is retried like a trigger failure: the same workflow passed it, so the seed
    /// is to blame. Off: any non-trigger failure goes to review.
    pub retry_regressions: bool,
    /// Queue priority of retries and re-runs (0..=100); originals are queued at 0 and workers
    /// take the highest priority first, so a failure is retried soon instead of after the whole
    /// backlog. 0 keeps plain first-in-first-out order.
    pub retry_priority: u8,
}

impl Default for RetryPolicy {
    /// The seed document's defaults.
    fn default() -> Self {
        Self {
            enabled: false,
            max_attempts: 3,
            trigger_checks: BTreeSet::from(["face_confidence".to_owned()]),
            seed_variation: true,
            cfg_jitter: 0.5,
            denoise_jitter: 0.05,
            extra_jitter: BTreeMap::new(),
            selection_mode: SelectionMode::FirstPass,
            target_score: None,
            systematic_detection: false,
            systematic_max_spread: 0.05,
            adaptive_variation: false,
            min_gain_per_gpu_second: None,
            parallelism: 1,
            min_rescue_probability: None,
            retry_regressions: false,
            retry_priority: DEFAULT_RETRY_PRIORITY,
        }
    }
}

impl RetryPolicy {
    /// The ± range configured for a parameter (0 when none).
    pub fn jitter_for(&self, param: &str) -> f64 {
        match param {
            CFG_SCALE => self.cfg_jitter,
            DENOISE_STRENGTH => self.denoise_jitter,
            other => self.extra_jitter.get(other).copied().unwrap_or(0.0),
        }
    }

    /// Every parameter with a non-zero jitter range, in a stable order.
    pub fn jittered_params(&self) -> Vec<(String, f64)> {
        let mut v = vec![
            (CFG_SCALE.to_owned(), self.cfg_jitter),
            (DENOISE_STRENGTH.to_owned(), self.denoise_jitter),
        ];
        v.extend(self.extra_jitter.iter().map(|(k, r)| (k.clone(), *r)));
        v.retain(|(_, r)| *r > 0.0);
        v
    }
}

/// The wire shape of a full policy, before validation. Unknown fields are refused.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicyRaw {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "d_max")]
    pub max_attempts: i64,
    #[serde(default = "d_triggers")]
    pub trigger_checks: Vec<String>,
    #[serde(default = "d_true")]
    pub seed_variation: bool,
    #[serde(default = "d_cfg")]
    pub cfg_jitter: f64,
    #[serde(default = "d_denoise")]
    pub denoise_jitter: f64,
    #[serde(default)]
    pub extra_jitter: BTreeMap<String, f64>,
    #[serde(default)]
    pub selection_mode: SelectionMode,
    #[serde(default)]
    pub target_score: Option<f64>,
    #[serde(default)]
    pub systematic_detection: bool,
    #[serde(default = "d_spread")]
    pub systematic_max_spread: f64,
    #[serde(default)]
    pub adaptive_variation: bool,
    #[serde(default)]
    pub min_gain_per_gpu_second: Option<f64>,
    #[serde(default = "d_par")]
    pub parallelism: i64,
    #[serde(default)]
    pub min_rescue_probability: Option<f64>,
    #[serde(default)]
    pub retry_regressions: bool,
    #[serde(default = "d_priority")]
    pub retry_priority: i64,
}

fn d_max() -> i64 {
    3
}
fn d_triggers() -> Vec<String> {
    vec!["face_confidence".into()]
}
fn d_true() -> bool {
    true
}
fn d_cfg() -> f64 {
    0.5
}
fn d_denoise() -> f64 {
    0.05
}
fn d_spread() -> f64 {
    0.05
}
fn d_par() -> i64 {
    1
}
fn d_priority() -> i64 {
    DEFAULT_RETRY_PRIORITY as i64
}

fn check_retry_priority(v: i64) -> Result<u8, PolicyError> {
    if (0..=MAX_RETRY_PRIORITY as i64).contains(&v) {
        Ok(v as u8)
    } else {
        Err(PolicyError::new(
            "retry_priority",
            format!("must be an integer in 0..={MAX_RETRY_PRIORITY} (originals are queued at 0); got {v}"),
        ))
    }
}

fn check_max_attempts(v: i64) -> Result<u8, PolicyError> {
    let (lo, hi) = limits::MAX_ATTEMPTS;
    if (lo..=hi).contains(&v) {
        Ok(v as u8)
    } else {
        Err(PolicyError::new(
            "max_attempts",
            format!(
                "must be an integer in {lo}..={hi} (all attempts, the original included); got {v}"
            ),
        ))
    }
}

fn check_jitter(field: &str, param: &str, v: f64) -> Result<f64, PolicyError> {
    let max = max_jitter(param);
    if v.is_finite() && (0.0..=max).contains(&v) {
        Ok(v)
    } else {
        Err(PolicyError::new(
            field,
            format!("must be a finite number in 0..={max}; got {v}"),
        ))
    }
}

fn check_triggers(v: Vec<String>) -> Result<BTreeSet<String>, PolicyError> {
    let mut out = BTreeSet::new();
    for c in v {
        if c.trim().is_empty() || c.chars().count() > limits::CHECK_NAME_LEN {
            return Err(PolicyError::new(
                "trigger_checks",
                format!(
                    "each check name must have 1..={} characters",
                    limits::CHECK_NAME_LEN
                ),
            ));
        }
        if !out.insert(c.clone()) {
            return Err(PolicyError::new(
                "trigger_checks",
                format!("`{c}` is listed twice"),
            ));
        }
    }
    Ok(out)
}

fn check_unit(field: &str, v: f64) -> Result<f64, PolicyError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(PolicyError::new(
            field,
            format!("must be a number in 0..=1; got {v}"),
        ))
    }
}

fn check_gain(v: Option<f64>) -> Result<Option<f64>, PolicyError> {
    match v {
        Some(g) if !(g.is_finite() && (0.0..=1.0).contains(&g)) => Err(PolicyError::new(
            "min_gain_per_gpu_second",
            format!("must be null or a number in 0..=1 (overall points per GPU-second); got {g}"),
        )),
        other => Ok(other),
    }
}

/// Bounds of `min_rescue_probability`.
pub const MIN_RESCUE_PROBABILITY_RANGE: (f64, f64) = limits::MIN_RESCUE_PROBABILITY;
/// What the "smart" preset sets.
pub const SMART_MIN_RESCUE_PROBABILITY: f64 = 0.1;

fn check_rescue_probability(v: Option<f64>) -> Result<Option<f64>, PolicyError> {
    let (lo, hi) = MIN_RESCUE_PROBABILITY_RANGE;
    match v {
        Some(p) if !(p.is_finite() && (lo..=hi).contains(&p)) => Err(PolicyError::new(
            "min_rescue_probability",
            format!(
                "must be null (retry up to max_attempts) or a probability in {lo}..={hi}; got {p}"
            ),
        )),
        other => Ok(other),
    }
}

fn check_parallelism(v: i64) -> Result<u8, PolicyError> {
    let (lo, hi) = limits::PARALLELISM;
    if (lo..=hi).contains(&v) {
        Ok(v as u8)
    } else {
        Err(PolicyError::new(
            "parallelism",
            format!("must be an integer in {lo}..={hi}; got {v}"),
        ))
    }
}

fn check_extra(m: BTreeMap<String, f64>) -> Result<BTreeMap<String, f64>, PolicyError> {
    for (k, v) in &m {
        if k == "seed" || k == CFG_SCALE || k == DENOISE_STRENGTH {
            return Err(PolicyError::new(
                format!("extra_jitter.{k}"),
                "seed varies with seed_variation; cfg and denoise have their own fields",
            ));
        }
        check_jitter(&format!("extra_jitter.{k}"), k, *v)?;
    }
    Ok(m)
}

fn check_target(mode: SelectionMode, target: Option<f64>) -> Result<(), PolicyError> {
    if mode == SelectionMode::TargetScore && target.is_none() {
        return Err(PolicyError::new(
            "target_score",
            "is required when selection_mode is target_score (0..=1)",
        ));
    }
    Ok(())
}

impl TryFrom<RetryPolicyRaw> for RetryPolicy {
    type Error = PolicyError;
    fn try_from(r: RetryPolicyRaw) -> Result<Self, PolicyError> {
        let target_score = r
            .target_score
            .map(|t| check_unit("target_score", t))
            .transpose()?;
        check_target(r.selection_mode, target_score)?;
        Ok(RetryPolicy {
            enabled: r.enabled,
            max_attempts: check_max_attempts(r.max_attempts)?,
            trigger_checks: check_triggers(r.trigger_checks)?,
            seed_variation: r.seed_variation,
            cfg_jitter: check_jitter("cfg_jitter", CFG_SCALE, r.cfg_jitter)?,
            denoise_jitter: check_jitter("denoise_jitter", DENOISE_STRENGTH, r.denoise_jitter)?,
            extra_jitter: check_extra(r.extra_jitter)?,
            selection_mode: r.selection_mode,
            target_score,
            systematic_detection: r.systematic_detection,
            systematic_max_spread: check_unit("systematic_max_spread", r.systematic_max_spread)?,
            adaptive_variation: r.adaptive_variation,
            min_gain_per_gpu_second: check_gain(r.min_gain_per_gpu_second)?,
            parallelism: check_parallelism(r.parallelism)?,
            min_rescue_probability: check_rescue_probability(r.min_rescue_probability)?,
            retry_regressions: r.retry_regressions,
            retry_priority: check_retry_priority(r.retry_priority)?,
        })
    }
}

/// A scene type's own policy values. Each `None` inherits the project's default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "PolicyOverridesRaw")]
pub struct PolicyOverrides {
    pub enabled: Option<bool>,
    pub max_attempts: Option<u8>,
    pub trigger_checks: Option<BTreeSet<String>>,
    pub seed_variation: Option<bool>,
    pub cfg_jitter: Option<f64>,
    pub denoise_jitter: Option<f64>,
    pub extra_jitter: Option<BTreeMap<String, f64>>,
    pub selection_mode: Option<SelectionMode>,
    pub target_score: Option<f64>,
    pub systematic_detection: Option<bool>,
    pub systematic_max_spread: Option<f64>,
    pub adaptive_variation: Option<bool>,
    pub min_gain_per_gpu_second: Option<f64>,
    pub parallelism: Option<u8>,
    #[schema(minimum = 0.01, maximum = 0.9)]
    pub min_rescue_probability: Option<f64>,
    pub retry_regressions: Option<bool>,
    pub retry_priority: Option<u8>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverridesRaw {
    pub enabled: Option<bool>,
    pub max_attempts: Option<i64>,
    pub trigger_checks: Option<Vec<String>>,
    pub seed_variation: Option<bool>,
    pub cfg_jitter: Option<f64>,
    pub denoise_jitter: Option<f64>,
    pub extra_jitter: Option<BTreeMap<String, f64>>,
    pub selection_mode: Option<SelectionMode>,
    pub target_score: Option<f64>,
    pub systematic_detection: Option<bool>,
    pub systematic_max_spread: Option<f64>,
    pub adaptive_variation: Option<bool>,
    pub min_gain_per_gpu_second: Option<f64>,
    pub parallelism: Option<i64>,
    pub min_rescue_probability: Option<f64>,
    pub retry_regressions: Option<bool>,
    pub retry_priority: Option<i64>,
}

impl TryFrom<PolicyOverridesRaw> for PolicyOverrides {
    type Error = PolicyError;
    fn try_from(r: PolicyOverridesRaw) -> Result<Self, PolicyError> {
        Ok(PolicyOverrides {
            enabled: r.enabled,
            max_attempts: r.max_attempts.map(check_max_attempts).transpose()?,
            trigger_checks: r.trigger_checks.map(check_triggers).transpose()?,
            seed_variation: r.seed_variation,
            cfg_jitter: r
                .cfg_jitter
                .map(|v| check_jitter("cfg_jitter", CFG_SCALE, v))
                .transpose()?,
            denoise_jitter: r
                .denoise_jitter
                .map(|v| check_jitter("denoise_jitter", DENOISE_STRENGTH, v))
                .transpose()?,
            extra_jitter: r.extra_jitter.map(check_extra).transpose()?,
            selection_mode: r.selection_mode,
            target_score: r
                .target_score
                .map(|t| check_unit("target_score", t))
                .transpose()?,
            systematic_detection: r.systematic_detection,
            systematic_max_spread: r
                .systematic_max_spread
                .map(|v| check_unit("systematic_max_spread", v))
                .transpose()?,
            adaptive_variation: r.adaptive_variation,
            min_gain_per_gpu_second: check_gain(r.min_gain_per_gpu_second)?,
            parallelism: r.parallelism.map(check_parallelism).transpose()?,
            min_rescue_probability: check_rescue_probability(r.min_rescue_probability)?,
            retry_regressions: r.retry_regressions,
            retry_priority: r.retry_priority.map(check_retry_priority).transpose()?,
        })
    }
}

impl PolicyOverrides {
    pub fn is_empty(&self) -> bool {
        *self == PolicyOverrides::default()
    }

    /// Trigger checks must be checks the scene type has.
    pub fn check_triggers_known(&self, known: &BTreeSet<String>) -> Result<(), PolicyError> {
        if let Some(t) = &self.trigger_checks {
            if let Some(bad) = t.iter().find(|c| !known.contains(*c)) {
                let list: Vec<_> = known.iter().map(String::as_str).collect();
                return Err(PolicyError::new(
                    "trigger_checks",
                    format!(
                        "`{bad}` is not a QA check of this scene type; allowed: [{}]",
                        list.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicySource {
    Project,
    SceneType,
}

/// The policy in force for a scene type, and where each value comes from.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EffectivePolicy {
    pub policy: RetryPolicy,
    pub sources: BTreeMap<String, PolicySource>,
}

impl EffectivePolicy {
    pub fn resolve(
        project: &RetryPolicy,
        scene: &PolicyOverrides,
    ) -> Result<EffectivePolicy, PolicyError> {
        let mut p = project.clone();
        let mut sources = BTreeMap::new();
        macro_rules! take {
            ($($f:ident),+) => {$(
                let src = match &scene.$f {
                    Some(v) => { p.$f = v.clone(); PolicySource::SceneType }
                    None => PolicySource::Project,
                };
                sources.insert(stringify!($f).to_owned(), src);
            )+};
        }
        take!(
            enabled,
            max_attempts,
            trigger_checks,
            seed_variation,
            cfg_jitter,
            denoise_jitter,
            extra_jitter,
            selection_mode,
            systematic_detection,
            systematic_max_spread,
            adaptive_variation,
            parallelism,
            retry_regressions,
            retry_priority
        );
        let src = match scene.target_score {
            Some(t) => {
                p.target_score = Some(t);
                PolicySource::SceneType
            }
            None => PolicySource::Project,
        };
        sources.insert("target_score".into(), src);
        let src = match scene.min_gain_per_gpu_second {
            Some(g) => {
                p.min_gain_per_gpu_second = Some(g);
                PolicySource::SceneType
            }
            None => PolicySource::Project,
        };
        sources.insert("min_gain_per_gpu_second".into(), src);
        let src = match scene.min_rescue_probability {
            Some(v) => {
                p.min_rescue_probability = Some(v);
                PolicySource::SceneType
            }
            None => PolicySource::Project,
        };
        sources.insert("min_rescue_probability".into(), src);
        check_target(p.selection_mode, p.target_score)?;
        Ok(EffectivePolicy { policy: p, sources })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_defaults() {
        let p: RetryPolicy = serde_json::from_value(json!({})).unwrap();
        assert!(!p.enabled);
        assert_eq!(p.max_attempts, 3);
        assert_eq!(
            p.trigger_checks,
            BTreeSet::from(["face_confidence".to_owned()])
        );
        assert!(p.seed_variation);
        assert_eq!(p.cfg_jitter, 0.5);
        assert_eq!(p, RetryPolicy::default());
    }

    #[test]
    fn bad_values_name_field_and_range() {
        let e = serde_json::from_value::<RetryPolicy>(json!({"max_attempts": 11})).unwrap_err();
        assert!(e.to_string().contains("max_attempts"), "{e}");
        assert!(e.to_string().contains("1..=10"), "{e}");
        let e = serde_json::from_value::<PolicyOverrides>(json!({"cfg_jitter": -1.0})).unwrap_err();
        assert!(e.to_string().contains("cfg_jitter"), "{e}");
        let e = serde_json::from_value::<PolicyOverrides>(json!({"cfg_jitter": 1e9})).unwrap_err();
        assert!(e.to_string().contains("0..=10"), "{e}");
        let e = serde_json::from_value::<PolicyOverrides>(json!({"bogus": 1})).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = serde_json::from_value::<RetryPolicy>(json!({"selection_mode": "target_score"}))
            .unwrap_err();
        assert!(e.to_string().contains("target_score"), "{e}");
    }

    #[test]
    fn effective_policy_says_where_values_come_from() {
        let project = RetryPolicy {
            max_attempts: 5,
            ..RetryPolicy::default()
        };
        let scene = PolicyOverrides {
            enabled: Some(true),
            ..Default::default()
        };
        let e = EffectivePolicy::resolve(&project, &scene).unwrap();
        assert!(e.policy.enabled);
        assert_eq!(e.policy.max_attempts, 5);
        assert_eq!(e.sources["enabled"], PolicySource::SceneType);
        assert_eq!(e.sources["max_attempts"], PolicySource::Project);
    }

    #[test]
    fn unknown_trigger_is_refused_with_the_allowed_list() {
        let o = PolicyOverrides {
            trigger_checks: Some(BTreeSet::from(["teeth".to_owned()])),
            ..Default::default()
        };
        let known = BTreeSet::from(["face_confidence".to_owned()]);
        let e = o.check_triggers_known(&known).unwrap_err();
        assert_eq!(e.field, "trigger_checks");
        assert!(e.message.contains("face_confidence"));
    }
}
