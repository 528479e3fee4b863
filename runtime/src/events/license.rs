//! The license actors' events as operator events: `session.started`, `session.ended` (with
//! the reason), `license.activated`, `license.suspended|revoked|banned|reactivated`,
//! `session.rejected` / `license.activation_rejected` (with the limit's code). Heartbeats are
//! not events: they are counted in metrics.

use std::sync::Arc;

use serde_json::json;
use tessera_actors::{EndReason, EventSink, LicenseEvent, LicenseStatus, LimitKind};

use super::bus::Events;
use crate::store::events::{NewEvent, Severity};

/// Forwards every event to `inner`, and publishes its operator form.
pub struct LicenseEventSink {
    inner: Arc<dyn EventSink>,
    events: Events,
}

impl LicenseEventSink {
    /// The sink for the license actors: `inner` gets every event first.
    pub fn wrap(inner: Arc<dyn EventSink>, events: Events) -> Arc<dyn EventSink> {
        Arc::new(Self { inner, events })
    }
}

/// The operator event of a license event, with the license's product as `app_id`.
fn operator_event(event: &LicenseEvent) -> NewEvent {
    let product = match event {
        LicenseEvent::SessionStarted { product, .. }
        | LicenseEvent::SessionEnded { product, .. }
        | LicenseEvent::Activated { product, .. }
        | LicenseEvent::StatusChanged { product, .. }
        | LicenseEvent::LimitReached { product, .. } => product.clone(),
    };
    let event = match event {
        LicenseEvent::SessionStarted {
            key,
            token_hash,
            hardware_hash,
            ..
        } => NewEvent::new("session.started", Severity::Info, "session started")
            .license(key)
            .data(json!({ "session_id": token_hash.to_hex(), "hardware_hash": hardware_hash })),
        LicenseEvent::SessionEnded {
            key,
            session,
            reason,
            ..
        } => {
            let severity = match reason {
                EndReason::ClientEnd | EndReason::Timeout | EndReason::Expired => Severity::Info,
                _ => Severity::Warning,
            };
            NewEvent::new(
                "session.ended",
                severity,
                format!("session ended ({})", reason.as_str()),
            )
            .license(key)
            .data(json!({
                "session_id": session.token_hash.to_hex(),
                "hardware_hash": session.hardware_hash,
                "reason": reason.as_str(),
            }))
        }
        LicenseEvent::Activated {
            key,
            device_id,
            hardware_hash,
            machine_name,
            ..
        } => NewEvent::new("license.activated", Severity::Info, format!("device {machine_name} activated"))
            .license(key)
            .data(json!({ "device_id": device_id, "hardware_hash": hardware_hash, "machine_name": machine_name })),
        LicenseEvent::StatusChanged { key, status, .. } => {
            let (event_type, severity) = match status {
                LicenseStatus::Active => ("license.reactivated", Severity::Info),
                LicenseStatus::Suspended => ("license.suspended", Severity::Warning),
                LicenseStatus::Revoked => ("license.revoked", Severity::Warning),
                LicenseStatus::Banned => ("license.banned", Severity::Critical),
            };
            NewEvent::new(event_type, severity, format!("license {}", status.as_str()))
                .license(key)
                .data(json!({ "status": status.as_str() }))
        }
        LicenseEvent::LimitReached { key, kind, .. } => {
            let (event_type, code) = match kind {
                LimitKind::Sessions => ("session.rejected", "SESSION_LIMIT_REACHED"),
                LimitKind::Devices => ("license.activation_rejected", "DEVICE_LIMIT_REACHED"),
                LimitKind::Activations => {
                    ("license.activation_rejected", "ACTIVATION_LIMIT_REACHED")
                }
            };
            NewEvent::new(event_type, Severity::Warning, format!("refused: {code}"))
                .license(key)
                .data(json!({ "code": code }))
        }
    };
    event.app_id(product)
}

impl EventSink for LicenseEventSink {
    fn emit(&self, event: &LicenseEvent) {
        self.inner.emit(event);
        self.events.publish(operator_event(event));
    }
    fn changed(&self, key: &tessera_actors::LicenseKey) {
        self.inner.changed(key);
    }

    fn ended_elsewhere(
        &self,
        key: &tessera_actors::LicenseKey,
        session: &tessera_actors::SessionRecord,
        reason: tessera_actors::EndReason,
    ) {
        self.inner.ended_elsewhere(key, session, reason);
    }
}
