//! How many Redis commands the write-behind heartbeat flush costs on a single Redis, counted
//! by the server (`INFO commandstats` before and after). Guards the design: one pipeline of
//! three `ZADD`s (session deadlines, session heartbeats, device heartbeats), whatever the
//! number of heartbeats, sessions and licenses in it, and nothing run per license. (On a
//! cluster the flush runs `heartbeats.lua` per slot; the conformance suite covers that.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod redis_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use redis_support::Redis;
use tessera::store::redis::RedisStore;
use tessera_actors::{
    HeartbeatWrite, LicenseKey, LicenseRecord, NewActivation, SessionRecord, Store, StoreOp,
    StoreOutcome, TokenHash, WriteBehind,
};

fn delta(before: &[(String, u64)], after: &[(String, u64)]) -> BTreeMap<String, u64> {
    let before: BTreeMap<_, _> = before.iter().cloned().collect();
    after
        .iter()
        .map(|(name, calls)| (name.clone(), calls - before.get(name).copied().unwrap_or(0)))
        .filter(|(name, calls)| *calls > 0 && name != "ping" && name != "info")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_of_coalesced_heartbeats_is_a_handful_of_commands() {
    const LICENSES: usize = 400;
    const SESSIONS_PER_LICENSE: usize = 3;
    const BEATS_PER_SESSION: usize = 5;
    let redis = Redis::start().unwrap();
    let store = Arc::new(
        RedisStore::connect(&redis.url, Duration::from_secs(5))
            .await
            .unwrap(),
    );
    // Whole microseconds: what the global sets keep.
    let now = Utc::now().trunc_subsecs(6);
    let mut sessions = Vec::new();
    for l in 0..LICENSES {
        let key = LicenseKey::parse(&format!("HB-{l:05}")).unwrap();
        store
            .create_license(LicenseRecord::new(key.clone(), "p", "p", now))
            .await
            .unwrap();
        store
            .apply(StoreOp::Activate {
                key: key.clone(),
                activation: NewActivation {
                    hardware_hash: "hw".into(),
                    machine_name: "m".into(),
                    app_version: "1".into(),
                    fingerprint: None,
                    at: now,
                },
                max_devices: 1,
                max_activations: 0,
            })
            .await
            .unwrap();
        for s in 0..SESSIONS_PER_LICENSE {
            let token = TokenHash::of(&format!("{l}-{s}"));
            let outcome = store
                .apply(StoreOp::StartSession {
                    key: key.clone(),
                    session: SessionRecord {
                        token_hash: token,
                        hardware_hash: "hw".into(),
                        machine_id: "m".into(),
                        version: "1".into(),
                        started_at: now,
                        last_heartbeat: now,
                        deadline: now + chrono::Duration::seconds(120),
                        stored_deadline: Default::default(),
                    },
                    max_sessions: 10,
                    end: vec![],
                    at: now,
                })
                .await
                .unwrap();
            assert_eq!(outcome, StoreOutcome::Done);
            sessions.push((key.clone(), token));
        }
    }

    let wb = WriteBehind::new(Arc::clone(&store) as Arc<dyn Store>, 4);
    let before = redis.command_calls().unwrap();
    let mut heartbeats = 0;
    for beat in 1..=BEATS_PER_SESSION {
        let at = now + chrono::Duration::seconds(beat as i64);
        for (key, token) in &sessions {
            wb.push(HeartbeatWrite {
                key: key.clone(),
                token_hash: *token,
                hardware_hash: "hw".into(),
                last_heartbeat: at,
                deadline: at + chrono::Duration::seconds(120),
            });
            heartbeats += 1;
        }
    }
    let written = wb.flush().await.unwrap();
    let after = redis.command_calls().unwrap();
    let calls = delta(&before, &after);

    let flushed = sessions.len();
    assert_eq!(written, flushed);
    let total: u64 = calls.values().sum();
    eprintln!(
        "{heartbeats} heartbeats of {flushed} sessions on {LICENSES} licenses: \
         commands executed (incl. inside scripts) {total} ({:.5}/heartbeat): {calls:?}",
        total as f64 / heartbeats as f64,
    );
    let expected: BTreeMap<String, u64> = [("zadd".to_owned(), 3)].into();
    assert_eq!(calls, expected);

    // The flush wrote the latest values, and every license reads them back.
    let last = now + chrono::Duration::seconds(BEATS_PER_SESSION as i64);
    for key in [&sessions[0].0, &sessions[sessions.len() - 1].0] {
        let snap = store.load(key).await.unwrap().unwrap();
        assert_eq!(snap.sessions.len(), SESSIONS_PER_LICENSE);
        for s in &snap.sessions {
            assert_eq!(s.last_heartbeat, last);
            assert_eq!(s.deadline, last + chrono::Duration::seconds(120));
        }
        assert_eq!(snap.activations[0].last_heartbeat, last);
    }
}
