#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::fingerprint::Fingerprint;
use crate::memory_store::MemoryStore;
use crate::messages::*;
use crate::model::*;
use crate::settings::*;
use crate::store::*;

/// Drives one machine against the reference store with a simulated clock.
struct Sim {
    m: LicenseMachine,
    store: MemoryStore,
    rules: Rules,
    now: DateTime<Utc>,
    next_req: ReqId,
    replies: HashMap<ReqId, Result<Reply, LicenseError>>,
    ops: VecDeque<(OpId, StoreOp)>,
    armed: Vec<(TokenHash, DateTime<Utc>)>,
    events: Vec<LicenseEvent>,
    writes: usize,
}

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 0).unwrap()
}

fn key() -> LicenseKey {
    LicenseKey::parse("TEST-AAAA-BBBB-CCCC").unwrap()
}

fn rules(limits: Limits) -> Rules {
    Rules {
        defaults: limits,
        timing: SessionTiming {
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(5),
        },
        restart_grace: Duration::from_secs(20),
        ..Rules::default()
    }
}

impl Sim {
    fn new(limits: Limits) -> Self {
        let store = MemoryStore::new();
        store
            .create_now(LicenseRecord::new(key(), "default", "default", t0()))
            .unwrap();
        let rules = rules(limits);
        let snap = store.snapshot(&key()).unwrap();
        let m = LicenseMachine::load(snap, t0(), t0(), &rules);
        let mut sim = Self {
            m,
            store,
            rules,
            now: t0(),
            next_req: 0,
            replies: HashMap::new(),
            ops: VecDeque::new(),
            armed: Vec::new(),
            events: Vec::new(),
            writes: 0,
        };
        sim.drain();
        sim
    }

    fn drain(&mut self) {
        while let Some(e) = self.m.poll_effect() {
            match e {
                Effect::Reply(id, r) => {
                    assert!(
                        self.replies.insert(id, r).is_none(),
                        "one reply per request"
                    );
                }
                Effect::Persist(id, op) => self.ops.push_back((id, op)),
                Effect::Arm(t, at) => self.armed.push((t, at)),
                Effect::WriteBehind(w) => {
                    self.writes += 1;
                    let _ = self.store.flush_now(&[w]);
                }
                Effect::Event(ev) => self.events.push(ev),
            }
        }
    }

    fn send(&mut self, req: Request) -> ReqId {
        self.next_req += 1;
        let id = self.next_req;
        self.m.handle(self.now, &self.rules, id, req);
        self.drain();
        id
    }

    fn complete_one(&mut self) -> bool {
        let Some((id, op)) = self.ops.pop_front() else {
            return false;
        };
        let result = self.store.apply_now(op);
        self.m.on_persisted(self.now, &self.rules, id, result);
        self.drain();
        true
    }

    fn settle(&mut self) {
        while self.complete_one() {}
    }

    fn call(&mut self, req: Request) -> Result<Reply, LicenseError> {
        let id = self.send(req);
        self.settle();
        self.replies.remove(&id).expect("reply after settling")
    }

    fn advance(&mut self, secs: i64) {
        self.now += chrono::Duration::seconds(secs);
        let due: Vec<TokenHash> = self
            .armed
            .iter()
            .filter(|(_, at)| *at <= self.now)
            .map(|(t, _)| *t)
            .collect();
        self.armed.retain(|(_, at)| *at > self.now);
        for t in due {
            self.m.on_deadline(self.now, &self.rules, &t);
            self.drain();
        }
        self.m.on_tick(self.now, &self.rules);
        self.drain();
    }

    fn activate(&mut self, hw: &str) -> Result<Reply, LicenseError> {
        self.call(Request::Activate {
            device: DeviceRef::Hash(hw.into()),
            machine_name: format!("{hw}-name"),
            app_version: "1.0.0".into(),
        })
    }

    fn start(&mut self, token: &str, hw: &str) -> Result<Reply, LicenseError> {
        self.call(start_req(token, hw))
    }

    fn ended_reasons(&self) -> HashMap<TokenHash, Vec<EndReason>> {
        let mut out: HashMap<TokenHash, Vec<EndReason>> = HashMap::new();
        for e in &self.events {
            if let LicenseEvent::SessionEnded {
                session, reason, ..
            } = e
            {
                out.entry(session.token_hash).or_default().push(*reason);
            }
        }
        out
    }
}

fn start_req(token: &str, hw: &str) -> Request {
    Request::StartSession {
        token_hash: TokenHash::of(token),
        device: DeviceRef::Hash(hw.into()),
        machine_id: hw.into(),
        version: "1.0.0".into(),
    }
}

fn limits(devices: u32, activations: u32, sessions: u32, s: SessionLimitStrategy) -> Limits {
    Limits {
        max_devices: devices,
        max_activations: activations,
        max_sessions: sessions,
        on_session_limit: s,
    }
}

#[test]
fn activating_an_active_device_again_is_idempotent() {
    let mut sim = Sim::new(limits(1, 5, 1, SessionLimitStrategy::Reject));
    let Ok(Reply::Activated {
        activation: a,
        existing: false,
        ..
    }) = sim.activate("hw1")
    else {
        panic!("first activation")
    };
    let Ok(Reply::Activated {
        activation: b,
        existing: true,
        ..
    }) = sim.activate("hw1")
    else {
        panic!("second activation")
    };
    assert_eq!(a.id, b.id);
    assert_eq!(
        sim.store.snapshot(&key()).unwrap().record.activations_used,
        1
    );
}

#[test]
fn a_node_locked_license_keeps_room_for_one_device() {
    let mut sim = Sim::new(limits(3, 0, 1, SessionLimitStrategy::Reject));
    sim.activate("hw1").unwrap();
    assert_eq!(sim.m.activations.capacity(), 1, "exact growth");
    sim.activate("hw2").unwrap();
    sim.activate("hw3").unwrap();
    assert_eq!(sim.m.activations.len(), 3);
    assert!(sim.m.activations.capacity() <= 4);
}

#[test]
fn device_and_activation_limits_refuse_with_their_own_errors() {
    let mut sim = Sim::new(limits(1, 2, 1, SessionLimitStrategy::Reject));
    sim.activate("hw1").unwrap();
    assert_eq!(sim.activate("hw2"), Err(LicenseError::DeviceLimit));
    sim.call(Request::Deactivate {
        hardware_hash: "hw1".into(),
    })
    .unwrap();
    sim.activate("hw2").unwrap();
    sim.call(Request::Deactivate {
        hardware_hash: "hw2".into(),
    })
    .unwrap();
    assert_eq!(sim.activate("hw3"), Err(LicenseError::ActivationLimit));
}

#[test]
fn second_session_on_single_seat_license_is_refused() {
    let mut sim = Sim::new(limits(2, 0, 1, SessionLimitStrategy::Reject));
    sim.activate("hw1").unwrap();
    sim.start("s1", "hw1").unwrap();
    assert_eq!(sim.start("s2", "hw1"), Err(LicenseError::SessionLimit));
}

#[test]
fn session_needs_an_activated_device() {
    let mut sim = Sim::new(limits(2, 0, 1, SessionLimitStrategy::Reject));
    assert_eq!(sim.start("s1", "hw1"), Err(LicenseError::NotActivated));
}

#[test]
fn replace_same_device_takes_over_only_its_own_session() {
    let mut sim = Sim::new(limits(2, 0, 1, SessionLimitStrategy::ReplaceSameDevice));
    sim.activate("hw1").unwrap();
    sim.activate("hw2").unwrap();
    sim.start("s1", "hw1").unwrap();
    assert_eq!(sim.start("s2", "hw2"), Err(LicenseError::SessionLimit));
    let Ok(Reply::SessionStarted { ended, .. }) = sim.start("s3", "hw1") else {
        panic!("restart on same device")
    };
    assert_eq!(ended, vec![(TokenHash::of("s1"), EndReason::Replaced)]);
    assert_eq!(
        sim.call(Request::Heartbeat {
            token_hash: TokenHash::of("s1")
        }),
        Err(LicenseError::SessionExpired)
    );
}

#[test]
fn ending_all_sessions_ends_each_with_the_reason_and_counts_them() {
    let mut sim = Sim::new(limits(3, 0, 3, SessionLimitStrategy::Reject));
    sim.activate("hw1").unwrap();
    sim.start("s1", "hw1").unwrap();
    sim.start("s2", "hw1").unwrap();
    let reply = sim.call(Request::EndAllSessions {
        reason: EndReason::Admin,
    });
    assert_eq!(reply, Ok(Reply::SessionsEnded { count: 2 }));
    assert_eq!(sim.m.live_sessions(), 0);
    let reasons = sim.ended_reasons();
    assert_eq!(reasons[&TokenHash::of("s1")], vec![EndReason::Admin]);
    assert_eq!(reasons[&TokenHash::of("s2")], vec![EndReason::Admin]);
    let again = sim.call(Request::EndAllSessions {
        reason: EndReason::Admin,
    });
    assert_eq!(again, Ok(Reply::SessionsEnded { count: 0 }));
}

#[test]
fn deleting_ends_live_sessions_and_then_answers_not_found() {
    let mut sim = Sim::new(limits(3, 0, 3, SessionLimitStrategy::Reject));
    sim.activate("hw1").unwrap();
    sim.start("s1", "hw1").unwrap();
    sim.start("s2", "hw1").unwrap();
    assert_eq!(
        sim.call(Request::Delete),
        Ok(Reply::Deleted { ended_sessions: 2 })
    );
    let reasons = sim.ended_reasons();
    assert_eq!(reasons[&TokenHash::of("s1")], vec![EndReason::Admin]);
    assert_eq!(reasons[&TokenHash::of("s2")], vec![EndReason::Admin]);
    assert!(sim.m.is_deleted());
    assert!(sim.store.snapshot(&key()).is_none(), "gone from the store");
    assert_eq!(sim.start("s3", "hw1"), Err(LicenseError::NotFound));
    assert_eq!(sim.call(Request::Info), Err(LicenseError::NotFound));
}

#[test]
fn lowering_the_session_limit_ends_the_sessions_beyond_it() {
    for (strategy, kept) in [
        (SessionLimitStrategy::Reject, ["s1", "s2"]),
        (SessionLimitStrategy::EvictOldest, ["s2", "s3"]),
    ] {
        let mut sim = Sim::new(limits(3, 0, 3, strategy));
        sim.activate("hw1").unwrap();
        for s in ["s1", "s2", "s3"] {
            sim.start(s, "hw1").unwrap();
            sim.advance(1);
        }
        let patch = LicensePatch {
            overrides: Some(LimitOverrides {
                max_sessions: Some(2),
                ..LimitOverrides::default()
            }),
            ..LicensePatch::default()
        };
        sim.call(Request::Update(patch)).unwrap();
        sim.settle();
        assert_eq!(sim.m.live_sessions(), 2, "{strategy:?}");
        let live = sim.store.snapshot(&key()).unwrap().sessions;
        let live: Vec<TokenHash> = live.iter().map(|s| s.token_hash).collect();
        for s in kept {
            assert!(live.contains(&TokenHash::of(s)), "{strategy:?} keeps {s}");
        }
        let ended = sim.ended_reasons();
        assert_eq!(ended.len(), 1);
        assert!(ended.values().all(|r| r == &vec![EndReason::Admin]));
    }
}

#[test]
fn evict_oldest_ends_the_oldest_session() {
    let mut sim = Sim::new(limits(3, 0, 2, SessionLimitStrategy::EvictOldest));
    sim.activate("hw1").unwrap();
    sim.start("s1", "hw1").unwrap();
    sim.advance(1);
    sim.start("s2", "hw1").unwrap();
    sim.advance(1);
    let Ok(Reply::SessionStarted { ended, .. }) = sim.start("s3", "hw1") else {
        panic!("third session")
    };
    assert_eq!(ended, vec![(TokenHash::of("s1"), EndReason::Evicted)]);
    assert_eq!(sim.m.live_sessions(), 2);
}

#[test]
fn heartbeats_keep_a_session_alive_and_silence_expires_it() {
    let mut sim = Sim::new(limits(1, 0, 1, SessionLimitStrategy::Reject));
    sim.activate("hw1").unwrap();
    sim.start("s1", "hw1").unwrap();
    for _ in 0..10 {
        sim.advance(20);
        sim.call(Request::Heartbeat {
            token_hash: TokenHash::of("s1"),
        })
        .unwrap();
    }
    assert_eq!(sim.m.live_sessions(), 1);
    sim.advance(36);
    sim.settle();
    assert_eq!(sim.m.live_sessions(), 0);
    assert_eq!(
        sim.ended_reasons()[&TokenHash::of("s1")],
        vec![EndReason::Timeout]
    );
    assert_eq!(
        sim.call(Request::Heartbeat {
            token_hash: TokenHash::of("s1")
        }),
        Err(LicenseError::SessionExpired)
    );
    assert!(sim.store.snapshot(&key()).unwrap().sessions.is_empty());
}

#[test]
fn heartbeats_reach_the_store_only_when_its_deadline_runs_low() {
    // lifetime 35 s; heartbeat every 5 s: a write whenever less than 17.5 s of the stored
    // deadline is left, i.e. every 4th heartbeat, and the stored deadline never lapses.
    let mut sim = Sim::new(limits(1, 0, 1, SessionLimitStrategy::Reject));
    sim.activate("hw1").unwrap();
    sim.start("s1", "hw1").unwrap();
    for _ in 0..40 {
        sim.advance(5);
        sim.call(Request::Heartbeat {
            token_hash: TokenHash::of("s1"),
        })
        .unwrap();
        let stored = sim.store.snapshot(&key()).unwrap().sessions[0].deadline;
        assert!(
            stored - sim.now >= chrono::Duration::seconds(17),
            "stored deadline ran low"
        );
    }
    assert_eq!(sim.writes, 10, "40 heartbeats, 10 writes");
}

#[test]
fn ending_a_session_reports_its_duration_and_is_idempotent() {
    let mut sim = Sim::new(limits(1, 0, 1, SessionLimitStrategy::Reject));
    sim.activate("hw1").unwrap();
    sim.start("s1", "hw1").unwrap();
    sim.advance(7);
    let end = Request::EndSession {
        token_hash: TokenHash::of("s1"),
        reason: EndReason::ClientEnd,
    };
    let Ok(Reply::SessionEnded {
        session,
        ended_at,
        reason,
    }) = sim.call(end.clone())
    else {
        panic!("end")
    };
    assert_eq!((ended_at - session.started_at).num_seconds(), 7);
    assert_eq!(reason, EndReason::ClientEnd);
    assert!(matches!(sim.call(end), Ok(Reply::SessionEnded { .. })));
    assert_eq!(
        sim.call(Request::EndSession {
            token_hash: TokenHash::of("nope"),
            reason: EndReason::ClientEnd
        }),
        Err(LicenseError::SessionNotFound)
    );
}

#[test]
fn suspending_ends_live_sessions_with_reason_suspended() {
    let mut sim = Sim::new(limits(1, 0, 1, SessionLimitStrategy::Reject));
    sim.activate("hw1").unwrap();
    sim.start("s1", "hw1").unwrap();
    sim.call(Request::SetStatus {
        status: LicenseStatus::Suspended,
        reason: None,
        until: None,
    })
    .unwrap();
    assert_eq!(
        sim.ended_reasons()[&TokenHash::of("s1")],
        vec![EndReason::Suspended]
    );
    assert_eq!(sim.start("s2", "hw1"), Err(LicenseError::Suspended));
    assert_eq!(sim.activate("hw1"), Err(LicenseError::Suspended));
}

#[test]
fn a_temporary_ban_ends_sessions_then_lapses_by_itself() {
    let mut sim = Sim::new(limits(1, 0, 1, SessionLimitStrategy::Reject));
    sim.activate("hw1").unwrap();
    sim.start("s1", "hw1").unwrap();
    let until = t0() + chrono::Duration::seconds(60);
    let Ok(Reply::StatusSet { ended_sessions, .. }) = sim.call(Request::SetStatus {
        status: LicenseStatus::Banned,
        reason: Some("3 warnings".into()),
        until: Some(until),
    }) else {
        panic!("ban")
    };
    assert_eq!(ended_sessions, 1);
    sim.settle();
    assert_eq!(
        sim.ended_reasons()[&TokenHash::of("s1")],
        vec![EndReason::Banned]
    );
    assert_eq!(
        sim.store.snapshot(&key()).unwrap().record.status_until,
        Some(until)
    );
    assert_eq!(sim.start("s2", "hw1"), Err(LicenseError::Banned));
    sim.advance(61);
    sim.start("s3", "hw1").unwrap();
    // A later permanent ban clears the old lapse time.
    sim.call(Request::SetStatus {
        status: LicenseStatus::Banned,
        reason: None,
        until: None,
    })
    .unwrap();
    sim.settle();
    sim.advance(1_000);
    assert_eq!(sim.start("s4", "hw1"), Err(LicenseError::Banned));
    assert_eq!(
        sim.store.snapshot(&key()).unwrap().record.status_until,
        None
    );
}

#[test]
fn passing_valid_until_ends_sessions_with_reason_expired() {
    let mut sim = Sim::new(limits(1, 0, 1, SessionLimitStrategy::Reject));
    sim.activate("hw1").unwrap();
    let patch = LicensePatch {
        valid_until: Some(Some(t0() + chrono::Duration::seconds(15))),
        ..LicensePatch::default()
    };
    sim.call(Request::Update(patch)).unwrap();
    sim.start("s1", "hw1").unwrap();
    sim.advance(10);
    sim.call(Request::Heartbeat {
        token_hash: TokenHash::of("s1"),
    })
    .unwrap();
    sim.advance(10);
    sim.settle();
    assert_eq!(
        sim.ended_reasons()[&TokenHash::of("s1")],
        vec![EndReason::Expired]
    );
    assert_eq!(sim.start("s2", "hw1"), Err(LicenseError::Expired));
}

#[test]
fn a_failed_write_changes_nothing_and_reports_store_unavailable() {
    let mut sim = Sim::new(limits(1, 0, 1, SessionLimitStrategy::Reject));
    sim.activate("hw1").unwrap();
    sim.store.set_available(false);
    assert_eq!(sim.start("s1", "hw1"), Err(LicenseError::StoreUnavailable));
    assert_eq!(sim.m.live_sessions(), 0);
    sim.store.set_available(true);
    sim.start("s1", "hw1").unwrap();
}

#[test]
fn heartbeats_answer_while_a_write_is_in_flight_and_mutations_wait_in_order() {
    let mut sim = Sim::new(limits(1, 0, 2, SessionLimitStrategy::Reject));
    sim.activate("hw1").unwrap();
    sim.start("s1", "hw1").unwrap();
    let a = sim.send(start_req("s2", "hw1"));
    let b = sim.send(start_req("s3", "hw1"));
    let hb = sim.send(Request::Heartbeat {
        token_hash: TokenHash::of("s1"),
    });
    assert!(sim.replies.contains_key(&hb), "heartbeat did not wait");
    assert!(!sim.replies.contains_key(&a));
    sim.settle();
    assert!(sim.replies[&a].is_ok());
    assert_eq!(sim.replies[&b], Err(LicenseError::SessionLimit));
}

#[test]
fn restart_grace_keeps_sessions_whose_deadline_passed_during_downtime() {
    let mut sim = Sim::new(limits(1, 0, 1, SessionLimitStrategy::Reject));
    sim.activate("hw1").unwrap();
    sim.start("s1", "hw1").unwrap();
    // The server is down for 100 s, well past the session's 35 s deadline.
    let boot = t0() + chrono::Duration::seconds(100);
    let snap = sim.store.snapshot(&key()).unwrap();
    let mut m = LicenseMachine::load(snap.clone(), boot, boot, &sim.rules);
    assert_eq!(m.live_sessions(), 1, "kept through restart grace");
    let mut persists = 0;
    while let Some(e) = m.poll_effect() {
        persists += usize::from(matches!(e, Effect::Persist(..)));
    }
    assert_eq!(persists, 0);
    // Loaded long after boot, the same session is overdue and expires at once.
    let mut late = LicenseMachine::load(
        snap,
        boot + chrono::Duration::seconds(500),
        boot,
        &sim.rules,
    );
    assert!(std::iter::from_fn(|| late.poll_effect()).any(|e| matches!(
        e,
        Effect::Persist(
            _,
            StoreOp::EndSessions {
                confirm_deadline: true,
                ..
            }
        )
    )));
}

#[test]
fn fingerprint_with_a_new_network_card_reuses_the_device_slot() {
    let mut sim = Sim::new(limits(1, 0, 1, SessionLimitStrategy::Reject));
    let fp = |mac: &str| Fingerprint {
        cpu_id: Some("cpu".into()),
        mb_serial: Some("mb".into()),
        mac_addresses: vec![mac.into()],
        volume_hash: Some("vol".into()),
        host_name: Some("host".into()),
    };
    let act = |f: Fingerprint| Request::Activate {
        device: DeviceRef::Fingerprint(f),
        machine_name: "m".into(),
        app_version: "1".into(),
    };
    sim.call(act(fp("aa:aa"))).unwrap();
    let Ok(Reply::Activated { existing, .. }) = sim.call(act(fp("bb:bb"))) else {
        panic!("same machine with a new NIC")
    };
    assert!(existing);
}

#[derive(Debug, Clone)]
enum Action {
    Activate(u8),
    Deactivate(u8),
    Start(u8),
    Heartbeat(u8),
    End(u8),
    Advance(u8),
    Suspend,
    TempBan(u8),
    Reinstate,
    CompleteOne,
    StoreDown(bool),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => (0u8..4).prop_map(Action::Activate),
        1 => (0u8..4).prop_map(Action::Deactivate),
        4 => (0u8..4).prop_map(Action::Start),
        4 => (0u8..16).prop_map(Action::Heartbeat),
        1 => (0u8..16).prop_map(Action::End),
        3 => (0u8..40).prop_map(Action::Advance),
        1 => Just(Action::Suspend),
        1 => Just(Action::Reinstate),
        1 => (1u8..60).prop_map(Action::TempBan),
        4 => Just(Action::CompleteOne),
        1 => any::<bool>().prop_map(Action::StoreDown),
    ]
}

fn strategy() -> impl Strategy<Value = SessionLimitStrategy> {
    prop_oneof![
        Just(SessionLimitStrategy::Reject),
        Just(SessionLimitStrategy::ReplaceSameDevice),
        Just(SessionLimitStrategy::EvictOldest),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random interleavings never exceed a limit (in memory or in the store), never drop a
    /// live session silently, and give every ended session exactly one reason.
    #[test]
    fn random_interleavings_respect_limits_and_account_for_every_session(
        max_devices in 1u32..3,
        max_activations in 0u32..5,
        max_sessions in 1u32..3,
        on_limit in strategy(),
        actions in proptest::collection::vec(action(), 1..120),
    ) {
        let lim = limits(max_devices, max_activations, max_sessions, on_limit);
        let mut sim = Sim::new(lim);
        let mut started: Vec<TokenHash> = Vec::new();
        let mut next_token = 0u32;
        for a in actions {
            match a {
                Action::Activate(d) => { sim.send(Request::Activate {
                    device: DeviceRef::Hash(format!("hw{d}")), machine_name: "m".into(), app_version: "1".into() }); }
                Action::Deactivate(d) => { sim.send(Request::Deactivate { hardware_hash: format!("hw{d}") }); }
                Action::Start(d) => {
                    next_token += 1;
                    sim.send(start_req(&format!("t{next_token}"), &format!("hw{d}")));
                }
                Action::Heartbeat(i) => { sim.send(Request::Heartbeat { token_hash: TokenHash::of(&format!("t{}", i as u32 % next_token.max(1) + 1)) }); }
                Action::End(i) => { sim.send(Request::EndSession { token_hash: TokenHash::of(&format!("t{}", i as u32 % next_token.max(1) + 1)), reason: EndReason::ClientEnd }); }
                Action::Advance(s) => sim.advance(i64::from(s)),
                Action::Suspend => { sim.send(Request::SetStatus { status: LicenseStatus::Suspended, reason: None, until: None }); }
                Action::TempBan(secs) => { sim.send(Request::SetStatus { status: LicenseStatus::Banned, reason: None, until: Some(sim.now + chrono::Duration::seconds(i64::from(secs))) }); }
                Action::Reinstate => { sim.send(Request::SetStatus { status: LicenseStatus::Active, reason: None, until: None }); }
                Action::CompleteOne => { sim.complete_one(); }
                Action::StoreDown(down) => sim.store.set_available(!down),
            }
            // Limits hold in memory ...
            prop_assert!(sim.m.live_sessions() <= max_sessions as usize);
            prop_assert!(sim.m.activations.iter().filter(|a| a.is_active).count() <= max_devices as usize);
            if max_activations > 0 {
                prop_assert!(sim.m.record.activations_used <= max_activations);
            }
            // ... and in the store.
            let snap = sim.store.snapshot(&key()).unwrap();
            prop_assert!(snap.sessions.iter().filter(|s| s.deadline > sim.now).count() <= max_sessions as usize);
            prop_assert!(snap.activations.iter().filter(|a| a.is_active).count() <= max_devices as usize);
        }
        // Quiesce: store back, everything completes, time runs far past every deadline.
        sim.store.set_available(true);
        sim.settle();
        sim.advance(1_000);
        sim.settle();
        sim.advance(1_000);
        sim.settle();
        for e in &sim.events {
            if let LicenseEvent::SessionStarted { token_hash, .. } = e {
                prop_assert!(!started.contains(token_hash), "a token starts once");
                started.push(*token_hash);
            }
        }
        let reasons = sim.ended_reasons();
        for t in &started {
            let r = reasons.get(t).cloned().unwrap_or_default();
            prop_assert_eq!(r.len(), 1, "session {} ended {} times", t, r.len());
        }
        let ended: HashSet<TokenHash> = reasons.keys().copied().collect();
        prop_assert!(ended.iter().all(|t| started.contains(t)));
        prop_assert_eq!(sim.m.live_sessions(), 0);
        prop_assert!(sim.store.snapshot(&key()).unwrap().sessions.is_empty());
        // Every request got exactly one reply.
        prop_assert_eq!(sim.replies.len() as u64, sim.next_req);
    }
}
