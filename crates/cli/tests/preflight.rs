//! Start-up checks: `serve`, `worker` and `demo` stop at once, naming the real cause, when ffmpeg,
//! the web UI bundle or the database is missing — before any segment could fail because of it.

use std::process::{Command, Output};

fn retake(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_retake"));
    cmd.arg("--data-dir").arg(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run retake")
}

fn failure(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a start-up failure; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_demo_that_renders_clips_without_ffmpeg_stops_naming_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let out = retake(
        dir.path(),
        &["demo", "--no-serve", "--clips", "--segments", "3"],
        &[("PATH", empty.path().to_str().unwrap())],
    );
    let err = failure(&out);
    assert!(
        err.contains("ffmpeg") && err.contains("cannot start") && err.contains("PATH"),
        "{err}"
    );
    assert!(
        !dir.path().join("retake.db").exists(),
        "it stopped before opening the store"
    );
}

#[test]
fn serving_without_a_built_ui_stops_with_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("no-ui-here");
    let out = retake(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &[("RETAKE_UI_DIR", nowhere.to_str().unwrap())],
    );
    let err = failure(&out);
    assert!(
        err.contains("the web UI is not built")
            && err.contains("no-ui-here")
            && err.contains("npm run build")
            && err.contains("--no-ui"),
        "{err}"
    );
}

#[test]
fn an_unreachable_database_stops_the_worker_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let out = retake(
        dir.path(),
        &[
            "--database-url",
            "postgres://retake@127.0.0.1:1/retake",
            "worker",
        ],
        &[],
    );
    let err = failure(&out);
    assert!(
        err.contains("cannot reach the database at postgres://retake@127.0.0.1:1/retake"),
        "{err}"
    );
    assert!(
        err.to_lowercase().contains("refused"),
        "the cause is named: {err}"
    );
}
