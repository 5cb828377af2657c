//! The lifecycle of attempts and segments, written once. Every status change in the store goes
//! through [`AttemptStatus::transition`] or [`SegmentStatus::transition`]; an illegal move is an
//! error, never silently ignored.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("illegal {entity} transition from {from} to {to}")]
pub struct TransitionError {
    pub entity: &'static str,
    pub from: String,
    pub to: String,
}

macro_rules! string_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} `{}`; expected one of: {}",
                        stringify!($name), other, [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

/// Where one attempt is in its life.
///
/// ```text
/// queued ──claim──▶ generating ──output──▶ scoring ──verdict──▶ passed | failed | qa_error
///   ▲                  │  │
///   └── rescue/infra ──┘  └──▶ infra_error (retries exhausted or broken workflow)
/// queued | generating | scoring ──▶ cancelled (budget refused, segment cancelled or rejected)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    Queued,
    Generating,
    Scoring,
    Passed,
    Failed,
    InfraError,
    QaError,
    Cancelled,
}

string_enum!(AttemptStatus {
    Queued => "queued",
    Generating => "generating",
    Scoring => "scoring",
    Passed => "passed",
    Failed => "failed",
    InfraError => "infra_error",
    QaError => "qa_error",
    Cancelled => "cancelled",
});

impl AttemptStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Passed | Self::Failed | Self::InfraError | Self::QaError | Self::Cancelled
        )
    }

    /// Still holding (or waiting for) GPU time.
    pub fn is_in_flight(self) -> bool {
        matches!(self, Self::Queued | Self::Generating | Self::Scoring)
    }

    pub fn transition(self, to: AttemptStatus) -> Result<AttemptStatus, TransitionError> {
        use AttemptStatus::*;
        let ok = match (self, to) {
            (Queued, Generating) => true,
            // Rescue of an expired lease, or an infrastructure failure retried with the same
            // parameters.
            (Generating, Queued) => true,
            (Generating, Scoring) => true,
            // The worker scoring the output died; its lease expired and the attempt runs again.
            (Scoring, Queued) => true,
            // The backend delivered scores together with the output (simulated backend).
            (Generating, Passed | Failed | QaError | InfraError) => true,
            (Scoring, Passed | Failed | QaError) => true,
            // The QA runner could not run at all (ffmpeg missing): an infrastructure error.
            (Scoring, InfraError) => true,
            (Queued | Generating | Scoring, Cancelled) => true,
            _ => false,
        };
        if ok {
            Ok(to)
        } else {
            Err(TransitionError {
                entity: "attempt",
                from: self.to_string(),
                to: to.to_string(),
            })
        }
    }
}

/// Where one segment is in its life. It follows its attempts and is updated in the same
/// transaction as the attempt change that causes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SegmentStatus {
    Queued,
    Generating,
    Retrying,
    Passed,
    NeedsReview,
    Approved,
    Rejected,
    Cancelled,
}

string_enum!(SegmentStatus {
    Queued => "queued",
    Generating => "generating",
    Retrying => "retrying",
    Passed => "passed",
    NeedsReview => "needs_review",
    Approved => "approved",
    Rejected => "rejected",
    Cancelled => "cancelled",
});

impl SegmentStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Passed | Self::NeedsReview | Self::Approved | Self::Rejected | Self::Cancelled
        )
    }

    pub fn transition(self, to: SegmentStatus) -> Result<SegmentStatus, TransitionError> {
        use SegmentStatus::*;
        let ok = match (self, to) {
            (a, b) if a == b && !a.is_terminal() => true,
            (Queued, Generating | Retrying | Passed | NeedsReview) => true,
            (Generating, Retrying | Passed | NeedsReview | Queued) => true,
            (Retrying, Generating | Passed | NeedsReview) => true,
            // A human picks another passing attempt, or accepts one from review.
            (Passed, Passed | Approved | Rejected) => true,
            (NeedsReview, Approved | Rejected | Retrying) => true,
            (Approved, Approved) => true,
            (Queued | Generating | Retrying, Cancelled) => true,
            _ => false,
        };
        if ok {
            Ok(to)
        } else {
            Err(TransitionError {
                entity: "segment",
                from: self.to_string(),
                to: to.to_string(),
            })
        }
    }
}

/// Why a segment was sent to a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewReason {
    /// Every attempt up to `max_attempts` failed a trigger check.
    AllAttemptsFailed,
    /// A check outside the policy's trigger checks failed; a new seed is not expected to help.
    NonRetriableCheck,
    /// One more attempt would not fit in the project's GPU budget.
    BudgetExhausted,
    /// QA failed and auto-retry is off for this scene type.
    RetryDisabled,
    /// The evidence says the workflow, not the seed, is at fault.
    SystematicFailure,
    /// A QA command crashed, timed out or printed something unreadable.
    QaError,
    /// Generation kept failing for infrastructure reasons (servers down, out of memory, …).
    InfraError,
    /// The generation server rejected the workflow itself (ComfyUI `node_errors`).
    WorkflowError,
}

string_enum!(ReviewReason {
    AllAttemptsFailed => "all_attempts_failed",
    NonRetriableCheck => "non_retriable_check",
    BudgetExhausted => "budget_exhausted",
    RetryDisabled => "retry_disabled",
    SystematicFailure => "systematic_failure",
    QaError => "qa_error",
    InfraError => "infra_error",
    WorkflowError => "workflow_error",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_attempts_cannot_move() {
        for s in AttemptStatus::ALL.iter().filter(|s| s.is_terminal()) {
            for t in AttemptStatus::ALL {
                assert!(s.transition(*t).is_err(), "{s} -> {t} must be illegal");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in SegmentStatus::ALL {
            assert_eq!(s.as_str().parse::<SegmentStatus>().unwrap(), *s);
        }
        for r in ReviewReason::ALL {
            assert_eq!(r.as_str().parse::<ReviewReason>().unwrap(), *r);
        }
        assert!("nope"
            .parse::<AttemptStatus>()
            .unwrap_err()
            .contains("queued"));
    }

    #[test]
    fn review_can_be_rerun_but_rejected_is_final() {
        assert!(SegmentStatus::NeedsReview
            .transition(SegmentStatus::Retrying)
            .is_ok());
        assert!(SegmentStatus::Rejected
            .transition(SegmentStatus::Retrying)
            .is_err());
    }
}
