//! The Store conformance suite: the same tests against the reference [`MemoryStore`], the
//! embedded (redb) adapter and the Redis adapter (each Redis test on its own `redis-server`).
//!
//! Every test is a generic `async fn(Arc<dyn Store>)`; `suite!` instantiates each one per
//! backend as `on_memory::NAME`, `on_embedded::NAME`, `on_redis::NAME` and
//! `on_redis_cluster::NAME` (a three-primary Redis Cluster). The last test replays
//! a long pseudo-random operation sequence on a backend and on a `MemoryStore` side by side and
//! requires the same outcome after every step and the same snapshots at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod redis_support;

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tessera::store::EmbeddedStore;
use tessera::store::meta::MetaStore;
use tessera::store::redis::RedisStore;
use tessera_actors::{
    EndReason, Fingerprint, HeartbeatWrite, LicenseKey, LicenseRecord, LicenseSnapshot,
    LicenseStatus, LimitKind, MemoryStore, NewActivation, SessionRecord, Store, StoreError,
    StoreHealth, StoreOp, StoreOutcome, TokenHash,
};
use tessera_integration_tests::RedisServer;

type R = anyhow::Result<()>;

/// A store under test and whatever must outlive it (temp dir, redis-server).
struct Backend {
    store: Arc<dyn Store>,
    meta: Option<Arc<dyn MetaStore>>,
    _keep: Box<dyn Any + Send>,
}

async fn memory() -> anyhow::Result<Backend> {
    Ok(Backend {
        store: Arc::new(MemoryStore::new()),
        meta: None,
        _keep: Box::new(()),
    })
}

async fn embedded() -> anyhow::Result<Backend> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(&dir.path().join("tessera.redb"))?;
    Ok(Backend {
        store: Arc::new(store.clone()),
        meta: Some(Arc::new(store)),
        _keep: Box::new(dir),
    })
}

async fn redis() -> anyhow::Result<Backend> {
    let server = tokio::task::spawn_blocking(RedisServer::start).await??;
    let store = RedisStore::connect(&server.url, Duration::from_secs(5)).await?;
    Ok(Backend {
        store: Arc::new(store.clone()),
        meta: Some(Arc::new(store)),
        _keep: Box::new(server),
    })
}

/// Three primaries, each license's keys in one slot, global indexes in others.
async fn redis_cluster() -> anyhow::Result<Backend> {
    let cluster = tokio::task::spawn_blocking(redis_support::RedisCluster::start).await??;
    let store = RedisStore::connect(&cluster.url, Duration::from_secs(5)).await?;
    assert!(store.is_cluster());
    Ok(Backend {
        store: Arc::new(store.clone()),
        meta: Some(Arc::new(store)),
        _keep: Box::new(cluster),
    })
}

macro_rules! for_backend {
    ($module:ident, $setup:ident, [$($test:ident),*], [$($meta_test:ident),*]) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $test() -> super::R {
                    let backend = super::$setup().await?;
                    super::$test(backend.store.clone()).await
                }
            )*
            $(
                #[tokio::test]
                async fn $meta_test() -> super::R {
                    let backend = super::$setup().await?;
                    super::$meta_test(backend.meta.clone().expect("backend has a meta store")).await
                }
            )*
        }
    };
}

macro_rules! suite {
    (store: [$($test:ident),* $(,)?], meta: [$($meta_test:ident),* $(,)?]) => {
        for_backend!(on_memory, memory, [$($test),*], []);
        for_backend!(on_embedded, embedded, [$($test),*], [$($meta_test),*]);
        for_backend!(on_redis, redis, [$($test),*], [$($meta_test),*]);
        for_backend!(on_redis_cluster, redis_cluster, [$($test),*], [$($meta_test),*]);
    };
}

suite!(
    store: [
        fresh_store_is_healthy_and_empty,
        created_license_gets_an_id_and_loads_back,
        creating_a_taken_key_is_already_exists,
        every_operation_on_an_unknown_license_is_license_not_found,
        activating_an_active_device_again_returns_the_same_activation,
        device_limit_refuses_another_device,
        activation_limit_counts_lifetime_activations_and_zero_is_unlimited,
        reactivating_a_deactivated_device_replaces_its_activation,
        deactivating_a_device_ends_only_its_sessions,
        session_limit_counts_only_sessions_with_a_deadline_after_at,
        sessions_ended_in_the_start_step_make_room,
        ending_sessions_skips_unknown_tokens_and_confirms_deadlines,
        a_non_active_status_ends_every_session,
        update_license_replaces_the_record_and_checks_its_id,
        heartbeats_only_move_times_forward_and_skip_ended_sessions,
        a_reactivated_device_starts_from_its_activation_time,
        find_session_names_the_license_of_live_sessions_only,
        overdue_sessions_lists_live_sessions_past_their_deadline,
        list_licenses_pages_in_key_order,
        list_records_pages_whole_records_in_key_order,
        key_for_id_finds_a_license_by_its_id,
        deleting_a_license_removes_it_and_every_index_naming_it,
        random_operations_match_the_reference_model,
    ],
    meta: [meta_get_returns_the_last_put_value]
);

// ---------------------------------------------------------------------------------------------
// Helpers

/// A base time with nanoseconds, so adapters must keep times exactly.
fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 123_456_789).unwrap() + chrono::Duration::milliseconds(ms)
}

/// `at(ms)` as stores keep heartbeat times: to the microsecond.
fn kept(ms: i64) -> DateTime<Utc> {
    at(ms).trunc_subsecs(6)
}

fn key(name: &str) -> LicenseKey {
    LicenseKey::parse(name).unwrap()
}

fn tok(name: &str) -> TokenHash {
    TokenHash::of(name)
}

async fn license(store: &Arc<dyn Store>, name: &str) -> anyhow::Result<LicenseKey> {
    let k = key(name);
    store
        .create_license(LicenseRecord::new(k.clone(), "default", "basic", at(0)))
        .await?;
    Ok(k)
}

fn device(hw: &str, ms: i64) -> NewActivation {
    NewActivation {
        hardware_hash: hw.to_owned(),
        machine_name: format!("machine {hw}"),
        app_version: "1.2.3".to_owned(),
        fingerprint: Some(Fingerprint {
            cpu_id: Some("cpu".into()),
            mb_serial: None,
            mac_addresses: Vec::new(),
            volume_hash: None,
            host_name: Some("host/ü".into()),
        }),
        at: at(ms),
    }
}

fn activate(k: &LicenseKey, hw: &str, ms: i64, max_devices: u32, max_activations: u32) -> StoreOp {
    StoreOp::Activate {
        key: k.clone(),
        activation: device(hw, ms),
        max_devices,
        max_activations,
    }
}

fn session(token: &str, hw: &str, start_ms: i64, deadline_ms: i64) -> SessionRecord {
    SessionRecord {
        token_hash: tok(token),
        hardware_hash: hw.to_owned(),
        machine_id: format!("mid-{hw}"),
        version: "1.2.3".to_owned(),
        started_at: at(start_ms),
        last_heartbeat: at(start_ms),
        deadline: at(deadline_ms),
        stored_deadline: Default::default(),
    }
}

fn start(k: &LicenseKey, s: SessionRecord, max: u32, end: Vec<(TokenHash, EndReason)>) -> StoreOp {
    let now = s.started_at;
    StoreOp::StartSession {
        key: k.clone(),
        session: s,
        max_sessions: max,
        end,
        at: now,
    }
}

fn end(
    k: &LicenseKey,
    ends: Vec<(TokenHash, EndReason)>,
    ms: i64,
    confirm_deadline: bool,
) -> StoreOp {
    StoreOp::EndSessions {
        key: k.clone(),
        ends,
        at: at(ms),
        confirm_deadline,
    }
}

fn beat(k: &LicenseKey, token: &str, hw: &str, beat_ms: i64, deadline_ms: i64) -> HeartbeatWrite {
    HeartbeatWrite {
        key: k.clone(),
        token_hash: tok(token),
        hardware_hash: hw.to_owned(),
        last_heartbeat: at(beat_ms),
        deadline: at(deadline_ms),
    }
}

async fn snap(store: &Arc<dyn Store>, k: &LicenseKey) -> anyhow::Result<LicenseSnapshot> {
    store
        .load(k)
        .await?
        .ok_or_else(|| anyhow::anyhow!("license {k} not found"))
}

fn tokens(s: &LicenseSnapshot) -> BTreeSet<TokenHash> {
    s.sessions.iter().map(|s| s.token_hash).collect()
}

fn set<T: Ord, I: IntoIterator<Item = T>>(items: I) -> BTreeSet<T> {
    items.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// The suite

async fn fresh_store_is_healthy_and_empty(store: Arc<dyn Store>) -> R {
    assert_eq!(store.health(), StoreHealth::Ok);
    assert_eq!(store.load(&key("NOPE")).await?, None);
    assert_eq!(store.list_licenses(None, 10).await?, vec![]);
    assert_eq!(store.find_session(&tok("x")).await?, None);
    assert_eq!(store.overdue_sessions(at(1_000_000), 10).await?, vec![]);
    store.flush_heartbeats(&[]).await?;
    Ok(())
}

async fn created_license_gets_an_id_and_loads_back(store: Arc<dyn Store>) -> R {
    let mut record = LicenseRecord::new(key("AAAA-BBBB"), "prod", "gold", at(0));
    record.customer_name = Some("Ada \"Quote\" Ünïcode".into());
    record.valid_until = Some(at(86_400_000));
    record.overrides.max_sessions = Some(3);
    let created = store.create_license(record.clone()).await?;
    assert!(created.id > 0);
    let second = store
        .create_license(LicenseRecord::new(key("CCCC"), "prod", "gold", at(0)))
        .await?;
    assert_ne!(second.id, created.id);
    record.id = created.id;
    assert_eq!(created, record);
    let loaded = snap(&store, &record.key).await?;
    assert_eq!(loaded.record, record);
    assert!(loaded.activations.is_empty());
    assert!(loaded.sessions.is_empty());
    Ok(())
}

async fn creating_a_taken_key_is_already_exists(store: Arc<dyn Store>) -> R {
    let k = license(&store, "TAKEN").await?;
    let before = snap(&store, &k).await?;
    let again = store
        .create_license(LicenseRecord::new(k.clone(), "other", "other", at(5)))
        .await;
    assert_eq!(again, Err(StoreError::AlreadyExists));
    assert_eq!(snap(&store, &k).await?, before, "the first record is kept");
    assert_eq!(store.list_licenses(None, 10).await?, vec![k]);
    Ok(())
}

async fn every_operation_on_an_unknown_license_is_license_not_found(store: Arc<dyn Store>) -> R {
    let k = key("GHOST");
    let mut record = LicenseRecord::new(k.clone(), "p", "p", at(0));
    record.id = 1;
    let ops = vec![
        activate(&k, "hw", 0, 5, 0),
        StoreOp::Deactivate {
            key: k.clone(),
            hardware_hash: "hw".into(),
            at: at(0),
        },
        start(&k, session("t", "hw", 0, 1_000), 5, vec![]),
        end(&k, vec![(tok("t"), EndReason::ClientEnd)], 0, false),
        StoreOp::SetStatus {
            key: k.clone(),
            status: LicenseStatus::Suspended,
            reason: None,
            at: at(0),
        },
        StoreOp::UpdateLicense { record },
    ];
    for op in ops {
        let name = op.name();
        assert_eq!(
            store.apply(op).await,
            Err(StoreError::LicenseNotFound),
            "{name}"
        );
    }
    assert_eq!(store.find_session(&tok("t")).await?, None);
    assert_eq!(store.list_licenses(None, 10).await?, vec![]);
    Ok(())
}

async fn activating_an_active_device_again_returns_the_same_activation(store: Arc<dyn Store>) -> R {
    let k = license(&store, "IDEM").await?;
    let StoreOutcome::Activated {
        activation: first,
        existing: false,
    } = store.apply(activate(&k, "hw-1", 10, 1, 5)).await?
    else {
        panic!("first activation must be new");
    };
    assert!(first.is_active);
    assert_eq!(first.activated_at, at(10));
    assert_eq!(first.last_heartbeat, at(10));
    let again = store.apply(activate(&k, "hw-1", 20, 1, 5)).await?;
    assert_eq!(
        again,
        StoreOutcome::Activated {
            activation: first.clone(),
            existing: true
        }
    );
    let s = snap(&store, &k).await?;
    assert_eq!(s.record.activations_used, 1, "re-activation counts nothing");
    assert_eq!(s.activations, vec![first]);
    Ok(())
}

async fn device_limit_refuses_another_device(store: Arc<dyn Store>) -> R {
    let k = license(&store, "DEVLIM").await?;
    store.apply(activate(&k, "hw-1", 0, 2, 0)).await?;
    store.apply(activate(&k, "hw-2", 0, 2, 0)).await?;
    assert_eq!(
        store.apply(activate(&k, "hw-3", 0, 2, 0)).await?,
        StoreOutcome::LimitReached(LimitKind::Devices)
    );
    let s = snap(&store, &k).await?;
    assert_eq!(s.activations.len(), 2);
    assert_eq!(s.record.activations_used, 2, "a refusal counts nothing");
    // Deactivating one frees a device slot.
    store
        .apply(StoreOp::Deactivate {
            key: k.clone(),
            hardware_hash: "hw-1".into(),
            at: at(5),
        })
        .await?;
    assert!(matches!(
        store.apply(activate(&k, "hw-3", 6, 2, 0)).await?,
        StoreOutcome::Activated {
            existing: false,
            ..
        }
    ));
    Ok(())
}

async fn activation_limit_counts_lifetime_activations_and_zero_is_unlimited(
    store: Arc<dyn Store>,
) -> R {
    let k = license(&store, "ACTLIM").await?;
    for hw in ["a", "b"] {
        store.apply(activate(&k, hw, 0, 10, 2)).await?;
        store
            .apply(StoreOp::Deactivate {
                key: k.clone(),
                hardware_hash: hw.into(),
                at: at(1),
            })
            .await?;
    }
    assert_eq!(
        store.apply(activate(&k, "c", 2, 10, 2)).await?,
        StoreOutcome::LimitReached(LimitKind::Activations)
    );
    // The device limit is checked before the activation limit.
    assert_eq!(
        store.apply(activate(&k, "c", 2, 0, 2)).await?,
        StoreOutcome::LimitReached(LimitKind::Devices)
    );
    assert!(matches!(
        store.apply(activate(&k, "c", 3, 10, 0)).await?,
        StoreOutcome::Activated {
            existing: false,
            ..
        }
    ));
    assert_eq!(snap(&store, &k).await?.record.activations_used, 3);
    Ok(())
}

async fn reactivating_a_deactivated_device_replaces_its_activation(store: Arc<dyn Store>) -> R {
    let k = license(&store, "REACT").await?;
    let StoreOutcome::Activated { activation: a1, .. } =
        store.apply(activate(&k, "hw", 0, 1, 0)).await?
    else {
        panic!("activated");
    };
    store.apply(activate(&k, "other", 0, 2, 0)).await?;
    store
        .apply(StoreOp::Deactivate {
            key: k.clone(),
            hardware_hash: "hw".into(),
            at: at(1),
        })
        .await?;
    let s = snap(&store, &k).await?;
    let old = s
        .activations
        .iter()
        .find(|a| a.hardware_hash == "hw")
        .unwrap();
    assert!(!old.is_active);
    let StoreOutcome::Activated {
        activation: a2,
        existing: false,
    } = store.apply(activate(&k, "hw", 2, 2, 0)).await?
    else {
        panic!("a deactivated device activates anew");
    };
    assert_ne!(a2.id, a1.id);
    let s = snap(&store, &k).await?;
    let of_hw: Vec<_> = s
        .activations
        .iter()
        .filter(|a| a.hardware_hash == "hw")
        .collect();
    assert_eq!(of_hw, vec![&a2], "the inactive activation is replaced");
    assert_eq!(s.record.activations_used, 3);
    Ok(())
}

async fn deactivating_a_device_ends_only_its_sessions(store: Arc<dyn Store>) -> R {
    let k = license(&store, "DEACT").await?;
    store.apply(activate(&k, "hw-1", 0, 5, 0)).await?;
    store.apply(activate(&k, "hw-2", 0, 5, 0)).await?;
    store
        .apply(start(&k, session("s1", "hw-1", 0, 60_000), 5, vec![]))
        .await?;
    store
        .apply(start(&k, session("s2", "hw-2", 0, 60_000), 5, vec![]))
        .await?;
    assert_eq!(
        store
            .apply(StoreOp::Deactivate {
                key: k.clone(),
                hardware_hash: "hw-1".into(),
                at: at(10),
            })
            .await?,
        StoreOutcome::Done
    );
    let s = snap(&store, &k).await?;
    assert_eq!(tokens(&s), set([tok("s2")]));
    assert_eq!(store.find_session(&tok("s1")).await?, None);
    assert_eq!(store.find_session(&tok("s2")).await?, Some(k.clone()));
    // Deactivating an unknown device is a no-op.
    assert_eq!(
        store
            .apply(StoreOp::Deactivate {
                key: k.clone(),
                hardware_hash: "unknown".into(),
                at: at(11),
            })
            .await?,
        StoreOutcome::Done
    );
    assert_eq!(tokens(&snap(&store, &k).await?), set([tok("s2")]));
    Ok(())
}

async fn session_limit_counts_only_sessions_with_a_deadline_after_at(store: Arc<dyn Store>) -> R {
    let k = license(&store, "SESLIM").await?;
    assert_eq!(
        store
            .apply(start(&k, session("a", "hw", 0, 1_000), 2, vec![]))
            .await?,
        StoreOutcome::Done
    );
    store
        .apply(start(&k, session("b", "hw", 0, 5_000), 2, vec![]))
        .await?;
    assert_eq!(
        store
            .apply(start(&k, session("c", "hw", 500, 9_000), 2, vec![]))
            .await?,
        StoreOutcome::LimitReached(LimitKind::Sessions)
    );
    // A deadline equal to `at` no longer counts ("deadline after at").
    assert_eq!(
        store
            .apply(start(&k, session("c", "hw", 1_000, 9_000), 2, vec![]))
            .await?,
        StoreOutcome::Done
    );
    let s = snap(&store, &k).await?;
    assert_eq!(
        tokens(&s),
        set([tok("a"), tok("b"), tok("c")]),
        "expired `a` is still stored"
    );
    let c = s
        .sessions
        .iter()
        .find(|x| x.token_hash == tok("c"))
        .unwrap();
    assert_eq!(c, &session("c", "hw", 1_000, 9_000));
    assert_eq!(
        store
            .apply(start(&k, session("d", "hw", 1_000, 9_000), 0, vec![]))
            .await?,
        StoreOutcome::LimitReached(LimitKind::Sessions),
        "max_sessions 0 refuses everything"
    );
    assert_eq!(
        store.find_session(&tok("d")).await?,
        None,
        "refused sessions are not indexed"
    );
    Ok(())
}

async fn sessions_ended_in_the_start_step_make_room(store: Arc<dyn Store>) -> R {
    let k = license(&store, "EVICT").await?;
    store
        .apply(start(&k, session("old", "hw", 0, 60_000), 1, vec![]))
        .await?;
    // Ending an unknown token does not make room.
    assert_eq!(
        store
            .apply(start(
                &k,
                session("new", "hw", 10, 60_000),
                1,
                vec![(tok("unknown"), EndReason::Evicted)]
            ))
            .await?,
        StoreOutcome::LimitReached(LimitKind::Sessions)
    );
    assert_eq!(store.find_session(&tok("old")).await?, Some(k.clone()));
    assert_eq!(
        store
            .apply(start(
                &k,
                session("new", "hw", 10, 60_000),
                1,
                vec![
                    (tok("old"), EndReason::Replaced),
                    (tok("old"), EndReason::Replaced)
                ]
            ))
            .await?,
        StoreOutcome::Done
    );
    assert_eq!(tokens(&snap(&store, &k).await?), set([tok("new")]));
    assert_eq!(store.find_session(&tok("old")).await?, None);
    assert_eq!(store.find_session(&tok("new")).await?, Some(k));
    Ok(())
}

async fn ending_sessions_skips_unknown_tokens_and_confirms_deadlines(store: Arc<dyn Store>) -> R {
    let k = license(&store, "ENDS").await?;
    for (t, deadline) in [("a", 1_000), ("b", 5_000), ("c", 9_000)] {
        store
            .apply(start(&k, session(t, "hw", 0, deadline), 10, vec![]))
            .await?;
    }
    // Confirmed ends keep sessions whose stored deadline is after `at`.
    let outcome = store
        .apply(end(
            &k,
            vec![
                (tok("a"), EndReason::Timeout),
                (tok("b"), EndReason::Timeout),
                (tok("zzz"), EndReason::Timeout),
            ],
            2_000,
            true,
        ))
        .await?;
    assert_eq!(
        outcome,
        StoreOutcome::Ended {
            ended: vec![tok("a")],
            still_alive: vec![(tok("b"), at(5_000))],
        }
    );
    // Unconfirmed ends end whatever exists, in request order.
    let outcome = store
        .apply(end(
            &k,
            vec![
                (tok("c"), EndReason::ClientEnd),
                (tok("a"), EndReason::ClientEnd),
                (tok("b"), EndReason::ClientEnd),
            ],
            2_000,
            false,
        ))
        .await?;
    assert_eq!(
        outcome,
        StoreOutcome::Ended {
            ended: vec![tok("c"), tok("b")],
            still_alive: vec![],
        }
    );
    assert!(snap(&store, &k).await?.sessions.is_empty());
    assert_eq!(store.find_session(&tok("b")).await?, None);
    Ok(())
}

async fn a_non_active_status_ends_every_session(store: Arc<dyn Store>) -> R {
    let k = license(&store, "STATUS").await?;
    store
        .apply(start(&k, session("a", "hw", 0, 60_000), 5, vec![]))
        .await?;
    store
        .apply(start(&k, session("b", "hw2", 0, 60_000), 5, vec![]))
        .await?;
    let set_status = |status, reason: Option<&str>| StoreOp::SetStatus {
        key: k.clone(),
        status,
        reason: reason.map(str::to_owned),
        at: at(10),
    };
    assert_eq!(
        store
            .apply(set_status(LicenseStatus::Active, Some("fine")))
            .await?,
        StoreOutcome::Done
    );
    let s = snap(&store, &k).await?;
    assert_eq!(s.sessions.len(), 2, "active keeps sessions");
    assert_eq!(s.record.status_reason.as_deref(), Some("fine"));
    store
        .apply(set_status(LicenseStatus::Suspended, Some("unpaid")))
        .await?;
    let s = snap(&store, &k).await?;
    assert!(s.sessions.is_empty());
    assert_eq!(s.record.status, LicenseStatus::Suspended);
    assert_eq!(s.record.status_reason.as_deref(), Some("unpaid"));
    assert_eq!(store.find_session(&tok("a")).await?, None);
    store.apply(set_status(LicenseStatus::Active, None)).await?;
    let s = snap(&store, &k).await?;
    assert_eq!(s.record.status, LicenseStatus::Active);
    assert_eq!(s.record.status_reason, None);
    Ok(())
}

async fn update_license_replaces_the_record_and_checks_its_id(store: Arc<dyn Store>) -> R {
    let k = license(&store, "UPDATE").await?;
    store.apply(activate(&k, "hw", 0, 5, 0)).await?;
    let mut record = snap(&store, &k).await?.record;
    record.plan = "platinum".into();
    record.warnings = 4;
    record.valid_until = Some(at(1_000));
    record.overrides.max_devices = Some(7);
    record.activations_used = 9;
    assert_eq!(
        store
            .apply(StoreOp::UpdateLicense {
                record: record.clone()
            })
            .await?,
        StoreOutcome::Done
    );
    let s = snap(&store, &k).await?;
    assert_eq!(s.record, record);
    assert_eq!(s.activations.len(), 1, "activations are untouched");
    let mut wrong = record.clone();
    wrong.id += 1000;
    assert!(matches!(
        store.apply(StoreOp::UpdateLicense { record: wrong }).await,
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(snap(&store, &k).await?.record, record);
    Ok(())
}

async fn heartbeats_only_move_times_forward_and_skip_ended_sessions(store: Arc<dyn Store>) -> R {
    let k = license(&store, "BEATS").await?;
    let other = license(&store, "BEATS-2").await?;
    store.apply(activate(&k, "hw", 0, 5, 0)).await?;
    store
        .apply(start(&k, session("a", "hw", 0, 10_000), 5, vec![]))
        .await?;
    store
        .apply(start(&k, session("b", "hw2", 0, 10_000), 5, vec![]))
        .await?;
    store
        .apply(start(&other, session("o", "hw", 0, 10_000), 5, vec![]))
        .await?;
    store
        .apply(end(&k, vec![(tok("b"), EndReason::ClientEnd)], 1, false))
        .await?;
    store
        .flush_heartbeats(&[
            beat(&k, "a", "hw", 3_000, 13_000),
            beat(&k, "a", "hw", 2_000, 12_000),  // older: ignored
            beat(&k, "b", "hw2", 3_000, 13_000), // ended: skipped
            beat(&key("UNKNOWN"), "x", "hw", 3_000, 13_000), // unknown license: skipped
            beat(&other, "o", "hw", 4_000, 14_000),
        ])
        .await?;
    let s = snap(&store, &k).await?;
    assert_eq!(
        tokens(&s),
        set([tok("a")]),
        "an ended session is not resurrected"
    );
    let a = &s.sessions[0];
    assert_eq!((a.last_heartbeat, a.deadline), (kept(3_000), kept(13_000)));
    assert_eq!(a.started_at, at(0));
    assert_eq!(s.activations[0].last_heartbeat, kept(3_000));
    let o = snap(&store, &other).await?;
    assert_eq!(o.sessions[0].deadline, kept(14_000));
    assert!(o.activations.is_empty());
    // A later flush with older values changes nothing; a newer one moves both forward.
    store
        .flush_heartbeats(&[beat(&k, "a", "hw", 1_000, 11_000)])
        .await?;
    assert_eq!(snap(&store, &k).await?, s);
    store
        .flush_heartbeats(&[beat(&k, "a", "hw", 5_000, 15_000)])
        .await?;
    let s = snap(&store, &k).await?;
    assert_eq!(s.sessions[0].deadline, kept(15_000));
    assert_eq!(s.activations[0].last_heartbeat, kept(5_000));
    // A deactivated device's activation is not touched.
    store
        .apply(StoreOp::Deactivate {
            key: k.clone(),
            hardware_hash: "hw".into(),
            at: at(6_000),
        })
        .await?;
    store
        .apply(start(&k, session("c", "hw", 6_000, 16_000), 5, vec![]))
        .await?;
    store
        .flush_heartbeats(&[beat(&k, "c", "hw", 7_000, 17_000)])
        .await?;
    let s = snap(&store, &k).await?;
    assert_eq!(s.activations[0].last_heartbeat, kept(5_000));
    assert!(!s.activations[0].is_active);
    assert_eq!(s.sessions[0].deadline, kept(17_000));
    Ok(())
}

/// A heartbeat flushed after its device was deactivated (queued before, or from another node
/// whose clock runs ahead) does not carry over into the device's next activation.
async fn a_reactivated_device_starts_from_its_activation_time(store: Arc<dyn Store>) -> R {
    let k = license(&store, "REBEAT").await?;
    store.apply(activate(&k, "hw", 0, 1, 0)).await?;
    store
        .apply(start(&k, session("a", "hw", 0, 10_000), 5, vec![]))
        .await?;
    store
        .apply(StoreOp::Deactivate {
            key: k.clone(),
            hardware_hash: "hw".into(),
            at: at(1_000),
        })
        .await?;
    store
        .flush_heartbeats(&[beat(&k, "a", "hw", 9_000, 19_000)])
        .await?;
    let s = snap(&store, &k).await?;
    assert!(s.sessions.is_empty());
    assert_eq!(
        s.activations[0].last_heartbeat,
        at(0),
        "inactive: not moved"
    );
    let StoreOutcome::Activated { activation, .. } =
        store.apply(activate(&k, "hw", 2_000, 1, 0)).await?
    else {
        panic!("a deactivated device activates anew");
    };
    assert_eq!(activation.last_heartbeat, at(2_000));
    let s = snap(&store, &k).await?;
    assert_eq!(s.activations[0].last_heartbeat, at(2_000));
    Ok(())
}

async fn find_session_names_the_license_of_live_sessions_only(store: Arc<dyn Store>) -> R {
    let k1 = license(&store, "FIND-1").await?;
    let k2 = license(&store, "FIND-2").await?;
    store
        .apply(start(&k1, session("a", "hw", 0, 1_000), 5, vec![]))
        .await?;
    store
        .apply(start(&k2, session("b", "hw", 0, 1_000), 5, vec![]))
        .await?;
    assert_eq!(store.find_session(&tok("a")).await?, Some(k1.clone()));
    assert_eq!(store.find_session(&tok("b")).await?, Some(k2.clone()));
    assert_eq!(store.find_session(&tok("c")).await?, None);
    // Past its deadline but not ended: still found (expiry is the actors' decision).
    store
        .apply(end(
            &k1,
            vec![(tok("a"), EndReason::ClientEnd)],
            5_000,
            false,
        ))
        .await?;
    assert_eq!(store.find_session(&tok("a")).await?, None);
    assert_eq!(store.find_session(&tok("b")).await?, Some(k2));
    Ok(())
}

async fn overdue_sessions_lists_live_sessions_past_their_deadline(store: Arc<dyn Store>) -> R {
    let k1 = license(&store, "DUE-1").await?;
    let k2 = license(&store, "DUE-2").await?;
    store
        .apply(start(&k1, session("a", "hw", 0, 1_000), 9, vec![]))
        .await?;
    store
        .apply(start(&k1, session("b", "hw", 0, 2_000), 9, vec![]))
        .await?;
    store
        .apply(start(&k2, session("c", "hw", 0, 3_000), 9, vec![]))
        .await?;
    store
        .apply(start(&k2, session("d", "hw", 0, 9_000), 9, vec![]))
        .await?;
    let due = set(store.overdue_sessions(at(3_000), 100).await?);
    assert_eq!(
        due,
        set([(k1.clone(), tok("a")), (k1.clone(), tok("b"))]),
        "strictly before"
    );
    let due = set(store.overdue_sessions(at(3_001), 100).await?);
    assert_eq!(due.len(), 3);
    let limited = store.overdue_sessions(at(3_001), 2).await?;
    assert_eq!(limited.len(), 2);
    assert!(limited.iter().all(|x| due.contains(x)));
    // A heartbeat moves a session out; an ended session is gone.
    store
        .flush_heartbeats(&[beat(&k1, "a", "hw", 500, 8_000)])
        .await?;
    store
        .apply(end(&k2, vec![(tok("c"), EndReason::Timeout)], 3_500, true))
        .await?;
    assert_eq!(
        set(store.overdue_sessions(at(3_001), 100).await?),
        set([(k1.clone(), tok("b"))])
    );
    assert_eq!(store.overdue_sessions(at(3_001), 0).await?, vec![]);
    Ok(())
}

async fn list_licenses_pages_in_key_order(store: Arc<dyn Store>) -> R {
    for name in ["C-3", "A-1", "B-2", "E-5", "D-4"] {
        license(&store, name).await?;
    }
    let all = store.list_licenses(None, 100).await?;
    assert_eq!(all, ["A-1", "B-2", "C-3", "D-4", "E-5"].map(key).to_vec());
    assert_eq!(store.list_licenses(None, 2).await?, all[..2].to_vec());
    assert_eq!(
        store.list_licenses(Some(&key("B-2")), 2).await?,
        all[2..4].to_vec()
    );
    assert_eq!(
        store.list_licenses(Some(&key("BB")), 100).await?,
        all[2..].to_vec()
    );
    assert_eq!(store.list_licenses(Some(&key("E-5")), 100).await?, vec![]);
    assert_eq!(store.list_licenses(None, 0).await?, vec![]);
    Ok(())
}

async fn list_records_pages_whole_records_in_key_order(store: Arc<dyn Store>) -> R {
    for name in ["R-3", "R-1", "R-2"] {
        license(&store, name).await?;
    }
    let mut edited = snap(&store, &key("R-2")).await?.record;
    edited.note = Some("vip".into());
    edited.metadata.insert("crm".into(), "42".into());
    edited.features = vec!["export".into()];
    edited.customer_id = Some(7);
    store
        .apply(StoreOp::UpdateLicense {
            record: edited.clone(),
        })
        .await?;
    let all = store.list_records(None, 100).await?;
    let names: Vec<&str> = all.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(names, ["R-1", "R-2", "R-3"]);
    assert_eq!(all[1], edited, "every field read back");
    let page = store.list_records(Some(&key("R-1")), 1).await?;
    assert_eq!(page, vec![edited]);
    assert_eq!(store.list_records(None, 0).await?, vec![]);
    Ok(())
}

async fn key_for_id_finds_a_license_by_its_id(store: Arc<dyn Store>) -> R {
    let a = license(&store, "ID-A").await?;
    let b = license(&store, "ID-B").await?;
    let id_a = snap(&store, &a).await?.record.id;
    let id_b = snap(&store, &b).await?.record.id;
    assert_ne!(id_a, id_b);
    assert_eq!(store.key_for_id(id_a).await?, Some(a));
    assert_eq!(store.key_for_id(id_b).await?, Some(b));
    assert_eq!(store.key_for_id(id_b + 1_000).await?, None);
    Ok(())
}

async fn deleting_a_license_removes_it_and_every_index_naming_it(store: Arc<dyn Store>) -> R {
    let k = license(&store, "DEL-1").await?;
    let other = license(&store, "DEL-2").await?;
    let id = snap(&store, &k).await?.record.id;
    store.apply(activate(&k, "hw", 0, 5, 0)).await?;
    store
        .apply(start(&k, session("a", "hw", 0, 1_000), 5, vec![]))
        .await?;
    store
        .apply(start(&other, session("b", "hw", 0, 1_000), 5, vec![]))
        .await?;
    assert_eq!(
        store
            .apply(StoreOp::DeleteLicense { key: k.clone() })
            .await?,
        StoreOutcome::Done
    );
    assert!(store.load(&k).await?.is_none());
    assert_eq!(store.find_session(&tok("a")).await?, None);
    assert_eq!(store.key_for_id(id).await?, None);
    assert_eq!(store.list_licenses(None, 100).await?, vec![other.clone()]);
    assert_eq!(
        set(store.overdue_sessions(at(5_000), 100).await?),
        set([(other.clone(), tok("b"))]),
        "the deleted license's session left the deadline index"
    );
    assert!(matches!(
        store.apply(StoreOp::DeleteLicense { key: k.clone() }).await,
        Err(StoreError::LicenseNotFound)
    ));
    // A license without devices or sessions deletes too.
    let bare = license(&store, "DEL-3").await?;
    assert_eq!(
        store
            .apply(StoreOp::DeleteLicense { key: bare.clone() })
            .await?,
        StoreOutcome::Done
    );
    assert!(store.load(&bare).await?.is_none());
    // The key can be issued again, from nothing.
    license(&store, "DEL-1").await?;
    let again = snap(&store, &k).await?;
    assert!(again.activations.is_empty() && again.sessions.is_empty());
    assert_ne!(again.record.id, id);
    Ok(())
}

/// Activation ids are only unique and increasing (adapters may skip ids); sessions have no
/// defined order.
fn normalized(mut s: LicenseSnapshot) -> LicenseSnapshot {
    for a in &mut s.activations {
        a.id = 0;
    }
    s.sessions.sort_by_key(|x| x.token_hash);
    s
}

fn normalized_outcome(o: Result<StoreOutcome, StoreError>) -> Result<StoreOutcome, StoreError> {
    match o {
        Ok(StoreOutcome::Activated {
            mut activation,
            existing,
        }) => {
            activation.id = 0;
            Ok(StoreOutcome::Activated {
                activation,
                existing,
            })
        }
        other => other,
    }
}

async fn random_operations_match_the_reference_model(store: Arc<dyn Store>) -> R {
    let model: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut rng = StdRng::seed_from_u64(0x7e55e7a);
    let keys = [key("RAND-A"), key("RAND-B")];
    for k in &keys {
        for s in [&store, &model] {
            s.create_license(LicenseRecord::new(k.clone(), "p", "p", at(0)))
                .await?;
        }
    }
    let hws = ["h1", "h2", "h3", "h4"];
    let reasons = [EndReason::Evicted, EndReason::Replaced, EndReason::Timeout];
    let mut started: Vec<(LicenseKey, String, String)> = Vec::new();
    let mut now = 0i64;
    // What the sequence exercised, so it cannot pass by only hitting trivial paths.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for step in 0..400 {
        now += rng.random_range(0..1_500);
        let k = keys[rng.random_range(0..keys.len())].clone();
        let hw = hws[rng.random_range(0..hws.len())];
        let pick = |rng: &mut StdRng, started: &[(LicenseKey, String, String)]| {
            if started.is_empty() || rng.random_bool(0.1) {
                "never-started".to_owned()
            } else {
                started[rng.random_range(0..started.len())].1.clone()
            }
        };
        match rng.random_range(0..100) {
            0..15 => {
                let op = activate(&k, hw, now, rng.random_range(0..4), rng.random_range(0..6));
                let (a, b) = (store.apply(op.clone()).await, model.apply(op).await);
                seen.insert(match &b {
                    Ok(StoreOutcome::Activated { existing, .. }) => {
                        format!("activate existing={existing}")
                    }
                    other => format!("activate {other:?}"),
                });
                assert_eq!(normalized_outcome(a), normalized_outcome(b), "step {step}");
            }
            15..20 => {
                let op = StoreOp::Deactivate {
                    key: k.clone(),
                    hardware_hash: hw.into(),
                    at: at(now),
                };
                assert_eq!(
                    store.apply(op.clone()).await,
                    model.apply(op).await,
                    "step {step}"
                );
            }
            20..45 => {
                let name = format!("s{step}");
                let end_list: Vec<(TokenHash, EndReason)> = (0..rng.random_range(0..3))
                    .map(|_| {
                        let t = pick(&mut rng, &started);
                        (tok(&t), reasons[rng.random_range(0..reasons.len())])
                    })
                    .collect();
                let deadline = now + rng.random_range(1..20_000);
                let op = start(
                    &k,
                    session(&name, hw, now, deadline),
                    rng.random_range(0..4),
                    end_list,
                );
                let (a, b) = (store.apply(op.clone()).await, model.apply(op).await);
                seen.insert(format!("start {b:?}"));
                assert_eq!(a, b, "step {step}");
                started.push((k.clone(), name, hw.to_owned()));
            }
            45..60 => {
                let ends: Vec<(TokenHash, EndReason)> = (0..rng.random_range(1..4))
                    .map(|_| (tok(&pick(&mut rng, &started)), EndReason::Timeout))
                    .collect();
                let op = end(&k, ends, now, rng.random_bool(0.5));
                let (a, b) = (store.apply(op.clone()).await, model.apply(op).await);
                if let Ok(StoreOutcome::Ended { ended, still_alive }) = &b {
                    if !ended.is_empty() {
                        seen.insert("end ended".into());
                    }
                    if !still_alive.is_empty() {
                        seen.insert("end still alive".into());
                    }
                }
                assert_eq!(a, b, "step {step}");
            }
            60..65 => {
                let status = [
                    LicenseStatus::Active,
                    LicenseStatus::Active,
                    LicenseStatus::Suspended,
                    LicenseStatus::Banned,
                ][rng.random_range(0..4)];
                let op = StoreOp::SetStatus {
                    key: k.clone(),
                    status,
                    reason: rng.random_bool(0.5).then(|| format!("r{step}")),
                    at: at(now),
                };
                assert_eq!(
                    store.apply(op.clone()).await,
                    model.apply(op).await,
                    "step {step}"
                );
            }
            65..70 => {
                let warnings = rng.random_range(0..10);
                for s in [&store, &model] {
                    let mut record = snap(s, &k).await?.record;
                    record.warnings = warnings;
                    record.plan = format!("plan-{step}");
                    assert_eq!(
                        s.apply(StoreOp::UpdateLicense { record }).await?,
                        StoreOutcome::Done
                    );
                }
            }
            70..90 => {
                let batch: Vec<HeartbeatWrite> = (0..rng.random_range(1..6))
                    .filter_map(|_| {
                        let i = rng.random_range(0..started.len().max(1));
                        started.get(i).map(|(k, t, hw)| {
                            let beat_at = now - rng.random_range(0..2_000);
                            beat(k, t, hw, beat_at, beat_at + rng.random_range(0..20_000))
                        })
                    })
                    .collect();
                store.flush_heartbeats(&batch).await?;
                model.flush_heartbeats(&batch).await?;
            }
            90..95 => {
                let t = tok(&pick(&mut rng, &started));
                assert_eq!(
                    store.find_session(&t).await?,
                    model.find_session(&t).await?,
                    "step {step}"
                );
            }
            _ => {
                let before = at(now);
                assert_eq!(
                    set(store.overdue_sessions(before, 1_000).await?),
                    set(model.overdue_sessions(before, 1_000).await?),
                    "step {step}"
                );
            }
        }
    }
    for expected in [
        "activate existing=false",
        "activate existing=true",
        "activate Ok(LimitReached(Devices))",
        "activate Ok(LimitReached(Activations))",
        "start Ok(Done)",
        "start Ok(LimitReached(Sessions))",
        "end ended",
        "end still alive",
    ] {
        assert!(
            seen.contains(expected),
            "the sequence never produced `{expected}`: {seen:?}"
        );
    }
    for k in &keys {
        let (a, b) = (snap(&store, k).await?, snap(&model, k).await?);
        assert_eq!(normalized(a), normalized(b), "final snapshot of {k}");
    }
    assert_eq!(
        store.list_licenses(None, 10).await?,
        model.list_licenses(None, 10).await?
    );
    Ok(())
}

async fn meta_get_returns_the_last_put_value(meta: Arc<dyn MetaStore>) -> R {
    assert_eq!(meta.get("api_key").await?, None);
    meta.put("api_key", b"first").await?;
    meta.put("api_key", &[0, 159, 255, b'\n']).await?;
    meta.put("other", b"").await?;
    assert_eq!(meta.get("api_key").await?, Some(vec![0, 159, 255, b'\n']));
    assert_eq!(meta.get("other").await?, Some(vec![]));
    assert_eq!(meta.health().await, tessera::store::meta::StoreHealth::Ok);
    Ok(())
}

/// The shared plugin KV (durable plugin keys on Redis): what the host's in-memory counters
/// promise, now in one atomic script per key. On a single Redis and on a cluster.
mod shared_plugin_kv {
    use super::*;
    use tessera::store::SharedPluginKv;

    fn le(v: i64) -> Vec<u8> {
        v.to_le_bytes().to_vec()
    }

    async fn conforms(kv: &dyn SharedPluginKv) -> R {
        // Increments: from nothing, negative, across the 32-bit halves, saturating.
        assert_eq!(kv.kv_incr("p", b"n", 5, None, false).await?, 5);
        assert_eq!(kv.kv_incr("p", b"n", -7, None, false).await?, -2);
        assert_eq!(
            kv.kv_incr("p", b"n", 1 << 40, None, false).await?,
            (1 << 40) - 2
        );
        assert_eq!(kv.kv_get("p", b"n").await?, Some(le((1 << 40) - 2)));
        assert_eq!(
            kv.kv_incr("p", b"n", i64::MAX, None, false).await?,
            i64::MAX
        );
        assert_eq!(kv.kv_incr("p", b"n", 1, None, false).await?, i64::MAX);
        assert_eq!(
            kv.kv_incr("p", b"m", i64::MIN, None, false).await?,
            i64::MIN
        );
        assert_eq!(kv.kv_incr("p", b"m", -1, None, false).await?, i64::MIN);
        assert_eq!(kv.kv_incr("p", b"m", i64::MAX, None, false).await?, -1);
        // A value that is not 8 bytes counts as 0.
        kv.kv_set("p", b"s", b"abc", None).await?;
        assert_eq!(kv.kv_incr("p", b"s", 3, None, false).await?, 3);
        // Namespaces are apart.
        assert_eq!(kv.kv_get("q", b"n").await?, None);
        // Set, get, delete.
        kv.kv_set("p", b"v", b"hello", None).await?;
        assert_eq!(kv.kv_get("p", b"v").await?, Some(b"hello".to_vec()));
        kv.kv_delete("p", b"v").await?;
        assert_eq!(kv.kv_get("p", b"v").await?, None);
        // Expiry: a past one is gone at once.
        let now = Utc::now().timestamp_millis();
        kv.kv_set("p", b"old", b"x", Some(now - 1000)).await?;
        assert_eq!(kv.kv_get("p", b"old").await?, None);
        // A fixed window keeps the creation's expiry; a sliding one replaces it.
        assert_eq!(
            kv.kv_incr("p", b"w", 1, Some(now + 60_000), false).await?,
            1
        );
        assert_eq!(kv.kv_incr("p", b"w", 1, Some(now - 1000), false).await?, 2);
        assert_eq!(kv.kv_incr("p", b"w", 1, Some(now - 1000), true).await?, 3);
        assert_eq!(
            kv.kv_get("p", b"w").await?,
            None,
            "the sliding expiry applied"
        );
        // Concurrent increments all count.
        let kv_all: Vec<_> = (0..50)
            .map(|_| kv.kv_incr("p", b"race", 1, None, false))
            .collect();
        for r in futures::future::join_all(kv_all).await {
            r?;
        }
        assert_eq!(kv.kv_get("p", b"race").await?, Some(le(50)));
        Ok(())
    }

    #[tokio::test]
    async fn on_redis() -> R {
        let server = tokio::task::spawn_blocking(RedisServer::start).await??;
        let store = RedisStore::connect(&server.url, Duration::from_secs(5)).await?;
        conforms(&store).await
    }

    #[tokio::test]
    async fn on_redis_cluster() -> R {
        let cluster = tokio::task::spawn_blocking(redis_support::RedisCluster::start).await??;
        let store = RedisStore::connect(&cluster.url, Duration::from_secs(5)).await?;
        conforms(&store).await
    }
}
