//! An in-memory [`Store`]: the reference model the real adapters are checked against,
//! and the store of unit and property tests. It keeps nothing across restarts.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use crate::model::{Activation, EndReason, LicenseKey, LicenseRecord, LicenseSnapshot, TokenHash};
use crate::store::{
    HeartbeatWrite, LimitKind, Store, StoreError, StoreHealth, StoreOp, StoreOutcome,
};

#[derive(Default)]
struct Data {
    licenses: BTreeMap<LicenseKey, LicenseSnapshot>,
    sessions: HashMap<TokenHash, LicenseKey>,
    ended: Vec<(TokenHash, EndReason)>,
    next_license_id: u64,
    next_activation_id: u64,
}

/// In-memory store. `set_available(false)` makes every call fail with `Unavailable`,
/// which is how tests inject outages.
#[derive(Default)]
pub struct MemoryStore {
    data: Mutex<Data>,
    down: AtomicBool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates an outage (`false`) or recovery (`true`).
    pub fn set_available(&self, available: bool) {
        self.down.store(!available, Ordering::SeqCst);
    }

    /// Every session ended so far, in order, with its reason (for tests).
    pub fn ended_sessions(&self) -> Vec<(TokenHash, EndReason)> {
        self.data.lock().ended.clone()
    }

    /// Applies `op` synchronously (for deterministic tests that drive the machine by hand).
    pub fn apply_now(&self, op: StoreOp) -> Result<StoreOutcome, StoreError> {
        self.check()?;
        apply_op(&mut self.data.lock(), op)
    }

    /// Inserts a license synchronously, assigning its id.
    pub fn create_now(&self, mut record: LicenseRecord) -> Result<LicenseRecord, StoreError> {
        self.check()?;
        let mut data = self.data.lock();
        if data.licenses.contains_key(&record.key) {
            return Err(StoreError::AlreadyExists);
        }
        data.next_license_id += 1;
        record.id = data.next_license_id;
        data.licenses.insert(
            record.key.clone(),
            LicenseSnapshot {
                record: record.clone(),
                activations: Vec::new(),
                sessions: Vec::new(),
            },
        );
        Ok(record)
    }

    /// The stored snapshot of a license, synchronously.
    pub fn snapshot(&self, key: &LicenseKey) -> Option<LicenseSnapshot> {
        self.data.lock().licenses.get(key).cloned()
    }

    /// Writes heartbeats synchronously.
    pub fn flush_now(&self, batch: &[HeartbeatWrite]) -> Result<(), StoreError> {
        self.check()?;
        let mut data = self.data.lock();
        for hb in batch {
            if let Some(snap) = data.licenses.get_mut(&hb.key) {
                apply_heartbeat(snap, hb);
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("memory store is set down".into()))
        } else {
            Ok(())
        }
    }
}

/// Applies `op` to `data`, keeping the token index in step.
fn apply_op(data: &mut Data, op: StoreOp) -> Result<StoreOutcome, StoreError> {
    let Data {
        licenses,
        sessions,
        ended,
        next_activation_id,
        ..
    } = data;
    let key = op.key().clone();
    let delete = matches!(op, StoreOp::DeleteLicense { .. });
    let snap = licenses.get_mut(&key).ok_or(StoreError::LicenseNotFound)?;
    let applied = apply_to_snapshot(snap, op, &mut || {
        *next_activation_id += 1;
        *next_activation_id
    })?;
    if delete {
        licenses.remove(&key);
    }
    if let Some(token) = applied.started {
        sessions.insert(token, key);
    }
    for (token, reason) in applied.ended {
        sessions.remove(&token);
        ended.push((token, reason));
    }
    Ok(applied.outcome)
}

/// What [`apply_to_snapshot`] did besides its outcome.
#[derive(Debug)]
pub struct Applied {
    /// The operation's result.
    pub outcome: StoreOutcome,
    /// The session the operation started, if any.
    pub started: Option<TokenHash>,
    /// Sessions the operation ended, with their reasons.
    pub ended: Vec<(TokenHash, EndReason)>,
}

/// The reference semantics of every [`StoreOp`], applied to one license's stored state.
/// Adapters that can run Rust inside their transaction (memory, embedded) call this, so
/// their behaviour is this function's by construction; the Redis scripts mirror it and
/// the conformance suite checks they agree.
pub fn apply_to_snapshot(
    snap: &mut LicenseSnapshot,
    op: StoreOp,
    next_activation_id: &mut dyn FnMut() -> u64,
) -> Result<Applied, StoreError> {
    let mut started = None;
    let mut ended = Vec::new();
    let outcome = match op {
        StoreOp::Activate {
            activation,
            max_devices,
            max_activations,
            ..
        } => {
            if let Some(existing) = snap
                .activations
                .iter()
                .find(|a| a.is_active && a.hardware_hash == activation.hardware_hash)
            {
                StoreOutcome::Activated {
                    activation: existing.clone(),
                    existing: true,
                }
            } else if snap.activations.iter().filter(|a| a.is_active).count()
                >= max_devices as usize
            {
                StoreOutcome::LimitReached(LimitKind::Devices)
            } else if max_activations > 0 && snap.record.activations_used >= max_activations {
                StoreOutcome::LimitReached(LimitKind::Activations)
            } else {
                let stored = Activation {
                    id: next_activation_id(),
                    hardware_hash: activation.hardware_hash,
                    machine_name: activation.machine_name,
                    app_version: activation.app_version,
                    fingerprint: activation.fingerprint.map(Box::new),
                    activated_at: activation.at,
                    last_heartbeat: activation.at,
                    is_active: true,
                };
                snap.record.activations_used += 1;
                snap.activations
                    .retain(|a| a.is_active || a.hardware_hash != stored.hardware_hash);
                snap.activations.push(stored.clone());
                StoreOutcome::Activated {
                    activation: stored,
                    existing: false,
                }
            }
        }
        StoreOp::Deactivate { hardware_hash, .. } => {
            for a in snap
                .activations
                .iter_mut()
                .filter(|a| a.hardware_hash == hardware_hash)
            {
                a.is_active = false;
            }
            snap.sessions.retain(|s| {
                let keep = s.hardware_hash != hardware_hash;
                if !keep {
                    ended.push((s.token_hash, EndReason::Admin));
                }
                keep
            });
            StoreOutcome::Done
        }
        StoreOp::StartSession {
            session,
            max_sessions,
            end,
            at,
            ..
        } => {
            let live = snap
                .sessions
                .iter()
                .filter(|s| s.deadline > at && !end.iter().any(|(t, _)| *t == s.token_hash))
                .count();
            if live >= max_sessions as usize {
                StoreOutcome::LimitReached(LimitKind::Sessions)
            } else {
                for (token, reason) in end {
                    if let Some(pos) = snap.sessions.iter().position(|s| s.token_hash == token) {
                        snap.sessions.remove(pos);
                        ended.push((token, reason));
                    }
                }
                started = Some(session.token_hash);
                snap.sessions.push(session);
                StoreOutcome::Done
            }
        }
        StoreOp::EndSessions {
            ends,
            at,
            confirm_deadline,
            ..
        } => {
            let mut done = Vec::new();
            let mut still_alive = Vec::new();
            for (token, reason) in ends {
                let Some(pos) = snap.sessions.iter().position(|s| s.token_hash == token) else {
                    continue;
                };
                let deadline = snap.sessions[pos].deadline;
                if confirm_deadline && deadline > at {
                    still_alive.push((token, deadline));
                    continue;
                }
                snap.sessions.remove(pos);
                ended.push((token, reason));
                done.push(token);
            }
            StoreOutcome::Ended {
                ended: done,
                still_alive,
            }
        }
        StoreOp::SetStatus { status, reason, .. } => {
            snap.record.status = status;
            snap.record.status_reason = reason;
            if let Some(end_reason) = status.end_reason() {
                for s in snap.sessions.drain(..) {
                    ended.push((s.token_hash, end_reason));
                }
            }
            StoreOutcome::Done
        }
        StoreOp::UpdateLicense { record } => {
            if record.id != snap.record.id || record.key != snap.record.key {
                return Err(StoreError::Corrupt("license id mismatch".into()));
            }
            snap.record = record;
            StoreOutcome::Done
        }
        StoreOp::DeleteLicense { .. } => {
            // The adapter removes the (now empty) license itself; what ends here is what its
            // indexes must forget.
            for s in snap.sessions.drain(..) {
                ended.push((s.token_hash, EndReason::Admin));
            }
            snap.activations.clear();
            StoreOutcome::Done
        }
    };
    Ok(Applied {
        outcome,
        started,
        ended,
    })
}

/// Applies one coalesced heartbeat to a license's stored state (later values win). The
/// session, if it still exists, gets the later deadline and last heartbeat; its device, if
/// active, the later last heartbeat even when the session has ended since (the heartbeat was
/// accepted while the session was live). Returns whether the session still exists.
pub fn apply_heartbeat(snap: &mut LicenseSnapshot, hb: &HeartbeatWrite) -> bool {
    let (last_heartbeat, deadline) = hb.kept_times();
    if let Some(a) = snap
        .activations
        .iter_mut()
        .find(|a| a.is_active && a.hardware_hash == hb.hardware_hash)
    {
        a.last_heartbeat = a.last_heartbeat.max(last_heartbeat);
    }
    let Some(s) = snap
        .sessions
        .iter_mut()
        .find(|s| s.token_hash == hb.token_hash)
    else {
        return false;
    };
    s.last_heartbeat = s.last_heartbeat.max(last_heartbeat);
    s.deadline = s.deadline.max(deadline);
    true
}

#[async_trait]
impl Store for MemoryStore {
    async fn load(&self, key: &LicenseKey) -> Result<Option<LicenseSnapshot>, StoreError> {
        self.check()?;
        Ok(self.data.lock().licenses.get(key).cloned())
    }

    async fn create_license(&self, record: LicenseRecord) -> Result<LicenseRecord, StoreError> {
        self.create_now(record)
    }

    async fn apply(&self, op: StoreOp) -> Result<StoreOutcome, StoreError> {
        self.apply_now(op)
    }

    async fn flush_heartbeats(&self, batch: &[HeartbeatWrite]) -> Result<(), StoreError> {
        self.flush_now(batch)
    }

    async fn find_session(&self, token: &TokenHash) -> Result<Option<LicenseKey>, StoreError> {
        self.check()?;
        Ok(self.data.lock().sessions.get(token).cloned())
    }

    async fn overdue_sessions(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(LicenseKey, TokenHash)>, StoreError> {
        self.check()?;
        let data = self.data.lock();
        Ok(data
            .licenses
            .values()
            .flat_map(|snap| {
                snap.sessions
                    .iter()
                    .filter(|s| s.deadline < before)
                    .map(|s| (snap.record.key.clone(), s.token_hash))
            })
            .take(limit)
            .collect())
    }

    async fn list_licenses(
        &self,
        after: Option<&LicenseKey>,
        limit: usize,
    ) -> Result<Vec<LicenseKey>, StoreError> {
        self.check()?;
        let data = self.data.lock();
        Ok(data
            .licenses
            .keys()
            .filter(|k| after.is_none_or(|a| *k > a))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn list_records(
        &self,
        after: Option<&LicenseKey>,
        limit: usize,
    ) -> Result<Vec<LicenseRecord>, StoreError> {
        self.check()?;
        let data = self.data.lock();
        Ok(data
            .licenses
            .iter()
            .filter(|(k, _)| after.is_none_or(|a| *k > a))
            .take(limit)
            .map(|(_, snap)| snap.record.clone())
            .collect())
    }

    async fn key_for_id(&self, id: u64) -> Result<Option<LicenseKey>, StoreError> {
        self.check()?;
        let data = self.data.lock();
        Ok(data
            .licenses
            .values()
            .find(|snap| snap.record.id == id)
            .map(|snap| snap.record.key.clone()))
    }

    fn health(&self) -> StoreHealth {
        if self.down.load(Ordering::SeqCst) {
            StoreHealth::Degraded
        } else {
            StoreHealth::Ok
        }
    }
}
