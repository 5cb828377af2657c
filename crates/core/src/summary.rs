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

/// Something a person did to a segment that the sentence mentions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HumanAction {
    /// For a re-run, the attempt it created; for an acceptance, the attempt accepted.
    pub attempt_number: u32,
    pub actor: String,
    pub kind: HumanActionKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HumanActionKind {
    /// A reviewer re-ran the segment, starting a new round with this attempt.
    Rerun,
    /// A reviewer accepted this attempt as the output (a human override).
    Accepted,
}

/// The check a passing attempt is quoted by: the first that failed on any attempt, else the
/// first trigger check that was scored, else `overall`.
fn primary_check(attempts: &[&AttemptView], triggers: &[String]) -> Option<String> {
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

/// `face 0.42, frozen 0.20`: the checks that failed on this attempt, with their scores.
fn failed_checks(a: &AttemptView) -> Vec<String> {
    a.scores
        .as_ref()
        .map(|s| {
            s.checks
                .iter()
                .filter(|(_, r)| r.verdict == Verdict::Fail)
                .map(|(k, r)| format!("{} {:.2}", short_check_name(k), r.score))
                .collect()
        })
        .unwrap_or_default()
}

fn describe_attempt(a: &AttemptView, primary: Option<&str>) -> String {
    let n = a.attempt_number;
    let quoted = || {
        a.scores.as_ref().and_then(|s| match primary {
            Some(c) => s
                .checks
                .get(c)
                .map(|r| format!("{} {:.2}", short_check_name(c), r.score)),
            None => Some(format!("overall {:.2}", s.overall)),
        })
    };
    let with = |verb: &str, score: Option<String>| match score {
        Some(s) => format!("{verb} attempt {n} ({s})"),
        None => format!("{verb} attempt {n}"),
    };
    match a.status {
        AttemptStatus::Passed => with("passed", quoted()),
        AttemptStatus::Failed => {
            // A failed attempt is quoted by the checks that failed on it, never by another one.
            let failed = failed_checks(a);
            with(
                "failed",
                if failed.is_empty() {
                    quoted()
                } else {
                    Some(failed.join(", "))
                },
            )
        }
        AttemptStatus::QaError => format!("attempt {n} QA error"),
        AttemptStatus::InfraError => format!("attempt {n} infrastructure error"),
        AttemptStatus::Cancelled => format!("attempt {n} cancelled"),
        s => format!("attempt {n} {s}"),
    }
}

/// The sentence without human actions (nobody acted on the segment).
pub fn summary_sentence(segment_id: i64, attempts: &[AttemptView], triggers: &[String]) -> String {
    summary_sentence_with(segment_id, attempts, &[], triggers)
}

/// "Segment 18: failed attempt 1 (face 0.13), failed attempt 2 (frozen 0.20); re-run by ana:
/// passed attempt 3 (face 0.91)". Each failed attempt cites the checks that failed on it; human
/// re-runs start a new round and acceptances are named with the person who acted.
pub fn summary_sentence_with(
    segment_id: i64,
    attempts: &[AttemptView],
    actions: &[HumanAction],
    triggers: &[String],
) -> String {
    let mut sorted: Vec<&AttemptView> = attempts.iter().collect();
    sorted.sort_by_key(|a| a.attempt_number);
    let primary = primary_check(&sorted, triggers);
    if sorted.is_empty() {
        return format!("Segment {segment_id}: no attempts yet");
    }
    let mut out = format!("Segment {segment_id}: ");
    let mut first_in_group = true;
    for a in &sorted {
        if let Some(r) = actions
            .iter()
            .find(|h| h.kind == HumanActionKind::Rerun && h.attempt_number == a.attempt_number)
        {
            if !first_in_group || a.attempt_number > 1 {
                out.push_str("; ");
            }
            out.push_str(&format!("re-run by {}: ", r.actor));
            first_in_group = true;
        }
        if !first_in_group {
            out.push_str(", ");
        }
        out.push_str(&describe_attempt(a, primary.as_deref()));
        first_in_group = false;
    }
    for h in actions
        .iter()
        .filter(|h| h.kind == HumanActionKind::Accepted)
    {
        out.push_str(&format!(
            "; attempt {} accepted by {}",
            h.attempt_number, h.actor
        ));
    }
    out
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
            round: 1,
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

    fn scored(n: u32, status: AttemptStatus, checks: &[(&str, f64, bool)]) -> AttemptView {
        let checks = checks
            .iter()
            .map(|(k, score, pass)| {
                (
                    (*k).to_owned(),
                    CheckResult {
                        score: *score,
                        warn: 0.7,
                        fail: 0.5,
                        verdict: if *pass { Verdict::Pass } else { Verdict::Fail },
                        details: serde_json::Value::Null,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>();
        AttemptView {
            attempt_number: n,
            seed: n as u64,
            status,
            scores: Some(QualityScores {
                overall: 0.5,
                checks,
            }),
            gpu_seconds: 1.0,
            arm: None,
            workflow_error: false,
            round: 1,
        }
    }

    #[test]
    fn a_failed_attempt_cites_the_check_that_failed_on_it() {
        // The case: attempt 2 failed frozen_frames while face passed at 1.00.
        let s = summary_sentence(
            18,
            &[
                scored(
                    1,
                    AttemptStatus::Failed,
                    &[
                        ("face_confidence", 0.13, false),
                        ("frozen_frames", 0.9, true),
                    ],
                ),
                scored(
                    2,
                    AttemptStatus::Failed,
                    &[
                        ("face_confidence", 1.0, true),
                        ("frozen_frames", 0.2, false),
                    ],
                ),
            ],
            &["face_confidence".into()],
        );
        assert_eq!(
            s,
            "Segment 18: failed attempt 1 (face 0.13), failed attempt 2 (frozen 0.20)"
        );
    }

    #[test]
    fn several_failed_checks_are_all_cited() {
        let s = summary_sentence(
            3,
            &[scored(
                1,
                AttemptStatus::Failed,
                &[
                    ("black_frames", 0.1, false),
                    ("face_confidence", 0.2, false),
                ],
            )],
            &[],
        );
        assert_eq!(s, "Segment 3: failed attempt 1 (black 0.10, face 0.20)");
    }

    #[test]
    fn people_who_acted_are_named() {
        let mut third = a(3, AttemptStatus::Failed, 0.31);
        third.round = 2;
        let s = summary_sentence_with(
            7,
            &[
                a(1, AttemptStatus::Failed, 0.2),
                a(2, AttemptStatus::Failed, 0.3),
                third,
            ],
            &[
                HumanAction {
                    attempt_number: 3,
                    actor: "ana".into(),
                    kind: HumanActionKind::Rerun,
                },
                HumanAction {
                    attempt_number: 2,
                    actor: "bo".into(),
                    kind: HumanActionKind::Accepted,
                },
            ],
            &["face_confidence".into()],
        );
        assert_eq!(
            s,
            "Segment 7: failed attempt 1 (face 0.20), failed attempt 2 (face 0.30); \
             re-run by ana: failed attempt 3 (face 0.31); attempt 2 accepted by bo"
        );
    }
}
