//! Renders short demo clips for the simulated backend: the shipped reference image with faces,
//! slowly zoomed and panned, with seed-dependent damage, encoded as H.264 mp4.
//!
//! Owns the ffmpeg filter graph and the reference image's location. One ffmpeg process per clip,
//! and the expensive filters run once per clip rather than once per frame: the still is scaled,
//! blurred (`gblur`) and warped (`geq` wave displacement) as a *single* frame, then `zoompan`
//! (d = frame count) turns it into the animation. Noise (`noise`, temporal) and black frames
//! (`drawbox` over a seed-chosen run of frames) are applied per frame; both are cheap. `frozen`
//! keeps the camera still and adds the noise before `zoompan`, so every frame is the same picture.
//! Encoding is libx264 `ultrafast`, yuv420p. A 640×360, 3 s, 12 fps clip renders in well under a
//! second on 2 cores.
//!
//! Damage parameters are in units of the output clip: `blur_sigma` in pixels, `noise` as ffmpeg's
//! noise strength 0–100, `warp` 0–1 where 1 displaces pixels by 4% of the height (about 14 px at
//! 360p) in a wave of period ⅙ of the frame. CALIBRATION.md has the scores these produce.

use crate::QaError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The shipped reference image (`assets/reference/faces.jpg`, public domain).
static REFERENCE_JPEG: &[u8] = include_bytes!("../../../assets/reference/faces.jpg");

/// What to render. Damage fields at 0 / `false` give a clean clip.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipSpec {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub seconds: f64,
    /// Varies camera motion, noise pattern, warp phase and where black frames fall.
    pub seed: u64,
    /// Gaussian blur sigma in output pixels.
    pub blur_sigma: f64,
    /// Noise strength 0–100.
    pub noise: f64,
    /// Wave warp 0–1.
    pub warp: f64,
    /// Share of frames that are black, 0–1 (one contiguous run).
    pub black_fraction: f64,
    /// One frame repeated for the whole clip.
    pub frozen: bool,
}

impl Default for ClipSpec {
    fn default() -> Self {
        Self {
            width: 640,
            height: 360,
            fps: 12,
            seconds: 3.0,
            seed: 0,
            blur_sigma: 0.0,
            noise: 0.0,
            warp: 0.0,
            black_fraction: 0.0,
            frozen: false,
        }
    }
}

/// The reference image with faces. In a source checkout this is the file in `assets/reference/`;
/// elsewhere the embedded copy is written once to the temp directory.
pub fn reference_image_path() -> PathBuf {
    let in_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/reference/faces.jpg");
    if let Ok(p) = in_tree.canonicalize() {
        return p;
    }
    let copy = std::env::temp_dir().join(format!(
        "retake-reference-faces-{}.jpg",
        REFERENCE_JPEG.len()
    ));
    let up_to_date = std::fs::metadata(&copy)
        .map(|m| m.len() == REFERENCE_JPEG.len() as u64)
        .unwrap_or(false);
    if !up_to_date {
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = copy.with_extension(format!("{}.tmp", std::process::id()));
        if std::fs::write(&tmp, REFERENCE_JPEG).is_ok() {
            let _ = std::fs::rename(&tmp, &copy);
        }
    }
    copy
}

/// splitmix64: a tiny deterministic stream of numbers from the seed.
struct SeedStream(u64);

impl SeedStream {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl ClipSpec {
    fn validate(&self) -> Result<(), QaError> {
        let bad = |m: &str| Err(QaError::Render(m.to_string()));
        if !(16..=4096).contains(&self.width) || !(16..=4096).contains(&self.height) {
            return bad("width and height must be in 16..=4096");
        }
        if !(1..=120).contains(&self.fps) {
            return bad("fps must be in 1..=120");
        }
        if !(self.seconds.is_finite() && self.seconds > 0.0 && self.seconds <= 600.0) {
            return bad("seconds must be in (0, 600]");
        }
        for (name, v, max) in [
            ("blur_sigma", self.blur_sigma, 100.0),
            ("noise", self.noise, 100.0),
            ("warp", self.warp, 1.0),
            ("black_fraction", self.black_fraction, 1.0),
        ] {
            if !(v.is_finite() && (0.0..=max).contains(&v)) {
                return Err(QaError::Render(format!("{name} must be in 0..={max}")));
            }
        }
        Ok(())
    }

    /// Number of frames in the clip.
    pub fn frame_count(&self) -> u64 {
        ((self.seconds * self.fps as f64).round() as u64).max(1)
    }

    /// The ffmpeg `-filter_complex` graph for this clip (input 0 is the reference image).
    pub fn filter_graph(&self) -> String {
        let (w, h, n) = (self.width & !1, self.height & !1, self.frame_count());
        let mut rng = SeedStream(self.seed);
        let mut f: Vec<String> = vec![
            format!("scale={w}:{h}:force_original_aspect_ratio=increase:flags=bicubic"),
            format!("crop={w}:{h}"),
            "format=yuv420p".into(),
        ];
        if self.blur_sigma > 0.0 {
            f.push(format!("gblur=sigma={:.3}", self.blur_sigma));
        }
        let (phase_x, phase_y) = (
            rng.range(0.0, std::f64::consts::TAU),
            rng.range(0.0, std::f64::consts::TAU),
        );
        if self.warp > 0.0 {
            // Displacement relative to each plane's own size, so chroma follows luma.
            let a = 0.04 * self.warp;
            let e = format!("p(X+{a:.5}*H*sin(2*PI*Y/(H/6)+{phase_x:.3}),Y+{a:.5}*H*sin(2*PI*X/(W/6)+{phase_y:.3}))");
            f.push(format!("geq=lum='{e}':cb='{e}':cr='{e}'"));
        }
        let noise_seed = rng.next_u64() % 1_000_000;
        let noise = |temporal: bool| {
            format!(
                "noise=alls={:.1}:allf={}:all_seed={noise_seed}",
                self.noise,
                if temporal { "t+u" } else { "u" }
            )
        };
        if self.frozen && self.noise > 0.0 {
            f.push(noise(false));
        }
        let zoom_to = rng.range(1.04, 1.10);
        let zoom_in = rng.next_u64().is_multiple_of(2);
        let (z0, z1) = if self.frozen {
            (1.05, 1.05)
        } else if zoom_in {
            (1.0, zoom_to)
        } else {
            (zoom_to, 1.0)
        };
        let (px, py) = if self.frozen {
            (0.0, 0.0)
        } else {
            (rng.range(-0.6, 0.6), rng.range(-0.6, 0.6))
        };
        let last = (n.max(2) - 1) as f64;
        f.push(format!(
            "zoompan=z='{z0:.4}+({z1:.4}-{z0:.4})*on/{last}':x='(iw-iw/zoom)*(0.5+{px:.3}*(on/{last}-0.5))':y='(ih-ih/zoom)*(0.5+{py:.3}*(on/{last}-0.5))':d={n}:s={w}x{h}:fps={}",
            self.fps
        ));
        if !self.frozen && self.noise > 0.0 {
            f.push(noise(true));
        }
        let black = ((self.black_fraction * n as f64).round() as u64).min(n);
        if black > 0 {
            let start = rng.next_u64() % (n - black + 1);
            f.push(format!(
                "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='between(n,{start},{})'",
                start + black - 1
            ));
        }
        f.push("format=yuv420p".into());
        f.join(",")
    }
}

/// Renders `spec` to `out` (H.264 mp4, libx264 ultrafast, yuv420p).
pub async fn render_clip(spec: &ClipSpec, out: &Path) -> Result<(), QaError> {
    spec.validate()?;
    let reference = reference_image_path();
    let n = spec.frame_count();
    let mut cmd = tokio::process::Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(&reference)
        .arg("-vf")
        .arg(spec.filter_graph())
        .args([
            "-frames:v",
            &n.to_string(),
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-threads", "2", "-movflags", "+faststart", "-f", "mp4"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let timeout = Duration::from_secs_f64(60.0 + spec.seconds * 10.0);
    let output = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| {
            QaError::Render(format!(
                "ffmpeg did not finish within {} s",
                timeout.as_secs()
            ))
        })?
        .map_err(|e| QaError::Render(format!("cannot start ffmpeg: {e}")))?;
    if !output.status.success() {
        let tail = crate::process::tail_lossy(&output.stderr, crate::process::STDERR_TAIL_BYTES);
        return Err(QaError::Render(format!(
            "ffmpeg exited with {}: {}",
            output.status,
            tail.trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_graph_and_another_seed_another() {
        let a = ClipSpec {
            seed: 7,
            noise: 10.0,
            black_fraction: 0.25,
            ..Default::default()
        };
        assert_eq!(a.filter_graph(), a.clone().filter_graph());
        assert_ne!(
            a.filter_graph(),
            ClipSpec {
                seed: 8,
                ..a.clone()
            }
            .filter_graph()
        );
        assert!(a.filter_graph().contains("drawbox"));
    }

    #[test]
    fn invalid_specs_are_rejected() {
        assert!(ClipSpec {
            warp: 2.0,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(ClipSpec {
            seconds: 0.0,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(ClipSpec::default().validate().is_ok());
    }

    #[test]
    fn the_reference_image_exists() {
        assert!(reference_image_path().is_file());
    }
}
