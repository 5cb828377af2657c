//! The `technical` check: does the file have the resolution, frame rate and duration the scene
//! type asked for?
//!
//! Owns only the comparison of ffprobe's [`VideoInfo`] with the targets in `options`: `width`,
//! `height` (exact, or within `size_tolerance` px), `fps` (within `fps_tolerance`, default 0.1)
//! and `duration_seconds` (within `duration_tolerance_seconds`, default 0.5). Targets that are not
//! given are not checked. The score is `0.5^mismatches` (1 when everything matches, 0.5 for one
//! mismatch, 0.25 for two, …), so a `fail` threshold above 0.5 fails on any mismatch; `details`
//! lists each mismatch with the expected and actual value. It needs no decoded frames.

use crate::decode::VideoInfo;
use crate::options::{opt_f64, opt_positive};
use crate::QaError;
use retake_core::qa::CheckScore;
use serde_json::{json, Value};

const CHECK: &str = "technical";

pub fn technical(options: &Value, info: &VideoInfo) -> Result<CheckScore, QaError> {
    let size_tol = opt_f64(options, CHECK, "size_tolerance")?
        .unwrap_or(0.0)
        .max(0.0);
    let fps_tol = opt_f64(options, CHECK, "fps_tolerance")?
        .unwrap_or(0.1)
        .max(0.0);
    let dur_tol = opt_f64(options, CHECK, "duration_tolerance_seconds")?
        .unwrap_or(0.5)
        .max(0.0);
    let targets = [
        (
            "width",
            opt_positive(options, CHECK, "width")?,
            info.width as f64,
            size_tol,
        ),
        (
            "height",
            opt_positive(options, CHECK, "height")?,
            info.height as f64,
            size_tol,
        ),
        (
            "fps",
            opt_positive(options, CHECK, "fps")?,
            info.fps,
            fps_tol,
        ),
        (
            "duration_seconds",
            opt_positive(options, CHECK, "duration_seconds")?,
            info.duration_seconds,
            dur_tol,
        ),
    ];
    let mut mismatches = Vec::new();
    let mut checked = Vec::new();
    for (field, target, actual, tolerance) in targets {
        let Some(expected) = target else { continue };
        checked.push(field);
        if (actual - expected).abs() > tolerance + 1e-9 {
            mismatches.push(json!({ "field": field, "expected": expected, "actual": actual, "tolerance": tolerance }));
        }
    }
    let score = 0.5f64.powi(mismatches.len() as i32);
    Ok(CheckScore {
        check: CHECK.into(),
        score,
        details: json!({
            "mismatches": mismatches,
            "checked": checked,
            "actual": {
                "width": info.width,
                "height": info.height,
                "fps": (info.fps * 1000.0).round() / 1000.0,
                "duration_seconds": (info.duration_seconds * 1000.0).round() / 1000.0,
            },
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> VideoInfo {
        VideoInfo {
            width: 640,
            height: 360,
            fps: 12.0,
            duration_seconds: 3.0,
        }
    }

    #[test]
    fn each_mismatch_halves_the_score_and_is_listed() {
        let ok = technical(
            &json!({"width": 640, "height": 360, "fps": 12, "duration_seconds": 3.2}),
            &info(),
        )
        .unwrap();
        assert_eq!(ok.score, 1.0);
        let bad = technical(&json!({"width": 1280, "height": 720, "fps": 12}), &info()).unwrap();
        assert_eq!(bad.score, 0.25);
        assert_eq!(bad.details["mismatches"][0]["field"], "width");
        assert_eq!(technical(&Value::Null, &info()).unwrap().score, 1.0);
        assert!(technical(&json!({"width": "wide"}), &info()).is_err());
    }
}
