//! Issue 4's fault tests end to end: real `tessera serve` processes on a real `redis-server`
//! (each test starts its own), driven over HTTP through seed 000's License and Session API.
//!
//! - two servers on one Redis, concurrent session starts on one license: the limit holds;
//! - kill -9 Redis under load, restart it: no acknowledged activation or session start is
//!   lost, no limit is exceeded, durable writes answer 503 `STORE_UNAVAILABLE` meanwhile and
//!   heartbeats keep answering from memory;
//! - kill -9 Tessera under load, restart it: the same, and sessions that were alive before
//!   the crash keep heartbeating;
//! - a Redis stuck in `DEBUG SLEEP`: a request waiting on it does not hold up other licenses;
//! - a license suspended through one server ends its sessions on the other at once: an HTTP
//!   heartbeat there is refused as on the first, a WebSocket client there hears `suspended`;
//! - the emergency stop made on one server ends the sessions the other holds;
//! - on a primary with a replica watched by three Redis Sentinels, kill -9 the primary: both
//!   servers follow the promoted replica (writes, `/ready`, change notices), and what was
//!   replicated before is all there.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod redis_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis_support::{Redis, Tessera, activate, code, eventually, heartbeat, issue, start, store};
use serde_json::json;
use tessera::store::redis::RedisStore;
use tessera_actors::{LicenseKey, Store, TokenHash};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_redis_never_exceed_a_session_limit() {
    let redis = Redis::start().unwrap();
    let direct = store(&redis).await;
    let a = Tessera::start(&redis.url, None).await.unwrap();
    let b = Tessera::start(&redis.url, Some(&a.api_key)).await.unwrap();
    let key = issue(&direct, "TWO-NODES-0001", 20, 3).await;
    for i in 0..20 {
        let node = if i % 2 == 0 { &a } else { &b };
        let (status, body) = activate(node, &key, &format!("hw-{i}")).await;
        assert_eq!(status, 200, "{body}");
    }
    // Both servers know the license (its actor is loaded on each) before the race.
    assert_eq!(start(&a, &key, "hw-0").await.0, 200);
    let nodes = Arc::new([a, b]);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (nodes, key) = (Arc::clone(&nodes), key.clone());
        tasks.push(tokio::spawn(async move {
            start(&nodes[i % 2], &key, &format!("hw-{}", i % 20)).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            200 => ok += 1,
            409 => assert_eq!(code(&body), "SESSION_LIMIT_REACHED", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ok, 2, "3 sessions in all, one started before the race");
    let snap = direct
        .load(&LicenseKey::parse(&key).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snap.sessions.len(), 3);
}

/// What clients were told succeeded.
#[derive(Default)]
struct Acked {
    activations: BTreeSet<(String, String)>,
    sessions: BTreeMap<String, (String, String)>,
    statuses: BTreeMap<u16, usize>,
    codes: BTreeSet<String>,
}

/// Clients activating devices and starting sessions on `licenses` (2 devices, 2 sessions each)
/// until `stop` is set, recording what was acknowledged.
fn load(
    node: Arc<Tessera>,
    licenses: Vec<String>,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..6)
        .map(|c| {
            let (node, licenses, acked, stop) = (
                Arc::clone(&node),
                licenses.clone(),
                Arc::clone(&acked),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                let mut n = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let key = &licenses[(c * 7 + n) % licenses.len()];
                    let hw = format!("hw-{}", (c + n) % 3);
                    let (status, body) = activate(&node, key, &hw).await;
                    {
                        let mut a = acked.lock().unwrap();
                        *a.statuses.entry(status).or_default() += 1;
                        a.codes.insert(code(&body).to_owned());
                        if status == 200 {
                            a.activations.insert((key.clone(), hw.clone()));
                        }
                    }
                    let (status, body) = start(&node, key, &hw).await;
                    {
                        let mut a = acked.lock().unwrap();
                        *a.statuses.entry(status).or_default() += 1;
                        a.codes.insert(code(&body).to_owned());
                        if status == 200 {
                            let token = body["session_token"].as_str().unwrap().to_owned();
                            a.sessions.insert(token, (key.clone(), hw));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect()
}

/// Every acknowledged activation and session is in Redis; no license exceeds its limits.
async fn check_nothing_acknowledged_was_lost(direct: &RedisStore, acked: &Acked) {
    let mut licenses: BTreeSet<&String> = acked.activations.iter().map(|(k, _)| k).collect();
    licenses.extend(acked.sessions.values().map(|(k, _)| k));
    for key in licenses {
        let snap = direct
            .load(&LicenseKey::parse(key).unwrap())
            .await
            .unwrap()
            .unwrap();
        let active: BTreeSet<&str> = snap
            .activations
            .iter()
            .filter(|a| a.is_active)
            .map(|a| a.hardware_hash.as_str())
            .collect();
        assert!(active.len() <= 2, "{key}: {active:?}");
        assert!(
            snap.sessions.len() <= 2,
            "{key}: {} sessions",
            snap.sessions.len()
        );
        for (k, hw) in &acked.activations {
            if k == key {
                assert!(active.contains(hw.as_str()), "lost activation {k}/{hw}");
            }
        }
        let stored: BTreeSet<TokenHash> = snap.sessions.iter().map(|s| s.token_hash).collect();
        for (token, (k, _)) in &acked.sessions {
            if k == key {
                assert!(
                    stored.contains(&TokenHash::of(token)),
                    "lost session on {k}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_redis_under_load_loses_no_acknowledged_write() {
    let mut redis = Redis::start_durable().unwrap();
    let direct = store(&redis).await;
    let node = Arc::new(Tessera::start(&redis.url, None).await.unwrap());
    let mut licenses = Vec::new();
    for i in 0..12 {
        licenses.push(issue(&direct, &format!("KILL-REDIS-{i:04}"), 2, 2).await);
    }
    // A session alive before the outage, to heartbeat through it.
    let (status, _) = activate(&node, &licenses[0], "hw-0").await;
    assert_eq!(status, 200);
    let (status, body) = start(&node, &licenses[0], "hw-0").await;
    assert_eq!(status, 200, "{body}");
    let live = body["session_token"].as_str().unwrap().to_owned();
    let acked = Arc::new(Mutex::new(Acked::default()));
    acked
        .lock()
        .unwrap()
        .activations
        .insert((licenses[0].clone(), "hw-0".into()));
    acked
        .lock()
        .unwrap()
        .sessions
        .insert(live.clone(), (licenses[0].clone(), "hw-0".into()));

    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(
        Arc::clone(&node),
        licenses.clone(),
        Arc::clone(&acked),
        Arc::clone(&stop),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;

    redis.kill9();
    // While Redis is down: durable writes are refused with 503, heartbeats still answer.
    assert!(
        eventually(Duration::from_secs(10), || async {
            let (status, body) = activate(&node, &licenses[5], "hw-new").await;
            status == 503 && code(&body) == "STORE_UNAVAILABLE"
        })
        .await
    );
    let (status, hb_body) = heartbeat(&node, &licenses[0], &live).await;
    assert_eq!(
        status, 200,
        "heartbeats answer from memory during the outage: {hb_body}"
    );
    let (status, body) = node.get("/health").await.unwrap();
    assert_eq!((status, body["store"].as_str()), (200, Some("degraded")));
    let (status, body) = node.get("/ready").await.unwrap();
    assert_eq!(
        (status, code(&body)),
        (503, "STORE_UNAVAILABLE"),
        "not ready while Redis is down"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    redis.restart().unwrap();
    assert!(
        eventually(Duration::from_secs(15), || async {
            let (_, body) = node.get("/health").await.unwrap();
            body["store"] == "ok"
        })
        .await,
        "the server reconnects by itself"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            node.get("/ready")
                .await
                .is_ok_and(|(status, _)| status == 200)
        })
        .await,
        "ready again once Redis is back"
    );
    let before = acked.lock().unwrap().sessions.len();
    assert!(
        eventually(Duration::from_secs(10), || async {
            let a = acked.lock().unwrap();
            a.sessions.len() > before || a.statuses.contains_key(&409)
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        !acked.statuses.contains_key(&500),
        "no 500s: {:?} {:?}",
        acked.statuses,
        acked.codes
    );
    // Heartbeats persist lazily (only when the stored deadline runs low; a failed flush is
    // retried, see write_behind's tests), so what must hold is the invariant: the session
    // acknowledged during the outage stays alive in Redis for at least half a lifetime
    // (timeout 600 s + grace 30 s) after that heartbeat.
    let lk = LicenseKey::parse(&licenses[0]).unwrap();
    let hb = TokenHash::of(&live);
    let acked_at =
        chrono::DateTime::parse_from_rfc3339(hb_body["last_heartbeat"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
    let snap = direct.load(&lk).await.unwrap().unwrap();
    let stored = snap.sessions.iter().find(|s| s.token_hash == hb).unwrap();
    assert!(
        stored.deadline >= acked_at + chrono::Duration::seconds(315),
        "stored deadline {} too close to the heartbeat at {acked_at}",
        stored.deadline
    );
    check_nothing_acknowledged_was_lost(&direct, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_tessera_under_load_loses_no_acknowledged_write() {
    let redis = Redis::start_durable().unwrap();
    let direct = store(&redis).await;
    let node = Arc::new(Tessera::start(&redis.url, None).await.unwrap());
    let mut licenses = Vec::new();
    for i in 0..12 {
        licenses.push(issue(&direct, &format!("KILL-NODE-{i:04}"), 2, 2).await);
    }
    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(
        Arc::clone(&node),
        licenses.clone(),
        Arc::clone(&acked),
        Arc::clone(&stop),
    );
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    // kill -9 mid-load (clients keep sending; they get connection errors), then restart.
    node.kill9();
    tokio::time::sleep(Duration::from_millis(200)).await;
    node.restart().await.unwrap();
    // Sessions acknowledged before the crash keep heartbeating on the restarted server.
    let before: Vec<(String, String)> = acked
        .lock()
        .unwrap()
        .sessions
        .iter()
        .map(|(t, (k, _))| (t.clone(), k.clone()))
        .collect();
    assert!(
        !before.is_empty(),
        "the load started sessions before the crash"
    );
    for (token, key) in &before {
        let (status, body) = heartbeat(&node, key, token).await;
        assert_eq!(status, 200, "restart must not lose a live session: {body}");
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(!acked.statuses.contains_key(&500), "{:?}", acked.statuses);
    check_nothing_acknowledged_was_lost(&direct, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_redis_does_not_hold_up_other_licenses() {
    let redis = Redis::start().unwrap();
    let direct = store(&redis).await;
    let node = Arc::new(Tessera::start(&redis.url, None).await.unwrap());
    let slow = issue(&direct, "SLOW-0001", 5, 5).await;
    let fast = issue(&direct, "FAST-0001", 5, 5).await;
    for key in [&slow, &fast] {
        assert_eq!(activate(&node, key, "hw").await.0, 200);
    }
    let (status, body) = start(&node, &fast, "hw").await;
    assert_eq!(status, 200, "{body}");
    let token = body["session_token"].as_str().unwrap().to_owned();

    let port = redis.port;
    let sleeper = std::thread::spawn(move || {
        std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "DEBUG", "SLEEP", "3"])
            .output()
    });
    // Give the DEBUG SLEEP a moment to reach Redis before the request that will wait on it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = {
        let (node, slow) = (Arc::clone(&node), slow.clone());
        tokio::spawn(async move {
            let r = start(&node, &slow, "hw").await;
            (r, Instant::now())
        })
    };
    let mut served = 0;
    for _ in 0..20 {
        let (status, body) = heartbeat(&node, &fast, &token).await;
        assert_eq!(status, 200, "{body}");
        served += 1;
    }
    let served_at = Instant::now();
    let ((status, body), finished_at) = waiting.await.unwrap();
    assert_eq!(served, 20);
    assert!(
        served_at <= finished_at,
        "the other license was served while the slow request was still waiting"
    );
    assert!(
        matches!(status, 200 | 503),
        "the waiting request ends with success or 503: {status} {body}"
    );
    sleeper.join().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_suspension_on_one_server_ends_the_sessions_on_the_other_at_once() {
    use tessera_client::{ActivateRequest, Client, EndReason, Event, SessionOptions, StartRequest};

    let redis = Redis::start().unwrap();
    let direct = store(&redis).await;
    let a = Tessera::start(&redis.url, None).await.unwrap();
    let b = Tessera::start(&redis.url, Some(&a.api_key)).await.unwrap();
    let key = issue(&direct, "SUSP-ENDS-0001", 5, 5).await;

    // On B: a session over HTTP and one over the WebSocket (the SDK).
    assert_eq!(activate(&b, &key, "hw-http").await.0, 200);
    let (status, body) = start(&b, &key, "hw-http").await;
    assert_eq!(status, 200, "{body}");
    let token = body["session_token"].as_str().unwrap().to_owned();
    let client = Client::new(&b.base, &b.api_key).unwrap();
    client
        .activate(&ActivateRequest::new(&key, "hw-ws"))
        .await
        .unwrap();
    let heard: Arc<Mutex<Option<(Instant, Event)>>> = Arc::default();
    let stamp = Arc::clone(&heard);
    let options = SessionOptions::default().on_event(move |e| {
        if matches!(e, Event::Ended { .. }) {
            *stamp.lock().unwrap() = Some((Instant::now(), e.clone()));
        }
    });
    let session = client
        .start_session_with(&StartRequest::new(&key, "hw-ws"), options)
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            session.uses_websocket()
        })
        .await,
        "the SDK did not switch to the WebSocket"
    );
    // Both servers hold the license in memory.
    assert_eq!(heartbeat(&b, &key, &token).await.0, 200);
    assert_eq!(heartbeat(&a, &key, &token).await.0, 200);

    redis_support::suspend(&a, &direct, &key).await;
    let returned = Instant::now();

    // The WebSocket client on B hears it, with the reason.
    let deadline = returned + Duration::from_secs(5);
    let (at, event) = loop {
        if let Some(h) = heard.lock().unwrap().clone() {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "B never pushed the end:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    println!(
        "the client on B heard the suspension {:?} after A's call returned",
        at.saturating_duration_since(returned)
    );
    assert_eq!(
        event,
        Event::Ended {
            reason: EndReason::Suspended
        }
    );
    assert!(
        at.saturating_duration_since(returned) < Duration::from_secs(1),
        "the suspension reached B's client only after {:?}",
        at.saturating_duration_since(returned)
    );
    // B refuses the HTTP session's heartbeat as A does.
    let (a_status, a_body) = heartbeat(&a, &key, &token).await;
    assert_ne!(a_status, 200, "{a_body}");
    let (b_status, b_body) = heartbeat(&b, &key, &token).await;
    assert_eq!(
        (b_status, code(&b_body)),
        (a_status, code(&a_body)),
        "{b_body}"
    );
    // And a new session on B is refused because the license is suspended.
    let (status, body) = start(&b, &key, "hw-http").await;
    assert_eq!(code(&body), "LICENSE_SUSPENDED", "{status} {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_emergency_stop_on_one_server_ends_the_sessions_held_by_the_other() {
    let redis = Redis::start().unwrap();
    let direct = store(&redis).await;
    let a = Tessera::start(&redis.url, None).await.unwrap();
    let b = Tessera::start(&redis.url, Some(&a.api_key)).await.unwrap();
    // A license only B holds: A has never seen it.
    let key = issue(&direct, "EMRG-0001-AAAA-BBBB", 2, 2).await;
    assert_eq!(activate(&b, &key, "hw-1").await.0, 200);
    let (status, body) = start(&b, &key, "hw-1").await;
    assert_eq!(status, 200, "{body}");
    let token = body["session_token"].as_str().unwrap().to_owned();
    assert_eq!(heartbeat(&b, &key, &token).await.0, 200);

    tessera::auth::operators::create(
        &direct,
        "root",
        tessera::auth::scopes::Role::SuperAdmin,
        "a long enough password",
    )
    .await
    .unwrap();
    let (bearer, _) = tessera::auth::tokens::issue(&direct, "root", 600)
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(a.url("/api/admin/emergency"))
        .bearer_auth(&bearer)
        .json(&json!({"action": "end_all_sessions"}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ended_sessions"], 0, "A held no session: {body}");
    assert!(
        eventually(Duration::from_secs(5), || async {
            heartbeat(&b, &key, &token).await.0 != 200
        })
        .await,
        "B kept the session the emergency stop on A ended everywhere:\n{}",
        b.log()
    );
    assert_eq!(
        code(&heartbeat(&b, &key, &token).await.1),
        "SESSION_EXPIRED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_sentinel_the_servers_follow_a_promoted_replica() {
    let mut setup = redis_support::SentinelSetup::start().unwrap();
    let direct = RedisStore::connect(&setup.url, Duration::from_secs(5))
        .await
        .unwrap();
    let a = Tessera::start(&setup.url, None).await.unwrap();
    let b = Tessera::start(&setup.url, Some(&a.api_key)).await.unwrap();
    let key = issue(&direct, "SENTINEL-0001", 10, 10).await;
    let other = issue(&direct, "SENTINEL-0002", 10, 10).await;
    assert_eq!(activate(&a, &key, "hw-1").await.0, 200);
    let (status, body) = start(&a, &key, "hw-1").await;
    assert_eq!(status, 200, "{body}");
    let token = body["session_token"].as_str().unwrap().to_owned();
    // B holds the other license with a session, for the change notice after the failover.
    assert_eq!(activate(&b, &other, "hw-1").await.0, 200);
    let (status, body) = start(&b, &other, "hw-1").await;
    assert_eq!(status, 200, "{body}");
    let on_b = body["session_token"].as_str().unwrap().to_owned();
    // Replicated before the primary dies (what WAIT would buy every write; see
    // docs/deployment.md).
    let acked = setup.primary.cli(&["WAIT", "1", "2000"]).unwrap();
    assert_eq!(acked.trim(), "1", "the replica did not acknowledge");

    let old = setup.primary.port;
    let killed = Instant::now();
    setup.primary.kill9();
    assert!(
        eventually(Duration::from_secs(60), || async {
            setup.primary_port() == Some(setup.replica.port)
        })
        .await,
        "the sentinels never promoted the replica"
    );
    let promoted = killed.elapsed();
    // Both servers write again, to the new primary.
    for (node, hw) in [(&a, "hw-2"), (&b, "hw-3")] {
        assert!(
            eventually(Duration::from_secs(30), || async {
                activate(node, &key, hw).await.0 == 200
            })
            .await,
            "a server never wrote to the promoted replica:\n{}",
            node.log()
        );
    }
    let writing = killed.elapsed();
    println!(
        "primary {old} killed: the sentinels named {} after {promoted:?}, both servers wrote \
         again after {writing:?}",
        setup.replica.port
    );
    assert!(setup.replica.cli(&["ROLE"]).unwrap().starts_with("master"));
    // Nothing acknowledged before the failover is gone, and the session lives on. (The
    // test's own store was idle: its health probe finds the new primary.)
    let license = LicenseKey::parse(&key).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            direct.load(&license).await.is_ok()
        })
        .await,
        "the test's store never followed the promoted replica"
    );
    let snap = direct.load(&license).await.unwrap().unwrap();
    assert!(
        snap.sessions
            .iter()
            .any(|s| s.token_hash == TokenHash::of(&token))
    );
    assert_eq!(
        snap.activations.iter().filter(|a| a.is_active).count(),
        3,
        "{:?}",
        snap.activations
    );
    assert_eq!(heartbeat(&b, &key, &token).await.0, 200);
    for node in [&a, &b] {
        assert_eq!(node.get("/ready").await.unwrap().0, 200);
    }
    // Change notices flow on the new primary (or, missed while B subscribed again, the
    // reload after its new subscription catches up): a suspension through A ends B's
    // session, with the reason.
    redis_support::suspend(&a, &direct, &other).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            heartbeat(&b, &other, &on_b).await.0 != 200
        })
        .await,
        "B never heard of the suspension made through A after the failover:\n{}",
        b.log()
    );
    let (status, body) = redis_support::end(&b, &other, &on_b).await;
    assert_eq!(
        (status, body["end_reason"].as_str()),
        (200, Some("suspended")),
        "{body}"
    );
}
