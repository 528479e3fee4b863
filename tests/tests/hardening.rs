//! Issue 13, item 5: the hardening pass. Each test here failed before its fix.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera::admin::NewLicense;
use tessera::auth::admin_keys;
use tessera::auth::scopes::Scope;
use tessera_actors::{LicenseKey, LimitOverrides};
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

/// POSTs `body` as JSON; admin routes with the admin key `admin`, others with the system key.
async fn post_raw(server: &TestServer, admin: &str, path: &str, body: String) -> (u16, Value) {
    let mut req = server.post(path);
    if path.starts_with("/api/admin") {
        req = req.bearer_auth(admin);
    }
    let resp = req
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A license activated on `hw` with one live session; returns (key, session token).
async fn live_session(server: &TestServer, hw: &str) -> (String, String) {
    let key = new_license(server, limits(2, 10, 2)).await;
    let (status, body) = post(
        server,
        "/api/license/activate",
        json!({"license_key": key, "hardware_hash": hw}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        server,
        "/api/license/session/start",
        json!({"license_key": key, "hardware_hash": hw}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["session_token"].as_str().unwrap().to_string();
    (key, token)
}

#[tokio::test]
async fn spellings_of_one_session_token_share_one_heartbeat_bucket() {
    let server = TestServer::start_with(|c| c.rate_limit.heartbeat_per_minute = 2)
        .await
        .unwrap();
    let (key, token) = live_session(&server, "hw-hb").await;
    let spellings = [
        token.clone(),
        token.to_uppercase(),
        format!("{{{token}}}"),
        token.replace('-', ""),
    ];
    let mut statuses = Vec::new();
    for t in &spellings {
        let (status, body) = post(
            &server,
            "/api/license/session/heartbeat",
            json!({"session_token": t, "license_key": key}),
        )
        .await;
        statuses.push((status, body["code"].clone()));
    }
    assert_eq!(statuses[0].0, 200, "{statuses:?}");
    assert_eq!(statuses[1].0, 200, "{statuses:?}");
    assert_eq!(statuses[2].0, 429, "{statuses:?}");
    assert_eq!(statuses[3].0, 429, "{statuses:?}");
}

#[tokio::test]
async fn unknown_session_tokens_do_not_use_up_the_real_sessions_bucket() {
    let server = TestServer::start_with(|c| c.rate_limit.heartbeat_per_minute = 1)
        .await
        .unwrap();
    let (key, token) = live_session(&server, "hw-unknown").await;
    for _ in 0..3 {
        let (status, body) = post(
            &server,
            "/api/license/session/heartbeat",
            json!({"session_token": uuid::Uuid::new_v4().to_string(), "license_key": key}),
        )
        .await;
        assert_eq!(status, 404, "{body}");
    }
    let (status, body) = post(
        &server,
        "/api/license/session/heartbeat",
        json!({"session_token": token, "license_key": key}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn session_routes_are_limited_per_client_address() {
    let server = TestServer::start_with(|c| {
        c.rate_limit.sessions_per_minute = 3;
        c.rate_limit.heartbeat_per_minute = 1000;
    })
    .await
    .unwrap();
    let (key, token) = live_session(&server, "hw-sessions").await; // one sessions request
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, body) = post(
            &server,
            "/api/license/session/heartbeat",
            json!({"session_token": token, "license_key": key}),
        )
        .await;
        statuses.push((status, body["code"].clone()));
    }
    assert_eq!(
        statuses.iter().map(|s| s.0).collect::<Vec<_>>(),
        [200, 200, 429],
        "{statuses:?}"
    );
    assert_eq!(statuses[2].1, "RATE_LIMITED");
    // A flood of made-up tokens is refused at the gate too.
    let (status, _) = post(
        &server,
        "/api/license/session/end",
        json!({"session_token": uuid::Uuid::new_v4().to_string()}),
    )
    .await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn a_json_array_is_never_read_as_a_request_object() {
    let server = TestServer::start().await.unwrap();
    let key = new_license(&server, limits(1, 1, 1)).await;
    let (_, admin) = admin_keys::create(
        server.state.meta.as_ref(),
        "hardening",
        vec![Scope::LicensesWrite],
    )
    .await
    .unwrap();
    for (path, body) in [
        ("/api/admin/licenses", "[null, null]".to_string()),
        ("/api/license/activate", format!("[\"{key}\", \"hw\"]")),
        ("/api/license/verify", format!("[\"{key}\"]")),
        (
            "/api/license/session/end",
            "[\"00000000-0000-4000-8000-000000000000\"]".to_string(),
        ),
        (
            "/api/v2/register_instance",
            format!("[\"{}\", \"d\"]", server.api_key),
        ),
    ] {
        let (status, body) = post_raw(&server, &admin, path, body).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["code"], "VALIDATION_ERROR", "{path}: {body}");
    }
    // Nothing was issued or activated.
    let shown = server
        .state
        .admin
        .show(&LicenseKey::parse(&key).unwrap())
        .await
        .unwrap();
    assert_eq!(shown.license.record.activations_used, 0);
    let _ = (Duration::ZERO, Instant::now());
}

/// A raw TCP connection to `server` from `source` (any 127/8 address), so tests do not share
/// a connection budget with the harness's own pooled client on 127.0.0.1.
async fn raw_connect(server: &TestServer, source: [u8; 4]) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .unwrap();
    socket.connect(server.addr).await.unwrap()
}

/// Reads until the server closes the connection (EOF or reset); panics after 10 s.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "connection still open after 10 s; read so far: {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_header_is_closed() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start_with(|c| {
        c.server.header_read_timeout = Duration::from_millis(200);
    })
    .await
    .unwrap();
    let mut stream = raw_connect(&server, [127, 0, 0, 2]).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let got = read_until_closed(&mut stream).await;
    // hyper may answer 408 before closing; it must never answer the request.
    assert!(
        !String::from_utf8_lossy(&got).contains(" 200 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn an_oversized_request_header_gets_431_and_is_not_served() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start_with(|c| c.server.max_header_bytes = 16 * 1024)
        .await
        .unwrap();
    // Well under the cap: served.
    let mut ok = raw_connect(&server, [127, 0, 0, 3]).await;
    let small = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(4 * 1024)
    );
    ok.write_all(small.as_bytes()).await.unwrap();
    let got = String::from_utf8_lossy(&read_until_closed(&mut ok).await).into_owned();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    // 64 KiB of header: refused.
    let mut big = raw_connect(&server, [127, 0, 0, 3]).await;
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    // The server may close while we are still writing.
    let _ = big.write_all(request.as_bytes()).await;
    let got = String::from_utf8_lossy(&read_until_closed(&mut big).await).into_owned();
    assert!(
        got.is_empty() || got.starts_with("HTTP/1.1 431"),
        "expected 431 or a closed connection, got {got}"
    );
}

/// Sends `GET /health` on a new connection from `source`: whether it was served (200) or
/// closed unanswered (over the per-address cap).
async fn served_from(server: &TestServer, source: [u8; 4]) -> bool {
    use tokio::io::AsyncWriteExt;
    let mut stream = raw_connect(server, source).await;
    let _ = stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let got = String::from_utf8_lossy(&read_until_closed(&mut stream).await).into_owned();
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 200"), "{got}");
    !got.is_empty()
}

#[tokio::test]
async fn connections_beyond_the_per_address_cap_are_closed_at_once() {
    let server = TestServer::start_with(|c| c.server.max_connections_per_ip = 3)
        .await
        .unwrap();
    let source = [127, 0, 0, 4];
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(raw_connect(&server, source).await);
    }
    assert!(
        !served_from(&server, source).await,
        "a fourth connection was served"
    );
    // Another address is not affected.
    assert!(served_from(&server, [127, 0, 0, 5]).await);
    // A slot comes back when a held connection closes.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !served_from(&server, source).await {
        assert!(Instant::now() < deadline, "the freed slot never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_websocket_keeps_its_place_under_the_per_address_cap() {
    use futures::StreamExt;

    let server = TestServer::start_with(|c| c.server.max_connections_per_ip = 2)
        .await
        .unwrap();
    let source = [127, 0, 0, 6];
    let mut sockets = Vec::new();
    for hw in ["ws-device-1", "ws-device-2"] {
        // The session starts from the harness's own address; the socket comes from `source`.
        let (key, token) = live_session(&server, hw).await;
        let req = server.session_ws_request(&key, &token).unwrap();
        let stream = raw_connect(&server, source).await;
        let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
        let first = ws.next().await.unwrap().unwrap();
        assert!(first.to_text().unwrap().contains("heartbeat_ok"), "{first}");
        sockets.push(ws);
    }
    // Both upgraded: the HTTP connections they began as are over, their places are not.
    assert!(
        !served_from(&server, source).await,
        "a third connection was served while two WebSockets held the cap"
    );
    // Closing one gives its place back.
    let mut closing = sockets.pop().unwrap();
    closing.close(None).await.unwrap();
    while closing.next().await.is_some() {}
    drop(closing);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !served_from(&server, source).await {
        assert!(
            Instant::now() < deadline,
            "the closed socket's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(sockets);
}

#[tokio::test]
async fn metrics_and_openapi_move_to_their_own_listener_when_configured() {
    let port = tessera_integration_tests::free_port().unwrap();
    let ops = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let server = TestServer::start_with(|c| c.server.metrics_listen_addr = Some(ops))
        .await
        .unwrap();
    for path in ["/metrics", "/openapi.json"] {
        let main = server.client().get(server.url(path)).send().await.unwrap();
        assert_eq!(main.status(), 404, "{path} on the main listener");
        let body: Value = main.json().await.unwrap();
        assert_eq!(body["code"], "NOT_FOUND");
        let there = server
            .client()
            .get(format!("http://{ops}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(there.status(), 200, "{path} on the metrics listener");
    }
    // The metrics listener serves nothing else; the main one serves the rest.
    let api = server
        .client()
        .get(format!("http://{ops}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
    assert_eq!(server.get("/health").send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn without_a_metrics_listener_metrics_stay_on_the_main_one() {
    let server = TestServer::start().await.unwrap();
    let resp = server
        .client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

fn example_plugin(name: &str) -> tessera_config::PluginConfig {
    let path = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join(format!("plugins/examples/dist/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `bash plugins/examples/build.sh` (tests/run.sh does)",
        path.display()
    );
    let mut p: tessera_config::PluginConfig = toml::from_str(&format!(
        "name = {name:?}\npath = {:?}",
        path.display().to_string()
    ))
    .unwrap();
    p.config = toml::from_str("deny_machine_names = [\"build-vm\"]").unwrap();
    p
}

#[tokio::test]
async fn an_activation_a_plugin_denies_uses_up_no_lifetime_activation() {
    let server = TestServer::start_with(|c| c.plugins.push(example_plugin("machine-rules")))
        .await
        .unwrap();
    let key = new_license(&server, limits(1, 1, 1)).await;
    let (status, body) = post(
        &server,
        "/api/license/activate",
        json!({"license_key": key, "hardware_hash": "hw-vm", "machine_name": "build-vm-07"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let shown = server
        .state
        .admin
        .show(&LicenseKey::parse(&key).unwrap())
        .await
        .unwrap();
    assert_eq!(shown.license.record.activations_used, 0);
    assert!(shown.activations.iter().all(|a| !a.is_active));
    // The license's only lifetime activation is still there for an allowed machine.
    let (status, body) = post(
        &server,
        "/api/license/activate",
        json!({"license_key": key, "hardware_hash": "hw-laptop", "machine_name": "laptop"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
