//! Policy plugins in the running server: the two example plugins end to end, a plugin that
//! never returns, hot reload under load and over HTTP, the plugins' status, and two servers
//! on one Redis sharing the plugins' durable keys.
//!
//! The example plugins are built by `plugins/examples/build.sh` (run by `tests/run.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_config::{Config, FailMode, PluginConfig, StoreBackend};
use tessera_integration_tests::{RedisServer, TestServer};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(path)
}

fn example(name: &str) -> PathBuf {
    let p = repo(&format!("plugins/examples/dist/{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run `bash plugins/examples/build.sh` (tests/run.sh does)",
        p.display()
    );
    p
}

fn plugin(name: &str, path: PathBuf, config: toml::Table) -> PluginConfig {
    let mut p: PluginConfig = toml::from_str(&format!(
        "name = {name:?}\npath = {:?}",
        path.display().to_string()
    ))
    .unwrap();
    p.config = config;
    p
}

fn table(text: &str) -> toml::Table {
    toml::from_str(text).unwrap()
}

async fn issue(server: &TestServer) -> String {
    let resp = server
        .admin_post("/api/admin/licenses")
        .json(&json!({"max_devices": 1, "max_sessions": 1}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    body["licenses"][0]["license_key"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn start_session(server: &TestServer, key: &str) -> String {
    let resp = server
        .post("/api/license/activate")
        .json(&json!({"license_key": key, "hardware_hash": "hw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = server
        .post("/api/license/session/start")
        .json(&json!({"license_key": key, "hardware_hash": "hw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["session_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn heartbeat(server: &TestServer, key: &str, token: &str) -> (u16, Value) {
    let resp = server
        .post("/api/license/session/heartbeat")
        .json(&json!({"session_token": token, "license_key": key}))
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn warn(server: &TestServer, key: &str) -> Value {
    let resp = server
        .admin_post(&format!("/api/admin/licenses/{key}/warnings"))
        .json(&json!({"note": "license sharing violation"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn with_ban_threshold(c: &mut Config, warnings: u32) {
    c.plugins.push(plugin(
        "ban-threshold",
        example("ban-threshold"),
        table(&format!(
            "warnings = {warnings}\nwindow_secs = 86400\nban_secs = 0"
        )),
    ));
}

#[tokio::test]
async fn warnings_past_the_threshold_ban_the_license_and_end_its_session() {
    let server = TestServer::start_with(|c| with_ban_threshold(c, 2))
        .await
        .unwrap();
    let key = issue(&server).await;
    let token = start_session(&server, &key).await;

    assert_eq!(warn(&server, &key).await["banned"], false);
    assert_eq!(heartbeat(&server, &key, &token).await.0, 200);
    let second = warn(&server, &key).await;
    assert_eq!(
        (second["warnings"].clone(), second["banned"].clone()),
        (json!(2), json!(true))
    );

    let (status, body) = heartbeat(&server, &key, &token).await;
    assert_eq!(status, 410, "{body}");
    let resp = server
        .post("/api/license/session/end")
        .json(&json!({"session_token": token, "license_key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["end_reason"], "banned");
    let resp = server
        .post("/api/license/verify")
        .json(&json!({"license_key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap()["code"],
        "LICENSE_BANNED"
    );
}

#[tokio::test]
async fn ban_counters_survive_a_restart() {
    let server = TestServer::start_with(|c| with_ban_threshold(c, 3))
        .await
        .unwrap();
    let key = issue(&server).await;
    warn(&server, &key).await;
    warn(&server, &key).await;
    let server = server.stop().await.unwrap().restart().await.unwrap();
    assert_eq!(
        warn(&server, &key).await["banned"],
        true,
        "the third warning after a restart bans"
    );
}

#[tokio::test]
async fn a_denied_address_is_refused_over_http() {
    let server = TestServer::start_with(|c| {
        c.plugins.push(plugin(
            "ip-reputation",
            example("ip-reputation"),
            table("mode = \"standard\"\ndeny = [\"127.0.0.0/8\"]"),
        ));
    })
    .await
    .unwrap();
    let resp = server
        .admin_post("/api/admin/licenses")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "IP_DENIED");
    assert_eq!(body["status"], 403);
    let resp = server
        .client()
        .get(server.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "probes never reach plugins");
}

#[tokio::test]
async fn repeated_bad_api_keys_block_the_address_for_a_while() {
    let server = TestServer::start_with(|c| {
        c.plugins.push(plugin(
            "ip-reputation",
            example("ip-reputation"),
            table("mode = \"standard\"\n[standard]\nmax_failures = 3\nwindow_secs = 600\nblock_secs = 600"),
        ));
    })
    .await
    .unwrap();
    for _ in 0..3 {
        let resp = server
            .client()
            .post(server.url("/api/license/verify"))
            .header("X-API-Key", "AF-2026-WRONG")
            .json(&json!({"license_key": "A"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
    }
    let resp = server
        .post("/api/license/verify")
        .json(&json!({"license_key": "A"}))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(resp.status().as_u16(), 403 | 429),
        "blocked even with the right key: {}",
        resp.status()
    );
}

#[tokio::test]
async fn failed_operator_logins_reach_on_login_failure_and_block_the_address() {
    let server = TestServer::start_with(|c| {
        c.plugins.push(plugin(
            "ip-reputation",
            example("ip-reputation"),
            table("mode = \"standard\"\n[standard]\nmax_failures = 3\nwindow_secs = 600\nblock_secs = 600"),
        ));
        // Plaintext logins so the test needs no RSA; the hook fires the same for both forms.
        c.security.enforce_login_payload_encryption = false;
        // Keep the server's own per-address throttle out of the way.
        c.security.address_max_failures = 100;
        c.rate_limit.login_per_minute = 1000;
    })
    .await
    .unwrap();
    for _ in 0..3 {
        let resp = server
            .client()
            .post(server.url("/api/auth/login"))
            .json(&json!({"username": "nobody", "password": "wrong password!"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
    }
    // The plugin saw three failures from this address: the next request from it is refused.
    let resp = server
        .post("/api/license/verify")
        .json(&json!({"license_key": "A"}))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(resp.status().as_u16(), 403 | 429),
        "the address should be blocked after three failed operator logins: {}",
        resp.status()
    );
}

#[tokio::test]
async fn a_plugin_that_never_returns_is_stopped_and_fail_mode_decides() {
    let looping = repo("plugins/host/tests/fixtures/infinite_loop.wat");
    for (mode, expected) in [(FailMode::Open, 200u16), (FailMode::Closed, 503u16)] {
        let server = TestServer::start_with(|c| {
            let mut p = plugin("looper", looping.clone(), toml::Table::new());
            p.fail_mode = mode;
            p.timeout = Some(Duration::from_millis(20));
            c.plugins.push(p);
        })
        .await
        .unwrap();
        let key = issue(&server).await;
        let token = start_session(&server, &key).await;
        for _ in 0..3 {
            let (status, body) = heartbeat(&server, &key, &token).await;
            assert_eq!(status, expected, "{mode:?}: {body}");
            if expected == 503 {
                assert_eq!(body["code"], "PLUGIN_FAILURE");
            }
        }
        let resp = server
            .client()
            .get(server.url("/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "the server keeps serving");
    }
}

#[tokio::test]
async fn hot_reload_under_load_loses_no_request() {
    let server = TestServer::start_with(|c| {
        with_ban_threshold(c, 100);
        c.rate_limit.heartbeat_per_minute = 100_000;
    })
    .await
    .unwrap();
    let key = issue(&server).await;
    let token = start_session(&server, &key).await;
    let server = std::sync::Arc::new(server);
    let load = {
        let server = server.clone();
        let (key, token) = (key.clone(), token.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..200 {
                statuses.push(heartbeat(&server, &key, &token).await.0);
            }
            statuses
        })
    };
    let mut config = (*server.state.config).clone();
    for i in 0..5 {
        config.plugins[0].config = table(&format!(
            "warnings = {}\nwindow_secs = 86400\nban_secs = 0",
            100 + i
        ));
        let report = server.state.policy.reload(&config).await;
        assert!(report.is_ok(), "reload {i} failed");
    }
    let statuses = load.await.unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

/// Two servers on one Redis, each with the plugin `with` configures.
async fn two_nodes_on_redis(
    redis: &RedisServer,
    with: impl Fn(&mut Config),
) -> (TestServer, TestServer) {
    let on_redis = |c: &mut Config| {
        c.store.backend = StoreBackend::Redis;
        c.store.redis_url = redis.url.clone();
        with(c);
    };
    let a = TestServer::start_with(on_redis).await.unwrap();
    let b = TestServer::start_joining(&a.api_key, on_redis)
        .await
        .unwrap();
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_on_two_nodes_add_up_in_the_shared_store() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap()
        .unwrap();
    let (a, b) = two_nodes_on_redis(&redis, |c| with_ban_threshold(c, 3)).await;
    let key = issue(&a).await;
    assert_eq!(warn(&a, &key).await["banned"], false);
    assert_eq!(warn(&b, &key).await["banned"], false);
    // Each node has seen two warnings of its own at most; the plugin's history has three.
    assert_eq!(warn(&a, &key).await["banned"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_on_two_nodes_add_up_and_the_block_reaches_both() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap()
        .unwrap();
    let (a, b) = two_nodes_on_redis(&redis, |c| {
        c.plugins.push(plugin(
            "ip-reputation",
            example("ip-reputation"),
            table("mode = \"standard\"\n[standard]\nmax_failures = 4\nwindow_secs = 600\nblock_secs = 600"),
        ));
    })
    .await;
    let bad_key = |server: &TestServer| {
        server
            .client()
            .post(server.url("/api/license/verify"))
            .header("X-API-Key", "AF-2026-WRONG")
            .json(&json!({"license_key": "A"}))
            .send()
    };
    let verify = |server: &TestServer| {
        server
            .post("/api/license/verify")
            .json(&json!({"license_key": "A"}))
            .send()
    };
    for node in [&a, &b, &a] {
        assert_eq!(bad_key(node).await.unwrap().status(), 401);
    }
    // Three failures in all: nobody is blocked yet (a node alone would need four).
    assert_ne!(verify(&b).await.unwrap().status(), 403);
    // The fourth, on b, blocks the address (from the next request on); a sees it within
    // a second.
    assert_eq!(bad_key(&b).await.unwrap().status(), 401);
    assert_eq!(verify(&b).await.unwrap().status(), 403, "blocked on b");
    let mut blocked_on_a = false;
    for _ in 0..30 {
        let resp = verify(&a).await.unwrap();
        if resp.status() == 403 {
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["code"], "IP_BLOCKED", "{body}");
            blocked_on_a = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(blocked_on_a, "the block made on b reaches a");
}

#[tokio::test]
async fn recorded_hook_events_carry_what_the_client_sent_and_no_license_key() {
    // No plugin at all: recording alone makes the server build the events.
    let server = TestServer::start().await.unwrap();
    let key = issue(&server).await;
    let resp = server
        .client()
        .patch(server.url(&format!("/api/admin/licenses/{key}")))
        .bearer_auth(&server.admin_key)
        .json(&json!({"features": ["offline"], "metadata": {"team": "render"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let bad = server
        .admin_get("/api/admin/plugins/record?hooks=on_nothing")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let recording = server
        .admin_get(
            "/api/admin/plugins/record?hooks=on_activate,on_session_start&limit=2&seconds=30",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(recording.status(), 200);
    assert_eq!(recording.headers()["content-type"], "application/x-ndjson");
    let resp = server
        .post("/api/license/activate")
        .header("User-Agent", "render-farm/2.1")
        .json(&json!({"license_key": key, "hardware_hash": "hw-1", "machine_name": "build-vm-07", "app_version": "2.1.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = server
        .post("/api/license/session/start")
        .json(&json!({"license_key": key, "hardware_hash": "hw-1", "version": "2.1.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = recorded(recording).await;
    assert!(!text.contains(&key), "the license key never leaves: {text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let (activate, start) = (&lines[0], &lines[1]);
    assert_eq!(activate["hook"], "on_activate");
    assert_eq!(activate["event"]["machine_name"], "build-vm-07");
    assert_eq!(activate["event"]["app_version"], "2.1.0");
    assert_eq!(activate["event"]["user_agent"], "render-farm/2.1");
    assert_eq!(activate["event"]["features"], json!(["offline"]));
    assert_eq!(activate["event"]["metadata"], json!({"team": "render"}));
    let pseudonym = activate["event"]["license_key"].as_str().unwrap();
    assert!(pseudonym.starts_with("REC-"), "{pseudonym}");
    assert_eq!(start["hook"], "on_session_start");
    assert_eq!(
        start["event"]["license_key"], pseudonym,
        "one license, one name"
    );
    assert_eq!(start["event"]["machine_name"], "build-vm-07");
}

#[tokio::test]
async fn a_flood_without_credentials_is_rate_limited_before_it_reaches_on_request() {
    // Four a minute per address: the recording request takes one, the flood gets three.
    let server = TestServer::start_with(|c| c.rate_limit.api_per_minute = 4)
        .await
        .unwrap();
    // The recording sees every on_request call the server makes.
    let recording = server
        .admin_get("/api/admin/plugins/record?hooks=on_request&seconds=3")
        .send()
        .await
        .unwrap();
    assert_eq!(recording.status(), 200);
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let resp = server
            .client()
            .post(server.url("/api/license/verify"))
            .json(&json!({"license_key": "A"}))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        7,
        "{statuses:?}"
    );
    let text = recorded(recording).await;
    let hooked = text
        .lines()
        .filter(|l| l.contains("/api/license/verify"))
        .count();
    assert_eq!(hooked, 3, "only the requests the limit let through: {text}");
}

#[tokio::test]
async fn plugin_calls_and_hook_threads_reach_the_metrics() {
    let server = TestServer::start_with(|c| with_ban_threshold(c, 5))
        .await
        .unwrap();
    let key = issue(&server).await;
    warn(&server, &key).await;
    let text = server
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // One line per result (allow, deny, ...): the warning's call is in one of them. The
    // recorder is the process's: other tests' servers in this binary count here too.
    let calls: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with("tessera_plugin_calls_total{")
                && l.contains("plugin=\"ban-threshold\"")
                && l.contains("hook=\"on_warning\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(calls >= 1.0, "the on_warning call counted:\n{text}");
    assert!(
        text.contains("tessera_plugin_call_duration_seconds"),
        "no call duration:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("tessera_plugin_hook_threads ")),
        "no hook thread gauge:\n{text}"
    );
}

async fn plugin_status(server: &TestServer) -> Value {
    let resp = server.admin_get("/api/admin/plugins").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn reload_plugins(server: &TestServer) -> Value {
    let resp = server
        .admin_post("/api/admin/plugins/reload")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use rsa::sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn plugin_status_lists_the_loaded_example_with_counts_that_move_after_calls() {
    let server = TestServer::start_with(|c| with_ban_threshold(c, 5))
        .await
        .unwrap();
    let body = plugin_status(&server).await;
    let plugins = body["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 1, "{body}");
    let p = &plugins[0];
    assert_eq!(p["name"], "ban-threshold");
    assert_eq!((&p["enabled"], &p["loaded"]), (&json!(true), &json!(true)));
    assert_eq!(p["fail_mode"], "open");
    assert!(
        p["path"].as_str().unwrap().ends_with("ban-threshold.wasm"),
        "{p}"
    );
    assert!(
        p["hooks"]
            .as_array()
            .unwrap()
            .contains(&json!("on_warning")),
        "{p}"
    );
    let bytes = std::fs::read(example("ban-threshold")).unwrap();
    assert_eq!(p["version"]["sha256"], sha256_hex(&bytes));
    assert_eq!(p["version"]["size_bytes"], bytes.len());
    assert!(p["version"]["modified_at"].is_string(), "{p}");
    assert!(p["loaded_at"].as_str().unwrap().ends_with('Z'), "{p}");
    assert_eq!(p["calls"]["allow"], 0, "{p}");
    assert!(p["p99_ms"].is_null(), "no call yet: {p}");
    assert!(p["last_reload_error"].is_null(), "{p}");

    let key = issue(&server).await;
    warn(&server, &key).await;
    warn(&server, &key).await;
    let p = plugin_status(&server).await["plugins"][0].clone();
    assert_eq!(
        p["calls"]["allow"], 2,
        "two warnings below the threshold: {p}"
    );
    assert_eq!(p["calls"]["failure"], 0, "{p}");
    assert_eq!(p["failures"]["trap"], 0, "{p}");
    assert!(p["p99_ms"].as_f64().unwrap() > 0.0, "{p}");
}

#[tokio::test]
async fn a_failing_plugin_counts_its_failures_by_kind() {
    let looping = repo("plugins/host/tests/fixtures/infinite_loop.wat");
    let server = TestServer::start_with(|c| {
        let mut p = plugin("looper", looping, toml::Table::new());
        p.timeout = Some(Duration::from_millis(20));
        c.plugins.push(p);
    })
    .await
    .unwrap();
    let key = issue(&server).await;
    let token = start_session(&server, &key).await;
    assert_eq!(heartbeat(&server, &key, &token).await.0, 200);
    let p = plugin_status(&server).await["plugins"][0].clone();
    assert_eq!(p["calls"]["failure"], 1, "{p}");
    assert_eq!(p["failures"]["timeout"], 1, "{p}");
    assert!(
        p["p99_ms"].as_f64().unwrap() >= 20.0,
        "at least the timeout: {p}"
    );
}

#[tokio::test]
async fn reload_over_http_reports_each_plugin_and_a_broken_file_shows_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("ban-threshold.wasm");
    let good = std::fs::read(example("ban-threshold")).unwrap();
    std::fs::write(&copy, &good).unwrap();
    let server = TestServer::start_with(|c| {
        c.plugins.push(plugin(
            "ban-threshold",
            copy.clone(),
            table("warnings = 5\nwindow_secs = 86400\nban_secs = 0"),
        ));
        // This test reloads itself; the watcher would race it.
        c.policy.watch_plugins = false;
    })
    .await
    .unwrap();

    let report = reload_plugins(&server).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        report["plugins"],
        json!([{"name": "ban-threshold", "status": "unchanged", "error": null, "kept_previous": null}])
    );

    std::fs::write(&copy, b"not a wasm module").unwrap();
    let report = reload_plugins(&server).await;
    assert_eq!(report["ok"], false, "{report}");
    let entry = &report["plugins"][0];
    assert_eq!(
        (&entry["status"], &entry["kept_previous"]),
        (&json!("failed"), &json!(true)),
        "{report}"
    );
    assert!(
        entry["error"]
            .as_str()
            .unwrap()
            .contains("invalid WebAssembly"),
        "{report}"
    );
    let p = plugin_status(&server).await["plugins"][0].clone();
    assert_eq!(p["loaded"], true, "the previous version keeps serving: {p}");
    assert_eq!(p["version"]["sha256"], sha256_hex(&good));
    let error = &p["last_reload_error"];
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("invalid WebAssembly"),
        "{p}"
    );
    assert_eq!(error["kept_previous"], true);
    assert!(error["at"].as_str().unwrap().ends_with('Z'), "{p}");
    let key = issue(&server).await;
    assert_eq!(warn(&server, &key).await["banned"], false);

    // Audited, failures and all.
    let audit: Value = server
        .admin_get("/api/admin/audit?limit=20")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reloads: Vec<&Value> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "admin.plugins.reloaded")
        .collect();
    assert_eq!(reloads.len(), 2, "{audit}");
    assert_eq!(reloads[0]["after"]["ok"], false, "{audit}");

    // The file fixed, a reload loads it again and the error is gone.
    std::fs::write(&copy, &good).unwrap();
    let report = reload_plugins(&server).await;
    assert_eq!(report["ok"], true, "{report}");
    let p = plugin_status(&server).await["plugins"][0].clone();
    assert!(p["last_reload_error"].is_null(), "{p}");
    assert_eq!(
        p["calls"]["allow"], 1,
        "the version that served kept its counts: {p}"
    );
}

/// A recording's lines, read until the server ends it.
async fn recorded(mut recording: reqwest::Response) -> String {
    let mut text = String::new();
    while let Some(chunk) = recording.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    text
}
