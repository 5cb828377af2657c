//! The one-line account of a segment's attempts that the CLI, API and UI all show:
//! `Segment 5: failed attempt 1 (face 0.42), passed attempt 3 (face 0.87)`.

use crate::decide::AttemptView;
use crate::qa::Verdict;
use crate::status::AttemptStatus;

/// Short display name of a check: `face_confidence` → `face`, `black_frames` → `black`.
pub fn short_check_name(check: &str) -> &str {
    check
        .strip_suffix("_confidence")
        .or_else(|| check.strip_suffix("_frames"))
        .unwrap_or(check)
}

/// The check the sentence quotes: the first that failed on any attempt, else the first trigger
/// check that was scored, else `overall`.
fn primary_check(attempts: &[AttemptView], triggers: &[String]) -> Option<String> {
    for a in attempts {
        if let Some(s) = &a.scores {
            if let Some((k, _)) = s.checks.iter().find(|(_, r)| r.verdict == Verdict::Fail) {
                return Some(k.clone());
            }
        }
    }
    for t in triggers {
        if attempts
            .iter()
            .any(|a| a.scores.as_ref().is_some_and(|s| s.checks.contains_key(t)))
        {
            return Some(t.clone());
        }
    }
    None
}

pub fn summary_sentence(segment_id: i64, attempts: &[AttemptView], triggers: &[String]) -> String {
    let mut sorted: Vec<&AttemptView> = attempts.iter().collect();
    sorted.sort_by_key(|a| a.attempt_number);
    let owned: Vec<AttemptView> = sorted.iter().map(|a| (*a).clone()).collect();
    let primary = primary_check(&owned, triggers);
    let parts: Vec<String> = sorted
        .iter()
        .map(|a| {
            let n = a.attempt_number;
            let failed: Vec<String> = a
                .scores
                .as_ref()
                .map(|s| {
                    s.checks
                        .iter()
                        .filter(|(_, r)| r.verdict == Verdict::Fail)
                        .map(|(k, r)| format!("{} {:.2}", short_check_name(k), r.score))
                        .collect()
                })
                .unwrap_or_default();
            let score = if a.status == AttemptStatus::Failed && failed.len() > 1 {
                Some(failed.join(", "))
            } else {
                a.scores.as_ref().and_then(|s| match &primary {
                    Some(c) => s
                        .checks
                        .get(c)
                        .map(|r| format!("{} {:.2}", short_check_name(c), r.score)),
                    None => Some(format!("overall {:.2}", s.overall)),
                })
            };
            let with = |verb: &str| match &score {
                Some(s) => format!("{verb} attempt {n} ({s})"),
                None => format!("{verb} attempt {n}"),
            };
            match a.status {
                AttemptStatus::Passed => with("passed"),
                AttemptStatus::Failed => with("failed"),
                AttemptStatus::QaError => format!("attempt {n} QA error"),
                AttemptStatus::InfraError => format!("attempt {n} infrastructure error"),
                AttemptStatus::Cancelled => format!("attempt {n} cancelled"),
                s => format!("attempt {n} {s}"),
            }
        })
        .collect();
    if parts.is_empty() {
        format!("Segment {segment_id}: no attempts yet")
    } else {
        format!("Segment {segment_id}: {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa::{CheckResult, QualityScores};
    use std::collections::BTreeMap;

    fn a(n: u32, status: AttemptStatus, face: f64) -> AttemptView {
        let verdict = if status == AttemptStatus::Passed {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        let checks = BTreeMap::from([(
            "face_confidence".to_owned(),
            CheckResult {
                score: face,
                warn: 0.7,
                fail: 0.5,
                verdict,
                details: serde_json::Value::Null,
            },
        )]);
        AttemptView {
            attempt_number: n,
            seed: n as u64,
            status,
            scores: Some(QualityScores {
                overall: face,
                checks,
            }),
            gpu_seconds: 1.0,
            arm: None,
            workflow_error: false,
        }
    }

    #[test]
    fn matches_the_documented_sentence() {
        let s = summary_sentence(
            5,
            &[
                a(3, AttemptStatus::Passed, 0.87),
                a(1, AttemptStatus::Failed, 0.42),
            ],
            &["face_confidence".into()],
        );
        assert_eq!(
            s,
            "Segment 5: failed attempt 1 (face 0.42), passed attempt 3 (face 0.87)"
        );
    }
}
