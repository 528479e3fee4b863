//! The admin service: every administrative operation once, through the license actors, so a
//! change reaches live sessions at once and is serialized with client traffic. HTTP handlers
//! (`api/admin.rs`), the control socket and the CLI are thin callers: they parse, call one of
//! these, and render the result.
//!
//! **Architecture Invariant:** nothing here knows HTTP; errors are [`AdminError`], which the
//! API maps to its error shape and the CLI prints.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tessera_actors::{
    Activation, LicenseError, LicenseKey, LicensePatch, LicenseRecord, LicenseStatus, LicenseView,
    Licenses, Reply, Request, SessionRecord, StoreError,
};
use tessera_config::Config;

mod issue;
pub mod view;

pub use issue::{IssueError, MAX_VALID_DAYS, NewLicense};

/// Most licenses one issue call may create.
pub const MAX_ISSUE_COUNT: u32 = 1_000;

/// Longest timed suspension or ban, in seconds (about 100 years).
pub const MAX_STATUS_SECS: u64 = 100 * 366 * 24 * 3600;

/// Why an administrative operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// An argument is out of range or malformed; `field` names it.
    #[error("{field}: {message}")]
    Invalid {
        /// The argument (JSON field or CLI flag name without dashes).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The license actors refused (not found, store unavailable, ...).
    #[error(transparent)]
    License(#[from] LicenseError),
    /// The store refused a write that does not go through an actor (issuing).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The actors answered with a reply of the wrong kind: a bug, logged by the caller.
    #[error("unexpected reply from the license actors")]
    Unexpected,
}

impl AdminError {
    fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<IssueError> for AdminError {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::UnknownPlan(p) => Self::invalid("plan", format!("unknown plan `{p}`")),
            IssueError::UnknownProduct(p) => {
                Self::invalid("product", format!("unknown product `{p}`"))
            }
            IssueError::DaysOutOfRange(d) => Self::invalid(
                "days_valid",
                format!("{d} is more than the allowed {MAX_VALID_DAYS}"),
            ),
            IssueError::Store(e) => Self::Store(e),
        }
    }
}

/// A license as the license actor holds it now.
#[derive(Debug, Clone)]
pub struct LicenseDetail {
    /// Record and effective limits.
    pub license: LicenseView,
    /// Devices, active and past.
    pub activations: Vec<Activation>,
    /// Live sessions, oldest first.
    pub sessions: Vec<SessionRecord>,
}

/// The result of a status change.
#[derive(Debug, Clone, Copy)]
pub struct StatusChange {
    /// The new status.
    pub status: LicenseStatus,
    /// Live sessions the change ended.
    pub ended_sessions: u32,
}

/// The admin service over one server's configuration and license actors. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Admin {
    config: Arc<Config>,
    licenses: Licenses,
}

impl Admin {
    /// The service over `licenses`, with new-license defaults from `config`.
    pub fn new(config: Arc<Config>, licenses: Licenses) -> Self {
        Self { config, licenses }
    }

    /// Issues `count` licenses (1..=[`MAX_ISSUE_COUNT`]) alike but for their keys.
    pub async fn issue(
        &self,
        new: NewLicense,
        count: u32,
    ) -> Result<Vec<LicenseRecord>, AdminError> {
        if !(1..=MAX_ISSUE_COUNT).contains(&count) {
            return Err(AdminError::invalid(
                "count",
                format!("must be between 1 and {MAX_ISSUE_COUNT}"),
            ));
        }
        let mut out = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let record = issue::issue(
                &self.config,
                self.licenses.store().as_ref(),
                new.clone(),
                Utc::now(),
            )
            .await?;
            tracing::info!(license = %record.key.masked(), "license issued");
            out.push(record);
        }
        metrics::counter!("tessera_licenses_issued_total").increment(out.len() as u64);
        Ok(out)
    }

    /// The license with its devices and live sessions, from its actor (so it shows what
    /// clients see, including heartbeats not yet flushed).
    pub async fn show(&self, key: &LicenseKey) -> Result<LicenseDetail, AdminError> {
        match self.licenses.call(key, Request::Info).await? {
            Reply::Info {
                license,
                activations,
                sessions,
            } => Ok(LicenseDetail {
                license,
                activations,
                sessions,
            }),
            _ => Err(AdminError::Unexpected),
        }
    }

    /// Sets the status; anything but `active` ends the live sessions with its reason. A
    /// suspension or ban given `duration_secs` lapses by itself.
    pub async fn set_status(
        &self,
        key: &LicenseKey,
        status: LicenseStatus,
        reason: Option<String>,
        duration_secs: Option<u64>,
    ) -> Result<StatusChange, AdminError> {
        let until = lapse_after(duration_secs, Utc::now())?;
        let reply = self
            .licenses
            .call(
                key,
                Request::SetStatus {
                    status,
                    reason,
                    until,
                },
            )
            .await?;
        match reply {
            Reply::StatusSet { ended_sessions, .. } => Ok(StatusChange {
                status,
                ended_sessions,
            }),
            _ => Err(AdminError::Unexpected),
        }
    }

    /// Records one warning; what it leads to is policy's decision (the caller asks it).
    pub async fn add_warning(&self, key: &LicenseKey) -> Result<LicenseView, AdminError> {
        let patch = LicensePatch {
            add_warnings: 1,
            ..Default::default()
        };
        match self.licenses.call(key, Request::Update(patch)).await? {
            Reply::Updated { license } => Ok(license),
            _ => Err(AdminError::Unexpected),
        }
    }
}

/// Parses a status name as the API and CLI take it.
pub fn parse_status(field: &'static str, s: &str) -> Result<LicenseStatus, AdminError> {
    match s.trim() {
        "active" => Ok(LicenseStatus::Active),
        "suspended" => Ok(LicenseStatus::Suspended),
        "revoked" => Ok(LicenseStatus::Revoked),
        "banned" => Ok(LicenseStatus::Banned),
        other => Err(AdminError::invalid(
            field,
            format!("`{other}` is not one of active, suspended, revoked, banned"),
        )),
    }
}

/// When a status given for `secs` seconds lapses: `None` (until changed) for none or 0.
pub(crate) fn lapse_after(
    secs: Option<u64>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, AdminError> {
    let Some(secs) = secs.filter(|s| *s > 0) else {
        return Ok(None);
    };
    if secs > MAX_STATUS_SECS {
        return Err(AdminError::invalid(
            "duration_secs",
            format!("must be at most {MAX_STATUS_SECS}"),
        ));
    }
    let until = i64::try_from(secs)
        .ok()
        .and_then(chrono::TimeDelta::try_seconds)
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| AdminError::invalid("duration_secs", "is too far in the future"))?;
    Ok(Some(until))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_duration_past_the_bound_is_refused_with_its_field() {
        let now = Utc::now();
        assert_eq!(lapse_after(None, now).ok(), Some(None));
        assert_eq!(lapse_after(Some(0), now).ok(), Some(None));
        assert!(lapse_after(Some(60), now).is_ok_and(|u| u.is_some()));
        for secs in [MAX_STATUS_SECS + 1, u64::MAX] {
            match lapse_after(Some(secs), now) {
                Err(AdminError::Invalid { field, .. }) => assert_eq!(field, "duration_secs"),
                other => panic!("{secs}: {other:?}"),
            }
        }
    }

    #[test]
    fn status_names_parse_and_unknown_ones_name_the_field() {
        assert_eq!(
            parse_status("status", " banned ").ok(),
            Some(LicenseStatus::Banned)
        );
        assert!(matches!(
            parse_status("status", "paused"),
            Err(AdminError::Invalid {
                field: "status",
                ..
            })
        ));
    }
}
