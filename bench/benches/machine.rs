//! The license state machine alone (no actors, no I/O): activate, session start and
//! heartbeat, driven the way `actors/src/machine_tests.rs` drives it — `handle`, drain the
//! effects, apply persist effects synchronously on the `MemoryStore`, `on_persisted`.
//!
//! `cargo bench -p tessera-bench --bench machine`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tessera_actors::messages::{OpId, ReqId};
use tessera_actors::{
    DeviceRef, Effect, LicenseKey, LicenseMachine, LicenseRecord, Limits, MemoryStore, Reply,
    Request, Rules, SessionLimitStrategy, SessionTiming, StoreOp, TokenHash,
};

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 0).unwrap()
}

fn key() -> LicenseKey {
    LicenseKey::parse("BNCH-AAAA-BBBB-CCCC").unwrap()
}

fn rules(max_sessions: u32) -> Rules {
    Rules {
        defaults: Limits {
            max_devices: 1_000_000,
            max_activations: 0,
            max_sessions,
            on_session_limit: SessionLimitStrategy::Reject,
        },
        timing: SessionTiming {
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(90),
            grace: Duration::from_secs(30),
        },
        ..Rules::default()
    }
}

/// One machine with its reference store, driven synchronously.
struct Harness {
    m: LicenseMachine,
    store: MemoryStore,
    rules: Rules,
    now: DateTime<Utc>,
    next: ReqId,
    ops: VecDeque<(OpId, StoreOp)>,
    last_reply: Option<Reply>,
}

impl Harness {
    fn new(max_sessions: u32) -> Self {
        let store = MemoryStore::new();
        store
            .create_now(LicenseRecord::new(key(), "default", "default", t0()))
            .unwrap();
        let rules = rules(max_sessions);
        let m = LicenseMachine::load(store.snapshot(&key()).unwrap(), t0(), t0(), &rules);
        let mut h = Self {
            m,
            store,
            rules,
            now: t0(),
            next: 0,
            ops: VecDeque::new(),
            last_reply: None,
        };
        h.drain();
        h
    }

    fn drain(&mut self) {
        while let Some(e) = self.m.poll_effect() {
            match e {
                Effect::Reply(_, r) => self.last_reply = r.ok(),
                Effect::Persist(id, op) => self.ops.push_back((id, op)),
                // The shard hands these to the write-behind queue and the timing wheel;
                // their cost is not the machine's.
                Effect::WriteBehind(w) => {
                    black_box(w);
                }
                Effect::Arm(t, at) => {
                    black_box((t, at));
                }
                Effect::Event(ev) => {
                    black_box(ev);
                }
            }
        }
    }

    /// Handles `req` and settles every persist effect against the store.
    fn call(&mut self, req: Request) -> Option<Reply> {
        self.next += 1;
        self.m.handle(self.now, &self.rules, self.next, req);
        self.drain();
        while let Some((id, op)) = self.ops.pop_front() {
            let result = self.store.apply_now(op);
            self.m.on_persisted(self.now, &self.rules, id, result);
            self.drain();
        }
        self.last_reply.take()
    }

    fn activate(&mut self, hw: &str) -> Option<Reply> {
        self.call(Request::Activate {
            device: DeviceRef::Hash(hw.into()),
            machine_name: "bench".into(),
            app_version: "1.0.0".into(),
        })
    }

    fn start(&mut self, token: &str, hw: &str) -> Option<Reply> {
        self.call(Request::StartSession {
            token_hash: TokenHash::of(token),
            device: DeviceRef::Hash(hw.into()),
            machine_id: hw.into(),
            version: "1.0.0".into(),
        })
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("machine");

    g.bench_function("activate_new_device", |b| {
        b.iter_batched(
            || Harness::new(1),
            |mut h| {
                let r = h.activate("hw-1");
                assert!(matches!(
                    r,
                    Some(Reply::Activated {
                        existing: false,
                        ..
                    })
                ));
                h
            },
            BatchSize::SmallInput,
        );
    });

    g.bench_function("activate_existing_device", |b| {
        let mut h = Harness::new(1);
        h.activate("hw-1").unwrap();
        b.iter(|| black_box(h.activate("hw-1")));
    });

    g.bench_function("session_start", |b| {
        b.iter_batched(
            || {
                let mut h = Harness::new(1);
                h.activate("hw-1").unwrap();
                h
            },
            |mut h| {
                let r = h.start("token-1", "hw-1");
                assert!(matches!(r, Some(Reply::SessionStarted { .. })));
                h
            },
            BatchSize::SmallInput,
        );
    });

    for sessions in [1u32, 1000] {
        g.bench_function(format!("heartbeat/{sessions}_live_sessions"), |b| {
            let mut h = Harness::new(sessions);
            h.activate("hw-1").unwrap();
            let tokens: Vec<TokenHash> = (0..sessions)
                .map(|i| {
                    let t = format!("token-{i}");
                    h.start(&t, "hw-1").unwrap();
                    TokenHash::of(&t)
                })
                .collect();
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) % tokens.len();
                h.now += chrono::Duration::milliseconds(1);
                let r = h.call(Request::Heartbeat {
                    token_hash: tokens[i],
                });
                debug_assert!(matches!(r, Some(Reply::Heartbeat { .. })));
                black_box(r)
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
