//! The example plugins written in AssemblyScript and C (`activation-guard-as`,
//! `activation-guard-c`, one policy in two languages) loaded by the running server: a CIDR
//! allow list for activations and session starts, and a velocity check on the distinct
//! addresses that activate one license.
//!
//! The plugins are built by `plugins/examples/build.sh` (run by `tests/run.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use serde_json::{Value, json};
use tessera_config::{Config, PluginConfig};
use tessera_integration_tests::TestServer;

fn example(name: &str) -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join(format!("plugins/examples/dist/{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run `bash plugins/examples/build.sh` (tests/run.sh does)",
        p.display()
    );
    p
}

fn with_guard(c: &mut Config, name: &str) {
    let mut p: PluginConfig = toml::from_str(&format!(
        "name = {name:?}\npath = {:?}",
        example(name).display().to_string()
    ))
    .unwrap();
    p.config = toml::from_str(
        "allow = [\"198.51.100.0/24\", \"2001:db8::/32\"]\nmax_addresses = 2\nwindow_secs = 3600",
    )
    .unwrap();
    c.plugins.push(p);
    // The test client is 127.0.0.1; it speaks for other addresses through X-Forwarded-For.
    c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

async fn issue(server: &TestServer) -> String {
    let resp = server
        .admin_post("/api/admin/licenses")
        .json(&json!({"max_devices": 10, "max_sessions": 10}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let body: Value = resp.json().await.unwrap();
    body["licenses"][0]["license_key"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn post_from(server: &TestServer, ip: Option<&str>, path: &str, body: Value) -> (u16, Value) {
    let mut req = server.post(path).json(&body);
    if let Some(ip) = ip {
        req = req.header("X-Forwarded-For", ip);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn activate(server: &TestServer, key: &str, hw: &str, ip: Option<&str>) -> (u16, Value) {
    post_from(
        server,
        ip,
        "/api/license/activate",
        json!({"license_key": key, "hardware_hash": hw}),
    )
    .await
}

async fn start(server: &TestServer, key: &str, hw: &str, ip: Option<&str>) -> (u16, Value) {
    post_from(
        server,
        ip,
        "/api/license/session/start",
        json!({"license_key": key, "hardware_hash": hw}),
    )
    .await
}

async fn guard_end_to_end(name: &str) {
    let server = TestServer::start_with(|c| with_guard(c, name))
        .await
        .unwrap();
    let key = issue(&server).await;

    let (status, body) = activate(&server, &key, "hw1", Some("198.51.100.1")).await;
    assert_eq!(status, 200, "{name}: {body}");
    let (status, body) = activate(&server, &key, "hw2", Some("2001:db8::2")).await;
    assert_eq!(status, 200, "{name}: {body}");
    // A third address within the window is one too many...
    let (status, body) = activate(&server, &key, "hw3", Some("198.51.100.3")).await;
    assert_eq!(status, 429, "{name}: {body}");
    assert_eq!(body["code"], "ACTIVATION_VELOCITY", "{name}: {body}");
    // ...while an address already admitted may go on activating devices.
    let (status, body) = activate(&server, &key, "hw3", Some("198.51.100.1")).await;
    assert_eq!(status, 200, "{name}: {body}");
    assert_eq!(
        body["active_devices"], 3,
        "{name}: the refused activation was taken back: {body}"
    );

    // Networks outside the allow list, including the test client's own address.
    for ip in [Some("203.0.113.5"), None] {
        let (status, body) = activate(&server, &key, "hw4", ip).await;
        assert_eq!(status, 403, "{name} {ip:?}: {body}");
        assert_eq!(body["code"], "NETWORK_NOT_ALLOWED", "{name}: {body}");
        let (status, body) = start(&server, &key, "hw1", ip).await;
        assert_eq!(status, 403, "{name} {ip:?}: {body}");
        assert_eq!(body["code"], "NETWORK_NOT_ALLOWED", "{name}: {body}");
    }
    let (status, body) = start(&server, &key, "hw1", Some("198.51.100.77")).await;
    assert_eq!(status, 200, "{name}: {body}");
    assert!(body["session_token"].is_string(), "{name}: {body}");
}

#[tokio::test]
async fn assemblyscript_plugin_guards_activations_in_the_running_server() {
    guard_end_to_end("activation-guard-as").await;
}

#[tokio::test]
async fn c_plugin_guards_activations_in_the_running_server() {
    guard_end_to_end("activation-guard-c").await;
}

/// The `tessera` binary, built once per test process (a no-op when `cargo test --workspace`
/// already built it).
fn tessera_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = std::process::Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "tessera", "--bin", "tessera"])
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
                .status()
                .unwrap();
            assert!(status.success(), "cargo build of tessera failed");
            // target/debug/deps/<this test> -> target/debug/tessera
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().join("tessera")
        })
        .clone()
}

/// Each example's own test (`test.sh`: its events through `tessera plugin run --events`,
/// compared with its expected decisions), as an integrator runs it.
fn own_test(name: &str) {
    let script = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join(format!("plugins/examples/{name}/test.sh"));
    let out = std::process::Command::new("bash")
        .arg(&script)
        .env("TESSERA", tessera_binary())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}/test.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn assemblyscript_plugin_passes_its_own_test_through_tessera_plugin_run() {
    own_test("activation-guard-as");
}

#[test]
fn c_plugin_passes_its_own_test_through_tessera_plugin_run() {
    own_test("activation-guard-c");
}
