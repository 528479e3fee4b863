//! The second half of a durable request: the store answered, so memory follows it. Each
//! pending kind has its own step; a failed write changes nothing but may re-arm an expiry.

use chrono::{DateTime, Duration as ChronoDuration, Utc};

use super::{EXPIRY_RETRY_SECS, LicenseMachine, Pending};
use crate::messages::{Effect, LicenseError, LicenseEvent, Reply};
use crate::model::{Activation, EndReason, LicenseRecord, LicenseStatus, SessionRecord, TokenHash};
use crate::settings::Rules;
use crate::store::{StoreError, StoreOutcome};

impl LicenseMachine {
    /// Applies the store's answer to the in-flight operation.
    pub(super) fn commit(
        &mut self,
        now: DateTime<Utc>,
        rules: &Rules,
        pending: Pending,
        result: Result<StoreOutcome, StoreError>,
    ) -> Result<Reply, LicenseError> {
        let outcome = match result {
            Ok(o) => o,
            Err(e) => return Err(self.store_failed(now, &pending, e)),
        };
        if let StoreOutcome::LimitReached(kind) = outcome {
            return Err(self.limit_refusal(kind));
        }
        match pending {
            Pending::Activate => self.commit_activate(rules, outcome),
            Pending::Deactivate { hardware_hash } => {
                Ok(self.commit_deactivate(now, &hardware_hash))
            }
            Pending::Start {
                session,
                end,
                activation,
            } => Ok(self.commit_start(now, rules, session, end, activation)),
            Pending::End { ends, client } => self.commit_end(now, outcome, ends, client),
            Pending::EndAll { ends } => {
                let before = self.sessions.len();
                // No client session, so `commit_end` answers SESSION_NOT_FOUND even when all
                // went well; only a malformed store answer is an error here.
                if let Err(LicenseError::Internal) = self.commit_end(now, outcome, ends, None) {
                    return Err(LicenseError::Internal);
                }
                let count = before.saturating_sub(self.sessions.len());
                Ok(Reply::SessionsEnded {
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                })
            }
            Pending::Status { status, reason } => {
                Ok(self.commit_status(now, rules, status, reason))
            }
            Pending::Update {
                record,
                status_change,
            } => Ok(self.commit_update(now, rules, record, status_change)),
            Pending::Delete => Ok(self.commit_delete(now)),
        }
    }

    /// The store deleted the license: its live sessions end with `admin` and from now on
    /// the machine answers `NotFound`.
    fn commit_delete(&mut self, now: DateTime<Utc>) -> Reply {
        let tokens: Vec<TokenHash> = self.sessions.keys().cloned().collect();
        for t in &tokens {
            self.end_session(now, t, EndReason::Admin);
        }
        self.activations.clear();
        self.deleted = true;
        Reply::Deleted {
            ended_sessions: u32::try_from(tokens.len()).unwrap_or(u32::MAX),
        }
    }

    /// Nothing changes in memory; an expiry that could not be made durable is retried soon.
    fn store_failed(
        &mut self,
        now: DateTime<Utc>,
        pending: &Pending,
        e: StoreError,
    ) -> LicenseError {
        if matches!(e, StoreError::LicenseNotFound) {
            return LicenseError::NotFound;
        }
        if let Pending::End { ends, client: None } = pending {
            let retry = now + ChronoDuration::seconds(EXPIRY_RETRY_SECS);
            for (t, _) in ends {
                if let Some(s) = self.sessions.get_mut(t) {
                    s.deadline = s.deadline.max(retry);
                    self.effects.push_back(Effect::Arm(*t, s.deadline));
                }
            }
        }
        LicenseError::StoreUnavailable
    }

    fn commit_activate(
        &mut self,
        rules: &Rules,
        outcome: StoreOutcome,
    ) -> Result<Reply, LicenseError> {
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
            self.push_activation(activation.clone());
            self.effects
                .push_back(Effect::Event(LicenseEvent::Activated {
                    key: self.record.key.clone(),
                    product: self.record.product.clone(),
                    license_id: self.record.id,
                    device_id: activation.id,
                    hardware_hash: activation.hardware_hash.clone(),
                    machine_name: activation.machine_name.clone(),
                }));
        } else if !self.activations.iter().any(|a| a.id == activation.id) {
            self.push_activation(activation.clone());
        }
        Ok(Reply::Activated {
            activation,
            existing,
            license: self.view(rules),
        })
    }

    /// The device stops counting and its live sessions end with reason `admin`.
    fn commit_deactivate(&mut self, now: DateTime<Utc>, hardware_hash: &str) -> Reply {
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
        Reply::Deactivated {
            ended_sessions: tokens.len() as u32,
        }
    }

    /// The sessions the start displaced end first, then the new one goes live and is armed.
    fn commit_start(
        &mut self,
        now: DateTime<Utc>,
        rules: &Rules,
        mut session: SessionRecord,
        end: Vec<(TokenHash, EndReason)>,
        activation: Activation,
    ) -> Reply {
        for (t, reason) in &end {
            self.end_session(now, t, *reason);
        }
        session.stored_deadline = session.deadline;
        self.effects
            .push_back(Effect::Arm(session.token_hash, session.deadline));
        self.effects
            .push_back(Effect::Event(LicenseEvent::SessionStarted {
                key: self.record.key.clone(),
                product: self.record.product.clone(),
                token_hash: session.token_hash,
                hardware_hash: session.hardware_hash.clone(),
            }));
        self.sessions.insert(session.clone());
        Reply::SessionStarted {
            session,
            ended: end,
            activation,
            license: self.view(rules),
        }
    }

    /// Ends what the store ended; a session another node kept alive adopts its deadline.
    fn commit_end(
        &mut self,
        now: DateTime<Utc>,
        outcome: StoreOutcome,
        ends: Vec<(TokenHash, EndReason)>,
        client: Option<TokenHash>,
    ) -> Result<Reply, LicenseError> {
        let StoreOutcome::Ended { ended, still_alive } = outcome else {
            return Err(LicenseError::Internal);
        };
        for (t, deadline) in still_alive {
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

    /// A status other than active ends every live session with that status's reason.
    fn commit_status(
        &mut self,
        now: DateTime<Utc>,
        rules: &Rules,
        status: LicenseStatus,
        reason: Option<String>,
    ) -> Reply {
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
                product: self.record.product.clone(),
                status,
            }));
        Reply::StatusSet {
            license: self.view(rules),
            ended_sessions,
        }
    }

    /// A record edit; a timed status change leaves ending the sessions to `pump`.
    fn commit_update(
        &mut self,
        now: DateTime<Utc>,
        rules: &Rules,
        record: LicenseRecord,
        status_change: bool,
    ) -> Reply {
        self.record = record;
        if !status_change {
            return Reply::Updated {
                license: self.view(rules),
            };
        }
        self.effects
            .push_back(Effect::Event(LicenseEvent::StatusChanged {
                key: self.record.key.clone(),
                product: self.record.product.clone(),
                status: self.record.status,
            }));
        let ending = match self.usable(now) {
            Err(_) => self.sessions.len() as u32,
            Ok(()) => 0,
        };
        Reply::StatusSet {
            license: self.view(rules),
            ended_sessions: ending,
        }
    }
}
