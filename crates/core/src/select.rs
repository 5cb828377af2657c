//! Best-of-N selection among passing attempts.

use crate::decide::AttemptView;
use crate::status::AttemptStatus;

/// The passing attempt with the highest `overall`; ties go to the earlier attempt. Failed
/// attempts are never candidates.
pub fn best_passing(attempts: &[AttemptView]) -> Option<&AttemptView> {
    let mut best: Option<&AttemptView> = None;
    for a in attempts
        .iter()
        .filter(|a| a.status == AttemptStatus::Passed)
    {
        let Some(score) = a.overall() else { continue };
        match best {
            Some(b) if b.overall().unwrap_or(f64::MIN) > score => {}
            Some(b)
                if b.overall().unwrap_or(f64::MIN) == score
                    && b.attempt_number < a.attempt_number => {}
            _ => best = Some(a),
        }
    }
    best
}

/// The first attempt (by number) that passed.
pub fn first_passing(attempts: &[AttemptView]) -> Option<&AttemptView> {
    attempts
        .iter()
        .filter(|a| a.status == AttemptStatus::Passed)
        .min_by_key(|a| a.attempt_number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa::QualityScores;
    use proptest::prelude::*;

    fn view(n: u32, status: AttemptStatus, overall: f64) -> AttemptView {
        AttemptView {
            attempt_number: n,
            seed: n as u64,
            status,
            scores: Some(QualityScores {
                overall,
                checks: Default::default(),
            }),
            gpu_seconds: 1.0,
            arm: None,
            workflow_error: false,
            round: 1,
        }
    }

    #[test]
    fn ties_go_to_the_earlier_attempt() {
        let a = [
            view(1, AttemptStatus::Passed, 0.8),
            view(2, AttemptStatus::Passed, 0.8),
        ];
        assert_eq!(best_passing(&a).unwrap().attempt_number, 1);
        let b = [
            view(2, AttemptStatus::Passed, 0.8),
            view(1, AttemptStatus::Passed, 0.8),
        ];
        assert_eq!(best_passing(&b).unwrap().attempt_number, 1);
    }

    proptest! {
        #[test]
        fn best_is_the_highest_passing_and_never_a_failure(
            rows in prop::collection::vec((any::<bool>(), 0.0f64..=1.0), 1..10)
        ) {
            let attempts: Vec<_> = rows.iter().enumerate().map(|(i, (pass, s))| {
                view(i as u32 + 1, if *pass { AttemptStatus::Passed } else { AttemptStatus::Failed }, *s)
            }).collect();
            match best_passing(&attempts) {
                None => prop_assert!(rows.iter().all(|(p, _)| !p)),
                Some(b) => {
                    prop_assert_eq!(b.status, AttemptStatus::Passed);
                    for a in attempts.iter().filter(|a| a.status == AttemptStatus::Passed) {
                        let (sa, sb) = (a.overall().unwrap(), b.overall().unwrap());
                        prop_assert!(sa < sb || (sa == sb && a.attempt_number >= b.attempt_number));
                    }
                }
            }
        }
    }
}
