//! Foundation (issue 2): rate limits per route class, 429 with `Retry-After`.

use axum::routing::{get, post};
use serde_json::Value;
use tessera::{ApiError, AppState};
use tessera_integration_tests::TestServer;

async fn heartbeat(
    axum::extract::State(state): axum::extract::State<AppState>,
    tessera::ApiJson(body): tessera::ApiJson<Value>,
) -> Result<&'static str, ApiError> {
    let token = body["session_token"].as_str().unwrap_or("");
    state
        .rate_limits
        .check_heartbeat(&tessera_actors::TokenHash::of(token))?;
    Ok("ok")
}

async fn server(configure: impl FnOnce(&mut tessera_config::Config)) -> anyhow::Result<TestServer> {
    TestServer::start_with_routes(configure, |r| {
        r.api = std::mem::take(&mut r.api).route("/test/ping", get(|| async { "pong" }));
        r.sessions = std::mem::take(&mut r.sessions).route("/test/heartbeat", post(heartbeat));
    })
    .await
}

#[tokio::test]
async fn api_class_answers_429_with_retry_after_when_bucket_is_empty() -> anyhow::Result<()> {
    let server = server(|c| c.rate_limit.api_per_minute = 3).await?;
    for i in 0..3 {
        assert_eq!(
            server.get("/test/ping").send().await?.status(),
            200,
            "request {i}"
        );
    }
    let resp = server.get("/test/ping").send().await?;
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // 3 per minute: one token every 20 s.
    assert!((1..=20).contains(&retry_after), "Retry-After {retry_after}");
    let body: Value = resp.json().await?;
    assert_eq!(body["code"], "RATE_LIMITED");
    assert_eq!(body["status"], 429);

    let metrics = server
        .client()
        .get(server.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("tessera_rate_limited_total{") && l.contains("class=\"api\"")),
        "{metrics}"
    );
    // Public endpoints are not in the api class.
    assert_eq!(
        server
            .client()
            .get(server.url("/health"))
            .send()
            .await?
            .status(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() -> anyhow::Result<()> {
    // Trusted: each forwarded client has its own bucket.
    let server = server(|c| {
        c.rate_limit.api_per_minute = 1;
        c.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap_or_else(|_| unreachable!())];
    })
    .await?;
    let get_as = |ip: &str| {
        server
            .get("/test/ping")
            .header("X-Forwarded-For", ip)
            .send()
    };
    assert_eq!(get_as("198.51.100.1").await?.status(), 200);
    assert_eq!(get_as("198.51.100.2").await?.status(), 200);
    assert_eq!(get_as("198.51.100.1").await?.status(), 429);

    // Untrusted peer: the header is ignored, so all requests share the peer's bucket.
    let server = server_untrusted().await?;
    let get_as = |ip: &str| {
        server
            .get("/test/ping")
            .header("X-Forwarded-For", ip)
            .send()
    };
    assert_eq!(get_as("198.51.100.1").await?.status(), 200);
    assert_eq!(get_as("198.51.100.2").await?.status(), 429);
    Ok(())
}

async fn server_untrusted() -> anyhow::Result<TestServer> {
    server(|c| c.rate_limit.api_per_minute = 1).await
}

#[tokio::test]
async fn heartbeats_are_limited_per_session_not_per_address() -> anyhow::Result<()> {
    let server = server(|c| {
        c.rate_limit.heartbeat_per_minute = 2;
        c.rate_limit.api_per_minute = 1;
    })
    .await?;
    let beat = |token: &'static str| {
        server
            .post("/test/heartbeat")
            .json(&serde_json::json!({ "session_token": token }))
            .send()
    };
    // Same address, many sessions: each has its own bucket, and the api class is not used.
    for token in ["s-1", "s-2", "s-3", "s-4"] {
        assert_eq!(beat(token).await?.status(), 200);
        assert_eq!(beat(token).await?.status(), 200);
    }
    let resp = beat("s-1").await?;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    Ok(())
}

#[tokio::test]
async fn disabled_rate_limits_never_answer_429() -> anyhow::Result<()> {
    let server = server(|c| {
        c.rate_limit.enabled = false;
        c.rate_limit.api_per_minute = 1;
    })
    .await?;
    for _ in 0..5 {
        assert_eq!(server.get("/test/ping").send().await?.status(), 200);
    }
    Ok(())
}
