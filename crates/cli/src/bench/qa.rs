//! `retake bench qa`: frames per second and real-time factor of the QA runner on a 10-second
//! 720p clip, per check and overall.

use retake_core::CheckConfig;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print `{"realtime_factor", "frames_per_s", "checks": {"<check>": {"ms"}}}`.
    #[arg(long)]
    pub json: bool,
    /// Clip to score (default: a 10 s 1280×720 clip rendered from the reference image).
    #[arg(long)]
    pub video: Option<PathBuf>,
    /// Runs to average.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
}

pub async fn run(_g: crate::common::GlobalArgs, a: Args) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let video = match a.video.clone() {
        Some(v) => v,
        None => {
            let out = dir.join("bench-720p.mp4");
            let spec = retake_qa::ClipSpec {
                width: 1280,
                height: 720,
                fps: 24,
                seconds: 10.0,
                seed: 1,
                ..retake_qa::ClipSpec::default()
            };
            retake_qa::render_clip(&spec, &out).await?;
            out
        }
    };
    let reference = retake_qa::reference_image_path();
    let mut checks: Vec<CheckConfig> = retake_qa::BUILTIN_CHECKS
        .iter()
        .map(|c| CheckConfig::new(c, 0.5, 0.3))
        .collect();
    for c in checks.iter_mut() {
        if c.check == "face_confidence" || c.check == "sharpness" {
            c.options = serde_json::json!({"reference": reference});
        }
        if c.check == "technical" {
            c.options = serde_json::json!({"width": 1280, "height": 720, "fps": 24, "duration_seconds": 10});
        }
    }
    let settings = retake_qa::QaSettings::default();
    let runs = a.runs.max(1);
    let mut total = 0.0;
    let mut frames = 0usize;
    let mut per_check: std::collections::BTreeMap<String, f64> = Default::default();
    let mut decode = 0.0;
    let mut video_seconds = 0.0;
    for _ in 0..runs {
        let s = settings.clone();
        let v = video.clone();
        let c = checks.clone();
        let (_, t) = tokio::task::spawn_blocking(move || retake_qa::score_with_timings(&s, &v, &c))
            .await??;
        total += t.total_ms;
        decode += t.decode_ms;
        frames = t.frames;
        video_seconds = t.video_seconds;
        for (k, ms) in t.checks {
            *per_check.entry(k).or_default() += ms;
        }
    }
    let total = total / runs as f64;
    let decode = decode / runs as f64;
    for v in per_check.values_mut() {
        *v /= runs as f64;
    }
    let rtf = video_seconds * 1000.0 / total;
    let fps = frames as f64 * 1000.0 / total;
    if a.json {
        let checks: serde_json::Map<String, serde_json::Value> = per_check
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!({"ms": round2(*v)})))
            .collect();
        println!(
            "{}",
            serde_json::json!({"realtime_factor": round2(rtf), "frames_per_s": round2(fps), "decode_ms": round2(decode), "total_ms": round2(total), "frames": frames, "video_seconds": video_seconds, "checks": checks})
        );
    } else {
        println!("QA runner on {} ({video_seconds:.1} s of video, {frames} sampled frames, mean of {runs} runs)", video.display());
        println!("{:<20}{:>12}", "stage", "ms");
        println!("{:<20}{:>12.1}", "decode (ffmpeg)", decode);
        for (k, v) in &per_check {
            println!("{:<20}{:>12.1}", k, v);
        }
        println!("{:<20}{:>12.1}", "total", total);
        println!("\nreal-time factor {rtf:.1}×, {fps:.1} sampled frames/s");
    }
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("retake-bench-qa-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
