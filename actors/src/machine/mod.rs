//! The license state machine: one license, its devices and its live sessions.
//!
//! **Architecture Invariant:** this module does no I/O and reads no clock. Every input is a
//! `handle_*`/`on_*` call that takes `now`; every output is an [`Effect`] queued for the host
//! (the shard actor) to drain with [`LicenseMachine::poll_effect`], in order.
//!
//! Durable changes follow reserve → persist → commit: a request that changes something a
//! limit depends on emits [`Effect::Persist`] and becomes the license's single in-flight
//! operation; memory changes only when [`LicenseMachine::on_persisted`] reports success.
//! Later mutations of the same license wait (parked, FIFO) until then; reads and heartbeats
//! never wait. Other licenses are unaffected: the host never awaits the store.

use std::collections::VecDeque;

use chrono::{DateTime, Duration as ChronoDuration, Utc};

use crate::messages::{
    DeviceRef, Effect, LicenseError, LicenseEvent, LicenseView, OpId, Reply, ReqId, Request,
};
use crate::model::{
    Activation, EndReason, LicenseKey, LicenseRecord, LicenseSnapshot, LicenseStatus,
    SessionLimitStrategy, SessionRecord, TokenHash,
};
use crate::session_table::SessionTable;
use crate::settings::{Rules, SharedRules};
use crate::store::{LimitKind, StoreError, StoreOp, StoreOutcome};

/// Most mutations allowed to wait behind an in-flight one before new ones are refused.
pub const MAX_PARKED: usize = 4096;
/// How many ended sessions a license remembers, so a late heartbeat learns *why*.
const RECENTLY_ENDED: usize = 32;
/// Retry delay for an expiry the store could not confirm.
const EXPIRY_RETRY_SECS: i64 = 5;

#[derive(Debug)]
enum Pending {
    Activate,
    Deactivate {
        hardware_hash: String,
    },
    Start {
        session: SessionRecord,
        end: Vec<(TokenHash, EndReason)>,
        activation: Activation,
    },
    End {
        ends: Vec<(TokenHash, EndReason)>,
        client: Option<TokenHash>,
    },
    EndAll {
        ends: Vec<(TokenHash, EndReason)>,
    },
    Status {
        status: LicenseStatus,
        reason: Option<String>,
    },
    Update {
        record: LicenseRecord,
        status_change: bool,
    },
    Delete,
}

#[derive(Debug)]
struct InFlight {
    op: OpId,
    req: Option<ReqId>,
    pending: Pending,
}

#[derive(Debug, Clone)]
struct Ended {
    session: SessionRecord,
    ended_at: DateTime<Utc>,
    reason: EndReason,
}

/// The state of one license in memory.
#[derive(Debug)]
pub struct LicenseMachine {
    record: LicenseRecord,
    activations: Vec<Activation>,
    sessions: SessionTable,
    // A list, oldest first (at most `RECENTLY_ENDED`): 8 bytes less than a deque, which
    // keeps a license's slot in the 512-byte size class (see `shard.rs`).
    recently_ended: Vec<Ended>,
    // Boxed: an operation in flight is rare and large; a million idle machines keep 8 bytes.
    inflight: Option<Box<InFlight>>,
    parked: VecDeque<(ReqId, Request)>,
    effects: VecDeque<Effect>,
    next_op: OpId,
    last_active: DateTime<Utc>,
    /// Set once the store deleted the license: every request then answers `NotFound`
    /// until the host drops the machine.
    deleted: bool,
}

fn chrono(d: std::time::Duration) -> ChronoDuration {
    ChronoDuration::from_std(d).unwrap_or(ChronoDuration::MAX)
}

impl LicenseMachine {
    /// Brings a stored license into memory at `now`. Sessions whose deadline passed while
    /// no server was running live until `booted_at + restart_grace` at least, so a restart
    /// does not evict clients that were alive; the rest expire on the next `pump`.
    pub fn load(
        snapshot: LicenseSnapshot,
        now: DateTime<Utc>,
        booted_at: DateTime<Utc>,
        rules: &Rules,
    ) -> Self {
        let floor = booted_at + chrono(rules.restart_grace);
        let mut m = Self {
            record: snapshot.record,
            activations: snapshot.activations,
            sessions: SessionTable::default(),
            recently_ended: Vec::new(),
            inflight: None,
            parked: VecDeque::new(),
            effects: VecDeque::new(),
            next_op: 0,
            last_active: now,
            deleted: false,
        };
        for mut s in snapshot.sessions {
            s.stored_deadline = s.deadline;
            s.deadline = s.deadline.max(floor);
            m.effects.push_back(Effect::Arm(s.token_hash, s.deadline));
            m.sessions.insert(s);
        }
        m.pump(now, rules);
        m
    }

    /// Whether no change of this license is in flight or waiting: a refresh from the store
    /// may replace the machine only then.
    pub fn is_settled(&self) -> bool {
        self.inflight.is_none() && self.parked.is_empty() && self.effects.is_empty()
    }

    /// How many changes this machine has started; a refresh whose read began before one of
    /// them may lack it.
    pub fn changes_started(&self) -> OpId {
        self.next_op
    }

    /// Whether this copy would refuse `req` for a reason a change made on another node may
    /// already have removed: a session or device it does not know, or a full session or
    /// device limit. Such a refusal is never answered from the cache: the host reloads the
    /// license from the store first (another node may have started that session or
    /// activated that device a moment ago, its notification still on the way).
    /// `rules` are read only for the requests that need them (not for a heartbeat: the
    /// shared rules are a lock every shard thread would touch once more per request).
    pub fn may_be_stale_for(&self, rules: &SharedRules, req: &Request) -> bool {
        let unknown_session = |token: &TokenHash| {
            !self.sessions.contains_key(token)
                && !self
                    .recently_ended
                    .iter()
                    .any(|e| e.session.token_hash == *token)
        };
        match req {
            Request::Heartbeat { token_hash } | Request::EndSession { token_hash, .. } => {
                unknown_session(token_hash)
            }
            Request::Verify {
                device: Some(device),
            } => self.find_device(device, &rules.current()).is_none(),
            Request::Deactivate { hardware_hash } => !self
                .activations
                .iter()
                .any(|a| a.is_active && a.hardware_hash == *hardware_hash),
            Request::StartSession { device, .. } => {
                let rules = rules.current();
                let limits = rules.limits_for(&self.record);
                self.find_device(device, &rules).is_none()
                    || (limits.on_session_limit == SessionLimitStrategy::Reject
                        && self.sessions.len() >= limits.max_sessions as usize)
            }
            Request::Activate { device, .. } => {
                let rules = rules.current();
                let limits = rules.limits_for(&self.record);
                let active = self.activations.iter().filter(|a| a.is_active).count();
                self.find_device(device, &rules).is_none() && active >= limits.max_devices as usize
            }
            Request::Verify { device: None }
            | Request::Info
            | Request::SetStatus { .. }
            | Request::Update(_)
            | Request::EndAllSessions { .. }
            | Request::Delete => false,
        }
    }

    /// Replaces this machine with the store's `snapshot` after another node changed the
    /// license. A session both hold keeps the later of the two heartbeats (this node's may
    /// not be flushed yet). Returns the sessions this node held that the store no longer
    /// has, with why they most likely ended: the status's reason when the license is no
    /// longer active, else `Admin` (ended by an operator or a client on another node).
    pub fn refreshed(
        mut self,
        snapshot: LicenseSnapshot,
        now: DateTime<Utc>,
        booted_at: DateTime<Utc>,
        rules: &Rules,
    ) -> (Self, Vec<(SessionRecord, EndReason)>) {
        let reason = match snapshot.record.status {
            LicenseStatus::Suspended => EndReason::Suspended,
            LicenseStatus::Revoked => EndReason::Revoked,
            LicenseStatus::Banned => EndReason::Banned,
            LicenseStatus::Active if snapshot.record.is_expired(now) => EndReason::Expired,
            LicenseStatus::Active => EndReason::Admin,
        };
        let mut fresh = Self::load(snapshot, now, booted_at, rules);
        let mut gone = Vec::new();
        for old in self.sessions.values() {
            match fresh.sessions.get_mut(&old.token_hash) {
                Some(s) => {
                    if old.last_heartbeat > s.last_heartbeat {
                        s.last_heartbeat = old.last_heartbeat;
                    }
                    if old.deadline > s.deadline {
                        s.deadline = old.deadline;
                    }
                }
                None => gone.push((old.clone(), reason)),
            }
        }
        fresh.recently_ended = std::mem::take(&mut self.recently_ended);
        fresh.next_op = self.next_op;
        for (session, reason) in &gone {
            if fresh.recently_ended.len() >= RECENTLY_ENDED {
                fresh.recently_ended.remove(0);
            }
            fresh.recently_ended.push(Ended {
                session: session.clone(),
                ended_at: now,
                reason: *reason,
            });
        }
        (fresh, gone)
    }

    /// The license key.
    pub fn key(&self) -> &LicenseKey {
        &self.record.key
    }

    /// The live sessions in memory.
    pub fn sessions(&self) -> impl Iterator<Item = &SessionRecord> {
        self.sessions.values()
    }

    /// Live sessions in memory.
    pub fn live_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Whether the license passed `valid_until` while sessions are still live.
    pub fn has_expired_with_sessions(&self, now: DateTime<Utc>) -> bool {
        !self.sessions.is_empty() && self.record.is_expired(now)
    }

    /// Whether the host may drop this license from memory: nothing live, nothing pending,
    /// untouched for `idle`.
    pub fn is_idle(&self, now: DateTime<Utc>, idle: std::time::Duration) -> bool {
        self.sessions.is_empty()
            && self.inflight.is_none()
            && self.parked.is_empty()
            && self.effects.is_empty()
            && (self.deleted || now - self.last_active >= chrono(idle))
    }

    /// Whether the license was deleted (the host may drop the machine at once).
    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// The next output, if any.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// Adds a device with exact growth: a node-locked license keeps room for one device
    /// (a `Vec`'s first push reserves four, 480 bytes, for each license in memory).
    fn push_activation(&mut self, activation: Activation) {
        if self.activations.len() == self.activations.capacity() {
            self.activations
                .reserve_exact((self.activations.len() / 2).max(1));
        }
        self.activations.push(activation);
    }

    /// Frees the memory of drained queues (an `Effect` is large and a host may hold a
    /// million machines, most of them idle).
    pub fn release_buffers(&mut self) {
        self.sessions.release_spare();
        if self.activations.capacity() > self.activations.len() {
            self.activations.shrink_to_fit();
        }
        if self.recently_ended.is_empty() && self.recently_ended.capacity() > 0 {
            self.recently_ended = Vec::new();
        }
        if self.effects.is_empty() && self.effects.capacity() > 0 {
            self.effects = VecDeque::new();
        }
        if self.parked.is_empty() && self.parked.capacity() > 0 {
            self.parked = VecDeque::new();
        }
    }

    /// Handles a request.
    pub fn handle(&mut self, now: DateTime<Utc>, rules: &Rules, req_id: ReqId, req: Request) {
        self.last_active = now;
        if req.is_mutation() && (self.inflight.is_some() || !self.parked.is_empty()) {
            if self.parked.len() >= MAX_PARKED {
                self.reply(req_id, Err(LicenseError::Busy));
            } else {
                self.parked.push_back((req_id, req));
            }
            return;
        }
        let mutation = req.is_mutation();
        self.run(now, rules, req_id, req);
        // Reads and heartbeats start no work; expiry is the timing wheel's job. Skipping the
        // pump keeps a heartbeat O(1) on a license with many sessions.
        if mutation {
            self.pump(now, rules);
        }
    }

    /// A session's armed deadline has come: expire it if it is really overdue, re-arm otherwise.
    pub fn on_deadline(&mut self, now: DateTime<Utc>, rules: &Rules, token: &TokenHash) {
        if let Some(s) = self.sessions.get(token)
            && s.deadline > now
        {
            self.effects.push_back(Effect::Arm(*token, s.deadline));
        }
        self.pump(now, rules);
    }

    /// Periodic check: derived expiry of the license and overdue sessions.
    pub fn on_tick(&mut self, now: DateTime<Utc>, rules: &Rules) {
        self.pump(now, rules);
    }

    /// The store finished operation `op`.
    pub fn on_persisted(
        &mut self,
        now: DateTime<Utc>,
        rules: &Rules,
        op: OpId,
        result: Result<StoreOutcome, StoreError>,
    ) {
        let Some(inflight) = self.inflight.take_if(|f| f.op == op) else {
            return;
        };
        self.last_active = now;
        let InFlight { req, pending, .. } = *inflight;
        let reply = self.commit(now, rules, pending, result);
        if let Some(req) = req {
            self.reply(req, reply);
        }
        self.pump(now, rules);
    }

    /// Fails every waiting request (the host is giving this license up).
    pub fn abandon(&mut self, error: LicenseError) {
        if let Some(r) = self.inflight.take().and_then(|f| f.req) {
            self.reply(r, Err(error));
        }
        while let Some((r, _)) = self.parked.pop_front() {
            self.reply(r, Err(error));
        }
    }

    fn reply(&mut self, req: ReqId, r: Result<Reply, LicenseError>) {
        self.effects.push_back(Effect::Reply(req, r));
    }

    fn view(&self, rules: &Rules) -> LicenseView {
        LicenseView {
            record: self.record.clone(),
            limits: rules.limits_for(&self.record),
            timing: rules.timing_for(&self.record),
            live_sessions: self.sessions.len() as u32,
            active_devices: self.activations.iter().filter(|a| a.is_active).count() as u32,
        }
    }

    fn usable(&self, now: DateTime<Utc>) -> Result<(), LicenseError> {
        match self.record.effective_status(now) {
            LicenseStatus::Active if self.record.is_expired(now) => Err(LicenseError::Expired),
            LicenseStatus::Active => Ok(()),
            LicenseStatus::Suspended => Err(LicenseError::Suspended),
            LicenseStatus::Revoked => Err(LicenseError::Revoked),
            LicenseStatus::Banned => Err(LicenseError::Banned),
        }
    }

    fn find_device(&self, device: &DeviceRef, rules: &Rules) -> Option<&Activation> {
        let active = self.activations.iter().filter(|a| a.is_active);
        match device {
            DeviceRef::Hash(h) => active.clone().find(|a| a.hardware_hash == *h),
            DeviceRef::Fingerprint(fp) => {
                let hash = fp.device_hash();
                active
                    .clone()
                    .find(|a| a.hardware_hash == hash)
                    .or_else(|| {
                        active.clone().find(|a| {
                            a.fingerprint
                                .as_ref()
                                .is_some_and(|f| f.matches(fp, rules.fingerprint_match))
                        })
                    })
            }
        }
    }

    fn persist(&mut self, req: Option<ReqId>, op: StoreOp, pending: Pending) {
        self.next_op += 1;
        let id = self.next_op;
        self.inflight = Some(Box::new(InFlight {
            op: id,
            req,
            pending,
        }));
        self.effects.push_back(Effect::Persist(id, op));
    }

    /// Persists a replaced license record as request `id`'s in-flight operation.
    fn persist_record(&mut self, id: ReqId, record: LicenseRecord, status_change: bool) {
        let op = StoreOp::UpdateLicense {
            record: record.clone(),
        };
        self.persist(
            Some(id),
            op,
            Pending::Update {
                record,
                status_change,
            },
        );
    }

    fn limit_refusal(&mut self, kind: LimitKind) -> LicenseError {
        self.effects
            .push_back(Effect::Event(LicenseEvent::LimitReached {
                key: self.record.key.clone(),
                product: self.record.product.clone(),
                kind,
            }));
        match kind {
            LimitKind::Devices => LicenseError::DeviceLimit,
            LimitKind::Activations => LicenseError::ActivationLimit,
            LimitKind::Sessions => LicenseError::SessionLimit,
        }
    }

    /// Removes a live session from memory, remembering why it ended.
    fn end_session(
        &mut self,
        now: DateTime<Utc>,
        token: &TokenHash,
        reason: EndReason,
    ) -> Option<Ended> {
        let session = self.sessions.remove(token)?;
        let ended = Ended {
            session,
            ended_at: now,
            reason,
        };
        if self.recently_ended.len() >= RECENTLY_ENDED {
            self.recently_ended.remove(0);
        }
        self.recently_ended.push(ended.clone());
        self.effects
            .push_back(Effect::Event(LicenseEvent::SessionEnded {
                key: self.record.key.clone(),
                product: self.record.product.clone(),
                session: ended.session.clone(),
                ended_at: now,
                reason,
            }));
        Some(ended)
    }

    /// The live sessions beyond `max_sessions` (an operator lowered the limit), chosen by
    /// the license's strategy: `evict_oldest` ends the oldest, the others the newest (the
    /// ones the limit would have refused). They end with reason `admin`.
    fn excess_sessions(&self, rules: &Rules) -> Vec<(TokenHash, EndReason)> {
        let limits = rules.limits_for(&self.record);
        let max = limits.max_sessions as usize;
        if self.sessions.len() <= max {
            return Vec::new();
        }
        let mut live: Vec<&SessionRecord> = self.sessions.values().collect();
        live.sort_by_key(|s| (s.started_at, s.token_hash));
        let excess = live.len() - max;
        let chosen: Vec<&SessionRecord> = match limits.on_session_limit {
            crate::model::SessionLimitStrategy::EvictOldest => live[..excess].to_vec(),
            _ => live[max..].to_vec(),
        };
        chosen
            .into_iter()
            .map(|s| (s.token_hash, EndReason::Admin))
            .collect()
    }

    /// Starts internal work (expiry) and parked requests while nothing is in flight.
    fn pump(&mut self, now: DateTime<Utc>, rules: &Rules) {
        while self.inflight.is_none() {
            if !self.sessions.is_empty() {
                let derived = match self.usable(now) {
                    Err(LicenseError::Expired) => Some(EndReason::Expired),
                    Err(_) => self.record.status.end_reason(),
                    Ok(()) => None,
                };
                let mut ends: Vec<(TokenHash, EndReason)> = match derived {
                    Some(reason) => self.sessions.keys().map(|t| (*t, reason)).collect(),
                    None => self
                        .sessions
                        .values()
                        .filter(|s| s.deadline <= now)
                        .map(|s| (s.token_hash, EndReason::Timeout))
                        .collect(),
                };
                let over_limit = derived.is_none() && ends.is_empty();
                if over_limit {
                    ends = self.excess_sessions(rules);
                }
                if !ends.is_empty() {
                    ends.sort();
                    let op = StoreOp::EndSessions {
                        key: self.record.key.clone(),
                        ends: ends.clone(),
                        at: now,
                        confirm_deadline: derived.is_none() && !over_limit,
                    };
                    self.persist(None, op, Pending::End { ends, client: None });
                    break;
                }
            }
            let Some((id, req)) = self.parked.pop_front() else {
                break;
            };
            self.run(now, rules, id, req);
        }
    }
}

mod commit;
mod run;
#[cfg(test)]
mod tests;
