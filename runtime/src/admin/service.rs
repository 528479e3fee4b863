//! The admin service itself: configuration, license actors, resource pools and the event
//! fan-out it works on, with the operations on one license's status and record. Its other
//! operations live beside it, one job per module (`edit.rs`, `devices.rs`, `list.rs`,
//! `bulk.rs`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tessera_actors::{
    Activation, LicenseError, LicenseKey, LicensePatch, LicenseRecord, LicenseStatus, LicenseView,
    Licenses, Reply, Request, SessionRecord,
};
use tessera_config::Config;

use crate::audit::{AuditEntry, AuditLog};
use crate::catalog::Catalog;
use crate::search::SearchIndex;
use crate::store::resources::ResourceStore;

use super::error::AdminError;
use super::events::{AdminEvent, AdminEvents};
use super::issue::{self, NewLicense};
use super::remembered::Remembered;

/// Most licenses one issue call may create.
pub const MAX_ISSUE_COUNT: u32 = 1_000;

/// Longest timed suspension or ban, in seconds (about 100 years).
pub const MAX_STATUS_SECS: u64 = 100 * 366 * 24 * 3600;

/// A license as the license actor holds it now.
#[derive(Debug, Clone)]
pub struct LicenseDetail {
    /// Record and effective limits.
    pub license: LicenseView,
    /// Devices, active and past.
    pub activations: Vec<Activation>,
    /// Live sessions, oldest first.
    pub sessions: Vec<SessionRecord>,
    /// Resources held (empty where not asked for).
    pub resources: Vec<crate::store::resources::Resource>,
}

/// The result of a status change.
#[derive(Debug, Clone, Copy)]
pub struct StatusChange {
    /// The new status.
    pub status: LicenseStatus,
    /// Live sessions the change ended.
    pub ended_sessions: u32,
}

/// The admin service over one server's configuration, license actors and resource pools.
/// Cheap to clone; [`Admin::acting_as`] makes a clone that names who acts in its events.
#[derive(Clone, Debug)]
pub struct Admin {
    pub(super) config: Arc<Config>,
    pub(super) licenses: Licenses,
    pub(super) resources: Arc<dyn ResourceStore>,
    /// Products and plans in force (the config's, changed at run time).
    pub(super) catalog: Catalog,
    /// The search index (and, in its store, the customers).
    pub(super) search: SearchIndex,
    /// The tamper-evident audit log every operation is recorded in.
    pub(super) audit: AuditLog,
    events: AdminEvents,
    pub(super) remembered: Arc<Remembered>,
    actor: Arc<str>,
}

impl Admin {
    /// The service over `licenses`, `resources`, the catalog and the search index, with
    /// new-license defaults from `config`.
    pub fn new(
        config: Arc<Config>,
        licenses: Licenses,
        resources: Arc<dyn ResourceStore>,
        catalog: Catalog,
        search: SearchIndex,
        bus: crate::events::Events,
        audit: AuditLog,
    ) -> Self {
        Self {
            config,
            licenses,
            resources,
            catalog,
            search,
            audit,
            events: AdminEvents::new(Some(bus)),
            remembered: Arc::default(),
            actor: Arc::from("system"),
        }
    }

    /// This service, with `actor` (`key:<name>`, `operator:<username>`, `cli`) named in the
    /// events its operations publish.
    pub fn acting_as(&self, actor: impl Into<String>) -> Self {
        Self {
            actor: Arc::from(actor.into()),
            ..self.clone()
        }
    }

    /// The fan-out every operation publishes to.
    pub fn events(&self) -> &AdminEvents {
        &self.events
    }

    /// Products and plans in force.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The audit log every operation is recorded in.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Puts `record` in the search index under its current key, customer and note. The
    /// operation that changed it has taken effect: a failure here is logged and counted,
    /// not returned (the search shows the license again at its next reindex).
    pub(super) async fn reindex(&self, record: &LicenseRecord) {
        if let Err(e) = self.search.index_license(record).await {
            metrics::counter!("tessera_search_index_failures_total").increment(1);
            tracing::warn!(license = %record.key.masked(), error = %e, "license not reindexed for search");
        }
    }

    /// Records an operation that took effect: its audit record first, durably (the caller
    /// is answered only after it), then its event. A failed audit write fails the call with
    /// the store's error; the operation itself has taken effect and its event says so.
    pub(super) async fn emit(
        &self,
        event_type: &'static str,
        license: Option<&LicenseKey>,
        summary: String,
        data: serde_json::Value,
    ) -> Result<(), AdminError> {
        self.emit_change(event_type, license, summary, None, data)
            .await
    }

    /// [`Admin::emit`] with the state before the operation.
    pub(super) async fn emit_change(
        &self,
        event_type: &'static str,
        license: Option<&LicenseKey>,
        summary: String,
        before: Option<serde_json::Value>,
        data: serde_json::Value,
    ) -> Result<(), AdminError> {
        let audited = self
            .audit
            .record(AuditEntry {
                actor: self.actor.to_string(),
                ip: crate::audit::context::client_ip().map(|ip| ip.to_string()),
                action: event_type.to_owned(),
                target: license.map(ToString::to_string),
                summary: summary.clone(),
                before,
                after: data.clone(),
            })
            .await;
        self.events.publish(AdminEvent {
            event_type,
            actor: self.actor.to_string(),
            license: license.cloned(),
            summary,
            data,
            created_at: Utc::now(),
        });
        audited.map(|_| ()).map_err(AdminError::Store)
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
        // The same bounds an edit applies.
        issue::limit("max_devices", new.overrides.max_devices)?;
        issue::limit("max_activations", new.overrides.max_activations)?;
        issue::limit("max_sessions", new.overrides.max_sessions)?;
        let mut new = new;
        if let Some(id) = new.customer_id {
            let customer = self.customer(id).await?;
            new.customer_name.get_or_insert(customer.name);
        }
        let mut out = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let record = issue::issue(
                &self.config,
                &self.catalog.snapshot(),
                self.licenses.store().as_ref(),
                new.clone(),
                Utc::now(),
            )
            .await?;
            self.emit(
                "admin.license.issued",
                Some(&record.key),
                "license issued".to_string(),
                serde_json::json!({ "id": record.id, "plan": record.plan, "product": record.product }),
            ).await?;
            self.reindex(&record).await;
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
                resources: Vec::new(),
            }),
            _ => Err(AdminError::Unexpected),
        }
    }

    /// [`Admin::show`] with the resources the license holds.
    pub async fn show_full(&self, key: &LicenseKey) -> Result<LicenseDetail, AdminError> {
        let mut detail = self.show(key).await?;
        detail.resources = crate::resources::Resources::new(Arc::clone(&self.resources))
            .held_by(key)
            .await
            .map_err(|e| match e {
                crate::resources::ResourceError::Store(e) => AdminError::Store(e),
                _ => AdminError::Unexpected,
            })?;
        Ok(detail)
    }

    /// The license a caller names: its key, or its numeric id (seed 000's paths).
    pub async fn resolve(&self, raw: &str) -> Result<LicenseKey, AdminError> {
        let raw = raw.trim();
        // Digits name an id; digits too many for one (past u64) can only be a key.
        if raw.bytes().all(|b| b.is_ascii_digit())
            && let Ok(id) = raw.parse::<u64>()
        {
            return self
                .licenses
                .store()
                .key_for_id(id)
                .await?
                .ok_or(AdminError::License(LicenseError::NotFound));
        }
        LicenseKey::parse(raw).map_err(|e| AdminError::invalid("license_id", e.to_string()))
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
            Reply::StatusSet { ended_sessions, .. } => {
                self.emit(
                    "admin.license.status_changed",
                    Some(key),
                    format!("status set to {}", status.as_str()),
                    serde_json::json!({
                        "status": status.as_str(),
                        "until": until,
                        "ended_sessions": ended_sessions,
                    }),
                )
                .await?;
                Ok(StatusChange {
                    status,
                    ended_sessions,
                })
            }
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
            Reply::Updated { license } => {
                self.emit(
                    "admin.license.warned",
                    Some(key),
                    format!("warning recorded ({} in all)", license.record.warnings),
                    serde_json::json!({ "warnings": license.record.warnings }),
                )
                .await?;
                Ok(license)
            }
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
