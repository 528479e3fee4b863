//! Sessions over the server's session WebSocket (`GET /api/license/session/ws`): the SDK
//! uses it when offered and falls back to HTTP; the server's pushes (session ended, update
//! available) reach the application at once; a client written from `docs/api.md` alone with
//! Python's `websockets` speaks the protocol.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Server, eventually};
use tessera_client::{ActivateRequest, Client, EndReason, Event, SessionState, StartRequest};

const WAIT: Duration = Duration::from_secs(30);

async fn next_event(rx: &mut tokio::sync::mpsc::Receiver<Event>, within: Duration) -> Event {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("no event in time")
        .expect("event channel closed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_go_over_the_websocket_when_the_server_offers_it() {
    let server = Server::start("").await.unwrap();
    let client = Client::new(&server.url, &server.api_key).unwrap();
    let key = server.create_license(&[]);
    let device = tessera_client::fingerprint().hardware_hash();
    client
        .activate(&ActivateRequest::new(&key, &device))
        .await
        .unwrap();
    let session = client
        .start_session(&StartRequest::new(&key, &device))
        .await
        .unwrap();
    eventually("the WebSocket", WAIT, || {
        session.uses_websocket().then_some(())
    })
    .await;
    let http_before = server
        .metric("tessera_http_requests_total{route=\"/api/license/session/heartbeat\"")
        .await;
    let beats_before = server.metric("tessera_heartbeats_total").await;
    let n = session.heartbeats();
    eventually("4 more heartbeats", WAIT, || {
        (session.heartbeats() >= n + 4).then_some(())
    })
    .await;
    assert!(session.uses_websocket());
    assert_eq!(server.metric("tessera_ws_connections").await, 1.0);
    // Counted as heartbeats, not as HTTP heartbeat requests.
    assert!(server.metric("tessera_heartbeats_total").await >= beats_before + 4.0);
    assert_eq!(
        server
            .metric("tessera_http_requests_total{route=\"/api/license/session/heartbeat\"")
            .await,
        http_before
    );
    session.end().await.unwrap();
    eventually("the connection closed", WAIT, || Some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_websocket_the_sdk_heartbeats_over_http() {
    let server = Server::start("").await.unwrap();
    let client = Client::builder(&server.url, &server.api_key)
        .websocket(false)
        .build()
        .unwrap();
    let key = server.create_license(&[]);
    client
        .activate(&ActivateRequest::new(&key, "device-1"))
        .await
        .unwrap();
    let session = client
        .start_session(&StartRequest::new(&key, "device-1"))
        .await
        .unwrap();
    eventually("3 heartbeats", WAIT, || {
        (session.heartbeats() >= 3).then_some(())
    })
    .await;
    assert!(!session.uses_websocket());
    assert_eq!(server.metric("tessera_ws_connections").await, 0.0);
    session.end().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_is_pushed_long_before_the_next_heartbeat() {
    // Heartbeats every 60 s: over HTTP the evicted session would learn it only then.
    let server = Server::start_timed(
        (60, 120, 30),
        "[licenses]\non_session_limit = \"evict_oldest\"\n",
    )
    .await
    .unwrap();
    let client = Client::new(&server.url, &server.api_key).unwrap();
    let key = server.create_license(&["--max-devices", "2"]);
    for d in ["device-a", "device-b"] {
        client
            .activate(&ActivateRequest::new(&key, d))
            .await
            .unwrap();
    }
    let mut first = client
        .start_session(&StartRequest::new(&key, "device-a"))
        .await
        .unwrap();
    let mut events = first.events().unwrap();
    eventually("the WebSocket", WAIT, || {
        first.uses_websocket().then_some(())
    })
    .await;
    let second = client
        .start_session(&StartRequest::new(&key, "device-b"))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut events, Duration::from_secs(10)).await,
        Event::Ended {
            reason: EndReason::Evicted
        }
    );
    assert_eq!(first.state(), SessionState::Ended(EndReason::Evicted));
    assert_eq!(
        first.heartbeats(),
        0,
        "learnt from the push, not from a heartbeat"
    );
    second.end().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_published_by_a_reload_is_pushed_as_update_available() {
    let server = Server::start("").await.unwrap();
    let client = Client::new(&server.url, &server.api_key).unwrap();
    let key = server.create_license(&[]);
    client
        .activate(&ActivateRequest::new(&key, "device-1"))
        .await
        .unwrap();
    let mut start = StartRequest::new(&key, "device-1");
    start.version = Some("1.0.0".into());
    let mut session = client.start_session(&start).await.unwrap();
    let mut events = session.events().unwrap();
    // Told once at start (2.0.0 is out), not again by the WebSocket.
    assert!(matches!(
        next_event(&mut events, WAIT).await,
        Event::UpdateAvailable { latest_version, .. } if latest_version == "2.0.0"
    ));
    eventually("the WebSocket", WAIT, || {
        session.uses_websocket().then_some(())
    })
    .await;

    let config = std::fs::read_to_string(&server.config).unwrap();
    std::fs::write(
        &server.config,
        config.replace("latest_version = \"2.0.0\"", "latest_version = \"3.0.0\""),
    )
    .unwrap();
    server.reload();
    match next_event(&mut events, WAIT).await {
        Event::UpdateAvailable {
            latest_version,
            download_url,
            ..
        } => {
            assert_eq!(latest_version, "3.0.0");
            assert_eq!(download_url, "https://example.com/app-2.0.0");
        }
        other => panic!("expected UpdateAvailable 3.0.0, got {other:?}"),
    }
    session.end().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_drops_the_websocket_and_the_sdk_comes_back_to_it() {
    let mut server = Server::start("").await.unwrap();
    let client = Client::new(&server.url, &server.api_key).unwrap();
    let key = server.create_license(&[]);
    client
        .activate(&ActivateRequest::new(&key, "device-1"))
        .await
        .unwrap();
    let session = client
        .start_session(&StartRequest::new(&key, "device-1"))
        .await
        .unwrap();
    eventually("the WebSocket", WAIT, || {
        session.uses_websocket().then_some(())
    })
    .await;
    server.restart().await.unwrap();
    let n = session.heartbeats();
    eventually("heartbeats after the restart", WAIT, || {
        (session.heartbeats() >= n + 2).then_some(())
    })
    .await;
    eventually("the WebSocket again", WAIT, || {
        session.uses_websocket().then_some(())
    })
    .await;
    assert!(session.is_valid());
    assert_eq!(server.live_sessions(&key), 1);
    session.end().await.unwrap();
}

/// A client no one here wrote: Python's `websockets` (PyPI), following docs/api.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_websockets_client_speaks_the_documented_protocol() {
    let check = Command::new("python3")
        .args(["-c", "import websockets"])
        .status()
        .unwrap();
    assert!(
        check.success(),
        "Python's `websockets` package is missing: pip install websockets (tests/run.sh does)"
    );
    let server = Server::start("").await.unwrap();
    let key = server.create_license(&["--max-devices", "2", "--max-sessions", "2"]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ws_protocol.py");
    let child = Command::new("python3")
        .arg(script)
        .args([&server.url, &server.api_key, &key])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("the Python client did not finish within 120 s")
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("protocol ok"), "{stdout}");
    assert_eq!(server.live_sessions(&key), 0);
}
