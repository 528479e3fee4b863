//! Foundation (issue 2): public endpoints, metrics, JSON errors, body limit, timeouts.

use std::time::Duration;

use axum::routing::{get, post};
use serde_json::{Value, json};
use tessera::{ApiError, ApiJson};
use tessera_integration_tests::TestServer;

#[derive(serde::Deserialize, serde::Serialize)]
struct Echo {
    license_key: String,
    count: u32,
}

async fn echo(ApiJson(body): ApiJson<Echo>) -> axum::Json<Echo> {
    axum::Json(body)
}

/// A server with a JSON echo route in the authenticated `api` group plus slow/panicking routes.
async fn server_with_test_routes(
    configure: impl FnOnce(&mut tessera_config::Config),
) -> anyhow::Result<TestServer> {
    TestServer::start_with_routes(configure, |r| {
        r.api = std::mem::take(&mut r.api)
            .route("/test/echo", post(echo))
            .route(
                "/test/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
            .route(
                "/test/panic",
                get(|| async {
                    if true {
                        panic!("boom");
                    }
                    Result::<(), ApiError>::Ok(())
                }),
            );
    })
    .await
}

fn is_rfc3339_utc_secs(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok() && s.ends_with('Z') && s.len() == 20
}

#[tokio::test]
async fn root_reports_status_service_and_timestamp() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let resp = server.client().get(server.url("/")).send().await?;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await?;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["service"], "Tessera License Server");
    assert!(
        is_rfc3339_utc_secs(body["timestamp"].as_str().unwrap_or("")),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn health_has_the_union_of_seed_000_and_001_shapes() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    for path in ["/health", "/healthz"] {
        let resp = server.client().get(server.url(path)).send().await?;
        assert_eq!(resp.status(), 200, "{path}");
        let body: Value = resp.json().await?;
        assert_eq!(body["status"], "healthy", "{body}");
        assert_eq!(body["ok"], true);
        assert_eq!(body["service"], "Tessera License Server");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        assert!(
            is_rfc3339_utc_secs(body["timestamp"].as_str().unwrap_or("")),
            "{body}"
        );
        let now = chrono::Utc::now().timestamp();
        let t = body["time_utc"].as_i64().unwrap_or(0);
        assert!((now - t).abs() <= 5, "{body}");
        assert!(body["uptime_seconds"].is_u64(), "{body}");
        assert_eq!(body["store"], "ok");
        let mut keys: Vec<&String> = body
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        keys.sort();
        assert_eq!(
            keys,
            [
                "ok",
                "service",
                "status",
                "store",
                "time_utc",
                "timestamp",
                "uptime_seconds",
                "version"
            ]
        );
    }
    Ok(())
}

#[tokio::test]
async fn metrics_exposition_counts_requests_by_route_template() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    server.client().get(server.url("/healthz")).send().await?;
    let _ = server
        .client()
        .get(server.url("/no/such/route/42"))
        .send()
        .await?;
    let resp = server.client().get(server.url("/metrics")).send().await?;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/plain")),
    );
    let text = resp.text().await?;
    let counter = text.lines().find(|l| {
        l.starts_with("tessera_http_requests_total{")
            && l.contains("route=\"/healthz\"")
            && l.contains("method=\"GET\"")
            && l.contains("status=\"200\"")
    });
    assert!(counter.is_some(), "{text}");
    assert!(
        text.contains("tessera_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    // Unknown paths share one label value: the label set stays bounded.
    assert!(text.contains("route=\"unmatched\""), "{text}");
    assert!(!text.contains("/no/such/route/42"), "{text}");
    Ok(())
}

#[tokio::test]
async fn unknown_route_is_json_404_and_wrong_method_is_json_405() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let resp = server.client().get(server.url("/nope")).send().await?;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await?;
    assert_eq!(body["code"], "NOT_FOUND");
    assert_eq!(body["status"], 404);
    assert!(body["error"].as_str().unwrap_or("").contains("/nope"));

    let resp = server.client().delete(server.url("/health")).send().await?;
    assert_eq!(resp.status(), 405);
    let body: Value = resp.json().await?;
    assert_eq!(body["code"], "METHOD_NOT_ALLOWED");
    assert_eq!(body["status"], 405);
    Ok(())
}

#[tokio::test]
async fn oversized_body_is_413_payload_too_large() -> anyhow::Result<()> {
    let server = server_with_test_routes(|c| c.server.body_limit_bytes = 1024).await?;
    let big = format!(r#"{{"license_key":"{}","count":1}}"#, "A".repeat(4096));

    // Declared by Content-Length: refused before auth and routing.
    let resp = server
        .client()
        .post(server.url("/test/echo"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await?;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await?;
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(body["status"], 413);

    // Chunked (no Content-Length): cut while reading.
    let stream = futures_stream(big.into_bytes());
    let resp = server
        .post("/test/echo")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await?;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await?;
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE");
    Ok(())
}

fn futures_stream(bytes: Vec<u8>) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(256).map(|c| Ok(c.to_vec())).collect();
    futures::stream::iter(chunks)
}

#[tokio::test]
async fn malformed_json_is_400_invalid_json_naming_the_problem() -> anyhow::Result<()> {
    let server = server_with_test_routes(|_| {}).await?;
    let resp = server
        .post("/test/echo")
        .header("content-type", "application/json")
        .body(r#"{"license_key": "AAAA-BBBB", "count": 1,,}"#)
        .send()
        .await?;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await?;
    assert_eq!(body["code"], "INVALID_JSON");
    assert_eq!(body["status"], 400);
    let msg = body["error"].as_str().unwrap_or("");
    assert!(msg.contains("line 1 column"), "{msg}");

    // Well-formed but the wrong shape: the field is named.
    let resp = server
        .post("/test/echo")
        .json(&json!({"license_key": "AAAA", "count": "three"}))
        .send()
        .await?;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await?;
    assert_eq!(body["code"], "VALIDATION_ERROR");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("count: invalid type"),
        "{body}"
    );

    // A non-JSON content type is 415.
    let resp = server
        .post("/test/echo")
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await?;
    assert_eq!(resp.status(), 415);
    let body: Value = resp.json().await?;
    assert_eq!(body["code"], "UNSUPPORTED_MEDIA_TYPE");

    // The happy path still works.
    let resp = server
        .post("/test/echo")
        .json(&json!({"license_key": "AAAA", "count": 3}))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    Ok(())
}

#[tokio::test]
async fn slow_request_is_408_request_timeout() -> anyhow::Result<()> {
    let server = server_with_test_routes(|c| {
        c.server.request_timeout = Duration::from_millis(200);
    })
    .await?;
    let resp = server.get("/test/slow").send().await?;
    assert_eq!(resp.status(), 408);
    let body: Value = resp.json().await?;
    assert_eq!(body["code"], "REQUEST_TIMEOUT");
    Ok(())
}

#[tokio::test]
async fn panicking_handler_is_json_500_and_server_keeps_serving() -> anyhow::Result<()> {
    let server = server_with_test_routes(|_| {}).await?;
    let resp = server.get("/test/panic").send().await?;
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await?;
    assert_eq!(body["code"], "INTERNAL_ERROR");
    assert!(
        !body["error"].as_str().unwrap_or("").contains("boom"),
        "cause must not leak"
    );
    let resp = server.client().get(server.url("/health")).send().await?;
    assert_eq!(resp.status(), 200);
    Ok(())
}

#[tokio::test]
async fn stop_is_graceful_and_releases_the_store() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let addr = server.addr;
    let stopped = server.stop().await?;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    let again = stopped.restart().await?;
    let resp = again.client().get(again.url("/health")).send().await?;
    assert_eq!(resp.status(), 200);
    Ok(())
}
