//! Calibration and benchmark for the built-in QA.
//!
//! `cargo run --release -p retake-qa --example qa_calibrate -- table` renders demo clips with each
//! kind of damage and prints their scores as a Markdown table (CALIBRATION.md comes from it).
//! `… -- bench` renders a 10 s 1280×720 24 fps clip and prints `score_with_timings` for it.
//! `… -- score FILE` scores one video with every built-in check.

use retake_core::qa::CheckConfig;
use retake_qa::{
    reference_image_path, render_clip, score_with_timings, ClipSpec, QaSettings, BUILTIN_CHECKS,
};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

fn all_checks() -> Vec<CheckConfig> {
    let reference = reference_image_path().display().to_string();
    BUILTIN_CHECKS
        .iter()
        .map(|name| {
            let mut c = CheckConfig::new(name, 0.7, 0.5);
            c.options = match *name {
                "face_confidence" | "sharpness" => json!({ "reference": reference }),
                "technical" => json!({ "width": 640, "height": 360, "fps": 12 }),
                _ => serde_json::Value::Null,
            };
            c
        })
        .collect()
}

async fn table(dir: &Path) -> anyhow::Result<()> {
    let cases: Vec<(&str, ClipSpec)> = vec![
        ("clean", ClipSpec::default()),
        (
            "clean, seed 1",
            ClipSpec {
                seed: 1,
                ..Default::default()
            },
        ),
        (
            "clean, seed 2",
            ClipSpec {
                seed: 2,
                ..Default::default()
            },
        ),
        (
            "blur σ1",
            ClipSpec {
                blur_sigma: 1.0,
                ..Default::default()
            },
        ),
        (
            "blur σ2",
            ClipSpec {
                blur_sigma: 2.0,
                ..Default::default()
            },
        ),
        (
            "blur σ3",
            ClipSpec {
                blur_sigma: 3.0,
                ..Default::default()
            },
        ),
        (
            "blur σ4",
            ClipSpec {
                blur_sigma: 4.0,
                ..Default::default()
            },
        ),
        (
            "blur σ6",
            ClipSpec {
                blur_sigma: 6.0,
                ..Default::default()
            },
        ),
        (
            "blur σ8",
            ClipSpec {
                blur_sigma: 8.0,
                ..Default::default()
            },
        ),
        (
            "noise 15",
            ClipSpec {
                noise: 15.0,
                ..Default::default()
            },
        ),
        (
            "noise 30",
            ClipSpec {
                noise: 30.0,
                ..Default::default()
            },
        ),
        (
            "noise 60",
            ClipSpec {
                noise: 60.0,
                ..Default::default()
            },
        ),
        (
            "noise 100",
            ClipSpec {
                noise: 100.0,
                ..Default::default()
            },
        ),
        (
            "warp 0.25",
            ClipSpec {
                warp: 0.25,
                ..Default::default()
            },
        ),
        (
            "warp 0.5",
            ClipSpec {
                warp: 0.5,
                ..Default::default()
            },
        ),
        (
            "warp 0.75",
            ClipSpec {
                warp: 0.75,
                ..Default::default()
            },
        ),
        (
            "warp 1.0",
            ClipSpec {
                warp: 1.0,
                ..Default::default()
            },
        ),
        (
            "black 0.25",
            ClipSpec {
                black_fraction: 0.25,
                ..Default::default()
            },
        ),
        (
            "black 0.6",
            ClipSpec {
                black_fraction: 0.6,
                ..Default::default()
            },
        ),
        (
            "frozen",
            ClipSpec {
                frozen: true,
                ..Default::default()
            },
        ),
    ];
    let checks = all_checks();
    let settings = QaSettings::default();
    print!("| damage | render ms |");
    for c in BUILTIN_CHECKS {
        print!(" {c} |");
    }
    println!();
    println!("|---|---|{}", "---|".repeat(BUILTIN_CHECKS.len()));
    for (label, spec) in cases {
        let out = dir.join(format!("{}.mp4", label.replace([' ', ',', 'σ', '.'], "_")));
        let t = Instant::now();
        render_clip(&spec, &out).await?;
        let render_ms = t.elapsed().as_secs_f64() * 1000.0;
        let (scores, _) = score_with_timings(&settings, &out, &checks)?;
        print!("| {label} | {render_ms:.0} |");
        for s in &scores {
            let raw = match s.check.as_str() {
                "sharpness" => format!(" (var {})", s.details["median_laplacian_var"]),
                "motion" => format!(" (diff {})", s.details["median_frame_diff"]),
                _ => String::new(),
            };
            print!(" {:.2}{raw} |", s.score);
        }
        println!();
    }
    Ok(())
}

async fn bench(dir: &Path) -> anyhow::Result<()> {
    let spec = ClipSpec {
        width: 1280,
        height: 720,
        fps: 24,
        seconds: 10.0,
        seed: 3,
        ..Default::default()
    };
    let out = dir.join("bench_720p.mp4");
    let t = Instant::now();
    render_clip(&spec, &out).await?;
    println!(
        "rendered 10 s 1280x720 24 fps clip in {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let mut checks = all_checks();
    for c in &mut checks {
        if c.check == "technical" {
            c.options = json!({ "width": 1280, "height": 720, "fps": 24, "duration_seconds": 10 });
        }
    }
    for run in 1..=4 {
        // The last run uses one detector thread, to show what the second thread buys.
        let settings = QaSettings {
            threads: if run == 4 { 1 } else { 2 },
            ..Default::default()
        };
        let (scores, t) = score_with_timings(&settings, &out, &checks)?;
        println!(
            "run {run} ({} threads): total {:.0} ms (decode {:.0} ms, {} frames), real-time factor {:.1}x, checks: {}",
            settings.threads,
            t.total_ms,
            t.decode_ms,
            t.frames,
            t.video_seconds * 1000.0 / t.total_ms,
            t.checks.iter().map(|(k, v)| format!("{k} {v:.1} ms")).collect::<Vec<_>>().join(", ")
        );
        if run == 1 {
            let summary: Vec<String> = scores
                .iter()
                .map(|s| format!("{} {:.2}", s.check, s.score))
                .collect();
            println!("scores: {}", summary.join(", "));
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = tempfile::tempdir()?;
    match args.first().map(String::as_str) {
        Some("bench") => bench(dir.path()).await,
        Some("score") => {
            let file = args
                .get(1)
                .ok_or_else(|| anyhow::anyhow!("usage: score FILE"))?;
            let (scores, t) =
                score_with_timings(&QaSettings::default(), Path::new(file), &all_checks())?;
            println!("{}", serde_json::to_string_pretty(&scores)?);
            println!("{t:?}");
            Ok(())
        }
        _ => table(dir.path()).await,
    }
}
