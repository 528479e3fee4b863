//! Retries against a scripted HTTP server: 429 with `Retry-After` is honoured, 5xx and
//! network errors are retried, a 4xx is not, and every call carries `X-License-Key`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_client::{ActivateRequest, Client, Error, RetryPolicy, StartRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    head: String,
}

/// Serves `replies` in order (one per connection; `Connection: close`), records requests.
async fn scripted(replies: Vec<&'static str>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        for reply in replies {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            // Read the head and the (small) body.
            loop {
                let r = sock.read(&mut buf[n..]).await.unwrap();
                n += r;
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if n >= end + 4 + len || r == 0 {
                        log.lock().unwrap().push(Seen {
                            at: Instant::now(),
                            head: text[..end].to_string(),
                        });
                        break;
                    }
                }
            }
            sock.write_all(reply.as_bytes()).await.unwrap();
            sock.shutdown().await.ok();
        }
    });
    (url, seen)
}

fn http(status: &str, extra: &str, body: &str) -> &'static str {
    Box::leak(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    )
}

const ACTIVATED: &str = r#"{"message":"ok","activation":{"id":1,"hardware_hash":"h","machine_name":"","activated_at":"2026-01-01T00:00:00Z","is_active":true},"already_active":false,"active_devices":1,"max_devices":1}"#;

#[tokio::test]
async fn a_429_is_retried_after_retry_after_and_a_503_with_backoff() {
    let (url, seen) = scripted(vec![
        http(
            "429 Too Many Requests",
            "Retry-After: 1\r\n",
            r#"{"error":"slow down","code":"RATE_LIMITED","status":429}"#,
        ),
        http(
            "503 Service Unavailable",
            "",
            r#"{"error":"store","code":"STORE_UNAVAILABLE","status":503}"#,
        ),
        http("200 OK", "", ACTIVATED),
    ])
    .await;
    let client = Client::new(&url, "AF-2026-TEST").unwrap();
    let a = client
        .activate(&ActivateRequest::new("ABCD-EFGH-JKMN-PQRS", "h"))
        .await
        .unwrap();
    assert_eq!(a.activation.id, 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(
        seen[1].at - seen[0].at >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured: {:?}",
        seen[1].at - seen[0].at
    );
    for s in &seen {
        let head = s.head.to_ascii_lowercase();
        assert!(
            head.contains("x-license-key: abcd-efgh-jkmn-pqrs"),
            "{head}"
        );
        assert!(head.contains("x-api-key: af-2026-test"), "{head}");
    }
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let (url, seen) = scripted(vec![http(
        "404 Not Found",
        "",
        r#"{"error":"no such license","code":"LICENSE_NOT_FOUND","status":404}"#,
    )])
    .await;
    let client = Client::new(&url, "AF-2026-TEST").unwrap();
    let err = client
        .activate(&ActivateRequest::new("ABCD-EFGH-JKMN-PQRS", "h"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Api { status: 404, code, .. } if code == "LICENSE_NOT_FOUND"),
        "{err}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_session_start_is_not_repeated_after_a_500() {
    // The server may have started the session before failing: repeating could take a
    // second seat.
    let (url, seen) = scripted(vec![
        http(
            "500 Internal Server Error",
            "",
            r#"{"error":"bug","code":"INTERNAL_ERROR","status":500}"#,
        ),
        http("200 OK", "", "{}"),
    ])
    .await;
    let client = Client::new(&url, "AF-2026-TEST").unwrap();
    let err = client
        .start_session(&StartRequest::new("ABCD-EFGH-JKMN-PQRS", "h"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("INTERNAL_ERROR"));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_a_network_error_after_the_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::builder(&format!("http://127.0.0.1:{port}"), "AF-2026-TEST")
        .retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        })
        .build()
        .unwrap();
    let err = client
        .activate(&ActivateRequest::new("ABCD-EFGH-JKMN-PQRS", "h"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Network(_)), "{err}");
}

#[test]
fn bad_arguments_are_refused_before_anything_is_sent() {
    assert!(matches!(
        Client::new("not a url", "k"),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Client::new("ftp://host", "k"),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Client::new("http://host", "bad\nkey"),
        Err(Error::InvalidArgument(_))
    ));
}
