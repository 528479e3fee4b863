//! The session WebSocket in the real router: a revoke reaches a connected client at once
//! (within 100 ms of the revoke call, which returns once the revoke is durable; a property
//! of the protocol: the client hears of it without a heartbeat in between), and a refused
//! handshake is a JSON error, and a `heartbeats` frame answers each entry as if it came
//! alone while the 64-session limit holds across the frame, and a server shutdown closes
//! every connection with 1001 and completes.
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

/// The session WebSocket of `token` on `key`, as a client opens it.
async fn open_ws(
    server: &TestServer,
    key: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let req = server.session_ws_request(key, token).unwrap();
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// Activates a device and starts a session on `key`; returns the token.
async fn start_session(server: &TestServer, key: &str, device: &str) -> String {
    let body = serde_json::json!({"license_key": key, "hardware_hash": device});
    let r = server
        .post("/api/license/activate")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = server
        .post("/api/license/session/start")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    v["session_token"].as_str().unwrap().to_owned()
}

fn heartbeats_total(metrics: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("tessera_heartbeats_total "))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeats_frame_answers_each_entry_and_keeps_the_session_limit() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let server = server().await;
    let new = NewLicense {
        overrides: tessera_actors::LimitOverrides {
            max_devices: Some(100),
            max_activations: Some(0),
            max_sessions: Some(100),
            on_session_limit: None,
        },
        ..NewLicense::default()
    };
    let issued = server.state.admin.issue(new, 1).await.unwrap();
    let key = issued[0].key.to_string();
    let mut tokens = Vec::new();
    for i in 0..66 {
        tokens.push(start_session(&server, &key, &format!("device-{i}")).await);
    }
    let mut ws = open_ws(&server, &key, &tokens[0]).await;
    async fn next<S>(ws: &mut S) -> serde_json::Value
    where
        S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
    {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        serde_json::from_str(msg.to_text().unwrap()).unwrap()
    }
    assert_eq!(next(&mut ws).await["type"], "heartbeat_ok");
    let metrics = async || -> String {
        let r = server.client().get(server.url("/metrics")).send().await;
        r.unwrap().text().await.unwrap()
    };
    let before = heartbeats_total(&metrics().await);

    // 65 entries: too many for one frame, refused as a whole; nothing ran.
    let entries = |tokens: &[String]| -> Vec<serde_json::Value> {
        tokens
            .iter()
            .enumerate()
            .map(|(i, t)| serde_json::json!({"session_token": t, "license_key": key, "id": i}))
            .collect()
    };
    let frame = |entries: Vec<serde_json::Value>| {
        Message::text(serde_json::json!({"type": "heartbeats", "heartbeats": entries}).to_string())
    };
    ws.send(frame(entries(&tokens[..65]))).await.unwrap();
    let f = next(&mut ws).await;
    assert_eq!(f["type"], "error", "{f}");
    assert_eq!(f["code"], "VALIDATION_ERROR", "{f}");
    assert!(f.get("id").is_none(), "{f}");
    assert_eq!(heartbeats_total(&metrics().await), before);

    // Carried sessions need no license key (any spelling of the token); an unknown session
    // fails alone, with the code HTTP would answer.
    let unknown = "00000000-0000-4000-8000-000000000000";
    let mixed = vec![
        serde_json::json!({"session_token": tokens[0], "id": "a"}),
        serde_json::json!({"session_token": unknown, "license_key": key, "id": "b"}),
        serde_json::json!({"session_token": tokens[0].to_uppercase(), "id": "c"}),
    ];
    ws.send(frame(mixed)).await.unwrap();
    let f = next(&mut ws).await;
    let r = f["results"].as_array().unwrap();
    assert_eq!(r.len(), 3, "{f}");
    assert_eq!(r[0]["type"], "heartbeat_ok", "{f}");
    assert_eq!(r[1]["code"], "SESSION_NOT_FOUND", "{f}");
    assert_eq!(r[1]["status"], 404, "{f}");
    assert_eq!(r[1]["id"], "b", "{f}");
    assert_eq!(r[2]["type"], "heartbeat_ok", "{f}");
    assert_eq!(heartbeats_total(&metrics().await), before + 2.0);

    // The connection carries 1; 64 entries for tokens 1..=64 would make 65: the first 63
    // join, the 64th is refused alone, and every other entry is a heartbeat of its own.
    ws.send(frame(entries(&tokens[1..65]))).await.unwrap();
    let f = next(&mut ws).await;
    assert_eq!(f["type"], "heartbeat_results", "{f}");
    let results = f["results"].as_array().unwrap();
    assert_eq!(results.len(), 64);
    for (i, r) in results.iter().enumerate() {
        if i < 63 {
            assert_eq!(r["type"], "heartbeat_ok", "{r}");
            assert_eq!(r["id"], i, "{r}");
            assert_eq!(r["session_token"], tokens[i + 1].as_str(), "{r}");
        } else {
            assert_eq!(r["type"], "error", "{r}");
            assert_eq!(r["code"], "VALIDATION_ERROR", "{r}");
            assert_eq!(r["id"], 63, "{r}");
        }
    }
    assert_eq!(heartbeats_total(&metrics().await), before + 65.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_entry_of_a_frame_takes_a_token_of_the_per_address_limit() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    // 8 session-route requests per minute per address: the setup and the handshake take
    // some, a frame of 16 entries cannot all pass.
    let server = TestServer::start_with(|c| c.rate_limit.sessions_per_minute = 8)
        .await
        .unwrap();
    let key = license(&server).await;
    let token = start_session(&server, &key, "device-1").await;
    let mut ws = open_ws(&server, &key, &token).await;
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("heartbeat_ok"));
    let entries: Vec<serde_json::Value> = (0..16)
        .map(|i| serde_json::json!({"session_token": token, "id": i}))
        .collect();
    let frame = serde_json::json!({"type": "heartbeats", "heartbeats": entries});
    ws.send(Message::text(frame.to_string())).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let f: serde_json::Value = serde_json::from_str(answer.to_text().unwrap()).unwrap();
    let results = f["results"].as_array().unwrap();
    assert_eq!(results.len(), 16, "{f}");
    let ok = results
        .iter()
        .take_while(|r| r["type"] == "heartbeat_ok")
        .count();
    assert!(ok >= 1, "the first entries pass: {f}");
    for r in &results[ok..] {
        assert_eq!(r["code"], "RATE_LIMITED", "{f}");
        assert_eq!(r["status"], 429, "{f}");
        assert!(r["retry_after_secs"].as_u64().unwrap() >= 1, "{f}");
    }
    assert!(ok < 16, "the address's limit held: {f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_shutdown_closes_each_connection_with_1001_and_completes() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let server = server().await;
    let mut sockets = Vec::new();
    for device in ["device-1", "device-2"] {
        let key = license(&server).await;
        let token = start_session(&server, &key, device).await;
        let mut ws = open_ws(&server, &key, &token).await;
        let first = ws.next().await.unwrap().unwrap();
        assert!(first.to_text().unwrap().contains("heartbeat_ok"));
        sockets.push(ws);
    }
    assert_eq!(server.state.session_push.connections(), 2);
    // The connections wait idle; the shutdown reaches them through their push queues, and
    // the server's stop waits for them to be gone.
    let stopping = tokio::spawn(server.stop());
    for mut ws in sockets {
        let close = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the close frame comes")
            .unwrap()
            .unwrap();
        let Message::Close(Some(frame)) = close else {
            panic!("a close frame, not {close:?}");
        };
        assert_eq!(frame.code, CloseCode::Away, "1001: {frame:?}");
        assert_eq!(frame.reason.as_str(), "server shutting down");
    }
    tokio::time::timeout(Duration::from_secs(30), stopping)
        .await
        .expect("the server stops once its connections closed")
        .unwrap()
        .unwrap();
}
