use super::*;
use crate::qa::{evaluate, CheckConfig, CheckScore, QaVerdict};

fn checks() -> Vec<CheckConfig> {
    vec![
        CheckConfig::new("face_confidence", 0.7, 0.5),
        CheckConfig::new("black_frames", 0.9, 0.8),
    ]
}

fn attempt(n: u32, seed: u64, face: f64, black: f64) -> AttemptView {
    let v = QaVerdict {
        scores: vec![
            CheckScore {
                check: "face_confidence".into(),
                score: face,
                details: Value::Null,
            },
            CheckScore {
                check: "black_frames".into(),
                score: black,
                details: Value::Null,
            },
        ],
        error: None,
        source: "test".into(),
    };
    let scores = evaluate(&v, &checks()).unwrap();
    let status = if scores.passed() {
        AttemptStatus::Passed
    } else {
        AttemptStatus::Failed
    };
    AttemptView {
        attempt_number: n,
        seed,
        status,
        scores: Some(scores),
        gpu_seconds: 10.0,
        arm: None,
        workflow_error: false,
        round: 1,
    }
}

fn enabled() -> RetryPolicy {
    RetryPolicy {
        enabled: true,
        ..RetryPolicy::default()
    }
}

fn original() -> Parameters {
    Parameters::new()
        .with("seed", 1)
        .with("cfg_scale", 7.0)
        .with("denoise_strength", 0.9)
}

fn run(policy: &RetryPolicy, attempts: &[AttemptView], budget: BudgetView) -> Decision {
    let o = original();
    let d = BTreeMap::new();
    let stats = SceneStats::default();
    decide(&DecisionInput {
        policy,
        original: &o,
        rng_seed: 77,
        attempts,
        budget,
        estimate_gpu_seconds: 10.0,
        domains: &d,
        stats: &stats,
    })
}

#[test]
fn retries_only_when_enabled() {
    let a = [attempt(1, 1, 0.3, 1.0)];
    match run(&RetryPolicy::default(), &a, BudgetView::unlimited()) {
        Decision::Escalate { reason, .. } => assert_eq!(reason, ReviewReason::RetryDisabled),
        d => panic!("{d:?}"),
    }
    assert!(matches!(
        run(&enabled(), &a, BudgetView::unlimited()),
        Decision::Retry { .. }
    ));
}

#[test]
fn max_attempts_counts_the_original() {
    let p = RetryPolicy {
        max_attempts: 2,
        ..enabled()
    };
    let a = [attempt(1, 1, 0.3, 1.0), attempt(2, 2, 0.2, 1.0)];
    match run(&p, &a, BudgetView::unlimited()) {
        Decision::Escalate { reason, .. } => assert_eq!(reason, ReviewReason::AllAttemptsFailed),
        d => panic!("{d:?}"),
    }
    let p1 = RetryPolicy {
        max_attempts: 1,
        ..enabled()
    };
    assert!(matches!(
        run(&p1, &a[..1], BudgetView::unlimited()),
        Decision::Escalate { .. }
    ));
}

#[test]
fn non_trigger_check_escalates() {
    let a = [attempt(1, 1, 0.9, 0.1)];
    match run(&enabled(), &a, BudgetView::unlimited()) {
        Decision::Escalate { reason, why, .. } => {
            assert_eq!(reason, ReviewReason::NonRetriableCheck);
            assert!(why.contains("black_frames"), "{why}");
        }
        d => panic!("{d:?}"),
    }
}

/// `retry_regressions`: a retry that fails a non-trigger check attempt 1 passed is the seed's
/// luck and is retried; one that attempt 1 failed too (or with the knob off) goes to review.
#[test]
fn a_retry_regression_is_retried_only_when_the_policy_says_so() {
    // Attempt 1 failed the trigger (face) and passed black_frames; attempt 2 fails black_frames.
    let a = [attempt(1, 1, 0.3, 1.0), attempt(2, 2, 0.9, 0.1)];
    match run(&enabled(), &a, BudgetView::unlimited()) {
        Decision::Escalate { reason, .. } => assert_eq!(reason, ReviewReason::NonRetriableCheck),
        d => panic!("{d:?}"),
    }
    let on = RetryPolicy {
        retry_regressions: true,
        ..enabled()
    };
    match run(&on, &a, BudgetView::unlimited()) {
        Decision::Retry {
            attempts,
            why,
            evidence,
        } => {
            assert_eq!(attempts[0].attempt_number, 3);
            assert!(
                why.contains("black_frames passed on an earlier attempt"),
                "{why}"
            );
            assert!(why.contains("retry_regressions"), "{why}");
            assert_eq!(evidence["retried_regressions"], json!(["black_frames"]));
        }
        d => panic!("{d:?}"),
    }
    // Attempt 1 failed black_frames too: not a regression, so it is not retried.
    let a = [attempt(1, 1, 0.9, 0.1)];
    match run(&on, &a, BudgetView::unlimited()) {
        Decision::Escalate { reason, .. } => assert_eq!(reason, ReviewReason::NonRetriableCheck),
        d => panic!("{d:?}"),
    }
    // The attempt limit still holds.
    let two = RetryPolicy {
        max_attempts: 2,
        ..on
    };
    let a = [attempt(1, 1, 0.3, 1.0), attempt(2, 2, 0.9, 0.1)];
    match run(&two, &a, BudgetView::unlimited()) {
        Decision::Escalate { reason, .. } => assert_eq!(reason, ReviewReason::AllAttemptsFailed),
        d => panic!("{d:?}"),
    }
}

#[test]
fn budget_refusal_escalates() {
    let a = [attempt(1, 1, 0.3, 1.0)];
    let b = BudgetView {
        budget: Some(100.0),
        spent: 95.0,
        reserved: 0.0,
    };
    match run(&enabled(), &a, b) {
        Decision::Escalate { reason, .. } => assert_eq!(reason, ReviewReason::BudgetExhausted),
        d => panic!("{d:?}"),
    }
}

#[test]
fn first_pass_stops_and_best_of_n_goes_on() {
    let a = [attempt(1, 1, 0.3, 1.0), attempt(2, 2, 0.75, 1.0)];
    assert!(matches!(
        run(&enabled(), &a, BudgetView::unlimited()),
        Decision::Select {
            attempt_number: 2,
            ..
        }
    ));
    let p = RetryPolicy {
        selection_mode: SelectionMode::BestOfN,
        max_attempts: 4,
        ..enabled()
    };
    assert!(matches!(
        run(&p, &a, BudgetView::unlimited()),
        Decision::Retry { .. }
    ));
    let full = [
        attempt(1, 1, 0.3, 1.0),
        attempt(2, 2, 0.75, 1.0),
        attempt(3, 3, 0.95, 1.0),
        attempt(4, 4, 0.8, 1.0),
    ];
    match run(&p, &full, BudgetView::unlimited()) {
        Decision::Select {
            attempt_number,
            why,
        } => {
            assert_eq!(attempt_number, 3);
            assert!(why.contains("beat the first passing attempt 2"), "{why}");
        }
        d => panic!("{d:?}"),
    }
}

#[test]
fn best_of_n_does_not_retry_a_first_time_pass() {
    let p = RetryPolicy {
        selection_mode: SelectionMode::BestOfN,
        ..enabled()
    };
    assert!(matches!(
        run(&p, &[attempt(1, 1, 0.9, 1.0)], BudgetView::unlimited()),
        Decision::Select {
            attempt_number: 1,
            ..
        }
    ));
}

#[test]
fn target_score_stops_on_reaching_it() {
    let p = RetryPolicy {
        selection_mode: SelectionMode::TargetScore,
        target_score: Some(0.9),
        max_attempts: 5,
        ..enabled()
    };
    let a = [attempt(1, 1, 0.3, 1.0), attempt(2, 2, 0.72, 1.0)];
    assert!(matches!(
        run(&p, &a, BudgetView::unlimited()),
        Decision::Retry { .. }
    ));
    let b = [
        attempt(1, 1, 0.3, 1.0),
        attempt(2, 2, 0.72, 1.0),
        attempt(3, 3, 0.9, 1.0),
    ];
    assert!(matches!(
        run(&p, &b, BudgetView::unlimited()),
        Decision::Select {
            attempt_number: 3,
            ..
        }
    ));
}

#[test]
fn waits_while_attempts_are_in_flight() {
    let mut a2 = attempt(2, 2, 0.3, 1.0);
    a2.status = AttemptStatus::Generating;
    assert!(matches!(
        run(
            &enabled(),
            &[attempt(1, 1, 0.3, 1.0), a2],
            BudgetView::unlimited()
        ),
        Decision::Wait { .. }
    ));
}

#[test]
fn parallel_retries_fit_the_budget_and_max_attempts() {
    let p = RetryPolicy {
        parallelism: 4,
        max_attempts: 4,
        ..enabled()
    };
    let a = [attempt(1, 1, 0.3, 1.0)];
    match run(&p, &a, BudgetView::unlimited()) {
        Decision::Retry { attempts, .. } => assert_eq!(attempts.len(), 3),
        d => panic!("{d:?}"),
    }
    let b = BudgetView {
        budget: Some(100.0),
        spent: 75.0,
        reserved: 0.0,
    };
    match run(&p, &a, b) {
        Decision::Retry { attempts, .. } => assert_eq!(attempts.len(), 2),
        d => panic!("{d:?}"),
    }
}

#[test]
fn retry_explains_itself_and_changes_seed() {
    match run(
        &enabled(),
        &[attempt(1, 1, 0.42, 1.0)],
        BudgetView::unlimited(),
    ) {
        Decision::Retry { attempts, why, .. } => {
            assert!(why.contains("face_confidence 0.42 < fail 0.50"), "{why}");
            assert!(why.contains("attempt 2 of up to 3"), "{why}");
            assert_ne!(attempts[0].seed, 1);
            assert_eq!(attempts[0].attempt_number, 2);
        }
        d => panic!("{d:?}"),
    }
}

#[test]
fn qa_error_goes_to_review() {
    let mut a = attempt(1, 1, 0.9, 1.0);
    a.status = AttemptStatus::QaError;
    a.scores = None;
    match run(&enabled(), &[a], BudgetView::unlimited()) {
        Decision::Escalate { reason, .. } => assert_eq!(reason, ReviewReason::QaError),
        d => panic!("{d:?}"),
    }
}

fn infra(n: u32) -> AttemptView {
    AttemptView {
        attempt_number: n,
        seed: n as u64,
        status: AttemptStatus::InfraError,
        scores: None,
        gpu_seconds: 0.0,
        arm: None,
        workflow_error: false,
        round: 1,
    }
}

fn in_round(mut a: AttemptView, round: u32) -> AttemptView {
    a.round = round;
    a
}

#[test]
fn a_passing_rerun_after_an_infra_error_is_selected() {
    // Round 1 ended in review on an infrastructure error; a reviewer re-ran it and attempt 2
    // passed. Only round 2 decides, so the old infra error no longer escalates it.
    let a = [infra(1), in_round(attempt(2, 2, 0.9, 1.0), 2)];
    match run(&enabled(), &a, BudgetView::unlimited()) {
        Decision::Select {
            attempt_number,
            why,
            ..
        } => {
            assert_eq!(attempt_number, 2);
            assert_eq!(why, "attempt 2 passed (overall 0.95)");
        }
        d => panic!("{d:?}"),
    }
    // The same attempts in one round still escalate on the infra error.
    let one_round = [infra(1), attempt(2, 2, 0.9, 1.0)];
    match run(&enabled(), &one_round, BudgetView::unlimited()) {
        Decision::Escalate { reason, .. } => assert_eq!(reason, ReviewReason::InfraError),
        d => panic!("{d:?}"),
    }
}

#[test]
fn each_round_has_its_own_max_attempts() {
    let p = RetryPolicy {
        max_attempts: 2,
        ..enabled()
    };
    // Round 1 used both attempts; the reviewer's re-run (attempt 3) failed: one retry is left
    // in round 2, numbered after every earlier attempt, with a seed none of them used.
    let a = [
        attempt(1, 11, 0.3, 1.0),
        attempt(2, 12, 0.3, 1.0),
        in_round(attempt(3, 13, 0.3, 1.0), 2),
    ];
    match run(&p, &a, BudgetView::unlimited()) {
        Decision::Retry { attempts, why, .. } => {
            assert_eq!(attempts.len(), 1);
            assert_eq!(attempts[0].attempt_number, 4);
            assert_eq!(attempts[0].round, 2);
            assert!(![11, 12, 13].contains(&attempts[0].seed));
            assert!(
                why.contains("scheduling attempt 4 (round 2: retry 1 of up to 1)"),
                "{why}"
            );
        }
        d => panic!("{d:?}"),
    }
    let b = [
        attempt(1, 11, 0.3, 1.0),
        attempt(2, 12, 0.3, 1.0),
        in_round(attempt(3, 13, 0.3, 1.0), 2),
        in_round(attempt(4, 14, 0.3, 1.0), 2),
    ];
    match run(&p, &b, BudgetView::unlimited()) {
        Decision::Escalate { reason, why, .. } => {
            assert_eq!(reason, ReviewReason::AllAttemptsFailed);
            assert!(
                why.starts_with(
                    "round 2: all 2 attempts failed (max_attempts 2 counts the re-run)"
                ),
                "{why}"
            );
        }
        d => panic!("{d:?}"),
    }
}

#[test]
fn a_rerun_starts_the_next_round_and_counts_show_it() {
    let a = [attempt(1, 1, 0.3, 1.0), attempt(2, 2, 0.3, 1.0)];
    let o = original();
    let d = BTreeMap::new();
    let stats = SceneStats::default();
    let p = enabled();
    let planned = plan_rerun(
        &DecisionInput {
            policy: &p,
            original: &o,
            rng_seed: 77,
            attempts: &a,
            budget: BudgetView::unlimited(),
            estimate_gpu_seconds: 10.0,
            domains: &d,
            stats: &stats,
        },
        None,
        None,
    )
    .unwrap();
    assert_eq!((planned.attempt_number, planned.round), (3, 2));
    assert_eq!(
        RoundCount::of(&a).describe(p.max_attempts as u32),
        "retries 1 of up to 2"
    );
    let after = [
        attempt(1, 1, 0.3, 1.0),
        attempt(2, 2, 0.3, 1.0),
        in_round(attempt(3, 3, 0.3, 1.0), 2),
        in_round(attempt(4, 4, 0.3, 1.0), 2),
    ];
    assert_eq!(
        RoundCount::of(&after).describe(p.max_attempts as u32),
        "round 2: retries 1 of up to 2"
    );
}
