//! `retake bench rescue --keep-databases`: every engine run's database is kept, so each
//! segment's attempts and the stopping rule's numbers can be read after the benchmark.

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Row};
use std::path::Path;
use std::process::Command;

/// `retake bench rescue` on rescue-broken with `segments`, keeping its databases in `keep`; its
/// report.
fn bench(data_dir: &Path, keep: &Path, segments: u32) -> String {
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/scenarios/rescue-broken.toml"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_retake"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["bench", "rescue", "--scenario", scenario])
        .args(["--segments", &segments.to_string(), "--seed", "5"])
        .args([
            "--parallelism",
            "1",
            "--only",
            "retake_smart",
            "--no-budget",
        ])
        .arg("--keep-databases")
        .arg(keep)
        .output()
        .expect("run retake");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The per-scene-type lines' false systematic flags: `(count, labels named)`, one per line.
fn false_flags(report: &str) -> Vec<(usize, Vec<String>)> {
    report
        .lines()
        .filter_map(|l| l.split_once("systematic flags ")?.1.split_once(" ("))
        .filter_map(|(_, rest)| {
            let rest = rest.strip_suffix(')')?;
            let (n, names) = rest.split_once(" false")?;
            let names = names
                .strip_prefix(": ")
                .map(|x| x.split(", ").map(str::to_owned).collect())
                .unwrap_or_default();
            Some((n.parse().ok()?, names))
        })
        .collect()
}

async fn open(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn count(db: &mut SqliteConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

#[tokio::test]
async fn kept_databases_hold_every_segment_and_the_rules_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("runs");
    let report = bench(dir.path(), &keep, 240);
    for name in ["naive_fixed_n", "retake_smart"] {
        let mut db = open(&keep.join(format!("{name}.db"))).await;
        let n = count(&mut db, "SELECT count(*) FROM segments").await;
        assert_eq!(n, 240, "{name}: every segment of the corpus");
        let open = count(
            &mut db,
            "SELECT count(*) FROM segments WHERE status NOT IN ('passed', 'needs_review')",
        )
        .await;
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
    // The report names each false systematic flag by label; each is a segment the kept
    // database escalated as systematic.
    let lines = false_flags(&report);
    assert_eq!(lines.len(), 3, "one line per scene type: {report}");
    let mut db = open(&keep.join("retake_smart.db")).await;
    for (n, names) in lines {
        assert_eq!(names.len(), n.min(8), "{report}");
        for label in names {
            let reason: String =
                sqlx::query_scalar("SELECT review_reason FROM segments WHERE label = ?")
                    .bind(&label)
                    .fetch_one(&mut db)
                    .await
                    .unwrap();
            assert_eq!(reason, "systematic_failure", "{label}");
        }
    }
    // Run again into the same directory: the kept files are replaced, not appended to.
    bench(dir.path(), &keep, 30);
    let mut db = open(&keep.join("retake_smart.db")).await;
    assert_eq!(count(&mut db, "SELECT count(*) FROM segments").await, 30);
}
