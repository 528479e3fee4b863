//! The first half of a request: check it against the license and either answer at once or
//! start the durable operation whose completion [`super::commit`] applies.

use chrono::{DateTime, Utc};

use super::{LicenseMachine, Pending, chrono};
use crate::messages::{DeviceRef, Effect, LicenseError, LicensePatch, Reply, ReqId, Request};
use crate::model::{EndReason, LicenseStatus, SessionLimitStrategy, SessionRecord, TokenHash};
use crate::settings::Rules;
use crate::store::{HeartbeatWrite, LimitKind, NewActivation, StoreOp};

impl LicenseMachine {
    /// Runs a request now; a mutation may start the in-flight operation.
    pub(super) fn run(&mut self, now: DateTime<Utc>, rules: &Rules, id: ReqId, req: Request) {
        if self.deleted {
            return self.reply(id, Err(LicenseError::NotFound));
        }
        match req {
            Request::Info => self.info(rules, id),
            Request::Verify { device } => {
                let r = self.verify(now, rules, device);
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
            } => self.activate(now, rules, id, device, machine_name, app_version),
            Request::Deactivate { hardware_hash } => self.deactivate(now, id, hardware_hash),
            Request::StartSession {
                token_hash,
                device,
                machine_id,
                version,
            } => self.start_session(now, rules, id, token_hash, device, machine_id, version),
            Request::EndSession { token_hash, reason } => {
                self.end_by_request(now, id, token_hash, reason)
            }
            Request::SetStatus {
                status,
                reason,
                until,
            } => self.set_status(now, id, status, reason, until),
            Request::Update(patch) => self.update(now, id, patch),
            Request::EndAllSessions { reason } => self.end_all(now, id, reason),
            Request::Delete => {
                let op = StoreOp::DeleteLicense {
                    key: self.record.key.clone(),
                };
                self.persist(Some(id), op, Pending::Delete);
            }
        }
    }

    fn info(&mut self, rules: &Rules, id: ReqId) {
        let mut sessions: Vec<SessionRecord> = self.sessions.values().cloned().collect();
        sessions.sort_by_key(|s| s.started_at);
        let r = Reply::Info {
            license: self.view(rules),
            activations: self.activations.clone(),
            sessions,
        };
        self.reply(id, Ok(r));
    }

    fn verify(
        &self,
        now: DateTime<Utc>,
        rules: &Rules,
        device: Option<DeviceRef>,
    ) -> Result<Reply, LicenseError> {
        self.usable(now)?;
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
    }

    /// An active device is answered at once (idempotent); a new one is checked against the
    /// device and lifetime limits here and again, atomically, by the store.
    fn activate(
        &mut self,
        now: DateTime<Utc>,
        rules: &Rules,
        id: ReqId,
        device: DeviceRef,
        machine_name: String,
        app_version: String,
    ) {
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
        if limits.max_activations > 0 && self.record.activations_used >= limits.max_activations {
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

    fn deactivate(&mut self, now: DateTime<Utc>, id: ReqId, hardware_hash: String) {
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

    /// A client's (or an admin's) end of one session. A session that already ended is
    /// answered with how it ended, so a retried end is idempotent.
    fn end_by_request(
        &mut self,
        now: DateTime<Utc>,
        id: ReqId,
        token_hash: TokenHash,
        reason: EndReason,
    ) {
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

    /// Ends every live session with `reason`, in one durable write.
    fn end_all(&mut self, now: DateTime<Utc>, id: ReqId, reason: EndReason) {
        let mut ends: Vec<(TokenHash, EndReason)> =
            self.sessions.keys().map(|t| (*t, reason)).collect();
        if ends.is_empty() {
            return self.reply(id, Ok(Reply::SessionsEnded { count: 0 }));
        }
        ends.sort();
        let op = StoreOp::EndSessions {
            key: self.record.key.clone(),
            ends: ends.clone(),
            at: now,
            confirm_deadline: false,
        };
        self.persist(Some(id), op, Pending::EndAll { ends });
    }

    fn set_status(
        &mut self,
        now: DateTime<Utc>,
        id: ReqId,
        status: LicenseStatus,
        reason: Option<String>,
        until: Option<DateTime<Utc>>,
    ) {
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

    fn update(&mut self, now: DateTime<Utc>, id: ReqId, patch: LicensePatch) {
        let mut record = self.record.clone();
        if let Some(v) = patch.valid_until {
            record.valid_until = v;
        }
        if let (Some(by), Some(until)) = (patch.extend_validity, record.valid_until) {
            // Renewal counts from today for a license that already ran out.
            let base = until.max(now);
            // The admin service bounds `by`; past the calendar's end nothing changes.
            if let Some(v) = base.checked_add_signed(by) {
                record.valid_until = Some(v);
            }
        }
        if let Some(p) = patch.plan {
            record.plan = p;
        }
        if let Some(o) = patch.overrides {
            let r = &mut record.overrides;
            r.max_devices = o.max_devices.or(r.max_devices);
            r.max_activations = o.max_activations.or(r.max_activations);
            r.max_sessions = o.max_sessions.or(r.max_sessions);
            r.on_session_limit = o.on_session_limit.or(r.on_session_limit);
        }
        if let Some(c) = patch.customer_name {
            record.customer_name = c;
        }
        if let Some(c) = patch.customer_id {
            record.customer_id = c;
        }
        if let Some(n) = patch.note {
            record.note = n;
        }
        if let Some(m) = patch.metadata {
            record.metadata = m;
        }
        if let Some(f) = patch.features {
            record.features = f;
        }
        if patch.reset_activations {
            record.activations_used = 0;
        }
        record.warnings = record.warnings.saturating_add(patch.add_warnings);
        self.persist_record(id, record, false);
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
}
