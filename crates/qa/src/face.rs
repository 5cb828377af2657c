//! The `face_confidence` check: real face detection (rustface / SeetaFace) scored against a
//! reference of the same subject.
//!
//! Owns the detector settings, the embedded model, the parallel detection over frames and the
//! reference-based mapping from raw detector scores to 0–1. It does not decode video.
//!
//! **Detector.** rustface 0.1.7 without its `rayon` feature, `score_thresh` 2.0, pyramid scale
//! 0.8, slide step 4×4 (see `shared/QA.md`: these are the settings the scores were calibrated
//! with; changing them shifts raw scores by tens of percent). Detection runs on the detection-size
//! frames (`QaSettings::detect_width`), so faces must be ≥ ~40 px at that size. Frames are spread
//! over `QaSettings::threads` threads, each building its own detector (a `Box<dyn Detector>` is not
//! `Send`; building one from the parsed model takes about 2 ms).
//!
//! **Score.** Raw detector scores are not probabilities, and damage does not lower them uniformly
//! (surviving faces keep high scores). So each frame is compared with a **reference**, rank by
//! rank: with both score lists sorted high to low,
//! `frame_score = (1/N) · Σ_k min(1, s_frame(k) / s_ref(k))`, a missing face counting 0. The check's
//! score is a percentile of the frame scores (default the median, option `percentile`), so a few
//! damaged frames do not fail a clip but a mostly damaged one does.
//!
//! **Reference.** `options.reference` (a path to an image of the same subject, e.g. the scene's
//! source image) scaled to cover the detection size and centre-cropped; otherwise the first
//! sampled frame that is not black/blank and has a face. The first-frame fallback only catches
//! damage that changes over the clip: a uniformly blurred clip is its own (blurred) reference.
//! Give a reference when you can.
//!
//! **Options.** `reference` (path), `fps` (sampling rate for this check; a rate above
//! `QaSettings::sample_fps` raises the run's single decode rate),
//! `expected_faces` (N: compare this many ranks; if the reference shows fewer faces, the extra
//! ranks use its weakest face's score), `percentile` (0–100, default 50).

use crate::decode::GrayFrame;
use crate::options::{opt_f64, opt_u64};
use crate::{metrics, QaError};
use retake_core::qa::CheckScore;
use rustface::{Detector, ImageData, Model};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The SeetaFace frontal model (BSD-2-Clause), copied from the rustface 0.1.7 package.
static MODEL_BYTES: &[u8] = include_bytes!("../../../assets/models/seeta_fd_frontal_v1.0.bin");

pub const SCORE_THRESH: f64 = 2.0;
pub const PYRAMID_SCALE: f32 = 0.8;
pub const SLIDE_STEP: u32 = 4;

fn model() -> Result<&'static Model, QaError> {
    static MODEL: OnceLock<Result<Model, String>> = OnceLock::new();
    MODEL
        .get_or_init(|| rustface::read_model(MODEL_BYTES).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| QaError::Internal(format!("embedded face model does not load: {e}")))
}

/// A detector with the calibrated settings. Not `Send`: build one per thread.
pub fn new_detector() -> Result<Box<dyn Detector>, QaError> {
    let mut d = rustface::create_detector_with_model(model()?.clone());
    d.set_score_thresh(SCORE_THRESH);
    d.set_pyramid_scale_factor(PYRAMID_SCALE);
    d.set_slide_window_step(SLIDE_STEP, SLIDE_STEP);
    Ok(d)
}

/// Raw face scores in one gray frame, highest first.
pub fn detect_scores(detector: &mut dyn Detector, frame: &GrayFrame) -> Vec<f64> {
    // rustface panics on images smaller than its 20 px window; such frames have no faces.
    if frame.width < 24 || frame.height < 24 {
        return Vec::new();
    }
    let image = ImageData::new(&frame.data, frame.width, frame.height);
    let mut scores: Vec<f64> = detector.detect(&image).iter().map(|f| f.score()).collect();
    scores.sort_by(|a, b| b.total_cmp(a));
    scores
}

/// A frame's index and the confidence of every face found in it, best first.
type FrameScores = (usize, Vec<f64>);

/// Detects faces in every frame on `threads` threads, one detector each; results keep frame order.
pub fn detect_all(frames: &[&GrayFrame], threads: usize) -> Result<Vec<Vec<f64>>, QaError> {
    let threads = threads.clamp(1, frames.len().max(1));
    let next = AtomicUsize::new(0);
    let per_thread: Vec<Result<Vec<FrameScores>, QaError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut detector = new_detector()?;
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(frame) = frames.get(i) else { break };
                        done.push((i, detect_scores(detector.as_mut(), frame)));
                    }
                    Ok(done)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(QaError::Internal("face detection panicked".into())))
            })
            .collect()
    });
    let mut out = vec![Vec::new(); frames.len()];
    for part in per_thread {
        for (i, scores) in part? {
            out[i] = scores;
        }
    }
    Ok(out)
}

/// `(1/N) Σ_k min(1, frame[k] / reference[k])` over the first `n` ranks; both lists sorted high to
/// low. Reference ranks beyond its length reuse its weakest score; no reference faces gives 0.
pub fn rank_score(frame: &[f64], reference: &[f64], n: usize) -> f64 {
    let Some(&weakest) = reference.last() else {
        return 0.0;
    };
    if n == 0 {
        return 1.0;
    }
    let sum: f64 = (0..n)
        .map(|k| {
            let r = reference.get(k).copied().unwrap_or(weakest);
            let f = frame.get(k).copied().unwrap_or(0.0);
            if r > 0.0 {
                (f / r).clamp(0.0, 1.0)
            } else {
                1.0
            }
        })
        .sum();
    sum / n as f64
}

/// The value at `p` percent of the sorted values (nearest rank, 0 → minimum, 100 → maximum).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[idx.min(v.len() - 1)]
}

/// Scores `frames` (detection size, at `frame_fps`) for the `face_confidence` check. `reference`
/// is the `reference` option's path and that image already loaded at the detection size (the
/// runner loads it once per run and shares it with `sharpness`).
pub fn face_confidence(
    options: &Value,
    frames: &[&GrayFrame],
    frame_fps: f64,
    threads: usize,
    reference: Option<(&str, &GrayFrame)>,
) -> Result<CheckScore, QaError> {
    const CHECK: &str = "face_confidence";
    let expected = opt_u64(options, CHECK, "expected_faces")?.map(|n| n as usize);
    let pct = opt_f64(options, CHECK, "percentile")?.unwrap_or(50.0);
    if !(0.0..=100.0).contains(&pct) {
        return Err(QaError::InvalidOption {
            check: CHECK.into(),
            option: "percentile".into(),
            reason: "must be in 0..=100".into(),
        });
    }
    let Some(first) = frames.first() else {
        return Err(QaError::Internal("face_confidence got no frames".into()));
    };
    let mut jobs: Vec<&GrayFrame> = frames.to_vec();
    if let Some((_, image)) = reference {
        if (image.width, image.height) != (first.width, first.height) {
            return Err(QaError::Internal(
                "face reference is not at the detection size".into(),
            ));
        }
        jobs.push(image);
    }
    let mut detected = detect_all(&jobs, threads)?;

    let (reference, reference_label) = match reference {
        Some((p, _)) => {
            let scores = detected.pop().unwrap_or_default();
            if scores.is_empty() && expected != Some(0) {
                return Err(QaError::InvalidOption {
                    check: CHECK.into(),
                    option: "reference".into(),
                    reason: format!(
                        "names an image with no detectable face at the detection size {}×{}: {p}",
                        first.width, first.height
                    ),
                });
            }
            (scores, json!({ "image": p }))
        }
        None => {
            let usable = |i: &usize| !metrics::is_blank(frames[*i]) && !detected[*i].is_empty();
            match (0..frames.len()).find(usable) {
                Some(i) => (detected[i].clone(), json!({ "frame": i })),
                None => {
                    let score = if expected == Some(0) { 1.0 } else { 0.0 };
                    return Ok(CheckScore {
                        check: CHECK.into(),
                        score,
                        details: json!({ "reason": "no face detected in any sampled frame", "frames": frames.len() }),
                    });
                }
            }
        }
    };
    let n = expected.unwrap_or(reference.len());
    let per_frame: Vec<f64> = detected
        .iter()
        .map(|s| rank_score(s, &reference, n))
        .collect();
    let score = percentile(&per_frame, pct);
    let (worst, worst_score) = per_frame
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, s)| (i, *s))
        .unwrap_or((0, 0.0));
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    Ok(CheckScore {
        check: CHECK.into(),
        score: round(score).clamp(0.0, 1.0),
        details: json!({
            "percentile": pct,
            "frames": frames.len(),
            "sample_fps": frame_fps,
            "worst_frame": worst,
            "worst_time_seconds": round(worst as f64 / frame_fps),
            "worst_score": round(worst_score),
            "frame_scores": per_frame.iter().take(240).map(|v| round(*v)).collect::<Vec<_>>(),
            "faces_per_frame": detected.iter().take(240).map(Vec::len).collect::<Vec<_>>(),
            "reference": reference_label,
            "reference_scores": reference.iter().map(|v| round(*v)).collect::<Vec<_>>(),
            "faces_compared": n,
            "detect_size": [first.width, first.height],
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_score_compares_rank_by_rank_and_counts_missing_faces_as_zero() {
        let reference = [10.0, 5.0];
        assert_eq!(rank_score(&[12.0, 6.0], &reference, 2), 1.0);
        assert_eq!(rank_score(&[5.0], &reference, 2), 0.25);
        assert_eq!(rank_score(&[], &reference, 2), 0.0);
        // Expecting 3 faces when the reference shows 2: the third rank reuses the weakest (5).
        assert!((rank_score(&[10.0, 5.0, 2.5], &reference, 3) - (2.5 / 3.0)).abs() < 1e-9);
        assert_eq!(rank_score(&[1.0], &[], 1), 0.0);
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        let v = [0.1, 0.9, 0.5, 0.7, 0.3];
        assert_eq!(percentile(&v, 50.0), 0.5);
        assert_eq!(percentile(&v, 0.0), 0.1);
        assert_eq!(percentile(&v, 100.0), 0.9);
    }

    #[test]
    fn the_embedded_model_loads_and_a_flat_frame_has_no_faces() {
        let mut d = new_detector().unwrap();
        let flat = GrayFrame::new(64, 64, vec![128; 64 * 64]);
        assert!(detect_scores(d.as_mut(), &flat).is_empty());
        let tiny = GrayFrame::new(8, 8, vec![0; 64]);
        assert!(detect_scores(d.as_mut(), &tiny).is_empty());
    }
}
