//! The `tessera` binary's tools: license create/show, customer, product and plan commands,
//! envelope, plugin check/run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn tessera(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env("TESSERA_STORE_DATA_DIR", data_dir)
        .env("TESSERA_LOG_LEVEL", "error")
        .current_dir(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn repo(path: &str) -> String {
    format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn license_create_prints_a_key_and_show_prints_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(
        dir.path(),
        &[
            "license",
            "create",
            "--max-sessions",
            "3",
            "--max-devices",
            "2",
            "--days",
            "30",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = text(&out.stdout).trim().to_string();
    assert_eq!(key.len(), 19, "{key}");
    assert!(
        key.chars()
            .all(|c| c == '-' || "ABCDEFGHJKMNPQRSTUVWXYZ23456789".contains(c)),
        "{key}"
    );

    let out = tessera(dir.path(), &["license", "show", &key], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(view["max_sessions"], 3);
    assert_eq!(view["max_devices"], 2);

    let out = tessera(
        dir.path(),
        &["license", "show", "NOPE-NOPE-NOPE-NOPE"],
        None,
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not found"));
    let out = tessera(dir.path(), &["license", "create", "--plan", "nope"], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unknown plan"));
}

#[test]
fn envelope_encrypt_then_decrypt_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let sealed = tessera(
        dir.path(),
        &["envelope", "encrypt", "--key", "AF-2026-K"],
        Some("{\"token\":\"t\"}\n"),
    );
    assert!(sealed.status.success());
    let data = text(&sealed.stdout);
    let opened = tessera(
        dir.path(),
        &["envelope", "decrypt", "--key", "AF-2026-K"],
        Some(&data),
    );
    assert_eq!(text(&opened.stdout).trim(), "{\"token\":\"t\"}");
    let wrong = tessera(
        dir.path(),
        &["envelope", "decrypt", "--key", "AF-2026-X"],
        Some(&data),
    );
    assert!(!wrong.status.success());
}

#[test]
fn plugin_check_lists_hooks_and_rejects_an_abi_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(
        dir.path(),
        &[
            "plugin",
            "check",
            &repo("plugins/host/tests/fixtures/infinite_loop.wat"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("on_heartbeat"));
    let out = tessera(
        dir.path(),
        &[
            "plugin",
            "check",
            &repo("plugins/host/tests/fixtures/abi_v2.wat"),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("ABI"), "{}", text(&out.stderr));
}

#[test]
fn plugin_run_prints_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(&event, r#"{"ts_ms": 1, "interval_ms": 1000}"#).unwrap();
    let out = tessera(
        dir.path(),
        &[
            "plugin",
            "run",
            &repo("plugins/host/tests/fixtures/infinite_loop.wat"),
            "--hook",
            "on_tick",
            "--event",
            event.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let decision: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(decision["decision"], "allow");
    let out = tessera(
        dir.path(),
        &[
            "plugin",
            "run",
            &repo("plugins/host/tests/fixtures/infinite_loop.wat"),
            "--hook",
            "on_nothing",
            "--event",
            "x",
        ],
        None,
    );
    assert!(!out.status.success());
}

#[test]
fn license_commands_administer_a_stopped_servers_store_with_json_output() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| -> serde_json::Value {
        let out = tessera(dir.path(), args, None);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    let created = run(&[
        "license",
        "create",
        "--customer",
        "ACME Corp",
        "--days",
        "10",
        "--json",
    ]);
    let key = created["licenses"][0]["license_key"]
        .as_str()
        .unwrap()
        .to_string();
    let id = created["licenses"][0]["id"].as_u64().unwrap().to_string();
    run(&["license", "create", "--customer", "Globex", "--json"]);

    let list = run(&["license", "list", "--customer", "acme", "--json"]);
    assert_eq!(list["licenses"].as_array().unwrap().len(), 1);
    assert_eq!(list["licenses"][0]["license_key"], key.as_str());

    // By numeric id: edit, then the answer is the full view.
    let edited = run(&[
        "license",
        "edit",
        &id,
        "--max-sessions",
        "4",
        "--note",
        "VIP",
        "--meta",
        "crm=42",
        "--feature",
        "export",
        "--json",
    ]);
    assert_eq!(edited["max_sessions"], 4);
    assert_eq!(edited["note"], "VIP");
    assert_eq!(edited["metadata"]["crm"], "42");
    assert_eq!(edited["features"], serde_json::json!(["export"]));

    let renewed = run(&["license", "renew", &key, "--days", "5", "--json"]);
    assert!(renewed["valid_until"].is_string());
    let suspended = run(&[
        "license",
        "suspend",
        &key,
        "--reason",
        "chargeback",
        "--json",
    ]);
    assert_eq!(suspended["status"], "suspended");
    let listed = run(&["license", "list", "--status", "suspended", "--json"]);
    assert_eq!(listed["licenses"].as_array().unwrap().len(), 1);
    assert_eq!(
        run(&["license", "devices", &key, "--json"])["devices"],
        serde_json::json!([])
    );
    assert_eq!(
        run(&["license", "sessions", &key, "--json"])["sessions"],
        serde_json::json!([])
    );

    // A bulk dry run reports without changing; text output lists keys.
    let preview = run(&[
        "license",
        "bulk",
        "revoke",
        "--customer",
        "globex",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(preview["matched"], 1);
    let out = tessera(dir.path(), &["license", "list"], None);
    assert!(
        text(&out.stdout).contains("license_key"),
        "{}",
        text(&out.stdout)
    );

    // Delete refuses without its confirmation and changes nothing.
    let out = tessera(dir.path(), &["license", "delete", &key], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("confirm"),
        "{}",
        text(&out.stderr)
    );
    run(&["license", "show", &key]);
    let deleted = run(&["license", "delete", &key, "--confirm", &key, "--json"]);
    assert_eq!(deleted["deleted"], key.as_str());
    let out = tessera(dir.path(), &["license", "show", &key], None);
    assert!(!out.status.success());
}

#[test]
fn customer_product_and_plan_commands_administer_a_stopped_servers_store() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| -> serde_json::Value {
        let out = tessera(dir.path(), args, None);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    let acme = run(&[
        "customer",
        "create",
        "--name",
        "ACME Corp",
        "--email",
        "admin@acme.com",
        "--json",
    ]);
    assert_eq!(acme["id"], 1);
    let listed = run(&["customer", "list", "-q", "acme", "--json"]);
    assert_eq!(listed["customers"][0]["name"], "ACME Corp");
    let issued = run(&["license", "create", "--customer-id", "1", "--json"]);
    let key = issued["licenses"][0]["license_key"]
        .as_str()
        .unwrap()
        .to_string();
    let mine = run(&["customer", "licenses", "1", "--json"]);
    assert_eq!(mine["licenses"][0]["license_key"], key.as_str());
    let edited = run(&[
        "customer", "edit", "1", "--name", "ACME Inc", "--email", "", "--json",
    ]);
    assert_eq!(
        (edited["name"].as_str(), edited["email"].as_str()),
        (Some("ACME Inc"), None)
    );
    assert_eq!(
        run(&["license", "show", &key, "--json"])["customer_name"],
        "ACME Inc"
    );
    // A customer with a license stays.
    let out = tessera(dir.path(), &["customer", "delete", "1"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("still has licenses"),
        "{}",
        text(&out.stderr)
    );

    let released = run(&[
        "product",
        "release",
        "default",
        "2.1.0",
        "--download-url",
        "https://example.com/2.1.0",
        "--json",
    ]);
    assert_eq!(released["latest_version"], "2.1.0");
    let out = tessera(
        dir.path(),
        &["product", "release", "default", "2.1.0"],
        None,
    );
    assert!(!out.status.success(), "a version is published once");
    let out = tessera(dir.path(), &["product", "list"], None);
    assert!(
        text(&out.stdout).contains("default\tdefault\t2.1.0"),
        "{}",
        text(&out.stdout)
    );
    let plan = run(&["plan", "create", "team", "--max-devices", "4", "--json"]);
    assert_eq!(plan["max_devices"], 4);
    let on_plan = run(&["license", "create", "--plan", "team", "--json"]);
    let team_key = on_plan["licenses"][0]["license_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        run(&["license", "show", &team_key, "--json"])["max_devices"],
        4
    );
}
