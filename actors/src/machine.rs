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

use crate::fingerprint::Fingerprint;
use crate::model::{
    Activation, EndReason, LicenseKey, LicenseRecord, LicenseSnapshot, LicenseStatus,
    LimitOverrides, SessionLimitStrategy, SessionRecord, TokenHash,
};
use crate::session_table::SessionTable;
use crate::settings::{Limits, Rules, SessionTiming};
use crate::store::{HeartbeatWrite, LimitKind, NewActivation, StoreError, StoreOp, StoreOutcome};

/// Identifies a request so its reply can be routed back by the host.
pub type ReqId = u64;
/// Identifies a persist effect so its completion can be matched.
pub type OpId = u64;

/// Most mutations allowed to wait behind an in-flight one before new ones are refused.
pub const MAX_PARKED: usize = 4096;
/// How many ended sessions a license remembers, so a late heartbeat learns *why*.
const RECENTLY_ENDED: usize = 32;
/// Retry delay for an expiry the store could not confirm.
const EXPIRY_RETRY_SECS: i64 = 5;

/// How a request names a device.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceRef {
    /// By the hardware hash the client computed (seed 000).
    Hash(String),
    /// By hardware components (seed 003), matched under the configured strategy.
    Fingerprint(Fingerprint),
}

/// A change to a license's own fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LicensePatch {
    /// New end of validity (`Some(None)` = never expires).
    pub valid_until: Option<Option<DateTime<Utc>>>,
    /// New plan.
    pub plan: Option<String>,
    /// New per-license limit overrides.
    pub overrides: Option<LimitOverrides>,
    /// New customer name.
    pub customer_name: Option<String>,
    /// Warnings to add.
    pub add_warnings: u32,
    /// Reset the lifetime activation count (hwid-reset, renewal).
    pub reset_activations: bool,
}

/// A request to a license.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Activate a device (idempotent for an already active device).
    Activate {
        /// The device.
        device: DeviceRef,
        /// Machine name.
        machine_name: String,
        /// Client version.
        app_version: String,
    },
    /// Deactivate a device and end its sessions.
    Deactivate {
        /// The device's hardware hash.
        hardware_hash: String,
    },
    /// Check the license is usable (and, if given, that the device is activated).
    Verify {
        /// Optional device.
        device: Option<DeviceRef>,
    },
    /// Read the license with its devices and sessions.
    Info,
    /// Start a session on an activated device.
    StartSession {
        /// Hash of the new session token (the raw token never reaches the machine).
        token_hash: TokenHash,
        /// The device.
        device: DeviceRef,
        /// Machine id the client sent.
        machine_id: String,
        /// Client version.
        version: String,
    },
    /// Keep a session alive.
    Heartbeat {
        /// The session.
        token_hash: TokenHash,
    },
    /// End a session at the client's request.
    EndSession {
        /// The session.
        token_hash: TokenHash,
        /// Why (normally `ClientEnd`; `Admin` from operators).
        reason: EndReason,
    },
    /// Change the license status.
    SetStatus {
        /// New status.
        status: LicenseStatus,
        /// Operator note.
        reason: Option<String>,
        /// When a suspension or ban lapses by itself (`None` = until changed).
        until: Option<DateTime<Utc>>,
    },
    /// Change the license's fields.
    Update(LicensePatch),
}

impl Request {
    /// Whether the request may change durable state (and so waits behind an in-flight change).
    fn is_mutation(&self) -> bool {
        !matches!(
            self,
            Request::Verify { .. } | Request::Info | Request::Heartbeat { .. }
        )
    }
}

/// A license as shown to callers, with its effective limits.
#[derive(Debug, Clone, PartialEq)]
pub struct LicenseView {
    /// The record.
    pub record: LicenseRecord,
    /// Effective limits.
    pub limits: Limits,
    /// Effective session timing.
    pub timing: SessionTiming,
    /// Live sessions now.
    pub live_sessions: u32,
    /// Active devices now.
    pub active_devices: u32,
}

/// A successful reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The device is active.
    Activated {
        /// The activation.
        activation: Activation,
        /// True if it already was.
        existing: bool,
        /// The license after activation.
        license: LicenseView,
    },
    /// The device is inactive.
    Deactivated {
        /// Sessions ended with it.
        ended_sessions: u32,
    },
    /// The license is usable.
    Verified {
        /// The license.
        license: LicenseView,
        /// The device's activation, if a device was named.
        activation: Option<Activation>,
    },
    /// Full read.
    Info {
        /// The license.
        license: LicenseView,
        /// All activations.
        activations: Vec<Activation>,
        /// Live sessions.
        sessions: Vec<SessionRecord>,
    },
    /// A session started.
    SessionStarted {
        /// The session.
        session: SessionRecord,
        /// Sessions ended to make room (replaced or evicted).
        ended: Vec<(TokenHash, EndReason)>,
        /// The device's activation.
        activation: Activation,
        /// The license.
        license: LicenseView,
    },
    /// A heartbeat was recorded.
    Heartbeat {
        /// The session after the heartbeat.
        session: SessionRecord,
        /// Timing the client should follow.
        timing: SessionTiming,
    },
    /// A session ended.
    SessionEnded {
        /// The session as it was.
        session: SessionRecord,
        /// When it ended.
        ended_at: DateTime<Utc>,
        /// Why.
        reason: EndReason,
    },
    /// The status changed.
    StatusSet {
        /// The license after the change.
        license: LicenseView,
        /// Sessions ended by it.
        ended_sessions: u32,
    },
    /// The license fields changed.
    Updated {
        /// The license after the change.
        license: LicenseView,
    },
}

/// A refused request. These are normal answers, not failures of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LicenseError {
    /// No such license.
    #[error("license not found")]
    NotFound,
    /// The license is suspended.
    #[error("license is suspended")]
    Suspended,
    /// The license is revoked.
    #[error("license is revoked")]
    Revoked,
    /// The license is banned.
    #[error("license is banned")]
    Banned,
    /// The license is past `valid_until`.
    #[error("license has expired")]
    Expired,
    /// `max_devices` active devices exist.
    #[error("device limit reached")]
    DeviceLimit,
    /// `max_activations` lifetime activations used.
    #[error("activation limit reached")]
    ActivationLimit,
    /// `max_sessions` live sessions exist.
    #[error("session limit reached")]
    SessionLimit,
    /// No such session.
    #[error("session not found")]
    SessionNotFound,
    /// The session ended (timeout or otherwise) before this request.
    #[error("session has expired")]
    SessionExpired,
    /// The device is not activated on this license.
    #[error("device is not activated for this license")]
    NotActivated,
    /// The store could not make the change durable.
    #[error("store unavailable")]
    StoreUnavailable,
    /// Too many requests are waiting on this license.
    #[error("license is busy")]
    Busy,
    /// The server failed while handling the request.
    #[error("internal error")]
    Internal,
}

/// Something that happened to a license, for metrics, plugins and webhooks.
#[derive(Debug, Clone, PartialEq)]
pub enum LicenseEvent {
    /// A session started.
    SessionStarted {
        /// License.
        key: LicenseKey,
        /// Session.
        token_hash: TokenHash,
        /// Device.
        hardware_hash: String,
    },
    /// A session ended.
    SessionEnded {
        /// License.
        key: LicenseKey,
        /// The session.
        session: SessionRecord,
        /// When.
        ended_at: DateTime<Utc>,
        /// Why.
        reason: EndReason,
    },
    /// A device was activated.
    Activated {
        /// License.
        key: LicenseKey,
        /// Device.
        hardware_hash: String,
    },
    /// The status changed.
    StatusChanged {
        /// License.
        key: LicenseKey,
        /// New status.
        status: LicenseStatus,
    },
    /// A request was refused by a limit.
    LimitReached {
        /// License.
        key: LicenseKey,
        /// Which limit.
        kind: LimitKind,
    },
}

/// An output of the machine, drained by the host in order.
// Effects live for microseconds in a queue that is drained at once; boxing the large
// reply would cost an allocation per heartbeat for no memory gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Answer request `ReqId`.
    Reply(ReqId, Result<Reply, LicenseError>),
    /// Run this store operation off the loop and report back with `on_persisted(OpId, ..)`.
    Persist(OpId, StoreOp),
    /// Call `on_deadline(token)` at (or after) this instant.
    Arm(TokenHash, DateTime<Utc>),
    /// Queue this heartbeat for the write-behind flush.
    WriteBehind(HeartbeatWrite),
    /// Publish this event.
    Event(LicenseEvent),
}

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
    Status {
        status: LicenseStatus,
        reason: Option<String>,
    },
    Update {
        record: LicenseRecord,
        status_change: bool,
    },
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
    recently_ended: VecDeque<Ended>,
    // Boxed: an operation in flight is rare and large; a million idle machines keep 8 bytes.
    inflight: Option<Box<InFlight>>,
    parked: VecDeque<(ReqId, Request)>,
    effects: VecDeque<Effect>,
    next_op: OpId,
    last_active: DateTime<Utc>,
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
            recently_ended: VecDeque::new(),
            inflight: None,
            parked: VecDeque::new(),
            effects: VecDeque::new(),
            next_op: 0,
            last_active: now,
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

    /// The license key.
    pub fn key(&self) -> &LicenseKey {
        &self.record.key
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
            && now - self.last_active >= chrono(idle)
    }

    /// The next output, if any.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// Frees the memory of drained queues (an `Effect` is large and a host may hold a
    /// million machines, most of them idle).
    pub fn release_buffers(&mut self) {
        self.sessions.release_spare();
        if self.activations.capacity() > self.activations.len() {
            self.activations.shrink_to_fit();
        }
        if self.recently_ended.is_empty() && self.recently_ended.capacity() > 0 {
            self.recently_ended = VecDeque::new();
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
                kind,
            }));
        match kind {
            LimitKind::Devices => LicenseError::DeviceLimit,
            LimitKind::Activations => LicenseError::ActivationLimit,
            LimitKind::Sessions => LicenseError::SessionLimit,
        }
    }

    /// Runs a request now; a mutation may start the in-flight operation.
    fn run(&mut self, now: DateTime<Utc>, rules: &Rules, id: ReqId, req: Request) {
        match req {
            Request::Info => {
                let mut sessions: Vec<SessionRecord> = self.sessions.values().cloned().collect();
                sessions.sort_by_key(|s| s.started_at);
                let r = Reply::Info {
                    license: self.view(rules),
                    activations: self.activations.clone(),
                    sessions,
                };
                self.reply(id, Ok(r));
            }
            Request::Verify { device } => {
                let r = self.usable(now).and_then(|()| {
                    let activation = match &device {
                        None => None,
                        Some(d) => Some(
                            self.find_device(d, rules)
                                .cloned()
                                .ok_or(LicenseError::NotActivated)?,
                        ),
                    };
                    Ok(Reply::Verified {
                        license: self.view(rules),
                        activation,
                    })
                });
                self.reply(id, r);
            }
            Request::Heartbeat { token_hash } => {
                let r = self.heartbeat(now, rules, &token_hash);
                self.reply(id, r);
            }
            Request::Activate {
                device,
                machine_name,
                app_version,
            } => {
                if let Err(e) = self.usable(now) {
                    return self.reply(id, Err(e));
                }
                if let Some(existing) = self.find_device(&device, rules).cloned() {
                    let license = self.view(rules);
                    return self.reply(
                        id,
                        Ok(Reply::Activated {
                            activation: existing,
                            existing: true,
                            license,
                        }),
                    );
                }
                let limits = rules.limits_for(&self.record);
                let active = self.activations.iter().filter(|a| a.is_active).count();
                if active >= limits.max_devices as usize {
                    let e = self.limit_refusal(LimitKind::Devices);
                    return self.reply(id, Err(e));
                }
                if limits.max_activations > 0
                    && self.record.activations_used >= limits.max_activations
                {
                    let e = self.limit_refusal(LimitKind::Activations);
                    return self.reply(id, Err(e));
                }
                let (hardware_hash, fingerprint) = match device {
                    DeviceRef::Hash(h) => (h, None),
                    DeviceRef::Fingerprint(fp) => (fp.device_hash(), Some(fp)),
                };
                let op = StoreOp::Activate {
                    key: self.record.key.clone(),
                    activation: NewActivation {
                        hardware_hash,
                        machine_name,
                        app_version,
                        fingerprint,
                        at: now,
                    },
                    max_devices: limits.max_devices,
                    max_activations: limits.max_activations,
                };
                self.persist(Some(id), op, Pending::Activate);
            }
            Request::Deactivate { hardware_hash } => {
                if !self
                    .activations
                    .iter()
                    .any(|a| a.is_active && a.hardware_hash == hardware_hash)
                {
                    return self.reply(id, Err(LicenseError::NotActivated));
                }
                let op = StoreOp::Deactivate {
                    key: self.record.key.clone(),
                    hardware_hash: hardware_hash.clone(),
                    at: now,
                };
                self.persist(Some(id), op, Pending::Deactivate { hardware_hash });
            }
            Request::StartSession {
                token_hash,
                device,
                machine_id,
                version,
            } => self.start_session(now, rules, id, token_hash, device, machine_id, version),
            Request::EndSession { token_hash, reason } => {
                if !self.sessions.contains_key(&token_hash) {
                    let r = match self
                        .recently_ended
                        .iter()
                        .find(|e| e.session.token_hash == token_hash)
                    {
                        Some(e) => Ok(Reply::SessionEnded {
                            session: e.session.clone(),
                            ended_at: e.ended_at,
                            reason: e.reason,
                        }),
                        None => Err(LicenseError::SessionNotFound),
                    };
                    return self.reply(id, r);
                }
                let ends = vec![(token_hash, reason)];
                let op = StoreOp::EndSessions {
                    key: self.record.key.clone(),
                    ends: ends.clone(),
                    at: now,
                    confirm_deadline: false,
                };
                self.persist(
                    Some(id),
                    op,
                    Pending::End {
                        ends,
                        client: Some(token_hash),
                    },
                );
            }
            Request::SetStatus {
                status,
                reason,
                until,
            } => {
                let until = until.filter(|_| status != LicenseStatus::Active);
                if until.is_none() && self.record.status_until.is_none() {
                    let op = StoreOp::SetStatus {
                        key: self.record.key.clone(),
                        status,
                        reason: reason.clone(),
                        at: now,
                    };
                    self.persist(Some(id), op, Pending::Status { status, reason });
                } else {
                    // A timed status lives in the record; `pump` then ends the live sessions.
                    let mut record = self.record.clone();
                    record.status = status;
                    record.status_reason = reason;
                    record.status_until = until;
                    self.persist_record(id, record, true);
                }
            }
            Request::Update(patch) => {
                let mut record = self.record.clone();
                if let Some(v) = patch.valid_until {
                    record.valid_until = v;
                }
                if let Some(p) = patch.plan {
                    record.plan = p;
                }
                if let Some(o) = patch.overrides {
                    record.overrides = o;
                }
                if let Some(c) = patch.customer_name {
                    record.customer_name = Some(c);
                }
                if patch.reset_activations {
                    record.activations_used = 0;
                }
                record.warnings = record.warnings.saturating_add(patch.add_warnings);
                self.persist_record(id, record, false);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start_session(
        &mut self,
        now: DateTime<Utc>,
        rules: &Rules,
        id: ReqId,
        token_hash: TokenHash,
        device: DeviceRef,
        machine_id: String,
        version: String,
    ) {
        if let Err(e) = self.usable(now) {
            return self.reply(id, Err(e));
        }
        let Some(activation) = self.find_device(&device, rules).cloned() else {
            return self.reply(id, Err(LicenseError::NotActivated));
        };
        let limits = rules.limits_for(&self.record);
        let timing = rules.timing_for(&self.record);
        let mut end = Vec::new();
        if self.sessions.len() >= limits.max_sessions as usize {
            // Make room only by as many as needed; a shrunken limit may need several.
            let excess = self.sessions.len() + 1 - limits.max_sessions as usize;
            let mut candidates: Vec<&SessionRecord> = match limits.on_session_limit {
                SessionLimitStrategy::Reject => Vec::new(),
                SessionLimitStrategy::ReplaceSameDevice => self
                    .sessions
                    .values()
                    .filter(|s| s.hardware_hash == activation.hardware_hash)
                    .collect(),
                SessionLimitStrategy::EvictOldest => self.sessions.values().collect(),
            };
            if candidates.len() < excess || limits.max_sessions == 0 {
                let e = self.limit_refusal(LimitKind::Sessions);
                return self.reply(id, Err(e));
            }
            candidates
                .sort_by(|a, b| (a.started_at, &a.token_hash).cmp(&(b.started_at, &b.token_hash)));
            let reason = match limits.on_session_limit {
                SessionLimitStrategy::ReplaceSameDevice => EndReason::Replaced,
                _ => EndReason::Evicted,
            };
            end = candidates
                .into_iter()
                .take(excess)
                .map(|s| (s.token_hash, reason))
                .collect();
        }
        let session = SessionRecord {
            token_hash,
            hardware_hash: activation.hardware_hash.clone(),
            machine_id,
            version,
            started_at: now,
            last_heartbeat: now,
            deadline: now + chrono(timing.lifetime()),
            stored_deadline: Default::default(),
        };
        let op = StoreOp::StartSession {
            key: self.record.key.clone(),
            session: session.clone(),
            max_sessions: limits.max_sessions,
            end: end.clone(),
            at: now,
        };
        self.persist(
            Some(id),
            op,
            Pending::Start {
                session,
                end,
                activation,
            },
        );
    }

    fn heartbeat(
        &mut self,
        now: DateTime<Utc>,
        rules: &Rules,
        token: &TokenHash,
    ) -> Result<Reply, LicenseError> {
        if let Some(Pending::End { ends, .. }) = self.inflight.as_ref().map(|f| &f.pending)
            && ends.iter().any(|(t, _)| t == token)
        {
            return Err(LicenseError::SessionExpired);
        }
        let timing = rules.timing_for(&self.record);
        let usable = self.usable(now);
        let Some(s) = self.sessions.get_mut(token) else {
            return if self
                .recently_ended
                .iter()
                .any(|e| e.session.token_hash == *token)
            {
                Err(LicenseError::SessionExpired)
            } else {
                Err(LicenseError::SessionNotFound)
            };
        };
        if s.deadline <= now {
            return Err(LicenseError::SessionExpired);
        }
        // A license that stopped being usable is ending its sessions; say why.
        usable?;
        s.last_heartbeat = now;
        s.deadline = now + chrono(timing.lifetime());
        // Lazy persistence: the store's deadline only has to stay ahead of the session's
        // real one. Write when less than half a lifetime of it is left, so a heartbeat every
        // interval reaches the store about once per half lifetime, not every time.
        let write = s.stored_deadline - now <= chrono(timing.lifetime()) / 2;
        if write {
            s.stored_deadline = s.deadline;
        }
        let session = s.clone();
        if write {
            self.effects.push_back(Effect::WriteBehind(HeartbeatWrite {
                key: self.record.key.clone(),
                token_hash: session.token_hash,
                hardware_hash: session.hardware_hash.clone(),
                last_heartbeat: now,
                deadline: session.deadline,
            }));
        }
        if let Some(a) = self
            .activations
            .iter_mut()
            .find(|a| a.is_active && a.hardware_hash == session.hardware_hash)
        {
            a.last_heartbeat = now;
        }
        Ok(Reply::Heartbeat { session, timing })
    }

    /// Applies the store's answer to the in-flight operation.
    fn commit(
        &mut self,
        now: DateTime<Utc>,
        rules: &Rules,
        pending: Pending,
        result: Result<StoreOutcome, StoreError>,
    ) -> Result<Reply, LicenseError> {
        let outcome = match result {
            Ok(o) => o,
            Err(StoreError::LicenseNotFound) => return Err(LicenseError::NotFound),
            Err(_) => {
                if let Pending::End { ends, client: None } = &pending {
                    // An expiry we could not make durable: try again shortly.
                    let retry = now + ChronoDuration::seconds(EXPIRY_RETRY_SECS);
                    for (t, _) in ends {
                        if let Some(s) = self.sessions.get_mut(t) {
                            s.deadline = s.deadline.max(retry);
                            self.effects.push_back(Effect::Arm(*t, s.deadline));
                        }
                    }
                }
                return Err(LicenseError::StoreUnavailable);
            }
        };
        if let StoreOutcome::LimitReached(kind) = outcome {
            return Err(self.limit_refusal(kind));
        }
        match pending {
            Pending::Activate => {
                let StoreOutcome::Activated {
                    activation,
                    existing,
                } = outcome
                else {
                    return Err(LicenseError::Internal);
                };
                if !existing {
                    self.record.activations_used += 1;
                    self.activations
                        .retain(|a| a.is_active || a.hardware_hash != activation.hardware_hash);
                    self.activations.push(activation.clone());
                    self.effects
                        .push_back(Effect::Event(LicenseEvent::Activated {
                            key: self.record.key.clone(),
                            hardware_hash: activation.hardware_hash.clone(),
                        }));
                } else if !self.activations.iter().any(|a| a.id == activation.id) {
                    self.activations.push(activation.clone());
                }
                Ok(Reply::Activated {
                    activation,
                    existing,
                    license: self.view(rules),
                })
            }
            Pending::Deactivate { hardware_hash } => {
                for a in self
                    .activations
                    .iter_mut()
                    .filter(|a| a.hardware_hash == hardware_hash)
                {
                    a.is_active = false;
                }
                let tokens: Vec<TokenHash> = self
                    .sessions
                    .values()
                    .filter(|s| s.hardware_hash == hardware_hash)
                    .map(|s| s.token_hash)
                    .collect();
                for t in &tokens {
                    self.end_session(now, t, EndReason::Admin);
                }
                Ok(Reply::Deactivated {
                    ended_sessions: tokens.len() as u32,
                })
            }
            Pending::Start {
                session,
                end,
                activation,
            } => {
                for (t, reason) in &end {
                    self.end_session(now, t, *reason);
                }
                let mut session = session;
                session.stored_deadline = session.deadline;
                self.effects
                    .push_back(Effect::Arm(session.token_hash, session.deadline));
                self.effects
                    .push_back(Effect::Event(LicenseEvent::SessionStarted {
                        key: self.record.key.clone(),
                        token_hash: session.token_hash,
                        hardware_hash: session.hardware_hash.clone(),
                    }));
                self.sessions.insert(session.clone());
                Ok(Reply::SessionStarted {
                    session,
                    ended: end,
                    activation,
                    license: self.view(rules),
                })
            }
            Pending::End { ends, client } => {
                let StoreOutcome::Ended { ended, still_alive } = outcome else {
                    return Err(LicenseError::Internal);
                };
                for (t, deadline) in still_alive {
                    // Another node kept it alive: adopt the stored deadline.
                    if let Some(s) = self.sessions.get_mut(&t) {
                        s.stored_deadline = s.stored_deadline.max(deadline);
                        s.deadline = s.deadline.max(deadline);
                        self.effects.push_back(Effect::Arm(t, s.deadline));
                    }
                }
                let mut reply = Err(LicenseError::SessionNotFound);
                for (t, reason) in ends {
                    if !ended.contains(&t) {
                        continue;
                    }
                    if let Some(e) = self.end_session(now, &t, reason)
                        && client.as_ref() == Some(&t)
                    {
                        reply = Ok(Reply::SessionEnded {
                            session: e.session,
                            ended_at: e.ended_at,
                            reason: e.reason,
                        });
                    }
                }
                reply
            }
            Pending::Status { status, reason } => {
                self.record.status = status;
                self.record.status_reason = reason;
                let mut ended_sessions = 0;
                if let Some(end_reason) = status.end_reason() {
                    let tokens: Vec<TokenHash> = self.sessions.keys().cloned().collect();
                    for t in &tokens {
                        self.end_session(now, t, end_reason);
                    }
                    ended_sessions = tokens.len() as u32;
                }
                self.effects
                    .push_back(Effect::Event(LicenseEvent::StatusChanged {
                        key: self.record.key.clone(),
                        status,
                    }));
                Ok(Reply::StatusSet {
                    license: self.view(rules),
                    ended_sessions,
                })
            }
            Pending::Update {
                record,
                status_change,
            } => {
                self.record = record;
                if !status_change {
                    return Ok(Reply::Updated {
                        license: self.view(rules),
                    });
                }
                self.effects
                    .push_back(Effect::Event(LicenseEvent::StatusChanged {
                        key: self.record.key.clone(),
                        status: self.record.status,
                    }));
                // `pump` ends the live sessions next, with the status's reason.
                let ending = match self.usable(now) {
                    Err(_) => self.sessions.len() as u32,
                    Ok(()) => 0,
                };
                Ok(Reply::StatusSet {
                    license: self.view(rules),
                    ended_sessions: ending,
                })
            }
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
            self.recently_ended.pop_front();
        }
        self.recently_ended.push_back(ended.clone());
        self.effects
            .push_back(Effect::Event(LicenseEvent::SessionEnded {
                key: self.record.key.clone(),
                session: ended.session.clone(),
                ended_at: now,
                reason,
            }));
        Some(ended)
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
                if !ends.is_empty() {
                    ends.sort();
                    let op = StoreOp::EndSessions {
                        key: self.record.key.clone(),
                        ends: ends.clone(),
                        at: now,
                        confirm_deadline: derived.is_none(),
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

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
