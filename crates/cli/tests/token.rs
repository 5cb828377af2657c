//! `retake token create | list | revoke` as a user runs them.

use std::process::{Command, Output};

fn retake(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_retake"))
        .env_remove("RETAKE_DATABASE_URL")
        .env_remove("RETAKE_DATA_DIR")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run retake")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn tokens_are_created_listed_and_revoked_and_never_in_a_new_database_by_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // Where no database exists: refused, with the way out.
    let out = retake(&data, &["token", "create", "--role", "admin"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no retake database") && err.contains("--create-db"),
        "{err}"
    );
    assert!(!data.join("retake.db").exists(), "nothing was created");

    let out = retake(
        &data,
        &[
            "token",
            "create",
            "--role",
            "admin",
            "--name",
            "alice",
            "--create-db",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let alice = text(&out.stdout).trim().to_owned();
    assert!(alice.starts_with("rtk_"), "{alice}");

    let out = retake(
        &data,
        &[
            "token",
            "create",
            "--role",
            "viewer",
            "--name",
            "farm",
            "--expires-in",
            "30d",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("expires at"),
        "{}",
        text(&out.stderr)
    );
    let bad = retake(
        &data,
        &["token", "create", "--role", "viewer", "--expires-in", "30s"],
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("between 1 minute and 10 years"),
        "{}",
        text(&bad.stderr)
    );

    let list = text(&retake(&data, &["token", "list"]).stdout);
    assert!(list.contains("alice") && list.contains("farm"), "{list}");
    assert!(list.lines().next().unwrap().contains("last used"), "{list}");
    assert!(
        !list.contains(&alice),
        "the list never shows a token: {list}"
    );

    let out = retake(&data, &["token", "revoke", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("revoked token 1 (alice, admin)"),
        "{}",
        text(&out.stdout)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&retake(&data, &["token", "list", "--json"]).stdout).unwrap();
    assert!(json[0]["revoked_at"].is_string(), "{json}");
    assert!(
        json[1]["revoked_at"].is_null() && json[1]["expires_at"].is_string(),
        "{json}"
    );
    let missing = retake(&data, &["token", "revoke", "99"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("token 99 does not exist"),
        "{}",
        text(&missing.stderr)
    );
}
