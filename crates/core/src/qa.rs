//! QA checks, their thresholds, and how delivered scores become verdicts.
//!
//! Scores are 0–1, higher is better. A check passes at or above `warn`, warns between `fail` and
//! `warn`, and fails below `fail`. Only `fail` can trigger a retry.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One QA check configured on a scene type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Check name, e.g. `face_confidence`, `black_frames`, or one a command check prints.
    pub check: String,
    /// At or above this score the check passes.
    pub warn: f64,
    /// Below this score the check fails.
    pub fail: f64,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Check-specific settings (sampling rate, expected faces, targets, …).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    #[schema(value_type = Object)]
    pub options: Value,
}

fn yes() -> bool {
    true
}

impl CheckConfig {
    pub fn new(check: &str, warn: f64, fail: f64) -> Self {
        Self {
            check: check.into(),
            warn,
            fail,
            enabled: true,
            options: Value::Null,
        }
    }

    pub fn validate(&self, index: usize) -> Result<(), (String, String)> {
        let field = |f: &str| format!("qa_checks[{index}].{f}");
        if self.check.trim().is_empty()
            || self.check == "overall"
            || self.check.chars().count() > crate::limits::CHECK_NAME_LEN
        {
            return Err((
                field("check"),
                format!(
                    "must be a name of 1..={} characters other than `overall`",
                    crate::limits::CHECK_NAME_LEN
                ),
            ));
        }
        for (name, v) in [("warn", self.warn), ("fail", self.fail)] {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return Err((field(name), "must be a number in [0, 1]".into()));
            }
        }
        if self.fail > self.warn {
            return Err((field("fail"), format!("must be <= warn ({})", self.warn)));
        }
        Ok(())
    }

    pub fn verdict(&self, score: f64) -> Verdict {
        if score < self.fail {
            Verdict::Fail
        } else if score < self.warn {
            Verdict::Warn
        } else {
            Verdict::Pass
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

/// One score as delivered by a QA source (the backend, the built-in runner, a command check, or
/// the external QA endpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckScore {
    pub check: String,
    pub score: f64,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    #[schema(value_type = Object)]
    pub details: Value,
}

/// What a QA source delivers for one attempt: scores, or an error that makes the attempt's QA
/// unusable (it never counts as a pass).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct QaVerdict {
    pub scores: Vec<CheckScore>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Who produced it: `simulated`, `builtin`, `command:<name>`, `api:<token name>`.
    #[serde(default)]
    pub source: String,
}

/// A check's score against the thresholds in force when it was judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckResult {
    pub score: f64,
    pub warn: f64,
    pub fail: f64,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    #[schema(value_type = Object)]
    pub details: Value,
}

/// The `quality_scores` of an attempt: a numeric `overall` (mean of the checks' scores) and one
/// entry per check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct QualityScores {
    pub overall: f64,
    #[serde(flatten)]
    pub checks: BTreeMap<String, CheckResult>,
}

impl QualityScores {
    pub fn failed_checks(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|(_, r)| r.verdict == Verdict::Fail)
            .map(|(k, _)| k.as_str())
            .collect()
    }

    pub fn passed(&self) -> bool {
        self.checks.values().all(|r| r.verdict != Verdict::Fail)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvaluationError {
    #[error("QA error: {0}")]
    Reported(String),
    #[error("QA delivered no score for enabled check(s): {0}")]
    Missing(String),
    #[error("check `{check}` scored {score}, outside 0..=1")]
    OutOfRange { check: String, score: f64 },
}

/// Judge delivered scores against the scene type's checks. Scores for checks that are not
/// configured or are disabled are ignored; an enabled check without a score is a QA error.
pub fn evaluate(
    verdict: &QaVerdict,
    checks: &[CheckConfig],
) -> Result<QualityScores, EvaluationError> {
    if let Some(e) = &verdict.error {
        return Err(EvaluationError::Reported(e.clone()));
    }
    let mut out = BTreeMap::new();
    let mut missing = Vec::new();
    for cfg in checks.iter().filter(|c| c.enabled) {
        match verdict.scores.iter().rev().find(|s| s.check == cfg.check) {
            Some(s) => {
                if !(s.score.is_finite() && (0.0..=1.0).contains(&s.score)) {
                    return Err(EvaluationError::OutOfRange {
                        check: s.check.clone(),
                        score: s.score,
                    });
                }
                out.insert(
                    cfg.check.clone(),
                    CheckResult {
                        score: s.score,
                        warn: cfg.warn,
                        fail: cfg.fail,
                        verdict: cfg.verdict(s.score),
                        details: s.details.clone(),
                    },
                );
            }
            None => missing.push(cfg.check.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(EvaluationError::Missing(missing.join(", ")));
    }
    let overall = if out.is_empty() {
        1.0
    } else {
        out.values().map(|r| r.score).sum::<f64>() / out.len() as f64
    };
    Ok(QualityScores {
        overall: round4(overall),
        checks: out,
    })
}

pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(scores: &[(&str, f64)]) -> QaVerdict {
        QaVerdict {
            scores: scores
                .iter()
                .map(|(c, s)| CheckScore {
                    check: c.to_string(),
                    score: *s,
                    details: Value::Null,
                })
                .collect(),
            error: None,
            source: "test".into(),
        }
    }

    #[test]
    fn thresholds_give_pass_warn_fail() {
        let checks = [CheckConfig::new("face_confidence", 0.7, 0.5)];
        let q = evaluate(&v(&[("face_confidence", 0.42)]), &checks).unwrap();
        assert_eq!(q.checks["face_confidence"].verdict, Verdict::Fail);
        let q = evaluate(&v(&[("face_confidence", 0.6)]), &checks).unwrap();
        assert_eq!(q.checks["face_confidence"].verdict, Verdict::Warn);
        assert!(q.passed());
    }

    #[test]
    fn missing_enabled_check_is_an_error() {
        let checks = [
            CheckConfig::new("face_confidence", 0.7, 0.5),
            CheckConfig::new("sharpness", 0.5, 0.2),
        ];
        assert!(matches!(
            evaluate(&v(&[("face_confidence", 0.9)]), &checks),
            Err(EvaluationError::Missing(_))
        ));
    }

    #[test]
    fn quality_scores_serialize_flat_with_overall() {
        let checks = [CheckConfig::new("face_confidence", 0.7, 0.5)];
        let q = evaluate(&v(&[("face_confidence", 0.9)]), &checks).unwrap();
        let j = serde_json::to_value(&q).unwrap();
        assert_eq!(j["overall"], 0.9);
        assert_eq!(j["face_confidence"]["verdict"], "pass");
        let back: QualityScores = serde_json::from_value(j).unwrap();
        assert_eq!(back, q);
    }
}

/// A studio-specific QA program. retake runs `program args… VIDEO_PATH` with `config` as JSON on
/// standard input; the program prints `{"results": [{"check", "score", "details"}]}` on stdout.
/// A non-zero exit, a timeout or unreadable output is a QA error, never a pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandCheck {
    pub name: String,
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default = "default_command_timeout")]
    pub timeout_seconds: f64,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    #[schema(value_type = Object)]
    pub config: Value,
}

fn default_command_timeout() -> f64 {
    30.0
}

impl CommandCheck {
    pub fn validate(&self, index: usize) -> Result<(), (String, String)> {
        let field = |f: &str| format!("qa_commands[{index}].{f}");
        if self.name.trim().is_empty() || self.name.chars().count() > crate::limits::CHECK_NAME_LEN
        {
            return Err((
                field("name"),
                format!("must have 1..={} characters", crate::limits::CHECK_NAME_LEN),
            ));
        }
        if self.program.trim().is_empty() {
            return Err((field("program"), "must name a program".into()));
        }
        if !(self.timeout_seconds.is_finite()
            && self.timeout_seconds > 0.0
            && self.timeout_seconds <= crate::limits::COMMAND_TIMEOUT_MAX)
        {
            return Err((
                field("timeout_seconds"),
                format!(
                    "must be a number in (0, {}]",
                    crate::limits::COMMAND_TIMEOUT_MAX
                ),
            ));
        }
        Ok(())
    }
}
