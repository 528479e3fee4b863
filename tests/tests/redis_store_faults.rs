//! The Redis adapter under concurrency and faults, each test on its own `redis-server`:
//! two independent clients (standing for two Tessera servers) racing on one license's
//! limits, Redis killed with SIGKILL and restarted, and a Redis too slow to answer.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod redis_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use redis_support::{Redis, eventually};
use tessera::store::redis::RedisStore;
use tessera_actors::{
    EndReason, HeartbeatWrite, LicenseKey, LicenseRecord, LimitKind, NewActivation, SessionRecord,
    Store, StoreError, StoreHealth, StoreOp, StoreOutcome, TokenHash, WriteBehind,
};

fn key(name: &str) -> LicenseKey {
    LicenseKey::parse(name).unwrap()
}

fn session(token: &TokenHash, now: DateTime<Utc>) -> SessionRecord {
    SessionRecord {
        token_hash: *token,
        hardware_hash: "hw".into(),
        machine_id: "m".into(),
        version: "1".into(),
        started_at: now,
        last_heartbeat: now,
        deadline: now + chrono::Duration::hours(1),
        stored_deadline: Default::default(),
    }
}

fn start(k: &LicenseKey, token: &TokenHash, max: u32) -> StoreOp {
    let now = Utc::now();
    StoreOp::StartSession {
        key: k.clone(),
        session: session(token, now),
        max_sessions: max,
        end: vec![],
        at: now,
    }
}

async fn connect(redis: &Redis, op_timeout: Duration) -> Arc<RedisStore> {
    Arc::new(RedisStore::connect(&redis.url, op_timeout).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_racing_on_one_license_never_exceed_its_limits() {
    let redis = Redis::start().unwrap();
    let servers = [
        connect(&redis, Duration::from_secs(5)).await,
        connect(&redis, Duration::from_secs(5)).await,
    ];
    let k = key("RACE-0001");
    servers[0]
        .create_license(LicenseRecord::new(k.clone(), "p", "p", Utc::now()))
        .await
        .unwrap();

    // Phase 1: 2 servers x 20 clients x 10 starts at once; exactly 5 may win.
    let won = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        for c in 0..20 {
            let (server, k, won) = (Arc::clone(server), k.clone(), Arc::clone(&won));
            tasks.push(tokio::spawn(async move {
                for n in 0..10 {
                    let token = TokenHash::of(&format!("p1-{i}-{c}-{n}"));
                    match server.apply(start(&k, &token, 5)).await.unwrap() {
                        StoreOutcome::Done => {
                            won.fetch_add(1, Ordering::SeqCst);
                        }
                        StoreOutcome::LimitReached(LimitKind::Sessions) => {}
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(won.load(Ordering::SeqCst), 5);
    let snap = servers[1].load(&k).await.unwrap().unwrap();
    assert_eq!(snap.sessions.len(), 5);

    // Phase 2: churn (start, then end what was started) on both servers while a watcher
    // checks the stored count after every change it sees.
    let ends: Vec<_> = snap
        .sessions
        .iter()
        .map(|s| (s.token_hash, EndReason::ClientEnd))
        .collect();
    servers[0]
        .apply(StoreOp::EndSessions {
            key: k.clone(),
            ends,
            at: Utc::now(),
            confirm_deadline: false,
        })
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (server, k, stop) = (Arc::clone(&servers[1]), k.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut max_seen = 0;
            while !stop.load(Ordering::SeqCst) {
                let live = server.load(&k).await.unwrap().unwrap().sessions.len();
                max_seen = max_seen.max(live);
                assert!(live <= 5, "{live} live sessions on a 5-session license");
            }
            max_seen
        })
    };
    let started = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        for c in 0..16 {
            let (server, k, started) = (Arc::clone(server), k.clone(), Arc::clone(&started));
            tasks.push(tokio::spawn(async move {
                for n in 0..25 {
                    let token = TokenHash::of(&format!("p2-{i}-{c}-{n}"));
                    if server.apply(start(&k, &token, 5)).await.unwrap() == StoreOutcome::Done {
                        started.fetch_add(1, Ordering::SeqCst);
                        server
                            .apply(StoreOp::EndSessions {
                                key: k.clone(),
                                ends: vec![(token, EndReason::ClientEnd)],
                                at: Utc::now(),
                                confirm_deadline: false,
                            })
                            .await
                            .unwrap();
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let max_seen = watcher.await.unwrap();
    assert!(
        started.load(Ordering::SeqCst) > 5,
        "the churn made progress"
    );
    assert!(max_seen <= 5);
    assert!(
        servers[0]
            .load(&k)
            .await
            .unwrap()
            .unwrap()
            .sessions
            .is_empty()
    );

    // Devices: 40 different machines at once on a 3-device license.
    let k2 = key("RACE-0002");
    servers[1]
        .create_license(LicenseRecord::new(k2.clone(), "p", "p", Utc::now()))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for n in 0..40 {
        let (server, k2) = (Arc::clone(&servers[n % 2]), k2.clone());
        tasks.push(tokio::spawn(async move {
            server
                .apply(StoreOp::Activate {
                    key: k2,
                    activation: NewActivation {
                        hardware_hash: format!("hw-{n}"),
                        machine_name: "m".into(),
                        app_version: "1".into(),
                        fingerprint: None,
                        at: Utc::now(),
                    },
                    max_devices: 3,
                    max_activations: 0,
                })
                .await
                .unwrap()
        }));
    }
    let mut new = 0;
    for t in tasks {
        match t.await.unwrap() {
            StoreOutcome::Activated {
                existing: false, ..
            } => new += 1,
            StoreOutcome::LimitReached(LimitKind::Devices) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(new, 3);
    let snap = servers[0].load(&k2).await.unwrap().unwrap();
    assert_eq!(snap.activations.len(), 3);
    assert_eq!(snap.record.activations_used, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_fails_calls_fast_then_reconnects_when_it_returns() {
    let mut redis = Redis::start_durable().unwrap();
    let op_timeout = Duration::from_millis(300);
    let store = connect(&redis, op_timeout).await;
    let wb = WriteBehind::new(Arc::clone(&store) as Arc<dyn Store>, 2);
    let k = key("OUTAGE-1");
    store
        .create_license(LicenseRecord::new(k.clone(), "p", "p", Utc::now()))
        .await
        .unwrap();
    let s1 = TokenHash::of("s1");
    assert_eq!(
        store.apply(start(&k, &s1, 5)).await.unwrap(),
        StoreOutcome::Done
    );
    assert_eq!(store.health(), StoreHealth::Ok);

    redis.kill9();
    let t0 = Instant::now();
    let first = store.load(&k).await;
    assert!(
        matches!(first, Err(StoreError::Unavailable(_))),
        "{first:?}"
    );
    // Bounded by op_timeout (generous margin: this asserts "does not hang", not speed).
    assert!(t0.elapsed() < op_timeout * 10, "took {:?}", t0.elapsed());
    assert!(
        eventually(Duration::from_secs(5), || async {
            store.health() == StoreHealth::Degraded
        })
        .await
    );
    // While degraded every call fails without waiting for a timeout.
    let s2 = TokenHash::of("s2");
    assert!(matches!(
        store.apply(start(&k, &s2, 5)).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.find_session(&s1).await,
        Err(StoreError::Unavailable(_))
    ));
    // Heartbeats are kept by the write-behind while the flush fails.
    let beat_at = Utc::now().trunc_subsecs(6); // stores keep heartbeat times to the µs
    wb.push(HeartbeatWrite {
        key: k.clone(),
        token_hash: s1,
        hardware_hash: "hw".into(),
        last_heartbeat: beat_at,
        deadline: beat_at + chrono::Duration::hours(2),
    });
    assert!(wb.flush().await.is_err());
    assert_eq!(wb.depth(), 1);

    redis.restart().unwrap();
    assert!(
        eventually(Duration::from_secs(15), || async {
            store.health() == StoreHealth::Ok
        })
        .await,
        "the store reconnects by itself"
    );
    // The acknowledged session survived (AOF); scripts are loaded again after NOSCRIPT.
    assert_eq!(wb.flush().await.unwrap(), 1);
    let snap = store.load(&k).await.unwrap().unwrap();
    assert_eq!(snap.sessions.len(), 1);
    assert_eq!(snap.sessions[0].last_heartbeat, beat_at);
    assert_eq!(
        store.apply(start(&k, &s2, 5)).await.unwrap(),
        StoreOutcome::Done
    );
    assert_eq!(store.find_session(&s2).await.unwrap(), Some(k.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_stuck_in_a_slow_command_times_out_and_recovers() {
    let redis = Redis::start().unwrap();
    let op_timeout = Duration::from_millis(300);
    let store = connect(&redis, op_timeout).await;
    let k = key("SLOW-1");
    store
        .create_license(LicenseRecord::new(k.clone(), "p", "p", Utc::now()))
        .await
        .unwrap();
    let port = redis.port;
    let sleeper = std::thread::spawn(move || {
        std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "DEBUG", "SLEEP", "2"])
            .output()
    });
    assert!(
        eventually(Duration::from_secs(5), || async {
            matches!(store.load(&k).await, Err(StoreError::Unavailable(_)))
        })
        .await,
        "a blocked Redis times out instead of hanging"
    );
    assert_eq!(store.health(), StoreHealth::Degraded);
    sleeper.join().unwrap().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            store.health() == StoreHealth::Ok
        })
        .await
    );
    assert!(store.load(&k).await.unwrap().is_some());
}
