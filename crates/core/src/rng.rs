//! Reproducible randomness for retries.
//!
//! Attempt `k` of a segment draws its seed and jitter from a ChaCha12 stream keyed by the
//! segment's recorded `rng_seed` with stream number `k`. Nothing else feeds it, so replaying the
//! segment from the database yields the same seeds and parameters, whichever worker ran it.

use crate::params::{ParamDomain, Parameters, CFG_SCALE, DENOISE_STRENGTH, MAX_SEED, SEED};
use crate::policy::RetryPolicy;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The RNG for attempt `attempt_number` of a segment.
pub fn attempt_rng(rng_seed: u64, attempt_number: u32) -> ChaCha12Rng {
    let mut rng = ChaCha12Rng::seed_from_u64(rng_seed);
    rng.set_stream(attempt_number as u64);
    rng
}

/// How a retry varies its parameters. The default is [`Arm::Jitter`]; the adaptive strategy picks
/// others per scene type and failed check.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// New seed only; parameters stay at their original values.
    SeedOnly,
    /// New seed and uniform jitter within ±range on every configured parameter.
    Jitter,
    /// New seed, cfg moved up by 50–100% of its range.
    CfgUp,
    /// New seed, cfg moved down by 50–100% of its range.
    CfgDown,
    /// New seed, denoise moved up by 50–100% of its range.
    DenoiseUp,
    /// New seed, denoise moved down by 50–100% of its range.
    DenoiseDown,
    /// New seed and jitter at twice the configured ranges.
    WiderJitter,
    /// New seed and jitter at half the configured ranges.
    NarrowerJitter,
}

impl Arm {
    pub const ALL: [Arm; 8] = [
        Arm::SeedOnly,
        Arm::Jitter,
        Arm::CfgUp,
        Arm::CfgDown,
        Arm::DenoiseUp,
        Arm::DenoiseDown,
        Arm::WiderJitter,
        Arm::NarrowerJitter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Arm::SeedOnly => "seed_only",
            Arm::Jitter => "jitter",
            Arm::CfgUp => "cfg_up",
            Arm::CfgDown => "cfg_down",
            Arm::DenoiseUp => "denoise_up",
            Arm::DenoiseDown => "denoise_down",
            Arm::WiderJitter => "wider_jitter",
            Arm::NarrowerJitter => "narrower_jitter",
        }
    }

    pub fn parse(s: &str) -> Option<Arm> {
        Arm::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// One parameter's jitter, as recorded on the attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JitterDraw {
    pub param: String,
    pub original: f64,
    /// The ± range in force for this draw (after the arm's scaling).
    pub range: f64,
    pub delta: f64,
    pub value: f64,
    /// The drawn value fell outside the parameter's domain and was moved to its edge.
    pub clamped: bool,
}

/// Everything needed to re-derive an attempt's seed and parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JitterProvenance {
    pub rng: String,
    pub rng_seed: u64,
    pub stream: u32,
    pub arm: Arm,
    /// Seeds drawn and thrown away because they repeated an earlier seed of the segment.
    pub seed_redraws: u32,
    /// The inclusive range the seed was drawn from: the bound seed input's range as the
    /// generation server reported it, within `0..=2^53 − 1`. Absent on attempts drawn before
    /// ranges were recorded, which used the full range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_range: Option<[u64; 2]>,
    pub draws: Vec<JitterDraw>,
}

/// Inputs of one retry draw.
pub struct DrawInput<'a> {
    pub policy: &'a RetryPolicy,
    pub original: &'a Parameters,
    pub rng_seed: u64,
    pub attempt_number: u32,
    pub previous_seeds: &'a [u64],
    pub arm: Arm,
    /// Narrower domains reported by the generation server; absent parameters use the defaults.
    pub domains: &'a BTreeMap<String, ParamDomain>,
}

/// Draw attempt `attempt_number`'s seed and parameters. Pure: the same input gives the same output.
pub fn draw_attempt(input: &DrawInput<'_>) -> (u64, Parameters, JitterProvenance) {
    let mut rng = attempt_rng(input.rng_seed, input.attempt_number);
    let original_seed = input.original.seed().unwrap_or(0);
    let mut redraws = 0;
    let [lo, hi] = seed_range(input.domains);
    let used = |s: u64| s == original_seed || input.previous_seeds.contains(&s);
    let seed = if input.policy.seed_variation {
        loop {
            let s = rng.random_range(lo..=hi);
            if !used(s) {
                break s;
            }
            redraws += 1;
            if redraws >= SEED_REDRAW_LIMIT {
                // A tiny range nearly used up: take the next unused value after the last draw,
                // still a pure function of the stream (or the draw itself if none is left).
                let span = hi - lo + 1;
                break (0..span.min(u64::from(SEED_REDRAW_LIMIT) * 64))
                    .map(|k| lo + (s - lo + k) % span)
                    .find(|c| !used(*c))
                    .unwrap_or(s);
            }
        }
    } else {
        original_seed
    };

    let mut params = input.original.clone();
    params.set(SEED, Value::from(seed));
    let mut draws = Vec::new();
    for (param, configured) in input.policy.jittered_params() {
        let Some(orig) = input.original.get_f64(&param) else {
            continue;
        };
        let (range, delta) = arm_delta(input.arm, &param, configured, &mut rng);
        if range == 0.0 {
            continue;
        }
        let domain = input
            .domains
            .get(&param)
            .copied()
            .unwrap_or_else(|| ParamDomain::for_param(&param));
        // cfg and denoise are real-valued even when submitted as whole numbers (`7` from JSON).
        let real_valued = param == CFG_SCALE || param == DENOISE_STRENGTH;
        let integer = domain.integer || (input.original.is_integer(&param) && !real_valued);
        let delta = if integer { delta.round() } else { delta };
        let raw = orig + delta;
        let value = domain.clamp(raw);
        let value = if integer {
            value.round()
        } else {
            round6(value)
        };
        let clamped = (value - raw).abs() > 1e-9;
        let json = if integer {
            Value::from(value as i64)
        } else {
            Value::from(value)
        };
        params.set(&param, json);
        draws.push(JitterDraw {
            param,
            original: orig,
            range,
            delta: round6(delta),
            value,
            clamped,
        });
    }
    let prov = JitterProvenance {
        rng: "chacha12".into(),
        rng_seed: input.rng_seed,
        stream: input.attempt_number,
        arm: input.arm,
        seed_redraws: redraws,
        seed_range: Some([lo, hi]),
        draws,
    };
    (seed, params, prov)
}

/// Redraws before a repeated seed is replaced by the next unused value.
const SEED_REDRAW_LIMIT: u32 = 1_000;

/// The inclusive range retry seeds are drawn from: the seed input's domain as the server reported
/// it (`domains["seed"]`), within `0..=MAX_SEED`.
pub fn seed_range(domains: &BTreeMap<String, ParamDomain>) -> [u64; 2] {
    let Some(d) = domains.get(SEED) else {
        return [0, MAX_SEED];
    };
    let hi = if d.max.is_finite() {
        d.max.floor().clamp(0.0, MAX_SEED as f64) as u64
    } else {
        MAX_SEED
    };
    let lo = if d.min.is_finite() {
        d.min.ceil().clamp(0.0, MAX_SEED as f64) as u64
    } else {
        0
    };
    [lo.min(hi), hi]
}

/// The range in force and the drawn delta for one parameter under an arm. Every arm consumes the
/// same number of draws per parameter so that streams stay aligned across arms.
fn arm_delta(arm: Arm, param: &str, configured: f64, rng: &mut ChaCha12Rng) -> (f64, f64) {
    let u: f64 = rng.random_range(-1.0..=1.0);
    let one_sided = 0.5 + 0.25 * (u + 1.0); // 0.5..=1.0
    match (arm, param) {
        (Arm::SeedOnly, _) => (0.0, 0.0),
        (Arm::Jitter, _) => (configured, u * configured),
        (Arm::WiderJitter, _) => (configured * 2.0, u * configured * 2.0),
        (Arm::NarrowerJitter, _) => (configured * 0.5, u * configured * 0.5),
        (Arm::CfgUp, CFG_SCALE) | (Arm::DenoiseUp, DENOISE_STRENGTH) => {
            (configured, one_sided * configured)
        }
        (Arm::CfgDown, CFG_SCALE) | (Arm::DenoiseDown, DENOISE_STRENGTH) => {
            (configured, -one_sided * configured)
        }
        // A directional arm leaves the other parameters where they were.
        _ => (0.0, 0.0),
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::Rng;

    fn original() -> Parameters {
        Parameters::new()
            .with("seed", 42)
            .with("cfg_scale", 7.0)
            .with("denoise_strength", 0.98)
            .with("steps", 20)
    }

    fn policy() -> RetryPolicy {
        let mut p = RetryPolicy {
            enabled: true,
            ..RetryPolicy::default()
        };
        p.extra_jitter.insert("steps".into(), 3.0);
        p
    }

    fn seed_domain(max: f64) -> BTreeMap<String, ParamDomain> {
        [(
            SEED.to_owned(),
            ParamDomain::for_param(SEED).narrowed(Some(0.0), Some(max)),
        )]
        .into()
    }

    #[test]
    fn seeds_stay_in_the_bound_inputs_range_unique_and_reproducible() {
        let p = policy();
        let o = original();
        for max in [16_777_215.0, 4_294_967_295.0] {
            let d = seed_domain(max);
            let mut seen = vec![42];
            for n in 2..=40 {
                let input = DrawInput {
                    policy: &p,
                    original: &o,
                    rng_seed: 7,
                    attempt_number: n,
                    previous_seeds: &seen,
                    arm: Arm::Jitter,
                    domains: &d,
                };
                let (seed, params, prov) = draw_attempt(&input);
                assert!(seed as f64 <= max, "{seed} > {max}");
                assert!(!seen.contains(&seed));
                assert_eq!(params.seed(), Some(seed));
                assert_eq!(prov.seed_range, Some([0, max as u64]));
                assert_eq!(draw_attempt(&input).0, seed, "same record, same seed");
                seen.push(seed);
            }
        }
        // Without a learnt range the seeds are those drawn before ranges existed.
        let d = BTreeMap::new();
        let input = DrawInput {
            policy: &p,
            original: &o,
            rng_seed: 7,
            attempt_number: 2,
            previous_seeds: &[42],
            arm: Arm::Jitter,
            domains: &d,
        };
        let expected = attempt_rng(7, 2).random_range(0..=MAX_SEED);
        assert_eq!(draw_attempt(&input).0, expected);
    }

    #[test]
    fn a_nearly_used_up_seed_range_still_gives_an_unused_seed() {
        let p = policy();
        let o = Parameters::new().with("seed", 0).with("cfg_scale", 7.0);
        let d = seed_domain(3.0);
        let input = DrawInput {
            policy: &p,
            original: &o,
            rng_seed: 1,
            attempt_number: 4,
            previous_seeds: &[1, 3],
            arm: Arm::SeedOnly,
            domains: &d,
        };
        assert_eq!(draw_attempt(&input).0, 2, "the only value left");
    }

    #[test]
    fn same_inputs_same_attempt() {
        let p = policy();
        let o = original();
        let d = BTreeMap::new();
        let input = DrawInput {
            policy: &p,
            original: &o,
            rng_seed: 9,
            attempt_number: 2,
            previous_seeds: &[42],
            arm: Arm::Jitter,
            domains: &d,
        };
        assert_eq!(draw_attempt(&input), draw_attempt(&input));
        let other = DrawInput {
            attempt_number: 3,
            ..input
        };
        assert_ne!(draw_attempt(&input).0, draw_attempt(&other).0);
    }

    proptest! {
        #[test]
        fn jitter_stays_in_range_and_domain(rng_seed: u64, k in 2u32..10, cfg in 0.1f64..30.0, den in 0.0f64..=1.0,
                                            cj in 0.0f64..10.0, dj in 0.0f64..0.5, arm_i in 0usize..8) {
            let p = RetryPolicy { enabled: true, cfg_jitter: cj, denoise_jitter: dj,
                extra_jitter: BTreeMap::from([("steps".to_owned(), 3.0)]), ..RetryPolicy::default() };
            let o = Parameters::new().with("seed", 1).with("cfg_scale", cfg).with("denoise_strength", den).with("steps", 20);
            let d = BTreeMap::new();
            let arm = Arm::ALL[arm_i];
            let (_, params, prov) = draw_attempt(&DrawInput { policy: &p, original: &o, rng_seed, attempt_number: k, previous_seeds: &[], arm, domains: &d });
            let c = params.get_f64("cfg_scale").unwrap();
            prop_assert!(c > 0.0 && c <= 100.0);
            prop_assert!((c - cfg).abs() <= 2.0 * cj + 1e-6);
            let dn = params.get_f64("denoise_strength").unwrap();
            prop_assert!((0.0..=1.0).contains(&dn));
            prop_assert!((dn - den).abs() <= 2.0 * dj + 1e-6);
            prop_assert!(params.is_integer("steps"), "steps stays an integer");
            for draw in &prov.draws {
                prop_assert!(draw.delta.abs() <= draw.range + 1e-6);
            }
        }

        #[test]
        fn seeds_never_repeat_within_a_segment(rng_seed: u64, n in 2u32..10) {
            let p = policy();
            let o = original();
            let d = BTreeMap::new();
            let mut seeds = vec![o.seed().unwrap()];
            for k in 2..=n {
                let (s, _, _) = draw_attempt(&DrawInput { policy: &p, original: &o, rng_seed, attempt_number: k, previous_seeds: &seeds, arm: Arm::Jitter, domains: &d });
                prop_assert!(!seeds.contains(&s));
                prop_assert!(s <= MAX_SEED);
                seeds.push(s);
            }
        }
    }

    #[test]
    fn a_repeated_seed_is_redrawn_deterministically() {
        let p = policy();
        let o = original();
        let d = BTreeMap::new();
        let base = DrawInput {
            policy: &p,
            original: &o,
            rng_seed: 5,
            attempt_number: 2,
            previous_seeds: &[],
            arm: Arm::Jitter,
            domains: &d,
        };
        let (first, _, _) = draw_attempt(&base);
        let prev = [first];
        let again = DrawInput {
            previous_seeds: &prev,
            ..base
        };
        let (s1, _, prov1) = draw_attempt(&again);
        let (s2, _, _) = draw_attempt(&again);
        assert_ne!(s1, first);
        assert_eq!(s1, s2);
        assert_eq!(prov1.seed_redraws, 1);
    }

    #[test]
    fn server_domain_clamps_jitter() {
        let p = RetryPolicy {
            enabled: true,
            cfg_jitter: 5.0,
            ..RetryPolicy::default()
        };
        let o = Parameters::new().with("seed", 1).with("cfg_scale", 7.9);
        let d = BTreeMap::from([(
            "cfg_scale".to_owned(),
            ParamDomain::for_param("cfg_scale").narrowed(None, Some(8.0)),
        )]);
        for k in 2..40 {
            let (_, params, _) = draw_attempt(&DrawInput {
                policy: &p,
                original: &o,
                rng_seed: 1,
                attempt_number: k,
                previous_seeds: &[],
                arm: Arm::CfgUp,
                domains: &d,
            });
            assert!(params.get_f64("cfg_scale").unwrap() <= 8.0);
        }
    }
}
