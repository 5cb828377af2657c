//! `retake bench rescue --keep-databases`: every engine run's database is kept, so each
//! segment's attempts and the stopping rule's numbers can be read after the benchmark.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Row};
use std::process::Command;

#[tokio::test]
async fn kept_databases_hold_every_segment_and_the_rules_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("runs");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/scenarios/rescue-broken.toml"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_retake"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["bench", "rescue", "--scenario", scenario])
        .args(["--segments", "240", "--seed", "5", "--parallelism", "1"])
        .args(["--only", "retake_smart", "--no-budget", "--keep-databases"])
        .arg(&keep)
        .output()
        .expect("run retake");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["naive_fixed_n", "retake_smart"] {
        let path = keep.join(format!("{name}.db"));
        let mut db = SqliteConnectOptions::new()
            .filename(&path)
            .read_only(true)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM segments")
            .fetch_one(&mut db)
            .await
            .unwrap();
        assert_eq!(n, 240, "{name}: every segment of the corpus");
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM segments WHERE status NOT IN ('passed', 'needs_review')",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
        assert_eq!(open, 0, "{name}: every segment ended");
        if name == "retake_smart" {
            // Lip-sync segments are broken nine in ten: the rule stops some of them and says why.
            let rows = sqlx::query(
                "SELECT review_evidence FROM segments WHERE review_reason = 'systematic_failure'",
            )
            .fetch_all(&mut db)
            .await
            .unwrap();
            assert!(!rows.is_empty(), "the stopping rule stopped nothing");
            for r in rows {
                let ev: serde_json::Value =
                    serde_json::from_str(&r.get::<String, _>("review_evidence")).unwrap();
                assert_eq!(ev["rule"], "rescue_model", "{ev}");
                assert!(
                    ev["explanation"]
                        .as_str()
                        .unwrap()
                        .starts_with("P(pass next)"),
                    "{ev}"
                );
            }
        }
    }
    // Run again into the same directory: the kept files are replaced, not appended to.
    let again = Command::new(env!("CARGO_BIN_EXE_retake"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["bench", "rescue", "--scenario", scenario])
        .args(["--segments", "30", "--seed", "5", "--parallelism", "1"])
        .args(["--only", "retake_smart", "--no-budget", "--keep-databases"])
        .arg(&keep)
        .output()
        .expect("run retake");
    assert!(again.status.success());
    let mut db = SqliteConnectOptions::new()
        .filename(keep.join("retake_smart.db"))
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM segments")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(n, 30);
}
