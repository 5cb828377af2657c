//! The built-in checks on real clips: what a user would notice is the verdict a clip gets.

mod common;

use common::{check, face_check, face_clip, lavfi_clip};
use retake_core::qa::{evaluate, Verdict};
use retake_qa::{reference_image_path, score_with_timings, ClipSpec, QaRunner, QaSettings};
use serde_json::json;
use std::path::Path;

async fn verdict_of(
    video: &Path,
    checks: &[retake_core::qa::CheckConfig],
) -> retake_core::qa::QualityScores {
    let verdict = QaRunner::new(QaSettings::default())
        .score(video, checks, &[])
        .await;
    assert_eq!(verdict.error, None, "unexpected QA error");
    assert_eq!(verdict.source, "builtin");
    evaluate(&verdict, checks).expect("every enabled check is scored")
}

#[tokio::test]
async fn a_clean_face_clip_passes_face_confidence() {
    let dir = tempfile::tempdir().unwrap();
    let clip = face_clip(dir.path(), "clean.mp4", ClipSpec::default()).await;
    let q = verdict_of(&clip, &[face_check()]).await;
    let r = &q.checks["face_confidence"];
    assert_eq!(
        r.verdict,
        Verdict::Pass,
        "score {} details {}",
        r.score,
        r.details
    );
    assert!(
        r.details["reference_scores"].as_array().unwrap().len() >= 2,
        "the reference shows several faces"
    );
}

#[tokio::test]
async fn a_heavily_blurred_face_clip_fails_face_confidence_and_sharpness() {
    let dir = tempfile::tempdir().unwrap();
    let clip = face_clip(
        dir.path(),
        "blur.mp4",
        ClipSpec {
            blur_sigma: 6.0,
            ..Default::default()
        },
    )
    .await;
    let sharpness = check(
        "sharpness",
        0.6,
        0.4,
        json!({ "reference": reference_image_path() }),
    );
    let q = verdict_of(&clip, &[face_check(), sharpness]).await;
    assert_eq!(
        q.checks["face_confidence"].verdict,
        Verdict::Fail,
        "{:?}",
        q.checks["face_confidence"]
    );
    assert_eq!(
        q.checks["sharpness"].verdict,
        Verdict::Fail,
        "{:?}",
        q.checks["sharpness"]
    );
    assert!(q.failed_checks().contains(&"face_confidence"));
}

#[tokio::test]
async fn a_warped_face_clip_fails_face_confidence() {
    let dir = tempfile::tempdir().unwrap();
    let clip = face_clip(
        dir.path(),
        "warp.mp4",
        ClipSpec {
            warp: 0.75,
            seed: 5,
            ..Default::default()
        },
    )
    .await;
    let q = verdict_of(&clip, &[face_check()]).await;
    let r = &q.checks["face_confidence"];
    assert_eq!(r.verdict, Verdict::Fail, "score {}", r.score);
    assert!(r.details["worst_frame"].is_u64());
}

#[tokio::test]
async fn without_a_reference_image_the_first_clean_frame_is_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let clip = face_clip(
        dir.path(),
        "clean.mp4",
        ClipSpec {
            seed: 9,
            ..Default::default()
        },
    )
    .await;
    let q = verdict_of(
        &clip,
        &[check("face_confidence", 0.7, 0.5, json!({ "fps": 1 }))],
    )
    .await;
    let r = &q.checks["face_confidence"];
    assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    assert_eq!(r.details["reference"]["frame"], 0);
    assert_eq!(r.details["sample_fps"], 1.0);
}

#[tokio::test]
async fn black_frames_fail_black_frames_and_a_normal_clip_passes() {
    let dir = tempfile::tempdir().unwrap();
    let black_tail = lavfi_clip(
        dir.path(),
        "black_tail.mp4",
        "testsrc2=size=320x180:rate=12:duration=3",
        Some("drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='gte(t,1)'"),
    );
    let normal = lavfi_clip(
        dir.path(),
        "normal.mp4",
        "testsrc2=size=320x180:rate=12:duration=3",
        None,
    );
    let checks = [
        check("black_frames", 0.98, 0.9, json!(null)),
        check("frozen_frames", 0.9, 0.7, json!(null)),
    ];

    let q = verdict_of(&black_tail, &checks).await;
    let r = &q.checks["black_frames"];
    assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
    assert_eq!(
        r.details["first_bad_frame"], 2,
        "black starts at 1 s = the third sample at 2 fps"
    );

    let q = verdict_of(&normal, &checks).await;
    assert!(q.passed(), "{q:?}");

    let all_black = lavfi_clip(
        dir.path(),
        "black.mp4",
        "color=black:size=320x180:rate=12:duration=2",
        None,
    );
    let q = verdict_of(&all_black, &checks[..1]).await;
    assert_eq!(q.checks["black_frames"].score, 0.0);
}

#[tokio::test]
async fn a_rendered_clip_with_black_frames_fails_black_frames() {
    let dir = tempfile::tempdir().unwrap();
    let clip = face_clip(
        dir.path(),
        "black.mp4",
        ClipSpec {
            black_fraction: 0.5,
            seed: 2,
            ..Default::default()
        },
    )
    .await;
    let q = verdict_of(&clip, &[check("black_frames", 0.98, 0.9, json!(null))]).await;
    assert_eq!(q.checks["black_frames"].verdict, Verdict::Fail);
}

#[tokio::test]
async fn a_frozen_clip_fails_frozen_frames_and_motion() {
    let dir = tempfile::tempdir().unwrap();
    let frozen = lavfi_clip(
        dir.path(),
        "frozen.mp4",
        "testsrc2=size=320x180:rate=12:duration=0.1",
        Some("tpad=stop_mode=clone:stop_duration=3"),
    );
    let checks = [
        check("frozen_frames", 0.9, 0.7, json!(null)),
        check("motion", 0.6, 0.3, json!(null)),
    ];
    let q = verdict_of(&frozen, &checks).await;
    assert_eq!(
        q.checks["frozen_frames"].verdict,
        Verdict::Fail,
        "{:?}",
        q.checks["frozen_frames"]
    );
    assert_eq!(q.checks["motion"].verdict, Verdict::Fail);
    assert_eq!(q.checks["motion"].details["classified"], "static");

    let rendered = face_clip(
        dir.path(),
        "frozen_faces.mp4",
        ClipSpec {
            frozen: true,
            ..Default::default()
        },
    )
    .await;
    let q = verdict_of(&rendered, &checks[..1]).await;
    assert_eq!(q.checks["frozen_frames"].verdict, Verdict::Fail);
}

#[tokio::test]
async fn a_wrong_resolution_fails_technical_and_names_the_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let clip = lavfi_clip(
        dir.path(),
        "small.mp4",
        "testsrc2=size=320x240:rate=12:duration=2",
        None,
    );
    let targets = json!({ "width": 640, "height": 360, "fps": 12, "duration_seconds": 2 });
    let q = verdict_of(&clip, &[check("technical", 0.9, 0.75, targets.clone())]).await;
    let r = &q.checks["technical"];
    assert_eq!(r.verdict, Verdict::Fail);
    let fields: Vec<&str> = r.details["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["width", "height"]);

    let right = lavfi_clip(
        dir.path(),
        "right.mp4",
        "testsrc2=size=640x360:rate=12:duration=2",
        None,
    );
    let q = verdict_of(&right, &[check("technical", 0.9, 0.75, targets)]).await;
    assert_eq!(q.checks["technical"].score, 1.0);
}

#[tokio::test]
async fn disabled_and_unknown_checks_are_not_computed() {
    let dir = tempfile::tempdir().unwrap();
    let clip = lavfi_clip(
        dir.path(),
        "normal.mp4",
        "testsrc2=size=320x180:rate=12:duration=2",
        None,
    );
    let mut face = face_check();
    face.enabled = false;
    let checks = [
        face,
        check("black_frames", 0.9, 0.5, json!(null)),
        check("studio_logo", 0.9, 0.5, json!(null)),
    ];
    let (scores, timings) = score_with_timings(&QaSettings::default(), &clip, &checks).unwrap();
    assert_eq!(
        scores.iter().map(|s| s.check.as_str()).collect::<Vec<_>>(),
        ["black_frames"]
    );
    assert_eq!(timings.checks.keys().collect::<Vec<_>>(), ["black_frames"]);
    assert!(timings.frames >= 4 && timings.video_seconds > 1.9);
}

#[tokio::test]
async fn an_unreadable_video_is_a_qa_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.mp4");
    std::fs::write(&garbage, b"this is not a video at all").unwrap();
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let missing = dir.path().join("missing.mp4");
    let runner = QaRunner::new(QaSettings::default());
    let checks = [face_check(), check("black_frames", 0.9, 0.5, json!(null))];
    for video in [&garbage, &empty, &missing] {
        let verdict = runner.score(video, &checks, &[]).await;
        let error = verdict.error.clone().expect("a QA error");
        assert!(error.contains("cannot read video"), "{error}");
        assert!(
            evaluate(&verdict, &checks).is_err(),
            "an error never counts as a pass"
        );
    }
}

#[tokio::test]
async fn a_bad_option_is_a_qa_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let clip = lavfi_clip(
        dir.path(),
        "normal.mp4",
        "testsrc2=size=320x180:rate=12:duration=1",
        None,
    );
    let runner = QaRunner::new(QaSettings::default());
    let bad = [check(
        "face_confidence",
        0.7,
        0.5,
        json!({ "reference": dir.path().join("nope.jpg") }),
    )];
    let error = runner
        .score(&clip, &bad, &[])
        .await
        .error
        .expect("a QA error");
    assert!(error.contains("nope.jpg"), "{error}");
    let bad = [check("motion", 0.7, 0.5, json!({ "fps": "fast" }))];
    let error = runner
        .score(&clip, &bad, &[])
        .await
        .error
        .expect("a QA error");
    assert!(error.contains("`fps`"), "{error}");
}
