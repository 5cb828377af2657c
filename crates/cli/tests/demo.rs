//! `retake demo --no-serve` prints the transparency lines and the summary, and is deterministic
//! for a given `--seed`.

use std::process::Command;

fn demo(dir: &std::path::Path, seed: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_retake"))
        .args(["--data-dir"])
        .arg(dir)
        .args(["demo", "--no-serve", "--segments", "60", "--seed", seed])
        .output()
        .expect("run retake demo");
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Drop the line naming the data directory, which differs between runs.
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("data:"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn demo_prints_a_summary_and_is_deterministic() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let first = demo(a.path(), "7");
    assert!(first.contains("Summary"), "{first}");
    assert!(first.contains("rescued by retry"), "{first}");
    assert!(
        first.contains("GPU seconds used against the budget"),
        "{first}"
    );
    assert!(
        first
            .lines()
            .any(|l| l.trim_start().starts_with("Segment ") && l.contains("failed attempt 1")),
        "{first}"
    );
    assert_eq!(first, demo(b.path(), "7"), "same seed, same run");
    assert_ne!(first, demo(c.path(), "8"), "another seed, another run");
    assert!(a.path().join("retake.db").is_file());
}

/// The README's sample output is what `scripts/demo --no-serve` prints with the default seed:
/// every line of its code block (but the `…` standing for lines left out) appears in the demo's
/// output, in the same order.
#[test]
fn readme_sample_matches_the_default_demo() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("read README.md");
    let start = readme
        .find("(this one from `scripts/demo --no-serve`")
        .expect("the README introduces its sample output");
    let block = readme[start..]
        .split("```")
        .nth(1)
        .expect("a code block follows");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_retake"))
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["demo", "--no-serve"])
        .output()
        .expect("run retake demo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let mut lines = printed.lines();
    for want in block
        .lines()
        .filter(|l| !l.trim().is_empty() && l.trim() != "…")
    {
        assert!(
            lines.any(|l| l == want),
            "README.md's sample line is not printed by `retake demo --no-serve` (in this order):\n{want}\n\nthe demo printed:\n{printed}"
        );
    }
}
