//! One QA run: probe, decode once, run each enabled built-in check on the shared frames, run the
//! command checks, and fold everything into a [`QaVerdict`].
//!
//! Owns the order of work and the sampling: the video is decoded once at
//! `max(sample_fps, every enabled check's "fps" option)` (capped at
//! [`MAX_SAMPLED_FRAMES`](crate::decode::MAX_SAMPLED_FRAMES) frames), at the detection size; the
//! metric frames are derived from those. A check with its own `fps` takes every k-th decoded frame.
//! Checks named in `CheckConfig` that are not built in are left to command checks (or reported
//! missing by `retake_core::qa::evaluate`). It holds no state between runs.

use crate::decode::{self, downscale, fit_size, GrayFrame, MAX_SAMPLED_FRAMES};
use crate::options::{opt_positive, opt_str};
use crate::{command, face, metrics, technical, QaError};
use retake_core::qa::{CheckConfig, CheckScore, CommandCheck, QaVerdict};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The checks this crate computes itself.
pub const BUILTIN_CHECKS: [&str; 6] = [
    "face_confidence",
    "black_frames",
    "frozen_frames",
    "sharpness",
    "motion",
    "technical",
];

/// How densely and at what size a run looks at the video.
#[derive(Debug, Clone, PartialEq)]
pub struct QaSettings {
    /// Frames sampled per second of video (default 2).
    pub sample_fps: f64,
    /// Width of the frames faces are detected in (default 640; never upscaled).
    pub detect_width: u32,
    /// Width of the frames the cheap metrics use (default 320).
    pub metric_width: u32,
    /// Face detection threads, one detector each (default 2).
    pub threads: usize,
}

impl Default for QaSettings {
    fn default() -> Self {
        Self {
            sample_fps: 2.0,
            detect_width: 640,
            metric_width: 320,
            threads: 2,
        }
    }
}

impl QaSettings {
    fn validate(&self) -> Result<(), QaError> {
        if !(self.sample_fps.is_finite() && self.sample_fps > 0.0 && self.sample_fps <= 120.0) {
            return Err(QaError::Settings(format!(
                "sample_fps {} must be in (0, 120]",
                self.sample_fps
            )));
        }
        if self.detect_width < 32 || self.metric_width < 16 {
            return Err(QaError::Settings(
                "detect_width must be >= 32 and metric_width >= 16".into(),
            ));
        }
        Ok(())
    }
}

/// Where the time of one run went.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QaTimings {
    /// Probe + decode + metric downscale.
    pub decode_ms: f64,
    /// Frames decoded.
    pub frames: usize,
    /// Milliseconds per check, by check name.
    pub checks: BTreeMap<String, f64>,
    pub total_ms: f64,
    /// The video's duration.
    pub video_seconds: f64,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn is_builtin(name: &str) -> bool {
    BUILTIN_CHECKS.contains(&name)
}

/// The enabled built-in checks of `checks`, in order.
fn builtin_enabled(checks: &[CheckConfig]) -> Vec<&CheckConfig> {
    checks
        .iter()
        .filter(|c| c.enabled && is_builtin(&c.check))
        .collect()
}

/// Indices of decoded frames (at `decode_fps`) that sample the video at about `want_fps`, and the
/// rate they really have.
fn subsample(n: usize, decode_fps: f64, want_fps: f64) -> (Vec<usize>, f64) {
    let step = (decode_fps / want_fps).max(1.0);
    let mut idx: Vec<usize> = (0..)
        .map(|k| (k as f64 * step).round() as usize)
        .take_while(|i| *i < n)
        .collect();
    idx.dedup();
    (idx, decode_fps / step)
}

/// Scores `video` against the enabled built-in checks (other names are ignored), synchronously,
/// and reports where the time went. CPU-heavy: call it from a blocking context.
pub fn score_with_timings(
    settings: &QaSettings,
    video: &Path,
    checks: &[CheckConfig],
) -> Result<(Vec<CheckScore>, QaTimings), QaError> {
    let start = Instant::now();
    settings.validate()?;
    let enabled = builtin_enabled(checks);
    let info = decode::probe(video)?;
    let mut timings = QaTimings {
        video_seconds: info.duration_seconds,
        ..Default::default()
    };

    let check_fps = |c: &CheckConfig| -> Result<f64, QaError> {
        Ok(opt_positive(&c.options, &c.check, "fps")?
            .unwrap_or(settings.sample_fps)
            .min(120.0))
    };
    let mut decode_fps = settings.sample_fps;
    for c in enabled.iter().filter(|c| c.check != "technical") {
        decode_fps = decode_fps.max(check_fps(c)?);
    }
    if info.duration_seconds > 0.0 && info.duration_seconds * decode_fps > MAX_SAMPLED_FRAMES as f64
    {
        decode_fps = MAX_SAMPLED_FRAMES as f64 / info.duration_seconds;
    }
    let (dw, dh) = fit_size(info.width, info.height, settings.detect_width);
    let (mw, mh) = fit_size(dw, dh, settings.metric_width);
    let needs_frames = enabled.iter().any(|c| c.check != "technical");
    let (detect, metric): (Vec<GrayFrame>, Vec<GrayFrame>) = if needs_frames {
        let detect = decode::decode_gray(video, &info, decode_fps, dw, dh)?;
        let metric = detect.iter().map(|f| downscale(f, mw, mh)).collect();
        (detect, metric)
    } else {
        (Vec::new(), Vec::new())
    };
    timings.decode_ms = ms(start);
    timings.frames = detect.len();

    // Reference images by path, at the detection size, loaded at most once per run.
    let mut references: HashMap<String, GrayFrame> = HashMap::new();
    let mut scores = Vec::with_capacity(enabled.len());
    for cfg in enabled {
        let t = Instant::now();
        let (idx, fps) = subsample(detect.len(), decode_fps, check_fps(cfg)?);
        let score = match cfg.check.as_str() {
            "face_confidence" => {
                let reference = match opt_str(&cfg.options, &cfg.check, "reference")? {
                    Some(p) => Some((
                        p.clone(),
                        load_reference(&mut references, &p, (dw, dh))?.clone(),
                    )),
                    None => None,
                };
                let reference = reference.as_ref().map(|(p, image)| (p.as_str(), image));
                face::face_confidence(
                    &cfg.options,
                    &pick(&detect, &idx),
                    fps,
                    settings.threads,
                    reference,
                )?
            }
            "black_frames" => metrics::black_frames(&cfg.options, &pick(&metric, &idx), fps)?,
            "frozen_frames" => metrics::frozen_frames(&cfg.options, &pick(&metric, &idx), fps)?,
            "motion" => metrics::motion(&cfg.options, &pick(&metric, &idx), fps)?,
            "sharpness" => {
                let (reference_var, from) =
                    sharpness_reference(cfg, &mut references, (dw, dh), (mw, mh))?;
                metrics::sharpness(&pick(&metric, &idx), fps, reference_var, &from)
            }
            "technical" => technical::technical(&cfg.options, &info)?,
            other => {
                return Err(QaError::Internal(format!(
                    "no built-in check named {other}"
                )))
            }
        };
        *timings.checks.entry(cfg.check.clone()).or_default() += ms(t);
        scores.push(score);
    }
    timings.total_ms = ms(start);
    Ok((scores, timings))
}

fn pick<'a>(frames: &'a [GrayFrame], idx: &[usize]) -> Vec<&'a GrayFrame> {
    idx.iter().map(|&i| &frames[i]).collect()
}

/// The sharpness normaliser: `reference_var`, else the `reference` image's Laplacian variance
/// (loaded like a frame: detection size, then area-averaged to the metric size), else the default.
fn sharpness_reference(
    cfg: &CheckConfig,
    references: &mut HashMap<String, GrayFrame>,
    detect: (u32, u32),
    metric: (u32, u32),
) -> Result<(f64, String), QaError> {
    if let Some(v) = metrics::sharpness_reference_option(&cfg.options)? {
        return Ok((v, "option reference_var".into()));
    }
    if let Some(p) = opt_str(&cfg.options, "sharpness", "reference")? {
        let image = load_reference(references, &p, detect)?;
        let v = metrics::laplacian_var(&downscale(image, metric.0, metric.1));
        if v > 0.0 {
            return Ok((v, format!("reference image {p}")));
        }
    }
    Ok((metrics::DEFAULT_REFERENCE_VAR, "default".into()))
}

fn load_reference<'a>(
    references: &'a mut HashMap<String, GrayFrame>,
    path: &str,
    size: (u32, u32),
) -> Result<&'a GrayFrame, QaError> {
    if !references.contains_key(path) {
        let image = decode::load_gray_image(Path::new(path), size.0, size.1)?;
        references.insert(path.to_string(), image);
    }
    Ok(&references[path])
}

/// Scores videos; cheap to clone and share.
#[derive(Debug, Clone, Default)]
pub struct QaRunner {
    settings: QaSettings,
}

impl QaRunner {
    pub fn new(settings: QaSettings) -> Self {
        Self { settings }
    }

    pub fn settings(&self) -> &QaSettings {
        &self.settings
    }

    /// Scores a video against the enabled checks and command checks. Never panics on bad input;
    /// an unreadable video or a failing command gives `QaVerdict { error: Some(..) }`.
    ///
    /// Built-in checks run in `spawn_blocking` while the command checks run concurrently. `source`
    /// is `builtin`, plus `+command:<name>` per command check.
    pub async fn score(
        &self,
        video: &Path,
        checks: &[CheckConfig],
        commands: &[CommandCheck],
    ) -> QaVerdict {
        let builtin = {
            let (settings, video, checks) =
                (self.settings.clone(), video.to_path_buf(), checks.to_vec());
            async move {
                if builtin_enabled(&checks).is_empty() {
                    return Ok(Vec::new());
                }
                tokio::task::spawn_blocking(move || {
                    score_with_timings(&settings, &video, &checks).map(|(s, _)| s)
                })
                .await
                .unwrap_or_else(|e| Err(QaError::Internal(format!("built-in QA task failed: {e}"))))
            }
        };
        let commands_run = run_commands(video.to_path_buf(), commands.to_vec());
        let (builtin, command_results) = tokio::join!(builtin, commands_run);

        let mut verdict = QaVerdict::default();
        let mut errors = Vec::new();
        match builtin {
            Ok(scores) => verdict.scores.extend(scores),
            Err(e) => errors.push(e.to_string()),
        }
        for result in command_results {
            match result {
                Ok(scores) => verdict.scores.extend(scores),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            verdict.error = Some(errors.join("; "));
        }
        verdict.source = std::iter::once("builtin".to_string())
            .chain(commands.iter().map(|c| format!("command:{}", c.name)))
            .collect::<Vec<_>>()
            .join("+");
        verdict
    }
}

/// Runs every command check concurrently; results keep the commands' order.
async fn run_commands(
    video: PathBuf,
    commands: Vec<CommandCheck>,
) -> Vec<Result<Vec<CheckScore>, QaError>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, cmd) in commands.iter().cloned().enumerate() {
        let video = video.clone();
        set.spawn(async move { (i, command::run_command_check(&cmd, &video).await) });
    }
    let mut out: Vec<Option<Result<Vec<CheckScore>, QaError>>> = vec![None; commands.len()];
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, r)) => out[i] = Some(r),
            Err(e) => tracing::error!("command check task failed: {e}"),
        }
    }
    out.into_iter()
        .zip(&commands)
        .map(|(r, c)| {
            r.unwrap_or_else(|| {
                Err(QaError::Command {
                    name: c.name.clone(),
                    program: c.program.clone(),
                    cause: "crashed inside retake".into(),
                    stderr: String::new(),
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsample_takes_every_kth_frame() {
        assert_eq!(subsample(6, 2.0, 2.0), (vec![0, 1, 2, 3, 4, 5], 2.0));
        assert_eq!(subsample(6, 2.0, 1.0), (vec![0, 2, 4], 1.0));
        assert_eq!(subsample(3, 2.0, 8.0).0, vec![0, 1, 2]);
    }

    #[test]
    fn settings_are_validated() {
        let bad = QaSettings {
            sample_fps: 0.0,
            ..Default::default()
        };
        let e = score_with_timings(&bad, Path::new("/nonexistent.mp4"), &[]).unwrap_err();
        assert!(matches!(e, QaError::Settings(_)));
    }
}
