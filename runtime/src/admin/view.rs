//! How an operator sees a license: effective limits, devices and live sessions, never a
//! session token. One shape for the admin API, the control socket and `tessera license show`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::LicenseDetail;

/// Timestamps in admin answers: RFC 3339 UTC to the second.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A live session in the admin view (never its token).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdminSession {
    /// SHA-256 of the token, hex.
    pub session_id: String,
    /// Device.
    pub hardware_hash: String,
    /// Machine id.
    pub machine_id: String,
    /// Client version.
    pub version: String,
    /// Start.
    pub started_at: String,
    /// Last heartbeat.
    pub last_heartbeat: String,
    /// Deadline.
    pub expires_at: String,
}

/// `GET /api/admin/licenses/{key}` reply and `tessera license show` output.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdminLicense {
    /// License key.
    pub license_key: String,
    /// Status.
    pub status: String,
    /// Operator note on the last status change.
    pub status_reason: Option<String>,
    /// When a temporary suspension or ban lapses (RFC 3339), if it does.
    pub status_until: Option<String>,
    /// Plan.
    pub plan: String,
    /// Product.
    pub product: String,
    /// Effective limits: devices.
    pub max_devices: u32,
    /// Effective limits: lifetime activations (0 = unlimited).
    pub max_activations: u32,
    /// Effective limits: sessions.
    pub max_sessions: u32,
    /// Strategy at the session limit.
    pub on_session_limit: String,
    /// Lifetime activations used.
    pub activations_used: u32,
    /// Active devices.
    pub active_devices: u32,
    /// Warnings.
    pub warnings: u32,
    /// Live sessions.
    pub sessions: Vec<AdminSession>,
}

impl AdminLicense {
    /// The view of what the license actor holds, at `now` (for the derived `expired`).
    pub fn of(detail: &LicenseDetail, now: DateTime<Utc>) -> Self {
        let license = &detail.license;
        let r = &license.record;
        Self {
            license_key: r.key.to_string(),
            status: r.effective_status(now).as_str().into(),
            status_reason: r.status_reason.clone(),
            status_until: r.status_until.map(rfc3339),
            plan: r.plan.clone(),
            product: r.product.clone(),
            max_devices: license.limits.max_devices,
            max_activations: license.limits.max_activations,
            max_sessions: license.limits.max_sessions,
            on_session_limit: serde_json::to_value(license.limits.on_session_limit)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            activations_used: r.activations_used,
            active_devices: license.active_devices,
            warnings: r.warnings,
            sessions: detail
                .sessions
                .iter()
                .map(|s| AdminSession {
                    session_id: s.token_hash.to_hex(),
                    hardware_hash: s.hardware_hash.clone(),
                    machine_id: s.machine_id.clone(),
                    version: s.version.clone(),
                    started_at: rfc3339(s.started_at),
                    last_heartbeat: rfc3339(s.last_heartbeat),
                    expires_at: rfc3339(s.deadline),
                })
                .collect(),
        }
    }
}
