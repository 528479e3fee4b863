//! The example plugins written in AssemblyScript and C (`activation-guard-as`,
//! `activation-guard-c`, one policy in two languages) loaded by the running server: a CIDR
//! allow list for activations and session starts, and a velocity check on the distinct
//! addresses that activate one license.
//!
//! The plugins are built by `plugins/examples/build.sh` (run by `tests/run.sh`). The
//! `plugin_new_*` tests run `tessera plugin new` for each language and the generated
//! project's own build and test.
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

/// Fails, with what to install, when `tool` is not on PATH.
fn require(tool: &str, install: &str) {
    let found = std::process::Command::new("bash")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap()
        .status
        .success();
    assert!(found, "{tool} is missing: {install} (tests/run.sh does)");
}

/// Runs `cmd` in `dir` and asserts it succeeded, showing its output if not.
fn succeeds(dir: &std::path::Path, what: &str, cmd: &mut std::process::Command) -> String {
    let out = cmd.current_dir(dir).output().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed in {}:\n{text}",
        dir.display()
    );
    text
}

/// `tessera plugin new NAME --lang LANG --dir TMP`, as an integrator starts a plugin.
fn scaffold(tmp: &std::path::Path, name: &str, lang: &str) -> PathBuf {
    let mut cmd = std::process::Command::new(tessera_binary());
    cmd.args(["plugin", "new", name, "--lang", lang, "--dir"])
        .arg(tmp);
    succeeds(
        tmp,
        &format!("tessera plugin new {name} --lang {lang}"),
        &mut cmd,
    );
    tmp.join(name)
}

/// The generated project's `build.sh` and `test.sh` (its events through `tessera plugin
/// run --events`, compared with its expected decisions); `envs` for both.
fn builds_and_passes_its_own_test(project: &std::path::Path, envs: &[(&str, PathBuf)]) {
    let name = project.file_name().unwrap().to_string_lossy().into_owned();
    let mut build = std::process::Command::new("bash");
    build.arg("build.sh").envs(envs.iter().cloned());
    succeeds(project, "build.sh", &mut build);
    assert!(project.join(format!("build/{name}.wasm")).is_file());
    let mut test = std::process::Command::new("bash");
    test.arg("test.sh")
        .env("TESSERA", tessera_binary())
        .envs(envs.iter().cloned());
    let out = succeeds(project, "test.sh", &mut test);
    assert!(out.contains("events decided as expected"), "{out}");
}

/// The built plugin loaded by a running server, as its README's `[[plugins]]` entry says:
/// an activation from a machine named like "vm" is refused, another is not.
async fn loads_into_the_server(project: &std::path::Path) {
    let name = project.file_name().unwrap().to_string_lossy().into_owned();
    let wasm = project.join(format!("build/{name}.wasm"));
    let server = TestServer::start_with(|c| {
        let mut p: PluginConfig = toml::from_str(&format!(
            "name = {name:?}\npath = {:?}",
            wasm.display().to_string()
        ))
        .unwrap();
        p.config = toml::from_str("deny_machine_names = [\"vm\"]").unwrap();
        c.plugins.push(p);
    })
    .await
    .unwrap();
    let key = issue(&server).await;
    let (status, body) = post_from(
        &server,
        None,
        "/api/license/activate",
        json!({"license_key": key, "hardware_hash": "hw-1", "machine_name": "build-VM-07"}),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (403, "MACHINE_NOT_ALLOWED"),
        "{body}"
    );
    let (status, body) = post_from(
        &server,
        None,
        "/api/license/activate",
        json!({"license_key": key, "hardware_hash": "hw-2", "machine_name": "workstation-12"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_new_rust_project_builds_and_passes_its_own_tests() {
    let tmp = tempfile::tempdir().unwrap();
    let project = scaffold(tmp.path(), "machine-guard-rs", "rust");
    // One target directory for every run, so the SDK and serde compile once.
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap().parent().unwrap();
    let envs = [("CARGO_TARGET_DIR", target.join("plugin-new-rust"))];
    let mut test = std::process::Command::new(env!("CARGO"));
    test.args(["test", "--quiet"]).envs(envs.iter().cloned());
    succeeds(&project, "cargo test", &mut test);
    builds_and_passes_its_own_test(&project, &envs);
    loads_into_the_server(&project).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_new_assemblyscript_project_builds_and_passes_its_own_test() {
    for tool in ["node", "npm"] {
        require(tool, "install Debian's nodejs and npm");
    }
    let tmp = tempfile::tempdir().unwrap();
    let project = scaffold(tmp.path(), "machine-guard-as", "assemblyscript");
    builds_and_passes_its_own_test(&project, &[]);
    loads_into_the_server(&project).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_new_c_project_builds_and_passes_its_own_test() {
    for tool in ["clang", "wasm-ld"] {
        require(tool, "install Debian's clang and lld");
    }
    let tmp = tempfile::tempdir().unwrap();
    let project = scaffold(tmp.path(), "machine-guard-c", "c");
    builds_and_passes_its_own_test(&project, &[]);
    loads_into_the_server(&project).await;
}

#[test]
fn plugin_new_refuses_a_bad_name_and_an_existing_directory_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("taken")).unwrap();
    for (name, lang, says) in [
        ("bad name", "c", "invalid plugin name"),
        ("Guard.v2", "rust", "for Rust"),
        ("taken", "assemblyscript", "already exists"),
    ] {
        let out = std::process::Command::new(tessera_binary())
            .args(["plugin", "new", name, "--lang", lang, "--dir"])
            .arg(tmp.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: {stderr}");
        assert!(stderr.contains(says), "{name}: {stderr}");
    }
    let entries: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        std::fs::read_dir(tmp.path().join("taken")).unwrap().count(),
        0
    );
}

/// `tessera plugin record` captures a running server's activations; `tessera plugin run`
/// replays them through a plugin: develop a policy against recorded traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_record_captures_real_traffic_that_plugin_run_replays() {
    let server = TestServer::start().await.unwrap();
    let key = issue(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let recorded = dir.path().join("activations.jsonl");
    let record = tokio::process::Command::new(tessera_binary())
        .args(["plugin", "record", "--hooks", "on_activate", "--limit", "2"])
        .args(["--seconds", "60", "--url", &server.url("")])
        .arg("--out")
        .arg(&recorded)
        .env("TESSERA_ADMIN_KEY", &server.admin_key)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The recording is on once the server counts a recorder.
    for _ in 0..200 {
        if server.state.policy.recorder().active() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        server.state.policy.recorder().active(),
        "the recorder connected"
    );
    for (hw, machine) in [("hw-1", "workstation-12"), ("hw-2", "build-VM-3")] {
        let (status, body) = post_from(
            &server,
            None,
            "/api/license/activate",
            json!({"license_key": key, "hardware_hash": hw, "machine_name": machine}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let out = record.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("recorded 2 event(s)"));
    let text = std::fs::read_to_string(&recorded).unwrap();
    assert!(!text.contains(&key), "no license key in a recording");

    // machine-rules refuses machines named like "vm": the second activation.
    let config = dir.path().join("machine-rules.toml");
    std::fs::write(&config, "deny_machine_names = [\"vm\"]\n").unwrap();
    let out = std::process::Command::new(tessera_binary())
        .args(["plugin", "run"])
        .arg(example("machine-rules"))
        .arg("--events")
        .arg(&recorded)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decisions: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    assert_eq!(decisions[0]["decision"], "allow", "{decisions:?}");
    assert_eq!(decisions[1]["decision"], "deny", "{decisions:?}");
    assert_eq!(decisions[1]["code"], "MACHINE_NOT_ALLOWED", "{decisions:?}");
}
