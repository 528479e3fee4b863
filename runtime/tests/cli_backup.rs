//! `tessera backup`, `restore` and `migrate` as the binary runs them: a license created on
//! a stopped server's store comes back from a snapshot restored elsewhere; Redis stores are
//! pointed at Redis' own persistence; a bad store name is a usage error.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};

fn tessera(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env("TESSERA_STORE_DATA_DIR", data_dir)
        .env("TESSERA_LOG_LEVEL", "error")
        .envs(env.iter().copied())
        .current_dir(data_dir)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_snapshot_restored_into_another_data_dir_holds_the_license() {
    let here = tempfile::tempdir().unwrap();
    let there = tempfile::tempdir().unwrap();
    let out = tessera(here.path(), &["license", "create"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = text(&out.stdout).trim().to_owned();

    let snap = here.path().join("snap.redb");
    let out = tessera(here.path(), &["backup", "--to", "snap.redb"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Snapshot written"),
        "{}",
        text(&out.stdout)
    );
    let snap = snap.to_str().unwrap();

    let out = tessera(there.path(), &["restore", "--from", snap], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tessera(there.path(), &["license", "show", &key], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A second restore over it needs --force.
    let out = tessera(there.path(), &["restore", "--from", snap], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn backup_and_restore_of_redis_fail_and_name_rdb_and_aof() {
    let dir = tempfile::tempdir().unwrap();
    let redis = [("TESSERA_STORE_BACKEND", "redis")];
    for args in [
        &["backup", "--to", "x.redb"][..],
        &["restore", "--from", "x.redb"][..],
    ] {
        let out = tessera(dir.path(), args, &redis);
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(err.contains("RDB") && err.contains("AOF"), "{err}");
    }
    let out = tessera(
        dir.path(),
        &["migrate", "--from", "embedded", "--to", "mysql://x"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
