//! Cheap per-frame checks on the small metric frames (320×180 for 16:9): `black_frames`,
//! `frozen_frames`, `sharpness` and `motion`.
//!
//! Owns the pixel statistics (mean/deviation of luma, mean absolute frame difference, variance of
//! the Laplacian) and how each check maps them to 0–1. All luma values are 8-bit full range
//! (ffmpeg's `gray`: video black is about 0–16, white 235–255). Each function is pure: frames and
//! options in, a [`CheckScore`] out. Thresholds are stated per check below and in
//! `crates/qa/CALIBRATION.md`; they refer to the *sampled* frames (default 2 per second), not to
//! every frame of the video.
//!
//! - **`black_frames`**: score = share of sampled frames that are not black or blank. A frame is
//!   black when its mean luma < `black_luma` (24) and its standard deviation < `black_std` (10);
//!   blank (any flat colour) when its standard deviation < `blank_std` (2).
//! - **`frozen_frames`**: score = share of consecutive sampled pairs whose mean absolute difference
//!   is at least `epsilon` (0.5 luma levels). A locked-off shot of a still subject also counts as
//!   frozen; camera noise and compression flicker usually keep real footage above 0.5.
//! - **`sharpness`**: the median over frames of the variance of the 4-neighbour Laplacian,
//!   normalised as `min(1, sqrt(var / reference_var))`, i.e. the ratio of the Laplacian's standard
//!   deviations (edge contrast). The square root keeps light blur (σ1 at 360p) in the warn range
//!   instead of near 0; the variance itself falls roughly 2–3× per blur step. `reference_var` is
//!   the option of that name, else the variance of the `reference` image (the same option
//!   `face_confidence` uses) at the metric size, else [`DEFAULT_REFERENCE_VAR`]. Noise *raises*
//!   the variance, so this check cannot stand alone: pair it with `face_confidence`.
//! - **`motion`**: m = the *median* over consecutive sampled pairs of their mean absolute
//!   difference (luma levels at the metric size, pairs 1/`fps` apart). The median rather than the
//!   mean, so that one cut or a few black frames do not make a calm clip "chaotic" (`details` has
//!   the mean too). The score is a trapezoid: 0 at or below `static_below` (0.5: nothing moves),
//!   rising linearly to 1 at `calm_from` (1.5), 1 up to `busy_to` (30), falling linearly to 0 at
//!   `chaotic_above` (70: consecutive samples are essentially unrelated pictures, e.g. flicker or
//!   constant cuts). The demo clips' slow zoom/pan measures 6–27 (CALIBRATION.md).

use crate::decode::GrayFrame;
use crate::options::{opt_f64, opt_positive};
use crate::QaError;
use retake_core::qa::CheckScore;
use serde_json::{json, Value};

/// Laplacian variance of a sharp, detailed frame at 320×180, used when no reference is given:
/// `shared/QA.md` measured 1052 (σ0), 559 (σ1), 209 (σ2), 91 (σ3) on a detailed group photo, so
/// these score 1.0, 0.75, 0.46, 0.30. The shipped demo clips measure about 2500 clean
/// (CALIBRATION.md), so with their reference image they are normalised by that instead.
pub const DEFAULT_REFERENCE_VAR: f64 = 1000.0;

pub fn mean_std(f: &GrayFrame) -> (f64, f64) {
    let n = f.data.len().max(1) as f64;
    let (mut sum, mut sq) = (0u64, 0u64);
    for &p in &f.data {
        sum += p as u64;
        sq += (p as u64) * (p as u64);
    }
    let mean = sum as f64 / n;
    let var = (sq as f64 / n - mean * mean).max(0.0);
    (mean, var.sqrt())
}

/// Mean absolute difference between two same-sized frames, in luma levels.
pub fn mean_abs_diff(a: &GrayFrame, b: &GrayFrame) -> f64 {
    if a.data.len() != b.data.len() || a.data.is_empty() {
        return 255.0;
    }
    let sum: u64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| x.abs_diff(y) as u64)
        .sum();
    sum as f64 / a.data.len() as f64
}

/// Variance of the 4-neighbour Laplacian over the frame's interior.
pub fn laplacian_var(f: &GrayFrame) -> f64 {
    let (w, h) = (f.width as usize, f.height as usize);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let (mut sum, mut sq, mut n) = (0i64, 0i64, 0i64);
    for y in 1..h - 1 {
        let (up, row, down) = (
            &f.data[(y - 1) * w..y * w],
            &f.data[y * w..(y + 1) * w],
            &f.data[(y + 1) * w..(y + 2) * w],
        );
        for x in 1..w - 1 {
            let l = up[x] as i64 + down[x] as i64 + row[x - 1] as i64 + row[x + 1] as i64
                - 4 * row[x] as i64;
            sum += l;
            sq += l * l;
            n += 1;
        }
    }
    let mean = sum as f64 / n as f64;
    (sq as f64 / n as f64 - mean * mean).max(0.0)
}

/// Black or blank with the default thresholds (used to skip such frames as a face reference).
pub fn is_blank(f: &GrayFrame) -> bool {
    let (mean, std) = mean_std(f);
    (mean < 24.0 && std < 10.0) || std < 2.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn list(values: impl Iterator<Item = f64>) -> Vec<f64> {
    values.take(240).map(round3).collect()
}

pub fn black_frames(
    options: &Value,
    frames: &[&GrayFrame],
    fps: f64,
) -> Result<CheckScore, QaError> {
    const CHECK: &str = "black_frames";
    let black_luma = opt_f64(options, CHECK, "black_luma")?.unwrap_or(24.0);
    let black_std = opt_f64(options, CHECK, "black_std")?.unwrap_or(10.0);
    let blank_std = opt_f64(options, CHECK, "blank_std")?.unwrap_or(2.0);
    let stats: Vec<(f64, f64)> = frames.iter().map(|f| mean_std(f)).collect();
    let bad: Vec<usize> = stats
        .iter()
        .enumerate()
        .filter(|(_, (m, s))| (*m < black_luma && *s < black_std) || *s < blank_std)
        .map(|(i, _)| i)
        .collect();
    let n = frames.len().max(1);
    Ok(CheckScore {
        check: CHECK.into(),
        score: round3(1.0 - bad.len() as f64 / n as f64),
        details: json!({
            "frames": frames.len(),
            "sample_fps": fps,
            "black_or_blank_frames": bad.len(),
            "first_bad_frame": bad.first(),
            "first_bad_time_seconds": bad.first().map(|i| round3(*i as f64 / fps)),
            "bad_frames": bad.iter().take(240).collect::<Vec<_>>(),
            "mean_luma": list(stats.iter().map(|s| s.0)),
            "luma_std": list(stats.iter().map(|s| s.1)),
            "thresholds": { "black_luma": black_luma, "black_std": black_std, "blank_std": blank_std },
        }),
    })
}

fn pair_diffs(frames: &[&GrayFrame]) -> Vec<f64> {
    frames
        .windows(2)
        .map(|w| mean_abs_diff(w[0], w[1]))
        .collect()
}

pub fn frozen_frames(
    options: &Value,
    frames: &[&GrayFrame],
    fps: f64,
) -> Result<CheckScore, QaError> {
    const CHECK: &str = "frozen_frames";
    let epsilon = opt_f64(options, CHECK, "epsilon")?.unwrap_or(0.5);
    let diffs = pair_diffs(frames);
    let frozen: Vec<usize> = diffs
        .iter()
        .enumerate()
        .filter(|(_, d)| **d < epsilon)
        .map(|(i, _)| i + 1)
        .collect();
    let (mut longest, mut run) = (0usize, 0usize);
    for d in &diffs {
        run = if *d < epsilon { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    // One frame cannot be judged frozen.
    let score = if diffs.is_empty() {
        1.0
    } else {
        1.0 - frozen.len() as f64 / diffs.len() as f64
    };
    Ok(CheckScore {
        check: CHECK.into(),
        score: round3(score),
        details: json!({
            "frames": frames.len(),
            "sample_fps": fps,
            "frozen_frames": frozen.len(),
            "first_frozen_frame": frozen.first(),
            "longest_frozen_seconds": round3(longest as f64 / fps),
            "frame_diffs": list(diffs.iter().copied()),
            "epsilon": epsilon,
        }),
    })
}

/// `reference_var` from the options, or `None` if the caller should derive one.
pub fn sharpness_reference_option(options: &Value) -> Result<Option<f64>, QaError> {
    opt_positive(options, "sharpness", "reference_var")
}

/// `reference_var` is the explicit option, the reference image's variance, or the default.
pub fn sharpness(
    frames: &[&GrayFrame],
    fps: f64,
    reference_var: f64,
    reference_source: &str,
) -> CheckScore {
    let vars: Vec<f64> = frames.iter().map(|f| laplacian_var(f)).collect();
    let median = crate::face::percentile(&vars, 50.0);
    let (worst, worst_var) = vars
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, v)| (i, *v))
        .unwrap_or((0, 0.0));
    CheckScore {
        check: "sharpness".into(),
        score: round3((median / reference_var).sqrt().clamp(0.0, 1.0)),
        details: json!({
            "frames": frames.len(),
            "sample_fps": fps,
            "median_laplacian_var": round3(median),
            "reference_var": round3(reference_var),
            "reference_var_from": reference_source,
            "worst_frame": worst,
            "worst_laplacian_var": round3(worst_var),
            "laplacian_vars": list(vars.iter().copied()),
            "metric_size": frames.first().map(|f| [f.width, f.height]),
        }),
    }
}

pub fn motion(options: &Value, frames: &[&GrayFrame], fps: f64) -> Result<CheckScore, QaError> {
    const CHECK: &str = "motion";
    let static_below = opt_f64(options, CHECK, "static_below")?.unwrap_or(0.5);
    let calm_from = opt_f64(options, CHECK, "calm_from")?.unwrap_or(1.5);
    let busy_to = opt_f64(options, CHECK, "busy_to")?.unwrap_or(30.0);
    let chaotic_above = opt_f64(options, CHECK, "chaotic_above")?.unwrap_or(70.0);
    if !(static_below < calm_from && calm_from <= busy_to && busy_to < chaotic_above) {
        return Err(QaError::InvalidOption {
            check: CHECK.into(),
            option: "static_below/calm_from/busy_to/chaotic_above".into(),
            reason: "must satisfy static_below < calm_from <= busy_to < chaotic_above".into(),
        });
    }
    let diffs = pair_diffs(frames);
    let m = crate::face::percentile(&diffs, 50.0);
    let mean = if diffs.is_empty() {
        0.0
    } else {
        diffs.iter().sum::<f64>() / diffs.len() as f64
    };
    let score = if m <= static_below || m >= chaotic_above {
        0.0
    } else if m < calm_from {
        (m - static_below) / (calm_from - static_below)
    } else if m <= busy_to {
        1.0
    } else {
        (chaotic_above - m) / (chaotic_above - busy_to)
    };
    let verdict = if m < calm_from {
        "static"
    } else if m > busy_to {
        "chaotic"
    } else {
        "normal"
    };
    Ok(CheckScore {
        check: CHECK.into(),
        score: round3(score),
        details: json!({
            "frames": frames.len(),
            "sample_fps": fps,
            "median_frame_diff": round3(m),
            "mean_frame_diff": round3(mean),
            "max_frame_diff": round3(diffs.iter().copied().fold(0.0, f64::max)),
            "classified": verdict,
            "frame_diffs": list(diffs.iter().copied()),
            "thresholds": { "static_below": static_below, "calm_from": calm_from, "busy_to": busy_to, "chaotic_above": chaotic_above },
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(v: u8) -> GrayFrame {
        GrayFrame::new(32, 18, vec![v; 32 * 18])
    }

    fn checker(phase: usize) -> GrayFrame {
        let data = (0..32 * 18)
            .map(|i| {
                if (i % 32 + i / 32 + phase).is_multiple_of(2) {
                    40
                } else {
                    200
                }
            })
            .collect();
        GrayFrame::new(32, 18, data)
    }

    #[test]
    fn black_and_flat_frames_count_as_bad() {
        let (b, g, c) = (flat(0), flat(128), checker(0));
        let s = black_frames(&Value::Null, &[&c, &b, &g, &c], 2.0).unwrap();
        assert_eq!(s.score, 0.5);
        assert_eq!(s.details["first_bad_frame"], 1);
    }

    #[test]
    fn repeated_frames_are_frozen_and_changing_ones_are_not() {
        let (a, b) = (checker(0), checker(1));
        assert_eq!(
            frozen_frames(&Value::Null, &[&a, &b, &a, &b], 2.0)
                .unwrap()
                .score,
            1.0
        );
        let s = frozen_frames(&Value::Null, &[&a, &a, &a, &b], 2.0).unwrap();
        assert!((s.score - 1.0 / 3.0).abs() < 0.001);
        assert_eq!(s.details["longest_frozen_seconds"], 1.0);
    }

    #[test]
    fn laplacian_variance_is_zero_on_flat_frames_and_high_on_edges() {
        assert_eq!(laplacian_var(&flat(90)), 0.0);
        assert!(laplacian_var(&checker(0)) > 10_000.0);
        let s = sharpness(&[&flat(90)], 2.0, 400.0, "default");
        assert_eq!(s.score, 0.0);
    }

    #[test]
    fn motion_is_low_for_static_and_chaotic_clips() {
        let (a, b) = (checker(0), checker(1));
        assert_eq!(motion(&Value::Null, &[&a, &a, &a], 2.0).unwrap().score, 0.0);
        assert_eq!(motion(&Value::Null, &[&a, &b, &a], 2.0).unwrap().score, 0.0);
        let (c, d) = (flat(100), flat(110));
        assert_eq!(motion(&Value::Null, &[&c, &d, &c], 2.0).unwrap().score, 1.0);
        assert!(motion(
            &serde_json::json!({"static_below": 5, "calm_from": 1}),
            &[&c],
            2.0
        )
        .is_err());
    }
}
