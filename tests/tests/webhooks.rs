//! Webhooks through the real server (issue 15, item 5 and the webhook parts of items 7 and
//! 8): a local receiver that fails twice gets the third attempt, whose signature the Python
//! `standardwebhooks` package verifies; a restart during retries still delivers; internal
//! targets are refused while `webhooks.allow_private_targets` is off; event-type filters and
//! the Discord format; both signatures during a secret rotation's overlap; the CRUD, the
//! delivery log, redelivery and its bound; a hanging receiver does not hold up another
//! endpoint. Every scenario runs on the embedded store and on a Redis the test starts.
//!
//! Receivers listen on 127.0.0.1 (so those servers set `allow_private_targets`); no request
//! leaves loopback: the refusal tests use literal addresses and `localhost`, refused before
//! any connection or outside lookup.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use reqwest::Method;
use serde_json::{Value, json};
use tessera_config::{Config, StoreBackend};
use tessera_integration_tests::{RedisServer, TestServer};

type R = anyhow::Result<()>;

// ---------------------------------------------------------------------------------------------
// Servers on both stores

#[derive(Clone, Copy, Debug)]
enum Backend {
    Embedded,
    Redis,
}

struct Setup {
    server: TestServer,
    keep: Option<Box<dyn Any + Send>>,
}

/// Webhooks as these tests want them: loopback receivers allowed, fast retries, short
/// attempts.
fn fast(c: &mut Config) {
    c.webhooks.allow_private_targets = true;
    c.webhooks.retry_base = Duration::from_millis(100);
    c.webhooks.timeout = Duration::from_secs(3);
}

impl Backend {
    async fn start(
        self,
        configure: impl FnOnce(&mut Config) + Send + 'static,
    ) -> anyhow::Result<Setup> {
        match self {
            Backend::Embedded => Ok(Setup {
                server: TestServer::start_with(configure).await?,
                keep: None,
            }),
            Backend::Redis => {
                let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
                let url = redis.url.clone();
                let server = TestServer::start_with(move |c| {
                    configure(c);
                    c.store.backend = StoreBackend::Redis;
                    c.store.redis_url = url;
                })
                .await?;
                Ok(Setup {
                    server,
                    keep: Some(Box::new(redis)),
                })
            }
        }
    }
}

macro_rules! on_both {
    ($($test:ident),* $(,)?) => {
        mod on_embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> super::R {
                    super::$test(super::Backend::Embedded).await
                }
            )*
        }
        mod on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> super::R {
                    super::$test(super::Backend::Redis).await
                }
            )*
        }
    };
}

on_both!(
    a_receiver_failing_twice_gets_the_third_attempt_and_python_verifies_it,
    a_restart_during_retries_still_delivers,
    internal_targets_are_refused_while_private_targets_are_off,
    event_type_filters_pick_endpoints_and_discord_gets_a_signed_embed,
    a_rotated_secret_signs_beside_the_new_one_during_the_overlap,
    endpoints_are_listed_edited_and_deleted_and_deliveries_redelivered,
    the_delivery_log_keeps_each_endpoints_newest,
    a_hanging_receiver_does_not_hold_up_another_endpoint,
);

// ---------------------------------------------------------------------------------------------
// A local receiver

#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    body: String,
    answered: u16,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Plan {
    got: Mutex<Vec<Received>>,
    /// Answer 500 to this many requests per path first.
    fail_first: AtomicUsize,
    /// Answer 500 while set.
    failing: AtomicBool,
    /// Paths that never answer.
    hang: Mutex<Vec<String>>,
}

struct Receiver {
    addr: SocketAddr,
    plan: Arc<Plan>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(plan): State<Arc<Plan>>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let path = uri.path().to_owned();
    if plan.hang.lock().unwrap().contains(&path) {
        plan.got.lock().unwrap().push(Received {
            path,
            headers: HashMap::new(),
            body,
            answered: 0,
        });
        tokio::time::sleep(Duration::from_secs(3_600)).await;
        return StatusCode::OK;
    }
    let mut got = plan.got.lock().unwrap();
    let before = got.iter().filter(|r| r.path == path).count();
    let status =
        if plan.failing.load(Ordering::SeqCst) || before < plan.fail_first.load(Ordering::SeqCst) {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
    got.push(Received {
        path,
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
        answered: status.as_u16(),
    });
    status
}

impl Receiver {
    async fn start() -> Receiver {
        let plan = Arc::new(Plan::default());
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&plan));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, plan, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn at(&self, path: &str) -> Vec<Received> {
        self.plan
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        let ok = eventually(Duration::from_secs(20), || async {
            self.at(path).len() >= n
        })
        .await;
        let got = self.at(path);
        assert!(
            ok,
            "{path}: expected {n} requests, got {}: {got:?}",
            got.len()
        );
        got
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

async fn admin(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server
        .client()
        .request(method, server.url(path))
        .bearer_auth(&server.admin_key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

/// Registers an endpoint; returns (id, secret).
async fn endpoint(server: &TestServer, url: &str, types: &[&str], format: &str) -> (u64, String) {
    let (status, out) = admin(
        server,
        Method::POST,
        "/api/admin/webhooks",
        Some(json!({"url": url, "event_types": types, "format": format})),
    )
    .await;
    assert_eq!(status, 201, "{out}");
    (
        out["id"].as_u64().unwrap(),
        out["secret"].as_str().unwrap().to_owned(),
    )
}

/// Creates a customer: one `admin.customer.created` event.
async fn customer(server: &TestServer, name: &str) -> u64 {
    let (status, out) = admin(
        server,
        Method::POST,
        "/api/admin/customers",
        Some(json!({"name": name})),
    )
    .await;
    assert_eq!(status, 201, "{out}");
    out["id"].as_u64().unwrap()
}

async fn deliveries(server: &TestServer, id: u64) -> Vec<Value> {
    let (status, out) = admin(
        server,
        Method::GET,
        &format!("/api/admin/webhooks/{id}/deliveries"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{out}");
    out["items"].as_array().unwrap().clone()
}

/// Polls `check` until it holds or `within` passes; returns whether it held.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Verifies a received delivery with the Rust `standardwebhooks` crate.
fn verifies(secret: &str, r: &Received) -> bool {
    let mut headers = axum::http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, r.header(name).parse().unwrap());
    }
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(r.body.as_bytes(), &headers)
        .is_ok()
}

/// Verifies a received delivery with Python's `standardwebhooks` (tests/python).
async fn python_verifies(secret: &str, r: &Received) -> String {
    let input = json!({
        "secret": secret,
        "headers": {
            "webhook-id": r.header("webhook-id"),
            "webhook-timestamp": r.header("webhook-timestamp"),
            "webhook-signature": r.header("webhook-signature"),
        },
        "body": r.body,
    })
    .to_string();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/verify_webhook.py");
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 (bash tests/run.sh installs `standardwebhooks` for it)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "verify_webhook.py failed ({}): {stdout}\n{stderr}",
        out.status
    );
    stdout
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn a_receiver_failing_twice_gets_the_third_attempt_and_python_verifies_it(b: Backend) -> R {
    let s = b.start(fast).await?;
    let server = &s.server;
    let rx = Receiver::start().await;
    rx.plan.fail_first.store(2, Ordering::SeqCst);

    let (status, created) = admin(
        server,
        Method::POST,
        "/api/admin/webhooks",
        Some(json!({"url": rx.url("/hook"), "event_types": ["admin.customer."], "format": "json"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_u64().unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    assert_eq!(created["url"], rx.url("/hook"));
    assert_eq!(created["event_types"], json!(["admin.customer."]));
    assert_eq!(created["format"], "json");
    assert_eq!(created["enabled"], true);
    assert!(created["created_at"].as_str().is_some(), "{created}");

    customer(server, "Ada Lovelace").await;
    let got = rx.wait_for("/hook", 3).await;
    assert_eq!(
        got.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    let webhook_id = got[0].header("webhook-id");
    assert!(webhook_id.starts_with("msg_"), "{got:?}");
    assert!(
        got.iter().all(|r| r.header("webhook-id") == webhook_id),
        "one webhook-id on every attempt: {got:?}"
    );
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the same body each time"
    );
    let third = &got[2];
    assert_eq!(third.header("content-type"), "application/json");
    let ts: i64 = third.header("webhook-timestamp").parse()?;
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    assert!(third.header("webhook-signature").starts_with("v1,"));

    let body = third.json();
    assert_eq!(body["type"], "admin.customer.created");
    let when = chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap())?;
    let data = &body["data"];
    assert_eq!(data["event_type"], "admin.customer.created");
    assert_eq!(data["severity"], "info");
    assert_eq!(
        data["created_at"],
        json!(when.timestamp()),
        "seed 001: unix seconds"
    );
    assert!(
        data["actor"].as_str().unwrap().starts_with("key:"),
        "{body}"
    );
    assert!(data["summary"].as_str().is_some() && data["id"].as_str().is_some());

    assert_eq!(
        python_verifies(&secret, third).await,
        "verified admin.customer.created"
    );
    assert!(verifies(&secret, third));
    assert!(!verifies(&tessera::webhooks::secret::generate(), third));

    let log = deliveries(server, id).await;
    assert_eq!(log.len(), 1, "{log:?}");
    let d = &log[0];
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["last_status_code"], 200);
    assert!(d["last_latency_ms"].as_u64().is_some(), "{d}");
    assert_eq!(d["webhook_id"], webhook_id);
    assert_eq!(d["event_type"], "admin.customer.created");
    assert_eq!(d["next_attempt_at"], Value::Null);

    let metrics = server
        .client()
        .get(server.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    for series in [
        format!("tessera_webhook_deliveries_total{{endpoint=\"{id}\",outcome=\"delivered\"}}"),
        format!("tessera_webhook_deliveries_total{{endpoint=\"{id}\",outcome=\"retrying\"}}"),
        "tessera_webhook_delivery_seconds_bucket".to_owned(),
        "tessera_webhook_pending".to_owned(),
    ] {
        assert!(metrics.contains(&series), "/metrics lacks {series}");
    }
    drop(s.keep);
    Ok(())
}

async fn a_restart_during_retries_still_delivers(b: Backend) -> R {
    let s = b
        .start(|c| {
            fast(c);
            // Retries 1 s, 6 s, ... apart: the restart happens between two of them.
            c.webhooks.retry_base = Duration::from_secs(1);
        })
        .await?;
    let rx = Receiver::start().await;
    rx.plan.failing.store(true, Ordering::SeqCst);
    let (id, secret) = endpoint(&s.server, &rx.url("/r"), &["admin.customer."], "json").await;
    customer(&s.server, "Grace Hopper").await;
    let first = rx.wait_for("/r", 1).await;
    assert_eq!(first[0].answered, 500);

    let stopped = s.server.stop().await?;
    rx.plan.failing.store(false, Ordering::SeqCst);
    let server = stopped.restart().await?;

    let ok = eventually(Duration::from_secs(30), || async {
        rx.at("/r").iter().any(|r| r.answered == 200)
    })
    .await;
    let got = rx.at("/r");
    assert!(ok, "no delivery after the restart: {got:?}");
    let delivered = got.iter().find(|r| r.answered == 200).unwrap();
    assert_eq!(
        delivered.header("webhook-id"),
        first[0].header("webhook-id"),
        "the pending delivery, not a new one"
    );
    assert!(verifies(&secret, delivered));
    let ok = eventually(Duration::from_secs(10), || async {
        deliveries(&server, id)
            .await
            .first()
            .is_some_and(|d| d["status"] == "delivered")
    })
    .await;
    let log = deliveries(&server, id).await;
    assert!(ok, "{log:?}");
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0]["attempts"].as_u64().unwrap() >= 2, "{log:?}");
    drop(s.keep);
    Ok(())
}

async fn internal_targets_are_refused_while_private_targets_are_off(b: Backend) -> R {
    let s = b.start(|_| {}).await?;
    let server = &s.server;
    assert!(!server.config().webhooks.allow_private_targets);
    let rx = Receiver::start().await;
    for url in [
        rx.url("/x"),
        "http://localhost:9/hook".to_owned(),
        "http://127.1/".to_owned(),
        "http://2130706433/".to_owned(),
        "http://[::1]:8080/".to_owned(),
        "http://[::ffff:127.0.0.1]/".to_owned(),
        "http://10.0.0.7/hook".to_owned(),
        "http://172.16.5.4/".to_owned(),
        "http://192.168.0.10/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[fd00::1]/".to_owned(),
        "http://[fe80::1]/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        "http://224.0.0.1/".to_owned(),
    ] {
        let (status, out) = admin(
            server,
            Method::POST,
            "/api/admin/webhooks",
            Some(json!({"url": url, "event_types": []})),
        )
        .await;
        assert_eq!(
            (status, code(&out)),
            (400, "WEBHOOK_TARGET_REFUSED"),
            "{url}: {out}"
        );
        assert_eq!(out["status"], 400);
    }
    for url in [
        "ftp://example.com/",
        "file:///etc/passwd",
        "https://user:pw@example.com/",
        "not a url",
    ] {
        let (status, out) = admin(
            server,
            Method::POST,
            "/api/admin/webhooks",
            Some(json!({"url": url})),
        )
        .await;
        assert_eq!(
            (status, code(&out)),
            (400, "VALIDATION_ERROR"),
            "{url}: {out}"
        );
    }
    let (status, list) = admin(server, Method::GET, "/api/admin/webhooks", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"], json!([]), "nothing was created");
    assert!(rx.at("/x").is_empty(), "the receiver was never contacted");
    drop(s.keep);
    Ok(())
}

async fn event_type_filters_pick_endpoints_and_discord_gets_a_signed_embed(b: Backend) -> R {
    let s = b.start(fast).await?;
    let server = &s.server;
    let rx = Receiver::start().await;
    let (_, _) = endpoint(
        server,
        &rx.url("/created"),
        &["admin.customer.created"],
        "json",
    )
    .await;
    let (_, discord_secret) =
        endpoint(server, &rx.url("/discord"), &["admin.customer."], "discord").await;
    let (sessions, _) = endpoint(server, &rx.url("/sessions"), &["session."], "json").await;
    let (_, _) = endpoint(server, &rx.url("/all"), &[], "json").await;

    let id = customer(server, "Katherine Johnson").await;
    let (status, out) = admin(
        server,
        Method::PATCH,
        &format!("/api/admin/customers/{id}"),
        Some(json!({"name": "Katherine G. Johnson"})),
    )
    .await;
    assert_eq!(status, 200, "{out}");

    let discord = rx.wait_for("/discord", 2).await;
    let created = rx.wait_for("/created", 1).await;
    let types = |got: &[Received], key: &str| -> Vec<String> {
        got.iter()
            .map(|r| {
                let v = r.json();
                let t = if key == "title" {
                    v["embeds"][0]["title"].clone()
                } else {
                    v["type"].clone()
                };
                t.as_str().unwrap_or("").to_owned()
            })
            .collect()
    };
    assert_eq!(types(&created, "type"), ["admin.customer.created"]);
    let mut titles = types(&discord, "title");
    titles.sort();
    assert_eq!(titles, ["admin.customer.created", "admin.customer.edited"]);
    // An empty filter takes everything: its own creation's event too.
    let ok = eventually(Duration::from_secs(20), || async {
        let everything = types(&rx.at("/all"), "type");
        [
            "admin.webhook.created",
            "admin.customer.created",
            "admin.customer.edited",
        ]
        .iter()
        .all(|t| everything.iter().any(|e| e == t))
    })
    .await;
    assert!(ok, "{:?}", types(&rx.at("/all"), "type"));
    // Every endpoint's deliveries for an event are made together: `session.` got none.
    assert!(deliveries(server, sessions).await.is_empty());
    assert!(rx.at("/sessions").is_empty());

    for r in &discord {
        let body = r.json();
        let embeds = body["embeds"].as_array().unwrap();
        assert_eq!(embeds.len(), 1, "{body}");
        let e = &embeds[0];
        assert_eq!(e["color"], 0x3498db, "info is blue: {e}");
        assert!(e["description"].as_str().is_some_and(|d| !d.is_empty()));
        chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap())?;
        let fields = e["fields"].as_array().unwrap();
        assert!(fields.iter().any(|f| f["name"] == "Actor"), "{e}");
        assert!(fields.iter().all(|f| f["value"].as_str().is_some()));
        assert!(verifies(&discord_secret, r), "a Discord body is signed too");
    }
    assert_eq!(
        python_verifies(&discord_secret, &discord[0]).await,
        "verified discord"
    );
    drop(s.keep);
    Ok(())
}

async fn a_rotated_secret_signs_beside_the_new_one_during_the_overlap(b: Backend) -> R {
    let s = b.start(fast).await?;
    let server = &s.server;
    let rx = Receiver::start().await;
    let (id, old) = endpoint(server, &rx.url("/rot"), &["admin.customer."], "json").await;

    let resp = server
        .client()
        .post(server.url(&format!("/api/admin/webhooks/{id}/rotate-secret")))
        .bearer_auth(&server.admin_key)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let rotated: Value = resp.json().await?;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old, "{rotated}");
    let until =
        chrono::DateTime::parse_from_rfc3339(rotated["previous_valid_until"].as_str().unwrap())?;
    let in_24h = chrono::Utc::now() + chrono::Duration::hours(24);
    assert!(
        (in_24h.timestamp() - until.timestamp()).abs() < 60,
        "{rotated}"
    );

    let (status, shown) = admin(
        server,
        Method::GET,
        &format!("/api/admin/webhooks/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        shown["previous_secret_valid_until"],
        rotated["previous_valid_until"]
    );
    assert!(
        !shown.to_string().contains("whsec_"),
        "never shown again: {shown}"
    );

    customer(server, "Dorothy Vaughan").await;
    let got = rx.wait_for("/rot", 1).await;
    let signatures: Vec<&str> = got[0].header("webhook-signature").split(' ').collect();
    assert_eq!(signatures.len(), 2, "{signatures:?}");
    assert!(signatures.iter().all(|s| s.starts_with("v1,")));
    assert!(verifies(&new, &got[0]), "the new secret verifies");
    assert!(verifies(&old, &got[0]), "the old secret still verifies");
    assert_eq!(
        python_verifies(&old, &got[0]).await,
        "verified admin.customer.created"
    );

    let (status, again) = admin(
        server,
        Method::POST,
        &format!("/api/admin/webhooks/{id}/rotate-secret"),
        Some(json!({"overlap_secs": 0})),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["previous_valid_until"], Value::Null);
    let newest = again["secret"].as_str().unwrap().to_owned();
    customer(server, "Mary Jackson").await;
    let got = rx.wait_for("/rot", 2).await;
    assert_eq!(got[1].header("webhook-signature").split(' ').count(), 1);
    assert!(verifies(&newest, &got[1]));
    assert!(!verifies(&new, &got[1]) && !verifies(&old, &got[1]));

    let (status, out) = admin(
        server,
        Method::POST,
        &format!("/api/admin/webhooks/{id}/rotate-secret"),
        Some(json!({"overlap_secs": 31 * 86_400})),
    )
    .await;
    assert_eq!((status, code(&out)), (400, "VALIDATION_ERROR"), "{out}");
    drop(s.keep);
    Ok(())
}

async fn endpoints_are_listed_edited_and_deleted_and_deliveries_redelivered(b: Backend) -> R {
    let s = b.start(fast).await?;
    let server = &s.server;
    let rx = Receiver::start().await;
    let (a, _) = endpoint(server, &rx.url("/a"), &["admin.customer."], "json").await;
    let (bid, _) = endpoint(server, &rx.url("/b"), &["admin.customer.created"], "json").await;

    let (status, page) = admin(server, Method::GET, "/api/admin/webhooks?limit=1", None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], a);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = admin(
        server,
        Method::GET,
        &format!("/api/admin/webhooks?limit=1&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(rest["items"][0]["id"], bid);
    let (_, all) = admin(server, Method::GET, "/api/admin/webhooks", None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert_eq!(all["next_cursor"], Value::Null);
    assert!(!all.to_string().contains("whsec_"), "{all}");

    // Edit B: another filter and format, then disable it.
    let (status, edited) = admin(
        server,
        Method::PATCH,
        &format!("/api/admin/webhooks/{bid}"),
        Some(json!({"event_types": ["license.", "session.ended"], "format": "discord", "enabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["event_types"], json!(["license.", "session.ended"]));
    assert_eq!(edited["format"], "discord");
    assert_eq!(edited["enabled"], false);
    for (body, want) in [
        (json!({"event_types": ["no spaces"]}), "VALIDATION_ERROR"),
        (json!({"format": "xml"}), "VALIDATION_ERROR"),
        (json!({"secret": "whsec_x"}), "VALIDATION_ERROR"),
        (json!({"url": "gopher://x/"}), "VALIDATION_ERROR"),
    ] {
        let (status, out) = admin(
            server,
            Method::PATCH,
            &format!("/api/admin/webhooks/{bid}"),
            Some(body.clone()),
        )
        .await;
        assert_eq!((status, code(&out)), (400, want), "{body}: {out}");
    }
    for path in ["/api/admin/webhooks/999", "/api/admin/webhooks/abc"] {
        let (status, out) = admin(server, Method::GET, path, None).await;
        assert_eq!(
            (status, code(&out)),
            (404, "WEBHOOK_NOT_FOUND"),
            "{path}: {out}"
        );
    }

    // A delivers; B, disabled, gets nothing.
    customer(server, "Annie Easley").await;
    let first = rx.wait_for("/a", 1).await;
    let ok = eventually(Duration::from_secs(10), || async {
        deliveries(server, a)
            .await
            .first()
            .is_some_and(|d| d["status"] == "delivered")
    })
    .await;
    assert!(ok);
    assert!(deliveries(server, bid).await.is_empty());
    assert!(rx.at("/b").is_empty());

    // Redeliver: the same webhook-id again, a second attempt in the log.
    let log = deliveries(server, a).await;
    let delivery = log[0]["id"].as_u64().unwrap();
    let (status, out) = admin(
        server,
        Method::POST,
        &format!("/api/admin/webhooks/{a}/deliveries/{delivery}/redeliver"),
        None,
    )
    .await;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["status"], "pending");
    let again = rx.wait_for("/a", 2).await;
    assert_eq!(again[1].header("webhook-id"), first[0].header("webhook-id"));
    assert_eq!(again[1].body, first[0].body);
    let ok = eventually(Duration::from_secs(10), || async {
        deliveries(server, a)
            .await
            .first()
            .is_some_and(|d| d["status"] == "delivered" && d["attempts"] == 2)
    })
    .await;
    assert!(ok, "{:?}", deliveries(server, a).await);
    let (status, out) = admin(
        server,
        Method::POST,
        &format!("/api/admin/webhooks/{a}/deliveries/424242/redeliver"),
        None,
    )
    .await;
    assert_eq!(
        (status, code(&out)),
        (404, "WEBHOOK_DELIVERY_NOT_FOUND"),
        "{out}"
    );
    let (status, out) = admin(
        server,
        Method::POST,
        &format!("/api/admin/webhooks/{bid}/deliveries/1/redeliver"),
        None,
    )
    .await;
    assert_eq!((status, code(&out)), (409, "CONFLICT"), "disabled: {out}");

    // Delete: gone at once, and its log with it.
    let resp = server
        .client()
        .delete(server.url(&format!("/api/admin/webhooks/{a}")))
        .bearer_auth(&server.admin_key)
        .send()
        .await?;
    assert_eq!(resp.status(), 204);
    for (method, path) in [
        (Method::GET, format!("/api/admin/webhooks/{a}")),
        (Method::DELETE, format!("/api/admin/webhooks/{a}")),
        (Method::GET, format!("/api/admin/webhooks/{a}/deliveries")),
    ] {
        let (status, out) = admin(server, method, &path, None).await;
        assert_eq!(
            (status, code(&out)),
            (404, "WEBHOOK_NOT_FOUND"),
            "{path}: {out}"
        );
    }
    let (_, all) = admin(server, Method::GET, "/api/admin/webhooks", None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "{all}");
    // Re-enabled, B takes the next customer created; A, deleted, does not (one event's
    // deliveries are made together, so B's delivery means A was passed over).
    let (status, _) = admin(
        server,
        Method::PATCH,
        &format!("/api/admin/webhooks/{bid}"),
        Some(json!({"enabled": true, "format": "json", "event_types": ["admin.customer.created"]})),
    )
    .await;
    assert_eq!(status, 200);
    customer(server, "Sally Ride").await;
    rx.wait_for("/b", 1).await;
    assert_eq!(rx.at("/a").len(), 2, "a deleted endpoint gets nothing");
    drop(s.keep);
    Ok(())
}

async fn the_delivery_log_keeps_each_endpoints_newest(b: Backend) -> R {
    let s = b
        .start(|c| {
            fast(c);
            c.webhooks.max_deliveries_per_endpoint = 10;
        })
        .await?;
    let server = &s.server;
    let rx = Receiver::start().await;
    let (id, _) = endpoint(server, &rx.url("/log"), &["admin.customer.created"], "json").await;
    for n in 0..12 {
        customer(server, &format!("Customer {n}")).await;
    }
    rx.wait_for("/log", 12).await;
    let ok = eventually(Duration::from_secs(10), || async {
        let (_, page) = admin(
            server,
            Method::GET,
            &format!("/api/admin/webhooks/{id}/deliveries?limit=500"),
            None,
        )
        .await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        items.len() == 12 && items.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    assert!(ok);
    server.state.webhooks.trim_now().await?;
    let log = deliveries(server, id).await;
    assert_eq!(log.len(), 10, "{log:?}");
    let ids: Vec<u64> = log.iter().map(|d| d["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    // Paging walks the same log.
    let (_, first) = admin(
        server,
        Method::GET,
        &format!("/api/admin/webhooks/{id}/deliveries?limit=4"),
        None,
    )
    .await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = admin(
        server,
        Method::GET,
        &format!("/api/admin/webhooks/{id}/deliveries?limit=4&cursor={cursor}"),
        None,
    )
    .await;
    let paged: Vec<u64> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    assert_eq!(paged, ids[..8]);
    drop(s.keep);
    Ok(())
}

async fn a_hanging_receiver_does_not_hold_up_another_endpoint(b: Backend) -> R {
    let s = b
        .start(|c| {
            fast(c);
            c.webhooks.concurrency = 2;
            c.webhooks.timeout = Duration::from_secs(60);
        })
        .await?;
    let server = &s.server;
    let rx = Receiver::start().await;
    rx.plan.hang.lock().unwrap().push("/hang".to_owned());
    endpoint(server, &rx.url("/hang"), &["admin.customer."], "json").await;
    endpoint(server, &rx.url("/fine"), &["admin.customer."], "json").await;
    for n in 0..3 {
        let started = Instant::now();
        customer(server, &format!("Patient {n}")).await;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the API does not wait for a receiver"
        );
    }
    // One endpoint takes at most half the slots: the hanging one holds one attempt, the other
    // endpoint gets all three deliveries meanwhile.
    rx.wait_for("/fine", 3).await;
    assert_eq!(
        rx.at("/hang").len(),
        1,
        "one attempt hangs; the others wait their turn"
    );
    drop(s.keep);
    Ok(())
}
