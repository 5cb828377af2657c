//! Command checks speak the real protocol: scripts in a temp dir read the config on stdin, get the
//! video path as their last argument, and print results, garbage, nothing, or hang.

mod common;

use common::{check, lavfi_clip};
use retake_core::qa::{evaluate, CommandCheck, QaVerdict, Verdict};
use retake_qa::{QaRunner, QaSettings};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn command(name: &str, program: &Path, timeout_seconds: f64, config: Value) -> CommandCheck {
    CommandCheck {
        name: name.into(),
        program: program.display().to_string(),
        args: vec![],
        timeout_seconds,
        config,
    }
}

async fn run(dir: &Path, commands: &[CommandCheck]) -> QaVerdict {
    // The video is never decoded when only command checks run, so any path will do.
    QaRunner::new(QaSettings::default())
        .score(&dir.join("clip.mp4"), &[], commands)
        .await
}

#[tokio::test]
async fn a_command_gets_config_and_video_and_its_scores_are_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let echo = script(
        dir.path(),
        "echo_config.sh",
        r#"config="$(cat)"
echo "progress goes to stderr" >&2
printf '{"results": [{"check": "studio_logo", "score": 0.8, "details": {"config": %s, "video": "%s"}}]}' "$config" "$1""#,
    );
    let cmd = command("logo", &echo, 10.0, json!({ "threshold": 3 }));
    let verdict = run(dir.path(), &[cmd]).await;
    assert_eq!(verdict.error, None);
    assert_eq!(verdict.source, "builtin+command:logo");
    let s = &verdict.scores[0];
    assert_eq!((s.check.as_str(), s.score), ("studio_logo", 0.8));
    assert_eq!(s.details["config"]["threshold"], 3);
    assert!(s.details["video"].as_str().unwrap().ends_with("clip.mp4"));
    let q = evaluate(&verdict, &[check("studio_logo", 0.9, 0.5, Value::Null)]).unwrap();
    assert_eq!(q.checks["studio_logo"].verdict, Verdict::Warn);
}

#[tokio::test]
async fn a_command_that_hangs_is_killed_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let hang = script(
        dir.path(),
        "hang.sh",
        "echo 'thinking hard' >&2\nsleep 30\necho '{\"results\": []}'",
    );
    let started = std::time::Instant::now();
    let verdict = run(dir.path(), &[command("slow", &hang, 0.5, Value::Null)]).await;
    let error = verdict.error.expect("a QA error");
    assert!(
        error.contains("`slow`") && error.contains("timed out"),
        "{error}"
    );
    assert!(
        error.contains("thinking hard"),
        "stderr tail is kept: {error}"
    );
    // Not a timing assertion: a QA run must not wait out a 30 s hang.
    assert!(
        started.elapsed().as_secs() < 25,
        "the hung script and its sleep were killed"
    );
}

#[tokio::test]
async fn bad_output_is_a_qa_error_never_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("garbage", "echo 'all good!'", "malformed JSON"),
        ("no_results", "echo '{\"scores\": []}'", "no `results`"),
        (
            "out_of_range",
            "echo '{\"results\": [{\"check\": \"x\", \"score\": 7}]}'",
            "outside 0..=1",
        ),
        ("silent", "exit 0", "malformed JSON"),
    ];
    for (name, body, cause) in cases {
        let program = script(dir.path(), &format!("{name}.sh"), body);
        let verdict = run(dir.path(), &[command(name, &program, 10.0, Value::Null)]).await;
        let error = verdict.error.clone().expect("a QA error");
        assert!(
            error.contains(&format!("`{name}`")) && error.contains(cause),
            "{name}: {error}"
        );
        assert!(evaluate(&verdict, &[check("x", 0.5, 0.2, Value::Null)]).is_err());
    }
}

#[tokio::test]
async fn a_non_zero_exit_is_a_qa_error_with_the_stderr_tail() {
    let dir = tempfile::tempdir().unwrap();
    let noisy = "i=0; while [ $i -lt 2000 ]; do echo \"log line $i\" >&2; i=$((i+1)); done";
    let crash = script(
        dir.path(),
        "crash.sh",
        &format!("{noisy}\necho 'model weights missing' >&2\necho '{{\"results\": [{{\"check\": \"x\", \"score\": 1}}]}}'\nexit 3"),
    );
    let verdict = run(dir.path(), &[command("crashy", &crash, 10.0, Value::Null)]).await;
    let error = verdict.error.expect("a QA error");
    assert!(
        error.contains("`crashy`") && error.contains("exit status: 3"),
        "{error}"
    );
    assert!(error.contains("model weights missing"), "{error}");
    assert!(
        !error.contains("log line 0\n"),
        "only the tail of stderr is kept"
    );
    assert!(
        error.len() < 6000,
        "error is bounded: {} bytes",
        error.len()
    );

    let missing = command(
        "ghost",
        &dir.path().join("no-such-program"),
        10.0,
        Value::Null,
    );
    let error = run(dir.path(), &[missing]).await.error.expect("a QA error");
    assert!(
        error.contains("`ghost`") && error.contains("could not start"),
        "{error}"
    );
}

#[tokio::test]
async fn one_failing_command_makes_the_whole_verdict_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let ok = script(
        dir.path(),
        "ok.sh",
        "cat >/dev/null\necho '{\"results\": [{\"check\": \"a\", \"score\": 1}]}'",
    );
    let bad = script(dir.path(), "bad.sh", "exit 1");
    let verdict = run(
        dir.path(),
        &[
            command("ok", &ok, 10.0, Value::Null),
            command("bad", &bad, 10.0, Value::Null),
        ],
    )
    .await;
    assert_eq!(verdict.source, "builtin+command:ok+command:bad");
    assert!(verdict.error.unwrap().contains("`bad`"));
}

#[tokio::test]
async fn the_shipped_example_command_scores_a_real_clip() {
    let dir = tempfile::tempdir().unwrap();
    let clip = lavfi_clip(
        dir.path(),
        "two_seconds.mp4",
        "testsrc2=size=320x180:rate=12:duration=2",
        None,
    );
    let program =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/qa-commands/min_duration.sh");
    let cmd = command(
        "min-duration",
        &program,
        10.0,
        json!({ "min_seconds": 2.5 }),
    );
    let checks = [
        check("black_frames", 0.9, 0.5, Value::Null),
        check("min_duration", 1.0, 0.9, Value::Null),
    ];
    let verdict = QaRunner::new(QaSettings::default())
        .score(&clip, &checks, &[cmd])
        .await;
    assert_eq!(verdict.error, None);
    let q = evaluate(&verdict, &checks).unwrap();
    assert_eq!(q.checks["min_duration"].verdict, Verdict::Fail);
    assert_eq!(q.checks["min_duration"].score, 0.8);
    assert_eq!(q.checks["black_frames"].verdict, Verdict::Pass);
}
