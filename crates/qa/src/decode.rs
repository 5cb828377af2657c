//! Turns a video file into the few small gray frames the checks look at.
//!
//! Owns probing (ffprobe: resolution, duration, frame rate) and decoding. A run decodes the video
//! **once**, with one ffmpeg process that samples and downscales in the decoder's own pipeline:
//!
//! ```text
//! ffmpeg -v error -i IN -vf fps=RATE,scale=W:H:flags=fast_bilinear -f rawvideo -pix_fmt gray -
//! ```
//!
//! `W×H` is the *detection* size (the video's aspect at `QaSettings::detect_width`, never upscaled),
//! because face detection needs faces of at least ~40 px. The *metric* frames (320×180 for a 16:9
//! clip) that the cheap per-frame checks use are derived from those in Rust by area averaging
//! ([`downscale`]), which costs well under a millisecond per frame; a second ffmpeg pass would
//! decode the whole video again. Nothing here decodes every frame at full resolution into memory.
//!
//! Only luma is decoded: no built-in check needs colour. It must not score anything.

use crate::process::{quote_tail, run_tool};
use crate::QaError;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// At most this many frames are sampled from one video; longer videos are sampled more sparsely.
pub const MAX_SAMPLED_FRAMES: usize = 1200;

/// What ffprobe says about a video's first video stream.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    /// Average frame rate (0 when unknown, e.g. for a still image).
    pub fps: f64,
    /// Duration in seconds (0 when unknown).
    pub duration_seconds: f64,
}

/// One 8-bit gray frame, row-major without padding.
#[derive(Debug, Clone, PartialEq)]
pub struct GrayFrame {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl GrayFrame {
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Self {
        debug_assert_eq!(data.len(), width as usize * height as usize);
        Self {
            width,
            height,
            data,
        }
    }
}

/// Reads resolution, frame rate and duration with ffprobe.
pub fn probe(path: &Path) -> Result<VideoInfo, QaError> {
    let unreadable = |reason: String| QaError::Unreadable {
        path: path.display().to_string(),
        reason,
    };
    if !path.is_file() {
        return Err(unreadable("no such file".into()));
    }
    let args = [
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=width,height,avg_frame_rate,r_frame_rate,duration:format=duration",
        "-of",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([path_arg(path)])
    .collect::<Vec<_>>();
    let out = run_tool("ffprobe", &args, Duration::from_secs(30), 1 << 20)
        .map_err(|e| unreadable(e.to_string()))?;
    let json: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| unreadable(format!("ffprobe output: {e}")))?;
    let stream = json["streams"]
        .get(0)
        .ok_or_else(|| unreadable("no video stream".into()))?;
    let dim = |k: &str| {
        stream[k]
            .as_u64()
            .filter(|v| *v > 0 && *v <= 16384)
            .map(|v| v as u32)
    };
    let (Some(width), Some(height)) = (dim("width"), dim("height")) else {
        return Err(unreadable("video stream has no usable resolution".into()));
    };
    let fps = [&stream["avg_frame_rate"], &stream["r_frame_rate"]]
        .into_iter()
        .filter_map(|v| v.as_str().and_then(parse_rate))
        .next()
        .unwrap_or(0.0);
    let duration_seconds = [&stream["duration"], &json["format"]["duration"]]
        .into_iter()
        .filter_map(|v| v.as_str().and_then(|s| s.parse::<f64>().ok()))
        .find(|d| d.is_finite() && *d > 0.0)
        .unwrap_or(0.0);
    Ok(VideoInfo {
        width,
        height,
        fps,
        duration_seconds,
    })
}

/// `"30000/1001"` → 29.97; `"0/0"` → None.
fn parse_rate(s: &str) -> Option<f64> {
    let (n, d) = s.split_once('/').unwrap_or((s, "1"));
    let (n, d) = (n.trim().parse::<f64>().ok()?, d.trim().parse::<f64>().ok()?);
    let r = n / d;
    (r.is_finite() && r > 0.0).then_some(r)
}

/// A path as an ffmpeg input argument; `file:` keeps names like `-x` or `a:b` from being parsed
/// as options or protocols.
fn path_arg(path: &Path) -> String {
    format!("file:{}", path.display())
}

/// The detection size for a video: its aspect ratio at `max_width`, never upscaled, even sides.
pub fn fit_size(width: u32, height: u32, max_width: u32) -> (u32, u32) {
    let w = width.min(max_width.max(2));
    let h = (height as f64 * w as f64 / width as f64).round() as u32;
    (even(w), even(h))
}

fn even(v: u32) -> u32 {
    (v.max(2) / 2) * 2
}

/// Samples `fps` frames per second, scaled to `width×height` gray, in one ffmpeg pass.
pub fn decode_gray(
    path: &Path,
    info: &VideoInfo,
    fps: f64,
    width: u32,
    height: u32,
) -> Result<Vec<GrayFrame>, QaError> {
    let frame_bytes = width as usize * height as usize;
    let args = vec![
        "-nostdin".into(),
        "-v".into(),
        "error".into(),
        "-i".into(),
        path_arg(path),
        "-an".into(),
        "-vf".into(),
        format!("fps={fps},scale={width}:{height}:flags=fast_bilinear"),
        "-frames:v".into(),
        MAX_SAMPLED_FRAMES.to_string(),
        "-f".into(),
        "rawvideo".into(),
        "-pix_fmt".into(),
        "gray".into(),
        "-".into(),
    ];
    // Generous: decoding runs many times faster than real time; this only catches a hung ffmpeg.
    let timeout = Duration::from_secs_f64(120.0 + 4.0 * info.duration_seconds.min(86_400.0));
    let out = run_tool(
        "ffmpeg",
        &args,
        timeout,
        frame_bytes * (MAX_SAMPLED_FRAMES + 1),
    )
    .map_err(|e| QaError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let frames: Vec<GrayFrame> = out
        .stdout
        .chunks_exact(frame_bytes)
        .map(|c| GrayFrame::new(width, height, c.to_vec()))
        .collect();
    if frames.is_empty() {
        return Err(QaError::Unreadable {
            path: path.display().to_string(),
            reason: format!(
                "ffmpeg decoded no frames; stderr: {}",
                quote_tail(&out.stderr_tail)
            ),
        });
    }
    Ok(frames)
}

/// Loads a still image (or a video's first frame) as gray at exactly `width×height`, with the same
/// scaler as [`decode_gray`] so detector scores stay comparable. An image of another aspect ratio
/// is scaled to cover that size and centre-cropped (as image-to-video models frame their input),
/// never stretched: stretched faces are not detected.
pub fn load_gray_image(path: &Path, width: u32, height: u32) -> Result<GrayFrame, QaError> {
    let unreadable = |reason: String| QaError::Unreadable {
        path: path.display().to_string(),
        reason,
    };
    if !path.is_file() {
        return Err(unreadable("no such file".into()));
    }
    let args = vec![
        "-nostdin".into(),
        "-v".into(),
        "error".into(),
        "-i".into(),
        path_arg(path),
        "-frames:v".into(),
        "1".into(),
        "-vf".into(),
        format!("scale={width}:{height}:force_original_aspect_ratio=increase:flags=fast_bilinear,crop={width}:{height}"),
        "-f".into(),
        "rawvideo".into(),
        "-pix_fmt".into(),
        "gray".into(),
        "-".into(),
    ];
    let n = width as usize * height as usize;
    let out = run_tool("ffmpeg", &args, Duration::from_secs(60), n + 1)
        .map_err(|e| unreadable(e.to_string()))?;
    if out.stdout.len() != n {
        return Err(unreadable(format!(
            "ffmpeg returned {} bytes for a {width}×{height} image",
            out.stdout.len()
        )));
    }
    Ok(GrayFrame::new(width, height, out.stdout))
}

/// Area-averaging downscale (each output pixel is the mean of the source pixels it covers).
/// Upscaling requests return a copy at the source size.
pub fn downscale(src: &GrayFrame, width: u32, height: u32) -> GrayFrame {
    if width >= src.width || height >= src.height || width == 0 || height == 0 {
        return src.clone();
    }
    let (sw, sh) = (src.width as usize, src.height as usize);
    let (dw, dh) = (width as usize, height as usize);
    let bounds = |i: usize, s: usize, d: usize| (i * s / d, ((i + 1) * s / d).max(i * s / d + 1));
    let xs: Vec<(usize, usize)> = (0..dw).map(|x| bounds(x, sw, dw)).collect();
    let mut data = vec![0u8; dw * dh];
    let mut row_sum = vec![0u32; sw];
    for y in 0..dh {
        let (y0, y1) = bounds(y, sh, dh);
        row_sum.iter_mut().for_each(|v| *v = 0);
        for sy in y0..y1 {
            let row = &src.data[sy * sw..(sy + 1) * sw];
            row_sum
                .iter_mut()
                .zip(row)
                .for_each(|(acc, &p)| *acc += p as u32);
        }
        let rows = (y1 - y0) as u32;
        for (x, &(x0, x1)) in xs.iter().enumerate() {
            let sum: u32 = row_sum[x0..x1].iter().sum();
            let n = rows * (x1 - x0) as u32;
            data[y * dw + x] = ((sum + n / 2) / n) as u8;
        }
    }
    GrayFrame::new(width, height, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_fractions() {
        assert!((parse_rate("30000/1001").unwrap() - 29.97).abs() < 0.01);
        assert_eq!(parse_rate("12/1"), Some(12.0));
        assert_eq!(parse_rate("0/0"), None);
    }

    #[test]
    fn fit_size_keeps_aspect_and_never_upscales() {
        assert_eq!(fit_size(1280, 720, 640), (640, 360));
        assert_eq!(fit_size(320, 240, 640), (320, 240));
        assert_eq!(fit_size(1080, 1920, 640), (640, 1138));
    }

    #[test]
    fn downscale_averages_blocks() {
        let src = GrayFrame::new(4, 2, vec![0, 100, 10, 10, 100, 200, 10, 10]);
        let d = downscale(&src, 2, 1);
        assert_eq!(d.data, vec![100, 10]);
    }
}
