//! Built-in video QA for retake: scores a generated clip against a scene type's checks.
//!
//! This crate owns everything that looks at media: probing and decoding with the ffmpeg CLI
//! ([`decode`]), the built-in checks (`face_confidence` in [`face`]; `black_frames`,
//! `frozen_frames`, `sharpness`, `motion` in [`metrics`]; `technical` in [`technical`]), running
//! studio command checks ([`command`]), and rendering demo clips for the simulated backend
//! ([`clip`]). It produces the `retake-core` types [`CheckScore`] and [`QaVerdict`]; it does not
//! judge them against thresholds (that is `retake_core::qa::evaluate`) and it never decides retries.
//!
//! Entry points: [`QaRunner::score`] (async, for the engine; CPU work runs in
//! `spawn_blocking`), [`score_with_timings`] (sync, for benchmarks), [`render_clip`] and
//! [`reference_image_path`]. Bad input never panics: an unreadable video, a bad option or a failing
//! command check becomes `QaVerdict { error: Some(..) }`.

pub mod clip;
pub mod command;
pub mod decode;
pub mod face;
pub mod metrics;
mod options;
mod process;
mod runner;
pub mod technical;

pub use clip::{reference_image_path, render_clip, ClipSpec};
pub use process::check_tools;
pub use retake_core::qa::{CheckConfig, CheckScore, CommandCheck, QaVerdict};
pub use runner::{score_with_timings, QaRunner, QaSettings, QaTimings, BUILTIN_CHECKS};

/// Why QA could not produce scores. Its message goes into `QaVerdict.error`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QaError {
    #[error("cannot read video {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{tool}: {message}")]
    Tool { tool: String, message: String },
    #[error("check `{check}`: option `{option}` {reason}")]
    InvalidOption {
        check: String,
        option: String,
        reason: String,
    },
    #[error("invalid QA settings: {0}")]
    Settings(String),
    #[error("command check `{name}` ({program}) {cause}; stderr: {stderr}")]
    Command {
        name: String,
        program: String,
        cause: String,
        stderr: String,
    },
    #[error("clip rendering failed: {0}")]
    Render(String),
    #[error("internal QA error: {0}")]
    Internal(String),
}
