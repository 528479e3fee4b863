//! The store paths through the `tessera_actors::Store` port: one durable session start
//! (`apply(StartSession)`), and one write-behind flush of 1000 coalesced heartbeats
//! (`flush_heartbeats`), on the reference `MemoryStore` and on the embedded redb store
//! (`tessera::store::EmbeddedStore`), with its file on disk (fsync per commit) and on tmpfs
//! (`/dev/shm`, the CPU cost alone).
//!
//! `cargo bench -p tessera-bench --bench store`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tessera::store::EmbeddedStore;
use tessera_actors::{
    EndReason, HeartbeatWrite, LicenseKey, LicenseRecord, MemoryStore, NewActivation,
    SessionRecord, Store, StoreOp, StoreOutcome, TokenHash,
};

const LICENSES: usize = 1000;

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 0).unwrap()
}

fn key(i: usize) -> LicenseKey {
    LicenseKey::parse(&format!("BNCH-{i:06}-STORE")).unwrap()
}

fn hw(i: usize) -> String {
    format!("bench-hw-{i:06}")
}

fn session(token: &TokenHash, hw: &str, at: DateTime<Utc>) -> SessionRecord {
    SessionRecord {
        token_hash: *token,
        hardware_hash: hw.to_owned(),
        machine_id: hw.to_owned(),
        version: "1.0.0".into(),
        started_at: at,
        last_heartbeat: at,
        deadline: at + chrono::Duration::seconds(120),
        stored_deadline: Default::default(),
    }
}

fn start_op(i: usize, token: &TokenHash, at: DateTime<Utc>) -> StoreOp {
    StoreOp::StartSession {
        key: key(i),
        session: session(token, &hw(i), at),
        max_sessions: 1_000_000,
        end: Vec::new(),
        at,
    }
}

/// `LICENSES` licenses, each with an active device and one live session.
async fn populate(store: &dyn Store) -> Vec<TokenHash> {
    let mut tokens = Vec::with_capacity(LICENSES);
    for i in 0..LICENSES {
        store
            .create_license(LicenseRecord::new(key(i), "default", "default", t0()))
            .await
            .unwrap();
        let out = store
            .apply(StoreOp::Activate {
                key: key(i),
                activation: NewActivation {
                    hardware_hash: hw(i),
                    machine_name: "bench".into(),
                    app_version: "1.0.0".into(),
                    fingerprint: None,
                    at: t0(),
                },
                max_devices: 1,
                max_activations: 0,
            })
            .await
            .unwrap();
        assert!(matches!(out, StoreOutcome::Activated { .. }));
        let token = TokenHash::of(&format!("live-{i}"));
        store.apply(start_op(i, &token, t0())).await.unwrap();
        tokens.push(token);
    }
    tokens
}

fn bench_store(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    store: Arc<dyn Store>,
    slow: bool,
) {
    let tokens = rt.block_on(populate(store.as_ref()));
    let mut g = c.benchmark_group(format!("store/{name}"));
    if slow {
        g.sample_size(10).measurement_time(Duration::from_secs(10));
    }

    // Start a session (timed), then end it again (untimed) so licenses do not grow.
    let s = Arc::clone(&store);
    let mut n = 0usize;
    g.bench_function("apply_start_session", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let s = Arc::clone(&s);
            let base = n;
            n += iters as usize;
            async move {
                let mut timed = Duration::ZERO;
                for k in 0..iters as usize {
                    let i = (base + k) % LICENSES;
                    let token = TokenHash::of(&format!("bench-{}", base + k));
                    let at = t0() + chrono::Duration::milliseconds((base + k) as i64);
                    let t = Instant::now();
                    let out = s.apply(start_op(i, &token, at)).await.unwrap();
                    timed += t.elapsed();
                    assert_eq!(out, StoreOutcome::Done);
                    s.apply(StoreOp::EndSessions {
                        key: key(i),
                        ends: vec![(token, EndReason::ClientEnd)],
                        at,
                        confirm_deadline: false,
                    })
                    .await
                    .unwrap();
                }
                timed
            }
        });
    });

    let s = Arc::clone(&store);
    let mut round = 0i64;
    g.bench_function("flush_heartbeats_1000", |b| {
        b.to_async(rt).iter_batched(
            || {
                round += 1;
                let at = t0() + chrono::Duration::seconds(round);
                tokens
                    .iter()
                    .enumerate()
                    .map(|(i, t)| HeartbeatWrite {
                        key: key(i),
                        token_hash: *t,
                        hardware_hash: hw(i),
                        last_heartbeat: at,
                        deadline: at + chrono::Duration::seconds(120),
                    })
                    .collect::<Vec<_>>()
            },
            |batch| {
                let s = Arc::clone(&s);
                async move { s.flush_heartbeats(&batch).await.unwrap() }
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    bench_store(c, &rt, "memory", Arc::new(MemoryStore::new()), false);

    let disk = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&disk.path().join("tessera.redb")).unwrap();
    bench_store(c, &rt, "embedded_disk", Arc::new(store), true);

    if let Ok(shm) = tempfile::tempdir_in("/dev/shm") {
        let store = EmbeddedStore::open(&shm.path().join("tessera.redb")).unwrap();
        bench_store(c, &rt, "embedded_tmpfs", Arc::new(store), false);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
