//! Fixtures for the QA integration tests: clips made with ffmpeg's test sources or `render_clip`
//! in a temp dir, and check configs.

#![allow(dead_code)]

use retake_core::qa::CheckConfig;
use retake_qa::{reference_image_path, render_clip, ClipSpec};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs ffmpeg with `args` (after `-y -v error`), panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-y", "-v", "error"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An H.264 clip from a lavfi source graph (`testsrc2=…`, `color=black…`), with optional `-vf`.
pub fn lavfi_clip(dir: &Path, name: &str, source: &str, vf: Option<&str>) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec!["-f", "lavfi", "-i", source];
    if let Some(vf) = vf {
        args.extend(["-vf", vf]);
    }
    let out_s = out.to_str().unwrap().to_string();
    args.extend([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        &out_s,
    ]);
    ffmpeg(&args);
    out
}

/// A demo clip of the reference faces (640×360, 3 s, 12 fps) with the given damage.
pub async fn face_clip(dir: &Path, name: &str, spec: ClipSpec) -> PathBuf {
    let out = dir.join(name);
    render_clip(&spec, &out).await.expect("clip renders");
    out
}

pub fn check(name: &str, warn: f64, fail: f64, options: Value) -> CheckConfig {
    let mut c = CheckConfig::new(name, warn, fail);
    c.options = options;
    c
}

/// `face_confidence` against the shipped reference image, thresholds warn 0.7 / fail 0.5.
pub fn face_check() -> CheckConfig {
    check(
        "face_confidence",
        0.7,
        0.5,
        json!({ "reference": reference_image_path() }),
    )
}
