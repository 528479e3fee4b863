//! What the hook events carry, seen from a plugin in the running server: the policy
//! "deny activations whose machine name contains vm" (`plugins/examples/machine-rules`),
//! which needs the machine name the client sent.
//!
//! The plugin is built by `plugins/examples/build.sh` (run by `tests/run.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use serde_json::{Value, json};
use tessera_config::PluginConfig;
use tessera_integration_tests::TestServer;

fn machine_rules() -> PluginConfig {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join("plugins/examples/dist/machine-rules.wasm");
    assert!(
        path.exists(),
        "{} is missing: run `bash plugins/examples/build.sh` (tests/run.sh does)",
        path.display()
    );
    let mut p: PluginConfig = toml::from_str(&format!(
        "name = \"machine-rules\"\npath = {:?}",
        path.display().to_string()
    ))
    .unwrap();
    p.config = toml::from_str("deny_machine_names = [\"vm\"]").unwrap();
    p
}

async fn issue(server: &TestServer) -> String {
    let resp = server
        .admin_post("/api/admin/licenses")
        .json(&json!({"max_devices": 5, "max_sessions": 5}))
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

async fn activate(server: &TestServer, key: &str, hw: &str, machine: &str) -> (u16, Value) {
    let resp = server
        .post("/api/license/activate")
        .header("User-Agent", "acme-client/2.4")
        .json(
            &json!({"license_key": key, "hardware_hash": hw, "machine_name": machine,
                      "app_version": "2.4.0"}),
        )
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn activations_whose_machine_name_contains_vm_are_denied() {
    let server = TestServer::start_with(|c| c.plugins.push(machine_rules()))
        .await
        .unwrap();
    let key = issue(&server).await;

    for machine in ["build-vm-07", "WinVM"] {
        let (status, body) = activate(&server, &key, machine, machine).await;
        assert_eq!(status, 403, "{machine}: {body}");
        assert_eq!(body["code"], "MACHINE_NOT_ALLOWED", "{body}");
    }
    let (status, body) = activate(&server, &key, "hw-laptop", "alice-laptop").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["active_devices"], 1,
        "the refused devices were not kept: {body}"
    );

    // A session start carries the name its device was activated with.
    let resp = server
        .post("/api/license/session/start")
        .json(&json!({"license_key": key, "hardware_hash": "hw-laptop", "version": "2.4.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn session_starts_carry_the_machine_name_the_device_was_activated_with() {
    let server = TestServer::start().await.unwrap();
    let key = issue(&server).await;
    assert_eq!(activate(&server, &key, "hw-ci", "ci-vm-3").await.0, 200);
    assert_eq!(
        activate(&server, &key, "hw-laptop", "alice-laptop").await.0,
        200
    );

    let mut config = (*server.state.config).clone();
    config.plugins.push(machine_rules());
    assert!(server.state.policy.reload(&config).await.is_ok());

    let start = |hw: &'static str| {
        server
            .post("/api/license/session/start")
            .json(&json!({"license_key": key, "hardware_hash": hw, "version": "2.4.0"}))
            .send()
    };
    let resp = start("hw-ci").await.unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "MACHINE_NOT_ALLOWED", "{body}");
    assert_eq!(start("hw-laptop").await.unwrap().status(), 200);
}
