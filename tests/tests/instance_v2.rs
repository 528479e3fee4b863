//! Seed 003's instance protocol under /api/v2 with the encrypted `{key, data}` envelope,
//! and the admin endpoints that issue licenses and change their status.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use serde_json::{Value, json};
use tessera::api::instance_v2::envelope;
use tessera_integration_tests::TestServer;

async fn issue(server: &TestServer, body: Value) -> String {
    let resp = server
        .admin_post("/api/admin/licenses")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["licenses"][0]["license_key"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn v2(server: &TestServer, path: &str, data: Value) -> (u16, Value) {
    let sealed = envelope::seal(&server.api_key, data.to_string().as_bytes()).unwrap();
    let resp = server
        .client()
        .post(server.url(path))
        .json(&json!({"key": server.api_key, "data": sealed}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn hardware(mac: &str) -> Value {
    json!({"cpu_id": "BFEBFBFF000906EA", "mb_serial": "MB-123", "mac_addresses": [mac],
           "volume_hash": "vol-9", "host_name": "WS-01"})
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object()) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
    a
}

#[tokio::test]
async fn register_begin_extend_end_round_trip() {
    let server = TestServer::start().await.unwrap();
    let key = issue(&server, json!({"max_devices": 1, "max_sessions": 1})).await;

    let (s, reg) = v2(&server, "/api/v2/register_instance",
        merge(hardware("aa:bb:cc:00:00:01"), json!({"product_guid": "default", "license_key": key, "name": "Ada", "email": "ada@example.com"}))).await;
    assert_eq!(s, 200, "{reg}");
    assert_eq!(reg["success"], true);
    let guid = reg["guid"].as_str().unwrap().to_string();
    assert!(reg["control_options"]["session_duration"].as_u64().unwrap() > 0);
    assert!(
        reg["control_options"]
            .get("validation_grace_period")
            .is_some()
    );
    assert!(reg["first_registered_at"].is_string() && reg["time"].is_string());

    // The same machine with a replaced network card is the same instance (match_most).
    let (s, again) = v2(
        &server,
        "/api/v2/register_instance",
        merge(hardware("aa:bb:cc:00:00:02"), json!({"license_key": key})),
    )
    .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["guid"], guid.as_str());

    // A different machine does not fit on a one-device license.
    let other = json!({"cpu_id": "X", "mb_serial": "Y", "mac_addresses": ["ff:ff:ff:ff:ff:ff"], "volume_hash": "Z", "host_name": "OTHER"});
    let (s, body) = v2(
        &server,
        "/api/v2/register_instance",
        merge(other, json!({"license_key": key})),
    )
    .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (409, Some("DEVICE_LIMIT_REACHED"))
    );
    assert_eq!(body["success"], false);

    let (s, begin) = v2(
        &server,
        "/api/v2/begin_session",
        merge(
            hardware("aa:bb:cc:00:00:01"),
            json!({"license_key": key, "instance_guid": guid, "duration": 600}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{begin}");
    assert_eq!(begin["status"], 200);
    let token = begin["token"].as_str().unwrap().to_string();
    assert!(begin["session_key"].is_string() && begin["features"].is_string());

    let (s, body) = v2(
        &server,
        "/api/v2/begin_session",
        merge(
            hardware("aa:bb:cc:00:00:01"),
            json!({"license_key": key, "instance_guid": guid}),
        ),
    )
    .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (409, Some("SESSION_LIMIT_REACHED"))
    );

    let (s, ext) = v2(
        &server,
        "/api/v2/extend_session",
        json!({"token": token, "duration": 60}),
    )
    .await;
    assert_eq!(s, 200, "{ext}");
    assert_eq!(ext["token"], token.as_str());

    let (s, end) = v2(&server, "/api/v2/end_session", json!({"token": token})).await;
    assert_eq!(s, 200, "{end}");
    assert!(end["time"].is_string());

    // Seed 003: end_session failure is 422.
    let (s, body) = v2(
        &server,
        "/api/v2/end_session",
        json!({"token": uuid::Uuid::new_v4().to_string()}),
    )
    .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["code"], "SESSION_NOT_FOUND");
    // Token-only calls find sessions through the live-session index, which ended ones leave.
    let (s, body) = v2(&server, "/api/v2/extend_session", json!({"token": token})).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (404, Some("SESSION_NOT_FOUND")),
        "an ended session cannot be extended"
    );
}

#[tokio::test]
async fn begin_session_rejects_a_foreign_instance_guid_and_wrong_product() {
    let server = TestServer::start().await.unwrap();
    let key = issue(&server, json!({"max_devices": 2})).await;
    let (_, reg) = v2(
        &server,
        "/api/v2/register_instance",
        merge(hardware("aa:00"), json!({"license_key": key})),
    )
    .await;
    assert_eq!(reg["success"], true, "{reg}");
    let (s, body) = v2(
        &server,
        "/api/v2/begin_session",
        merge(
            hardware("aa:00"),
            json!({"license_key": key, "instance_guid": uuid::Uuid::new_v4().to_string()}),
        ),
    )
    .await;
    assert_eq!((s, body["code"].as_str()), (403, Some("NOT_ACTIVATED")));
    let (s, body) = v2(
        &server,
        "/api/v2/register_instance",
        merge(
            hardware("aa:00"),
            json!({"license_key": key, "product_guid": "other-product"}),
        ),
    )
    .await;
    assert_eq!((s, body["code"].as_str()), (400, Some("VALIDATION_ERROR")));
}

#[tokio::test]
async fn envelope_with_a_wrong_key_or_garbage_data_is_refused() {
    let server = TestServer::start().await.unwrap();
    let resp = server
        .client()
        .post(server.url("/api/v2/extend_session"))
        .json(&json!({"key": "AF-2026-WRONG", "data": "AAAA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "INVALID_API_KEY");

    let resp = server
        .client()
        .post(server.url("/api/v2/extend_session"))
        .json(&json!({"key": server.api_key, "data": "not base64 !!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Sealed for another key: authentication of the ciphertext fails.
    let sealed = envelope::seal("AF-2026-OTHER", b"{\"token\":\"x\"}").unwrap();
    let resp = server
        .client()
        .post(server.url("/api/v2/extend_session"))
        .json(&json!({"key": server.api_key, "data": sealed}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let (s, body) = v2(
        &server,
        "/api/v2/register_instance",
        json!({"license_key": "A-B"}),
    )
    .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (400, Some("VALIDATION_ERROR")),
        "no hardware components"
    );
}

#[tokio::test]
async fn admin_issues_licenses_and_status_changes_end_sessions() {
    let server = TestServer::start().await.unwrap();
    let resp = server
        .admin_post("/api/admin/licenses")
        .json(&json!({"count": 3, "max_devices": 2, "max_users": 4, "days_valid": 30, "owner": "ACME"}))
        .send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["count"], 3);
    let key = body["licenses"][0]["license_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(body["licenses"][0]["valid_until"].is_string());

    let resp = server
        .admin_post("/api/admin/licenses")
        .json(&json!({"plan": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = server
        .admin_post("/api/admin/licenses")
        .json(&json!({"count": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = server
        .admin_post("/api/admin/licenses")
        .json(&json!({"max_seats": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        400,
        "unknown fields are refused, not ignored"
    );

    server
        .post("/api/license/activate")
        .json(&json!({"license_key": key, "hardware_hash": "hw"}))
        .send()
        .await
        .unwrap();
    let resp = server
        .post("/api/license/session/start")
        .json(&json!({"license_key": key, "hardware_hash": "hw"}))
        .send()
        .await
        .unwrap();
    let token = resp.json::<Value>().await.unwrap()["session_token"]
        .as_str()
        .unwrap()
        .to_string();

    let resp = server
        .admin_get(&format!("/api/admin/licenses/{key}"))
        .send()
        .await
        .unwrap();
    let view: Value = resp.json().await.unwrap();
    assert_eq!(view["max_sessions"], 4);
    assert_eq!(view["sessions"].as_array().map(Vec::len), Some(1));
    assert!(
        !view.to_string().contains(&token),
        "the admin view never shows tokens"
    );

    let resp = server
        .admin_post(&format!("/api/admin/licenses/{key}/status"))
        .json(&json!({"status": "banned", "reason": "sharing"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["ended_sessions"], 1);
    let resp = server
        .post("/api/license/session/heartbeat")
        .json(&json!({"session_token": token, "license_key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 410);
    let resp = server
        .post("/api/license/session/end")
        .json(&json!({"session_token": token, "license_key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["end_reason"], "banned");
    let resp = server
        .admin_post(&format!("/api/admin/licenses/{key}/status"))
        .json(&json!({"status": "bogus"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}
