use super::*;
use crate::budget::BudgetView;
use crate::decide::{decide, Decision, DecisionInput};
use crate::params::Parameters;
use crate::policy::RetryPolicy;
use crate::qa::{CheckResult, QualityScores};
use crate::status::ReviewReason;
use crate::strategy::SceneStats;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

const CHECK: &str = "face_confidence";

fn attempt(n: u32, face: f64, arm: Option<Arm>) -> AttemptView {
    let passed = face >= 0.5;
    let mut checks = BTreeMap::new();
    checks.insert(
        CHECK.to_owned(),
        CheckResult {
            score: face,
            warn: 0.7,
            fail: 0.5,
            verdict: if passed { Verdict::Pass } else { Verdict::Fail },
            details: Value::Null,
        },
    );
    AttemptView {
        attempt_number: n,
        seed: 1000 + n as u64,
        status: if passed {
            AttemptStatus::Passed
        } else {
            AttemptStatus::Failed
        },
        scores: Some(QualityScores {
            overall: face,
            checks,
        }),
        gpu_seconds: 10.0,
        arm,
        workflow_error: false,
        round: 1,
    }
}

/// A simulated scene type: `hopeless` of failed segments never pass (scores in 0.30..0.33),
/// rescuable ones pass each retry with probability `q` (failing scores in 0.10..0.48); every
/// segment runs up to `max_retries` retries (fixed-N).
fn records(n: usize, hopeless: f64, q: f64, max_retries: u32, seed: u64) -> Vec<RescueRecord> {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let h = rng.random::<f64>() < hopeless;
            let mut attempts = vec![attempt(1, fail_score(&mut rng, h), None)];
            let mut passed = false;
            for k in 2..=max_retries + 1 {
                if !h && rng.random::<f64>() < q {
                    attempts.push(attempt(k, 0.8, Some(Arm::Jitter)));
                    passed = true;
                    break;
                }
                attempts.push(attempt(k, fail_score(&mut rng, h), Some(Arm::Jitter)));
            }
            RescueRecord::from_attempts(&attempts, passed).unwrap()
        })
        .collect()
}

fn fail_score(rng: &mut ChaCha12Rng, hopeless: bool) -> f64 {
    if hopeless {
        rng.random_range(0.30..0.33)
    } else {
        rng.random_range(0.10..0.48)
    }
}

fn history(records: &[RescueRecord]) -> RescueHistory {
    let mut c = RescueCounts::default();
    for r in records {
        c.add(r);
    }
    RescueHistory {
        checks: BTreeMap::from([(CHECK.to_owned(), c)]),
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        enabled: true,
        max_attempts: 4,
        min_rescue_probability: Some(0.1),
        ..RetryPolicy::default()
    }
}

fn run(attempts: &[AttemptView], rescue: RescueHistory, rng_seed: u64) -> Decision {
    run_with(&policy(), attempts, rescue, rng_seed)
}

fn run_with(
    policy: &RetryPolicy,
    attempts: &[AttemptView],
    rescue: RescueHistory,
    rng_seed: u64,
) -> Decision {
    let stats = SceneStats {
        rescue,
        ..SceneStats::default()
    };
    let original = Parameters::new().with("seed", 1).with("cfg_scale", 7.0);
    let domains = BTreeMap::new();
    decide(&DecisionInput {
        policy,
        original: &original,
        rng_seed,
        attempts,
        budget: BudgetView::unlimited(),
        estimate_gpu_seconds: 10.0,
        domains: &domains,
        stats: &stats,
    })
}

/// A segment seed that does not explore (so the model decides).
fn deciding_seed() -> u64 {
    (0..).find(|s| !explores(*s)).unwrap()
}

#[test]
fn the_fit_recovers_the_hopeless_share_and_pass_rate() {
    let h = history(&records(4000, 0.3, 0.6, 3, 1));
    let m = fit(&h.checks[CHECK]);
    assert!((m.hopeless_share - 0.3).abs() < 0.03, "{m:?}");
    assert!((m.pass_rate - 0.6).abs() < 0.03, "{m:?}");
    let (fr, fh) = m.score_density.expect("enough scores");
    // Hopeless scores sit in 0.30..0.33: far likelier there than rescued ones.
    assert!(fh[bin(0.31)] / fr[bin(0.31)] > 3.0, "{fh:?} {fr:?}");
    assert!(m.score_ratio(0.12) < 0.2);
}

#[test]
fn with_no_history_it_retries_like_fixed_n() {
    let seed = deciding_seed();
    let mut attempts = vec![attempt(1, 0.31, None)];
    for n in 2..=4 {
        match run(&attempts, RescueHistory::default(), seed) {
            Decision::Retry { evidence, why, .. } => {
                assert_eq!(
                    evidence["retry_anyway"],
                    json!("too little evidence yet, retrying like fixed-N")
                );
                assert!(why.contains("retrying anyway"), "{why}");
            }
            d => panic!("attempt {n}: {d:?}"),
        }
        attempts.push(attempt(n, 0.31, Some(Arm::Jitter)));
    }
    match run(&attempts, RescueHistory::default(), seed) {
        Decision::Escalate { reason, .. } => assert_eq!(reason, ReviewReason::AllAttemptsFailed),
        d => panic!("{d:?}"),
    }
}

#[test]
fn evidence_stops_hopeless_looking_segments_and_keeps_unlucky_ones() {
    let h = history(&records(600, 0.3, 0.6, 3, 2));
    let seed = deciding_seed();
    // Two failures with scores where hopeless segments sit.
    let stuck = [attempt(1, 0.31, None), attempt(2, 0.32, Some(Arm::Jitter))];
    match run(&stuck, h.clone(), seed) {
        Decision::Escalate {
            reason,
            why,
            evidence,
        } => {
            assert_eq!(reason, ReviewReason::SystematicFailure);
            assert!(why.contains("P(pass next) 0.0"), "{why}");
            assert!(
                why.contains("2 failures of face_confidence (scores 0.31, 0.32)"),
                "{why}"
            );
            assert_eq!(evidence["rule"], "rescue_model");
            assert!(evidence["p_pass_next"].as_f64().unwrap() < 0.1);
            let hs = evidence["model"]["hopeless_share"].as_f64().unwrap();
            assert!(
                why.contains(&format!("{:.0}% of this scene type's", hs * 100.0)),
                "{why}"
            );
        }
        d => panic!("{d:?}"),
    }
    // Scores that move and sit where unlucky segments fail: go on.
    let unlucky = [attempt(1, 0.12, None), attempt(2, 0.41, Some(Arm::Jitter))];
    match run(&unlucky, h.clone(), seed) {
        Decision::Retry { evidence, .. } => {
            assert!(evidence["p_pass_next"].as_f64().unwrap() >= 0.1);
            assert!(evidence["retry_anyway"].is_null());
        }
        d => panic!("{d:?}"),
    }
    // An exploring segment goes on whatever the model says.
    let explorer = (0..).find(|s| explores(*s)).unwrap();
    assert!(matches!(run(&stuck, h, explorer), Decision::Retry { .. }));
}

#[test]
fn a_scene_type_that_rescues_everything_never_stops() {
    let h = history(&records(600, 0.0, 0.5, 3, 3));
    let seed = deciding_seed();
    let attempts = [
        attempt(1, 0.31, None),
        attempt(2, 0.32, Some(Arm::Jitter)),
        attempt(3, 0.31, Some(Arm::Jitter)),
    ];
    assert!(matches!(run(&attempts, h, seed), Decision::Retry { .. }));
}

#[test]
fn old_evidence_decays_so_a_fixed_workflow_recovers_its_retries() {
    let mut broken = RescueCounts::default();
    for r in records(600, 0.95, 0.6, 3, 4) {
        broken.add(&r);
    }
    let mut fixed = RescueCounts::default();
    for r in records(600, 0.0, 0.6, 3, 5) {
        fixed.add(&r);
    }
    let before = fit(&decayed(&[(1, broken.clone())]));
    let after = fit(&decayed(&[(1, broken.clone()), (2, fixed.clone())]));
    assert!(before.hopeless_share > 0.85, "{before:?}");
    assert!(after.hopeless_share < 0.15, "{after:?}");
    // Order matters, not the bucket numbers' size: the same buckets the other way round.
    let reversed = fit(&decayed(&[(1, fixed), (2, broken)]));
    assert!(reversed.hopeless_share > 0.8, "{reversed:?}");
    // A single bucket keeps about half its weight at one half-life of segments.
    let one = decayed(&[(
        7,
        history(&records(400, 0.3, 0.6, 3, 6)).checks[CHECK].clone(),
    )]);
    assert!(
        (one.segments() - 400.0 * 0.5f64.powf(1.0)).abs() < 1.0,
        "{}",
        one.segments()
    );
}

#[test]
fn checks_do_not_leak_into_each_other() {
    let mut h = history(&records(600, 0.9, 0.6, 3, 7));
    // All the evidence is about face_confidence; a sharpness failure has none.
    let sharp = RescueHistory {
        checks: BTreeMap::from([("sharpness".to_owned(), h.checks.remove(CHECK).unwrap())]),
    };
    let seed = deciding_seed();
    let a = [attempt(1, 0.31, None), attempt(2, 0.32, Some(Arm::Jitter))];
    match run(&a, sharp, seed) {
        Decision::Retry { evidence, .. } => assert_eq!(
            evidence["retry_anyway"],
            json!("too little evidence yet, retrying like fixed-N")
        ),
        d => panic!("{d:?}"),
    }
}

#[test]
fn counts_round_trip_through_their_stored_entries() {
    let mut c = RescueCounts::default();
    for r in records(50, 0.3, 0.6, 3, 8) {
        c.add(&r);
    }
    c.add(&RescueRecord {
        check: CHECK.into(),
        rescued: true,
        retries: 1,
        failing_scores: vec![0.2],
        arms: vec![(Arm::CfgDown, true)],
        score_ratio: None,
    });
    c.add(&RescueRecord {
        check: CHECK.into(),
        rescued: false,
        retries: 1,
        failing_scores: vec![0.31, 0.32],
        arms: vec![(Arm::Jitter, false)],
        score_ratio: Some(9.0),
    });
    assert_eq!(c.unrescued_lr.get(&(1, 3)), Some(&1.0));
    let mut back = RescueCounts::default();
    for (k, v) in c.entries() {
        assert!(back.add_entry(&k, v), "{k}");
    }
    assert_eq!(back, c);
    assert!(!back.add_entry("unrescued:99", 1.0));
    assert!(!back.add_entry("arm_tries:sideways", 1.0));
    assert!(!back.add_entry("unrescued_lr:1:99", 1.0));
}

#[test]
fn the_chosen_arm_pass_rate_is_used() {
    let mut c = RescueCounts::default();
    for r in records(400, 0.2, 0.5, 3, 9) {
        c.add(&r);
    }
    // cfg_down passes far more often than the pooled rate.
    *c.arm_tries.entry(Arm::CfgDown).or_default() += 200.0;
    *c.arm_passes.entry(Arm::CfgDown).or_default() += 180.0;
    let m = fit(&c);
    assert!(m.pass_rate_of(Arm::CfgDown) > m.pass_rate_of(Arm::Jitter));
    let h = RescueHistory {
        checks: BTreeMap::from([(CHECK.to_owned(), c)]),
    };
    let a = [attempt(1, 0.2, None)];
    let up = assess(&h, &a, 1, Arm::CfgDown, 0.1).unwrap();
    let plain = assess(&h, &a, 1, Arm::Jitter, 0.1).unwrap();
    assert!(up.p_pass > plain.p_pass);
    assert!(
        up.explain().contains("of cfg_down retries"),
        "{}",
        up.explain()
    );
}

#[test]
fn scores_are_no_evidence_where_nothing_is_hopeless() {
    // Every failed segment is rescuable; the unlucky unrescued ones score like the rescued.
    let h = history(&records(1500, 0.0, 0.5, 3, 10));
    let m = fit(&h.checks[CHECK]);
    for s in [0.12, 0.2, 0.31, 0.4, 0.47] {
        let r = m.score_ratio(s);
        assert!((0.5..=2.0).contains(&r), "score {s}: ratio {r} ({m:?})");
    }
}

/// A scene type whose failed segments come in kinds `(share, pass rate per retry)`; a pass rate
/// of 0 is hopeless. Every kind fails with scores in 0.10..0.48 (scores say nothing); every
/// segment runs up to `max_retries` retries (fixed-N).
fn mixed_records(n: usize, kinds: &[(f64, f64)], max_retries: u32, seed: u64) -> Vec<RescueRecord> {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let q = kinds
                .iter()
                .find(|(share, _)| {
                    acc += share;
                    u < acc
                })
                .map_or(0.0, |k| k.1);
            let mut attempts = vec![attempt(1, rng.random_range(0.10..0.48), None)];
            let mut passed = false;
            for k in 2..=max_retries + 1 {
                if rng.random::<f64>() < q {
                    attempts.push(attempt(k, 0.8, Some(Arm::Jitter)));
                    passed = true;
                    break;
                }
                let s = rng.random_range(0.10..0.48);
                attempts.push(attempt(k, s, Some(Arm::Jitter)));
            }
            RescueRecord::from_attempts(&attempts, passed).unwrap()
        })
        .collect()
}

const KINDS: [(f64, f64); 3] = [(0.2, 0.0), (0.35, 0.4), (0.45, 0.9)];

#[test]
fn the_fit_tells_flaky_segments_from_ok_ones() {
    let h = history(&mixed_records(6000, &KINDS, 4, 11));
    let m = fit(&h.checks[CHECK]);
    assert!((m.hopeless_share - 0.2).abs() < 0.05, "{m:?}");
    assert!((m.flaky.pass_rate - 0.4).abs() < 0.1, "{m:?}");
    assert!((m.ok.pass_rate - 0.9).abs() < 0.06, "{m:?}");
    assert!((m.flaky.share - 0.35).abs() < 0.1, "{m:?}");
}

#[test]
fn a_flaky_segment_that_failed_three_retries_is_retried() {
    let h = history(&mixed_records(1500, &KINDS, 4, 12));
    let seed = deciding_seed();
    let mut attempts = vec![attempt(1, 0.3, None)];
    for n in 2..=4 {
        attempts.push(attempt(n, 0.3, Some(Arm::Jitter)));
    }
    let a = assess(&h, &attempts, seed, Arm::Jitter, 0.1).unwrap();
    // Three misses all but rule out the ok kind; a flaky segment misses three times in five.
    assert!(a.p_flaky > 0.15, "{}", a.explain());
    assert!(a.p_hopeless < 0.9, "{}", a.explain());
    assert!(!a.stop());
    assert!(a.explain().contains("P(flaky) 0."), "{}", a.explain());
    let five = RetryPolicy {
        max_attempts: 5,
        ..policy()
    };
    match run_with(&five, &attempts, h, seed) {
        Decision::Retry { evidence, .. } => {
            assert!(evidence["p_flaky"].as_f64().unwrap() > 0.15, "{evidence}");
            assert!(evidence["model"]["flaky"]["pass_rate"].as_f64().unwrap() < 0.6);
        }
        d => panic!("{d:?}"),
    }
}

#[test]
fn counts_without_the_retries_histogram_fit_alike() {
    let c = history(&records(1500, 0.3, 0.6, 3, 13)).checks[CHECK].clone();
    let mut legacy = c.clone();
    legacy.rescued_after = [0.0; RETRY_SLOTS];
    let (a, b) = (fit(&c), fit(&legacy));
    assert!(
        (a.hopeless_share - b.hopeless_share).abs() < 0.05,
        "{a:?} {b:?}"
    );
    assert!((a.pass_rate - b.pass_rate).abs() < 0.1, "{a:?} {b:?}");
}

#[test]
fn a_low_chance_alone_does_not_stop_a_segment_that_may_be_rescuable() {
    let h = history(&records(600, 0.3, 0.6, 3, 14));
    let a = [attempt(1, 0.31, None), attempt(2, 0.32, Some(Arm::Jitter))];
    let mut x = assess(&h, &a, deciding_seed(), Arm::Jitter, 0.1).unwrap();
    x.p_pass = 0.05;
    x.p_hopeless = 0.5;
    assert!(!x.stop());
    assert!(
        x.explain().contains("it may still be rescuable"),
        "{}",
        x.explain()
    );
    // Here about a quarter of failed segments are hopeless: a stop needs P(rescuable) below
    // the threshold × LOSS_SHARE / that share.
    let h = x.model.hopeless_share;
    assert!((0.15..0.35).contains(&h), "{h}");
    assert!((x.max_p_rescuable() - 0.1 * (LOSS_SHARE / h).min(1.0)).abs() < 1e-9);
    x.p_hopeless = 1.0 - x.max_p_rescuable() - 0.01;
    assert!(!x.stop());
    x.p_hopeless = 1.0 - x.max_p_rescuable() / 2.0;
    assert!(x.stop());
}

#[test]
fn segments_stopped_on_their_scores_are_counted_as_likely_hopeless() {
    // A policy that stops early: rescuable segments pass 60% of retries; hopeless ones were
    // stopped after one retry on scores 16× likelier from hopeless segments.
    let mut plain = RescueCounts::default();
    let mut remembered = RescueCounts::default();
    for r in records(800, 0.0, 0.6, 3, 15) {
        plain.add(&r);
        remembered.add(&r);
    }
    let stopped = RescueRecord {
        check: CHECK.into(),
        rescued: false,
        retries: 1,
        failing_scores: vec![0.31, 0.32],
        arms: vec![(Arm::Jitter, false)],
        score_ratio: None,
    };
    let evidence = json!({"rule": "rescue_model", "score_ratio": 16.0});
    for _ in 0..300 {
        plain.add(&stopped);
        remembered.add(&stopped.clone().with_stop_evidence(&evidence));
    }
    let (p, r) = (fit(&plain), fit(&remembered));
    // 300 of 1100 failed segments were stopped hopeless-looking: without their ratio the fit
    // takes many of them for rescuable segments that missed once.
    assert!(r.hopeless_share > 0.24, "{r:?}");
    assert!(r.hopeless_share > p.hopeless_share + 0.03, "{p:?} {r:?}");
    // Other rules' evidence is no score ratio.
    let other = stopped.with_stop_evidence(&json!({"rule": "stuck_scores", "score_ratio": 16.0}));
    assert_eq!(other.score_ratio, None);
}

/// A scene type where nearly every failed segment is hopeless has few rescues to learn from, so
/// how rescuable segments fail is not known; the hopeless segments' own scores still are. A
/// failure outside where they fail reads as rescuable and is retried, one inside is stopped.
#[test]
fn scores_outside_the_hopeless_band_count_before_rescues_are_many() {
    let h = history(&records(300, 0.985, 0.7, 3, 9));
    let c = &h.checks[CHECK];
    let rescued_scores: f64 = c.scores_rescued.iter().sum();
    assert!(
        rescued_scores > 0.0 && rescued_scores < MIN_SCORES,
        "the case under test: a few rescues ({rescued_scores} scores)"
    );
    let m = fit(c);
    assert!(m.score_density.is_some(), "{m:?}");
    assert!(m.score_ratio(0.31) > 3.0, "{}", m.score_ratio(0.31));
    // 0.40: inside the range failing scores are seen in (0.19..0.47 here), outside the band.
    assert!(m.score_ratio(0.40) < 0.2, "{}", m.score_ratio(0.40));
    let seed = deciding_seed();
    assert!(
        matches!(
            run(&[attempt(1, 0.40, None)], h.clone(), seed),
            Decision::Retry { .. }
        ),
        "a failure where hopeless segments never fail is retried"
    );
    match run(&[attempt(1, 0.31, None)], h, seed) {
        Decision::Escalate { reason, .. } => assert_eq!(reason, ReviewReason::SystematicFailure),
        d => panic!("{d:?}"),
    }
}

/// A scene type with few hopeless segments (3% of failed ones) still learns their narrow band
/// from a handful of them: after 200 failed segments a score in the band counts towards
/// hopeless and one outside it towards rescuable. (With 10 hopeless scores required and 30
/// pseudo-scores of shrinkage, as before, these scores were no evidence yet.)
#[test]
fn a_rare_hopeless_band_is_evidence_from_a_few_segments() {
    let h = history(&records(200, 0.03, 0.6, 3, 1));
    let m = fit(&h.checks[CHECK]);
    assert!(m.score_density.is_some(), "{m:?}");
    assert!(
        m.score_ratio(0.31) > 2.0,
        "in the band: {}",
        m.score_ratio(0.31)
    );
    assert!(
        m.score_ratio(0.15) < 0.6,
        "outside it: {}",
        m.score_ratio(0.15)
    );
}
