//! Events through the real server (issue 15): the live stream (Server-Sent Events) delivers a
//! kick's `session.ended` at once and resumes after a reconnect without loss; the listing
//! filters and pages; license, admin, login and policy happenings are events with seed 001's
//! fields; statistics count them per day and product. Every scenario runs on the embedded
//! store and on a Redis the test starts; on two servers sharing a Redis, one's stream shows
//! what happens on the other.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tessera_integration_tests::scenario::{admin, client};
use tessera_integration_tests::{TestServer, on_both_stores};

type R = anyhow::Result<()>;

on_both_stores!(
    |_| {};
    the_stream_delivers_a_kick_at_once_and_resumes_without_loss,
    the_listing_filters_by_type_license_and_severity_and_pages,
    statistics_count_activations_sessions_rejections_and_logins,
);

// ---------------------------------------------------------------------------------------------
// Helpers

async fn issue(server: &TestServer, body: Value) -> String {
    let (status, out) = admin(server, Method::POST, "/api/admin/licenses", Some(body)).await;
    assert_eq!(status, 201, "{out}");
    out["licenses"][0]["license_key"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn start(server: &TestServer, key: &str, hw: &str) -> (u16, Value) {
    client(
        server,
        "/api/license/session/start",
        json!({"license_key": key, "machine_id": "M", "hardware_hash": hw, "version": "1.0.0"}),
    )
    .await
}

async fn activate(server: &TestServer, key: &str, hw: &str) {
    let (status, body) = client(
        server,
        "/api/license/activate",
        json!({"license_key": key, "hardware_hash": hw, "machine_name": "M", "app_version": "1.0.0"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
struct Sse {
    id: Option<String>,
    event: Option<String>,
    data: Value,
}

/// A minimal SSE reader over a streaming response (fields `id`, `event`, `data`; comments
/// skipped), as the spec (and every browser) reads them.
struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    async fn open(server: &TestServer, query: &str, last_event_id: Option<&str>) -> Self {
        let mut req = server
            .client()
            .get(server.url(&format!("/api/admin/events/stream?{query}")))
            .bearer_auth(&server.admin_key);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Self {
            resp,
            buf: String::new(),
        }
    }

    /// The next event, or `None` when `within` passes first.
    async fn next(&mut self, within: Duration) -> Option<Sse> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut e = Sse {
                    id: None,
                    event: None,
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        e.id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        e.event = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if e.event.is_none() && e.id.is_none() && data.is_empty() {
                    continue; // a comment (keep-alive)
                }
                e.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some(e);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// Events until one of `event_type` arrives (returned), or `None` after `within`.
    async fn until(&mut self, event_type: &str, within: Duration) -> Option<Sse> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = self.next(left).await?;
            if e.event.as_deref() == Some(event_type) {
                return Some(e);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn the_stream_delivers_a_kick_at_once_and_resumes_without_loss(server: &TestServer) -> R {
    let key = issue(server, json!({"max_users": 3, "max_devices": 3})).await;
    activate(server, &key, "hw-1").await;
    let mut stream = SseReader::open(server, &format!("type=session.&license={key}"), None).await;
    let (status, started) = start(server, &key, "hw-1").await;
    assert_eq!(status, 200, "{started}");
    let token = started["session_token"].as_str().unwrap().to_string();
    let first = stream
        .until("session.started", Duration::from_secs(5))
        .await
        .expect("session.started");
    assert_eq!(first.data["license"], key.as_str());
    assert_eq!(first.data["event_type"], "session.started");
    for field in [
        "id",
        "severity",
        "summary",
        "actor",
        "ip",
        "app_id",
        "risk",
        "created_at",
        "data",
    ] {
        assert!(
            first.data.get(field).is_some(),
            "seed 001 field {field}: {}",
            first.data
        );
    }
    assert_eq!(first.data["app_id"], "default");

    // A kick reaches the stream within a second.
    let id = tessera_actors::TokenHash::of(&token).to_hex();
    let kicked_at = Instant::now();
    let (status, _) = admin(
        server,
        Method::DELETE,
        &format!("/api/admin/licenses/{key}/sessions/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let ended = stream
        .until("session.ended", Duration::from_secs(5))
        .await
        .expect("session.ended");
    assert!(
        kicked_at.elapsed() < Duration::from_secs(1),
        "took {:?}",
        kicked_at.elapsed()
    );
    assert_eq!(ended.data["data"]["reason"], "admin");
    assert_eq!(ended.data["data"]["session_id"], id.as_str());
    let last_seen = ended.id.clone().expect("an id line");
    drop(stream);

    // While no one listens: two more sessions start and one ends.
    let mut missed = Vec::new();
    for hw in ["hw-2", "hw-3"] {
        activate(server, &key, hw).await;
        let (status, body) = start(server, &key, hw).await;
        assert_eq!(status, 200, "{body}");
        missed.push(body["session_token"].as_str().unwrap().to_string());
    }
    let (status, _) = client(
        server,
        "/api/license/session/end",
        json!({"session_token": missed[0], "license_key": key}),
    )
    .await;
    assert_eq!(status, 200);

    // Reconnecting with Last-Event-ID gets exactly those, in order, then the live ones.
    let mut resumed = SseReader::open(
        server,
        &format!("type=session.&license={key}"),
        Some(&last_seen),
    )
    .await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let e = resumed
            .next(Duration::from_secs(5))
            .await
            .expect("a missed event");
        got.push((
            e.event.unwrap(),
            e.data["data"]["reason"].as_str().map(str::to_string),
        ));
    }
    assert_eq!(
        got,
        vec![
            ("session.started".to_string(), None),
            ("session.started".to_string(), None),
            ("session.ended".to_string(), Some("client_end".to_string())),
        ]
    );
    let (status, _) = client(
        server,
        "/api/license/session/end",
        json!({"session_token": missed[1], "license_key": key}),
    )
    .await;
    assert_eq!(status, 200);
    let live = resumed
        .next(Duration::from_secs(5))
        .await
        .expect("the live event");
    assert_eq!(live.event.as_deref(), Some("session.ended"));
    // Bad filters are refused before the stream opens.
    for bad in ["type=Session.Ended", "severity=loud", "license=a%2Fb"] {
        let resp = server
            .client()
            .get(server.url(&format!("/api/admin/events/stream?{bad}")))
            .bearer_auth(&server.admin_key)
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 400, "{bad}");
    }
    let resp = server
        .client()
        .get(server.url("/api/admin/events/stream"))
        .bearer_auth(&server.admin_key)
        .header("Last-Event-ID", "not-an-id")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    Ok(())
}

/// Polls the listing until `check` holds (events are stored by a task of their own).
async fn events_until(server: &TestServer, query: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = admin(
            server,
            Method::GET,
            &format!("/api/admin/events?{query}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{query}: {body}");
        if check(&body) || Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn the_listing_filters_by_type_license_and_severity_and_pages(server: &TestServer) -> R {
    let key = issue(server, json!({"max_users": 1})).await;
    let other = issue(server, json!({})).await;
    activate(server, &key, "hw-1").await;
    assert_eq!(start(server, &key, "hw-1").await.0, 200);
    let (status, refused) = start(server, &key, "hw-1").await;
    assert_eq!(status, 409, "{refused}");
    let (status, _) = admin(
        server,
        Method::POST,
        &format!("/api/admin/licenses/{other}/status"),
        Some(json!({"status": "banned", "reason": "abuse"})),
    )
    .await;
    assert_eq!(status, 200);

    // Newest first; the rejection names its code; the license filter is exact.
    let mine = events_until(server, &format!("license={key}"), |b| {
        b["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["event_type"] == "session.rejected"))
    })
    .await;
    let types: Vec<&str> = mine["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types[0], "session.rejected", "{types:?}");
    assert!(
        types.contains(&"session.started")
            && types.contains(&"license.activated")
            && types.contains(&"admin.license.issued"),
        "{types:?}"
    );
    assert_eq!(mine["events"][0]["data"]["code"], "SESSION_LIMIT_REACHED");
    // The ban is critical, and the admin change names its actor.
    let critical = events_until(server, "severity=critical", |b| {
        b["events"].as_array().is_some_and(|e| !e.is_empty())
    })
    .await;
    assert_eq!(critical["events"][0]["event_type"], "license.banned");
    assert_eq!(critical["events"][0]["license"], other.as_str());
    let admin_events = events_until(server, &format!("type=admin.&license={other}"), |b| {
        b["events"].as_array().is_some_and(|e| e.len() >= 2)
    })
    .await;
    assert!(
        admin_events["events"][0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("key:"),
        "{admin_events}"
    );
    // Pages: one at a time, each older than the last, the cursor ends at the end.
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let q = match &cursor {
            Some(c) => format!("license={key}&limit=1&cursor={c}"),
            None => format!("license={key}&limit=1"),
        };
        let (_, page) = admin(server, Method::GET, &format!("/api/admin/events?{q}"), None).await;
        let events = page["events"].as_array().unwrap();
        if let Some(e) = events.first() {
            seen.push(e["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(seen.len() < 50, "paging ends");
    }
    assert_eq!(seen.len(), types.len(), "every event once: {seen:?}");
    // Time bounds.
    let (_, future) = admin(
        server,
        Method::GET,
        "/api/admin/events?since=2999-01-01",
        None,
    )
    .await;
    assert_eq!(future["events"], json!([]));
    let (_, past) = admin(
        server,
        Method::GET,
        "/api/admin/events?until=2000-01-01",
        None,
    )
    .await;
    assert_eq!(past["events"], json!([]));
    for bad in [
        "limit=0",
        "limit=501",
        "cursor=x",
        "since=yesterday",
        "severity=high",
    ] {
        let (status, body) = admin(
            server,
            Method::GET,
            &format!("/api/admin/events?{bad}"),
            None,
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // The system API key reads no events.
    let resp = server.get("/api/admin/events").send().await?;
    assert_eq!(resp.status().as_u16(), 403);
    Ok(())
}

async fn statistics_count_activations_sessions_rejections_and_logins(server: &TestServer) -> R {
    let key = issue(server, json!({"max_users": 1})).await;
    activate(server, &key, "hw-1").await;
    assert_eq!(start(server, &key, "hw-1").await.0, 200);
    assert_eq!(start(server, &key, "hw-1").await.0, 409);
    // A failed operator login.
    let resp = server
        .client()
        .post(server.url("/api/auth/login"))
        .json(&json!({"username": "nobody", "password": "wrong-password"}))
        .send()
        .await?;
    assert!(resp.status().as_u16() >= 400);
    let deadline = Instant::now() + Duration::from_secs(5);
    let day = loop {
        let (status, day) = admin(server, Method::GET, "/api/admin/stats/day", None).await;
        assert_eq!(status, 200, "{day}");
        let p = &day["totals"]["products"]["default"];
        if (p["rejections"]["SESSION_LIMIT_REACHED"] == 1
            && day["totals"]["login_failures"].as_u64() >= Some(1))
            || Instant::now() > deadline
        {
            break day;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let p = &day["totals"]["products"]["default"];
    assert_eq!(
        (p["activations"].as_u64(), p["session_starts"].as_u64()),
        (Some(1), Some(1)),
        "{day}"
    );
    assert_eq!(p["rejections"]["SESSION_LIMIT_REACHED"], 1, "{day}");
    assert!(day["totals"]["login_failures"].as_u64() >= Some(1), "{day}");
    assert_eq!(day["totals"]["peak_live_sessions"], 1, "{day}");
    assert_eq!(day["days"].as_array().unwrap().len(), 1);
    let (_, week) = admin(server, Method::GET, "/api/admin/stats/week", None).await;
    assert_eq!(week["days"].as_array().unwrap().len(), 7);
    assert_eq!(week["totals"], day["totals"]);
    let (_, month) = admin(server, Method::GET, "/api/admin/stats/month", None).await;
    assert_eq!(month["days"].as_array().unwrap().len(), 30);
    let (status, _) = admin(server, Method::GET, "/api/admin/stats/year", None).await;
    assert_eq!(status, 400);
    // The failed login is an event with the client's address.
    let failed = events_until(server, "type=login.failed", |b| {
        b["events"].as_array().is_some_and(|e| !e.is_empty())
    })
    .await;
    assert_eq!(failed["events"][0]["ip"], "127.0.0.1");
    assert_eq!(failed["events"][0]["data"]["username"], "nobody");
    Ok(())
}

/// Two servers on one Redis: the live stream of one shows what clients and operators do on
/// the other, within a second (it tails the shared event log, not this server's memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_on_one_server_shows_what_happens_on_another() -> R {
    let redis =
        tokio::task::spawn_blocking(tessera_integration_tests::RedisServer::start).await??;
    let url = redis.url.clone();
    let on_redis = move |c: &mut tessera_config::Config| {
        c.store.backend = tessera_config::StoreBackend::Redis;
        c.store.redis_url = url;
    };
    let a = TestServer::start_with(on_redis.clone()).await?;
    let b = TestServer::start_joining(&a.api_key, on_redis).await?;
    let key = issue(&a, json!({"max_users": 3, "max_devices": 3})).await;
    let mut stream = SseReader::open(&b, &format!("type=session.&license={key}"), None).await;
    activate(&a, &key, "hw-1").await;
    let (status, started) = start(&a, &key, "hw-1").await;
    assert_eq!(status, 200, "{started}");
    let began = Instant::now();
    let seen = stream
        .until("session.started", Duration::from_secs(5))
        .await
        .expect("B's stream never showed the session started on A");
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "took {:?}",
        began.elapsed()
    );
    assert_eq!(seen.data["license"], key.as_str());
    // An operator's kick on A as well.
    let token = started["session_token"].as_str().unwrap();
    let id = tessera_actors::TokenHash::of(token).to_hex();
    let (status, _) = admin(
        &a,
        Method::DELETE,
        &format!("/api/admin/licenses/{key}/sessions/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let ended = stream
        .until("session.ended", Duration::from_secs(5))
        .await
        .expect("B's stream never showed the kick made on A");
    assert_eq!(ended.data["data"]["reason"], "admin");
    Ok(())
}
