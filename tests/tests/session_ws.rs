//! The session WebSocket in the real router: a revoke reaches a connected client at once
//! (within 100 ms of the revoke call, which returns once the revoke is durable; a property
//! of the protocol: the client hears of it without a heartbeat in between), and a refused
//! handshake is a JSON error.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera::admin::NewLicense;
use tessera_actors::{LicenseKey, LicenseStatus};
use tessera_client::{ActivateRequest, Client, EndReason, Event, SessionOptions, StartRequest};
use tessera_integration_tests::TestServer;

async fn server() -> TestServer {
    // Heartbeats every 60 s: within the test no heartbeat can carry the news.
    TestServer::start_with(|c| {
        c.sessions.heartbeat_interval = Duration::from_secs(60);
        c.sessions.heartbeat_timeout = Duration::from_secs(120);
    })
    .await
    .unwrap()
}

async fn license(server: &TestServer) -> String {
    let issued = server
        .state
        .admin
        .issue(NewLicense::default(), 1)
        .await
        .unwrap();
    issued[0].key.to_string()
}

async fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_reaches_a_websocket_client_within_100_ms() {
    let server = server().await;
    let key = license(&server).await;
    let client = Client::new(&server.url(""), &server.api_key).unwrap();
    client
        .activate(&ActivateRequest::new(&key, "device-1"))
        .await
        .unwrap();
    // When the end reached the application: stamped by the SDK's callback as it arrives.
    let heard: Arc<Mutex<Option<(Instant, Event)>>> = Arc::default();
    let stamp = Arc::clone(&heard);
    let options = SessionOptions::default().on_event(move |e| {
        if matches!(e, Event::Ended { .. }) {
            *stamp.lock().unwrap() = Some((Instant::now(), e.clone()));
        }
    });
    let session = client
        .start_session_with(&StartRequest::new(&key, "device-1"), options)
        .await
        .unwrap();
    poll("the WebSocket", || session.uses_websocket().then_some(())).await;

    let called = Instant::now();
    server
        .state
        .admin
        .set_status(
            &LicenseKey::parse(&key).unwrap(),
            LicenseStatus::Revoked,
            Some("chargeback".into()),
            None,
        )
        .await
        .unwrap();
    // The revoke is durable (a store commit) before it takes effect and the call returns;
    // the push must follow at once, not at the next heartbeat 60 s away.
    let returned = Instant::now();
    let (at, event) = poll("the push", || heard.lock().unwrap().clone()).await;
    println!(
        "revoke call took {:?}; the client heard it {:?} after the call started, {:?} after it returned",
        returned - called,
        at - called,
        at.saturating_duration_since(returned)
    );
    assert_eq!(
        event,
        Event::Ended {
            reason: EndReason::Revoked
        }
    );
    assert!(
        at.saturating_duration_since(returned) < Duration::from_millis(100),
        "the revoke reached the client {:?} after the revoke call returned",
        at.saturating_duration_since(returned)
    );
    assert!(!session.is_valid());
    assert_eq!(session.heartbeats(), 0, "no heartbeat carried it");
}

#[tokio::test]
async fn a_refused_handshake_is_a_json_error_and_no_upgrade() {
    let server = server().await;
    let key = license(&server).await;
    let ws_headers = |b: reqwest::RequestBuilder| {
        b.header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    };
    let path = "/api/license/session/ws";
    // No API key.
    let resp = ws_headers(server.client().get(server.url(path)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Unknown session.
    let resp = ws_headers(server.get(path))
        .header("X-Session-Token", "00000000-0000-4000-8000-000000000000")
        .header("X-License-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "SESSION_NOT_FOUND", "{body}");
    // Not a WebSocket handshake.
    let resp = server
        .get(path)
        .header("X-Session-Token", "00000000-0000-4000-8000-000000000000")
        .header("X-License-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "VALIDATION_ERROR", "{body}");
}
