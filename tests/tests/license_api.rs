//! Seed 000's License, Session and Version API end to end on the embedded store: every
//! endpoint's success and its documented errors.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera::admin::NewLicense;
use tessera_actors::{LicenseKey, LicenseStatus, LimitOverrides, Request};
use tessera_integration_tests::TestServer;

async fn new_license(server: &TestServer, overrides: LimitOverrides) -> String {
    let new = NewLicense {
        overrides,
        ..NewLicense::default()
    };
    let issued = server.state.admin.issue(new, 1).await.unwrap();
    issued[0].key.to_string()
}

fn limits(devices: u32, activations: u32, sessions: u32) -> LimitOverrides {
    LimitOverrides {
        max_devices: Some(devices),
        max_activations: Some(activations),
        max_sessions: Some(sessions),
        on_session_limit: None,
    }
}

async fn post(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let resp = server.post(path).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn activate(server: &TestServer, key: &str, hw: &str) -> (u16, Value) {
    post(
        server,
        "/api/license/activate",
        json!({"license_key": key, "hardware_hash": hw, "machine_name": "DESKTOP-1", "app_version": "1.0.0"}),
    )
    .await
}

async fn start(server: &TestServer, key: &str, hw: &str) -> (u16, Value) {
    post(
        server,
        "/api/license/session/start",
        json!({"license_key": key, "machine_id": "DESKTOP-1", "hardware_hash": hw, "version": "0.9.0"}),
    )
    .await
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn activation_follows_seed_shape_is_idempotent_and_enforces_limits() {
    let server = TestServer::start().await.unwrap();
    let key = new_license(&server, limits(1, 2, 1)).await;

    let (status, body) = activate(&server, &key, "hw-1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "License activated successfully");
    let a = &body["activation"];
    for field in [
        "id",
        "license_key",
        "hardware_hash",
        "machine_name",
        "activated_at",
        "last_heartbeat",
        "is_active",
    ] {
        assert!(!a[field].is_null(), "activation.{field} missing in {body}");
    }
    assert_eq!(a["license_key"], key.as_str());
    assert_eq!(a["is_active"], true);

    let (status, again) = activate(&server, &key, "hw-1").await;
    assert_eq!(status, 200);
    assert_eq!(again["activation"]["id"], a["id"]);
    assert_eq!(again["already_active"], true);

    let (status, body) = activate(&server, &key, "hw-2").await;
    assert_eq!((status, code(&body)), (409, "DEVICE_LIMIT_REACHED"));

    let (status, body) = activate(&server, "NOPE-NOPE-NOPE-NOPE", "hw-1").await;
    assert_eq!((status, code(&body)), (404, "LICENSE_NOT_FOUND"));
    assert_eq!(body["status"], 404);
}

#[tokio::test]
async fn lifetime_activation_limit_is_its_own_error() {
    let server = TestServer::start().await.unwrap();
    let key = new_license(&server, limits(5, 1, 1)).await;
    assert_eq!(activate(&server, &key, "hw-1").await.0, 200);
    let (status, body) = activate(&server, &key, "hw-2").await;
    assert_eq!((status, code(&body)), (409, "ACTIVATION_LIMIT_REACHED"));
}

#[tokio::test]
async fn status_and_expiry_refuse_with_their_codes() {
    let server = TestServer::start().await.unwrap();
    for (status, code_expected) in [
        (LicenseStatus::Suspended, "LICENSE_SUSPENDED"),
        (LicenseStatus::Revoked, "LICENSE_REVOKED"),
        (LicenseStatus::Banned, "LICENSE_BANNED"),
    ] {
        let key = new_license(&server, limits(1, 0, 1)).await;
        let lk = LicenseKey::parse(&key).unwrap();
        server
            .state
            .licenses
            .call(
                &lk,
                Request::SetStatus {
                    status,
                    reason: None,
                    until: None,
                },
            )
            .await
            .unwrap();
        let (s, body) = activate(&server, &key, "hw").await;
        assert_eq!((s, code(&body)), (403, code_expected));
    }
    let key = new_license(&server, limits(1, 0, 1)).await;
    let lk = LicenseKey::parse(&key).unwrap();
    let patch = tessera_actors::LicensePatch {
        valid_until: Some(Some(chrono::Utc::now() - chrono::Duration::days(1))),
        ..Default::default()
    };
    server
        .state
        .licenses
        .call(&lk, Request::Update(patch))
        .await
        .unwrap();
    let (s, body) = post(&server, "/api/license/verify", json!({"license_key": key})).await;
    assert_eq!((s, code(&body)), (403, "LICENSE_EXPIRED"));
}

#[tokio::test]
async fn verify_and_info_show_the_seed_fields() {
    let server = TestServer::start_with(|c| {
        if let Some(p) = c.products.get_mut("default") {
            p.latest_version = "1.1.0".into();
        }
    })
    .await
    .unwrap();
    let key = new_license(&server, limits(2, 0, 3)).await;
    let (s, body) = post(
        &server,
        "/api/license/verify",
        json!({"license_key": key, "hardware_hash": "hw-1", "app_version": "1.0.0"}),
    )
    .await;
    assert_eq!((s, code(&body)), (403, "NOT_ACTIVATED"));
    activate(&server, &key, "hw-1").await;
    let (s, body) = post(
        &server,
        "/api/license/verify",
        json!({"license_key": key, "hardware_hash": "hw-1", "app_version": "1.0.0"}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["valid"], true);
    assert_eq!(body["license"]["key"], key.as_str());
    assert_eq!(body["license"]["max_users"], 3);
    assert!(body["license"].get("valid_until").is_some());
    assert_eq!(body["update_available"], true);
    assert_eq!(body["latest_version"], "1.1.0");

    let resp = server
        .get(&format!("/api/license/info/{key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    for field in [
        "id",
        "key",
        "customer_name",
        "type",
        "valid_from",
        "valid_until",
        "max_activations",
        "max_users",
        "is_active",
    ] {
        assert!(
            body["license"].get(field).is_some(),
            "license.{field} missing in {body}"
        );
    }
    assert_eq!(body["activations"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["activations"][0]["hardware_hash"], "hw-1");

    let resp = server.get("/api/license/info/NOPE-1").send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = server
        .get("/api/license/info/bad%20key")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn session_lifecycle_start_heartbeat_end() {
    let server = TestServer::start().await.unwrap();
    let key = new_license(&server, limits(1, 0, 1)).await;
    let (s, body) = start(&server, &key, "hw-1").await;
    assert_eq!((s, code(&body)), (403, "NOT_ACTIVATED"));
    activate(&server, &key, "hw-1").await;

    let (s, body) = start(&server, &key, "hw-1").await;
    assert_eq!(s, 200, "{body}");
    let token = body["session_token"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&token).is_ok());
    assert!(body["heartbeat_interval_secs"].as_u64().unwrap() > 0);
    assert!(body.get("update_available").is_some());

    let (s, body) = start(&server, &key, "hw-1").await;
    assert_eq!((s, code(&body)), (409, "SESSION_LIMIT_REACHED"));
    assert!(body["error"].as_str().unwrap().contains("nur eine Sitzung"));

    let (s, body) = post(
        &server,
        "/api/license/session/heartbeat",
        json!({"session_token": token, "license_key": key}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(chrono::DateTime::parse_from_rfc3339(body["last_heartbeat"].as_str().unwrap()).is_ok());

    let unknown = uuid::Uuid::new_v4().to_string();
    let (s, body) = post(
        &server,
        "/api/license/session/heartbeat",
        json!({"session_token": unknown, "license_key": key}),
    )
    .await;
    assert_eq!((s, code(&body)), (404, "SESSION_NOT_FOUND"));
    let (s, body) = post(
        &server,
        "/api/license/session/heartbeat",
        json!({"session_token": "not-a-uuid", "license_key": key}),
    )
    .await;
    assert_eq!((s, code(&body)), (400, "VALIDATION_ERROR"));
    assert!(body["error"].as_str().unwrap().contains("session_token"));

    let (s, body) = post(
        &server,
        "/api/license/session/end",
        json!({"session_token": token}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["end_reason"], "client_end");
    assert!(body["duration_seconds"].as_i64().unwrap() >= 0);

    let (s, body) = post(
        &server,
        "/api/license/session/heartbeat",
        json!({"session_token": token, "license_key": key}),
    )
    .await;
    assert_eq!((s, code(&body)), (410, "SESSION_EXPIRED"));
    let (s, body) = post(
        &server,
        "/api/license/session/end",
        json!({"session_token": unknown}),
    )
    .await;
    assert_eq!((s, code(&body)), (404, "SESSION_NOT_FOUND"));

    // The seat is free again.
    assert_eq!(start(&server, &key, "hw-1").await.0, 200);
}

#[tokio::test]
async fn two_hundred_concurrent_starts_on_five_seats_admit_exactly_five() {
    let server = TestServer::start_with(|c| c.rate_limit.heartbeat_per_minute = 100_000)
        .await
        .unwrap();
    let key = new_license(&server, limits(1, 0, 5)).await;
    activate(&server, &key, "hw-1").await;
    let server = std::sync::Arc::new(server);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let server = server.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(
            async move { start(&server, &key, "hw-1").await },
        ));
    }
    let mut ok = 0;
    let mut conflict = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => ok += 1,
            (409, b) if code(&b) == "SESSION_LIMIT_REACHED" => conflict += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, conflict), (5, 195));
    let resp = server
        .get(&format!("/api/license/info/{key}"))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["license"]["live_sessions"], 5);
}

#[tokio::test]
async fn silent_session_expires_with_a_tiny_heartbeat_timeout() {
    let server = TestServer::start_with(|c| {
        c.sessions.heartbeat_interval = Duration::from_secs(1);
        c.sessions.heartbeat_timeout = Duration::from_secs(1);
        c.sessions.grace = Duration::from_secs(0);
    })
    .await
    .unwrap();
    let key = new_license(&server, limits(1, 0, 1)).await;
    activate(&server, &key, "hw-1").await;
    let (_, body) = start(&server, &key, "hw-1").await;
    let token = body["session_token"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let resp = server
            .get(&format!("/api/license/info/{key}"))
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        if body["license"]["live_sessions"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "session never expired: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, body) = post(
        &server,
        "/api/license/session/heartbeat",
        json!({"session_token": token, "license_key": key}),
    )
    .await;
    assert_eq!((s, code(&body)), (410, "SESSION_EXPIRED"));
    let (s, body) = post(
        &server,
        "/api/license/session/end",
        json!({"session_token": token, "license_key": key}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["end_reason"], "timeout");
    // A new session can start: the expired one no longer holds the seat.
    assert_eq!(start(&server, &key, "hw-1").await.0, 200);
}

#[tokio::test]
async fn restart_keeps_licenses_activations_and_live_sessions() {
    let server = TestServer::start().await.unwrap();
    let key = new_license(&server, limits(1, 0, 1)).await;
    activate(&server, &key, "hw-1").await;
    let (_, body) = start(&server, &key, "hw-1").await;
    let token = body["session_token"].as_str().unwrap().to_string();
    let stopped = server.stop().await.unwrap();
    let server = stopped.restart().await.unwrap();

    let (s, body) = post(
        &server,
        "/api/license/session/heartbeat",
        json!({"session_token": token, "license_key": key}),
    )
    .await;
    assert_eq!(s, 200, "live session survives a restart: {body}");
    let (s, body) = start(&server, &key, "hw-1").await;
    assert_eq!(
        (s, code(&body)),
        (409, "SESSION_LIMIT_REACHED"),
        "and still holds its seat"
    );
    let (s, body) = activate(&server, &key, "hw-1").await;
    assert_eq!((s, body["already_active"].clone()), (200, json!(true)));
    let (s, _) = post(
        &server,
        "/api/license/session/end",
        json!({"session_token": token}),
    )
    .await;
    assert_eq!(
        s, 200,
        "session end by token alone finds the license after restart"
    );
}

#[tokio::test]
async fn version_check_and_latest_use_the_product_channel() {
    let server = TestServer::start_with(|c| {
        if let Some(p) = c.products.get_mut("default") {
            p.latest_version = "1.1.0".into();
            p.download_url = "https://example.com/download/v1.1.0".into();
            p.release_notes = "Bug fixes".into();
            p.release_date = "2026-11-20".into();
        }
    })
    .await
    .unwrap();
    let (s, body) = post(
        &server,
        "/api/version/check",
        json!({"current_version": "1.0.0"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        body,
        json!({"update_available": true, "latest_version": "1.1.0", "download_url": "https://example.com/download/v1.1.0", "release_notes": "Bug fixes"})
    );
    let (_, body) = post(
        &server,
        "/api/version/check",
        json!({"current_version": "1.1.0"}),
    )
    .await;
    assert_eq!(body["update_available"], false);
    let (s, body) = post(
        &server,
        "/api/version/check",
        json!({"current_version": "1.0", "license_key": "NOPE-NOPE"}),
    )
    .await;
    assert_eq!((s, code(&body)), (404, "LICENSE_NOT_FOUND"));
    let resp = server.get("/api/version/latest").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["version"], "1.1.0");
    assert_eq!(body["release_date"], "2026-11-20");
    let resp = server
        .get("/api/version/latest?product=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn garbage_input_gets_a_4xx_and_changes_nothing() {
    let server = TestServer::start().await.unwrap();
    let key = new_license(&server, limits(1, 0, 1)).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "/api/license/activate",
            br#"{"license_key": 5, "hardware_hash": "x"}"#.to_vec(),
        ),
        (
            "/api/license/activate",
            br#"{"hardware_hash": "x"}"#.to_vec(),
        ),
        (
            "/api/license/activate",
            format!(
                r#"{{"license_key": "{key}", "hardware_hash": "{}"}}"#,
                "x".repeat(5000)
            )
            .into_bytes(),
        ),
        (
            "/api/license/activate",
            format!(r#"{{"license_key": "{key}", "hardware_hash": "   "}}"#).into_bytes(),
        ),
        (
            "/api/license/activate",
            b"{\"license_key\": \"\xff\xfe\", \"hardware_hash\": \"x\"}".to_vec(),
        ),
        ("/api/license/activate", b"[1,2,3]".to_vec()),
        ("/api/license/activate", b"".to_vec()),
        (
            "/api/license/session/start",
            br#"{"license_key": null}"#.to_vec(),
        ),
        (
            "/api/license/session/heartbeat",
            br#"{"session_token": ["x"], "license_key": "A"}"#.to_vec(),
        ),
        (
            "/api/license/session/end",
            br#"{"session_token": 12}"#.to_vec(),
        ),
        ("/api/version/check", br#"{"current_version": ""}"#.to_vec()),
    ];
    for (path, body) in cases {
        let resp = server
            .post(path)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let json: Value = resp.json().await.unwrap();
        assert!(
            (400..500).contains(&status),
            "{path} {:?} -> {status} {json}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            json["code"].is_string() && json["error"].is_string(),
            "{json}"
        );
    }
    let resp = server
        .get(&format!("/api/license/info/{key}"))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["activations"], json!([]), "nothing changed");
}

#[tokio::test]
async fn openapi_document_lists_every_client_endpoint() {
    let server = TestServer::start().await.unwrap();
    let resp = server
        .client()
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    for path in [
        "/api/license/activate",
        "/api/license/verify",
        "/api/license/info/{license_key}",
        "/api/license/session/start",
        "/api/license/session/heartbeat",
        "/api/license/session/end",
        "/api/version/check",
        "/api/version/latest",
        "/api/v2/register_instance",
        "/api/v2/begin_session",
        "/api/v2/extend_session",
        "/api/v2/end_session",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from /openapi.json"
        );
    }
}

#[test]
fn docs_api_md_lists_every_error_code() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md")).unwrap();
    for code in tessera::ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.status().as_u16());
        assert!(doc.contains(&row), "docs/api.md lacks the row {row}");
    }
}

#[tokio::test]
async fn ready_answers_200_while_the_store_is_up() {
    let server = TestServer::start().await.unwrap();
    let resp = server
        .client()
        .get(server.url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"ready": true, "store": "ok"}));
}
