//! How many Redis commands the write-behind heartbeat flush costs, counted by the server
//! (`INFO commandstats` before and after). Guards the design: one pipeline per flush, one
//! `EVALSHA` per [`HEARTBEATS_PER_SCRIPT`] session writes plus one `ZADD` of the deadline
//! index, whatever the number of heartbeats coalesced into them; inside the scripts one
//! `HMGET` and one `HSET` per license.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod redis_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use redis_support::Redis;
use tessera::store::redis::{HEARTBEATS_PER_SCRIPT, RedisStore};
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
    let now = Utc::now();
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
    let scripts = flushed.div_ceil(HEARTBEATS_PER_SCRIPT) as u64;
    let top_level =
        calls.get("evalsha").copied().unwrap_or(0) + calls.get("zadd").copied().unwrap_or(0);
    let total: u64 = calls.values().sum();
    eprintln!(
        "{heartbeats} heartbeats of {flushed} sessions on {LICENSES} licenses: \
         commands sent {top_level} ({:.5}/heartbeat), \
         commands executed incl. inside scripts {total} ({:.3}/heartbeat, {:.2}/license): {calls:?}",
        top_level as f64 / heartbeats as f64,
        total as f64 / heartbeats as f64,
        total as f64 / LICENSES as f64,
    );
    assert_eq!(calls.get("evalsha"), Some(&scripts), "{calls:?}");
    assert_eq!(calls.get("zadd"), Some(&1), "{calls:?}");
    // Inside the scripts: one HMGET and one HSET of the license's times hash per license.
    assert_eq!(calls.get("hmget"), Some(&(LICENSES as u64)), "{calls:?}");
    assert!(total <= scripts + 1 + 2 * LICENSES as u64, "{calls:?}");

    // The flush wrote the latest values.
    let snap = store.load(&sessions[0].0).await.unwrap().unwrap();
    let last = now + chrono::Duration::seconds(BEATS_PER_SESSION as i64);
    assert!(snap.sessions.iter().all(|s| s.last_heartbeat == last));
    assert_eq!(snap.activations[0].last_heartbeat, last);
}
