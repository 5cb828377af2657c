//! Demo clips for the simulated backend are real H.264 files with the requested shape.

use retake_qa::decode::probe;
use retake_qa::{reference_image_path, render_clip, ClipSpec};
use std::process::Command;

#[tokio::test]
async fn a_rendered_clip_is_h264_yuv420p_with_the_requested_shape() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clip.mp4");
    let spec = ClipSpec {
        width: 320,
        height: 180,
        fps: 10,
        seconds: 2.0,
        seed: 4,
        noise: 10.0,
        ..Default::default()
    };
    render_clip(&spec, &out).await.unwrap();
    let info = probe(&out).unwrap();
    assert_eq!((info.width, info.height), (320, 180));
    assert!((info.fps - 10.0).abs() < 0.01, "{info:?}");
    assert!((info.duration_seconds - 2.0).abs() < 0.15, "{info:?}");
    let codec = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,pix_fmt",
            "-of",
            "csv=p=0",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&codec.stdout).trim(),
        "h264,yuv420p"
    );
}

#[tokio::test]
async fn an_impossible_spec_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ClipSpec {
        black_fraction: 1.5,
        ..Default::default()
    };
    assert!(render_clip(&spec, &dir.path().join("x.mp4")).await.is_err());
    let spec = ClipSpec::default();
    let error = render_clip(&spec, &dir.path().join("no-such-dir/x.mp4"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("ffmpeg exited"), "{error}");
    assert!(reference_image_path().is_file());
}
