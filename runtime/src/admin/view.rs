//! How an operator sees a license (effective limits, devices and live sessions, never a
//! session token), a customer's licenses and a product's releases. One shape for the admin
//! API, the control socket and the CLI's `--json`.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tessera_actors::{Activation, LicenseRecord, SessionRecord};
use utoipa::ToSchema;

use super::customers::Customer;
use super::service::LicenseDetail;
use crate::catalog::ProductDef;

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

/// A device as seed 000's device list shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceView {
    /// Device id (for deactivate-device).
    pub id: u64,
    /// Hardware hash the client sent (or derived from its fingerprint).
    pub hardware_hash: String,
    /// Machine name.
    pub machine_name: String,
    /// Activation time.
    pub activated_at: String,
    /// Last heartbeat.
    pub last_heartbeat: String,
    /// Whether it is active.
    pub is_active: bool,
    /// Client version at activation.
    pub app_version: String,
}

impl From<&Activation> for DeviceView {
    fn from(a: &Activation) -> Self {
        Self {
            id: a.id,
            hardware_hash: a.hardware_hash.clone(),
            machine_name: a.machine_name.clone(),
            activated_at: rfc3339(a.activated_at),
            last_heartbeat: rfc3339(a.last_heartbeat),
            is_active: a.is_active,
            app_version: a.app_version.clone(),
        }
    }
}

/// A resource the license holds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeldResource {
    /// Resource id.
    pub id: u64,
    /// Its type (pool).
    #[serde(rename = "type")]
    pub kind: String,
    /// Identifier.
    pub identifier: String,
    /// When it was allocated.
    pub allocated_at: Option<String>,
}

/// A license in a listing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LicenseSummary {
    /// Numeric id.
    pub id: u64,
    /// License key.
    pub license_key: String,
    /// Status in force now (`expired` past `valid_until`).
    pub status: String,
    /// Plan.
    pub plan: String,
    /// Product.
    pub product: String,
    /// Customer name.
    pub customer_name: Option<String>,
    /// Customer id.
    pub customer_id: Option<u64>,
    /// End of validity, or null for perpetual.
    pub valid_until: Option<String>,
    /// Operator note.
    pub note: Option<String>,
    /// Warnings.
    pub warnings: u32,
    /// Lifetime activations used.
    pub activations_used: u32,
    /// Creation time.
    pub created_at: String,
}

/// The status shown for a record at `now`: `expired` past `valid_until`, else the status in
/// force.
pub fn shown_status(r: &LicenseRecord, now: DateTime<Utc>) -> &'static str {
    if r.valid_until.is_some_and(|v| v <= now) {
        "expired"
    } else {
        r.effective_status(now).as_str()
    }
}

impl LicenseSummary {
    /// The listing row of `r` at `now`.
    pub fn of(r: &LicenseRecord, now: DateTime<Utc>) -> Self {
        Self {
            id: r.id,
            license_key: r.key.to_string(),
            status: shown_status(r, now).into(),
            plan: r.plan.clone(),
            product: r.product.clone(),
            customer_name: r.customer_name.clone(),
            customer_id: r.customer_id,
            valid_until: r.valid_until.map(rfc3339),
            note: r.note.clone(),
            warnings: r.warnings,
            activations_used: r.activations_used,
            created_at: rfc3339(r.created_at),
        }
    }
}

impl From<&SessionRecord> for AdminSession {
    fn from(s: &SessionRecord) -> Self {
        Self {
            session_id: s.token_hash.to_hex(),
            hardware_hash: s.hardware_hash.clone(),
            machine_id: s.machine_id.clone(),
            version: s.version.clone(),
            started_at: rfc3339(s.started_at),
            last_heartbeat: rfc3339(s.last_heartbeat),
            expires_at: rfc3339(s.deadline),
        }
    }
}

/// `GET /api/admin/licenses/{key}` reply and `tessera license show` output.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdminLicense {
    /// Numeric id.
    pub id: u64,
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
    /// Customer name.
    pub customer_name: Option<String>,
    /// Customer id.
    pub customer_id: Option<u64>,
    /// End of validity, or null for perpetual.
    pub valid_until: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Operator note.
    pub note: Option<String>,
    /// Operator metadata.
    pub metadata: BTreeMap<String, String>,
    /// Features granted to this license.
    pub features: Vec<String>,
    /// Devices, active and past.
    pub devices: Vec<DeviceView>,
    /// Live sessions.
    pub sessions: Vec<AdminSession>,
    /// Resources held.
    pub resources: Vec<HeldResource>,
}

impl AdminLicense {
    /// The view of what the license actor holds, at `now` (for the derived `expired`).
    pub fn of(detail: &LicenseDetail, now: DateTime<Utc>) -> Self {
        let license = &detail.license;
        let r = &license.record;
        Self {
            id: r.id,
            license_key: r.key.to_string(),
            status: shown_status(r, now).into(),
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
            customer_name: r.customer_name.clone(),
            customer_id: r.customer_id,
            valid_until: r.valid_until.map(rfc3339),
            created_at: rfc3339(r.created_at),
            note: r.note.clone(),
            metadata: r.metadata.clone(),
            features: r.features.clone(),
            devices: detail.activations.iter().map(DeviceView::from).collect(),
            resources: detail
                .resources
                .iter()
                .map(|x| HeldResource {
                    id: x.id,
                    kind: x.kind.to_string(),
                    identifier: x.identifier.clone(),
                    allocated_at: x.allocated_at.map(rfc3339),
                })
                .collect(),
            sessions: detail.sessions.iter().map(AdminSession::from).collect(),
        }
    }
}

/// A page of licenses (`GET /api/admin/licenses`, `tessera license list --json`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LicenseList {
    /// Matching licenses in key order.
    pub licenses: Vec<LicenseSummary>,
    /// Send back as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
    /// Records read to answer (at most 20,000 per call; fewer rows than `limit` with a
    /// cursor means the scan budget ran out first).
    pub scanned: usize,
}

impl LicenseList {
    /// The answer for `page` at `now`.
    pub fn of(page: &super::list::LicensePage, now: DateTime<Utc>) -> Self {
        Self {
            licenses: page
                .licenses
                .iter()
                .map(|r| LicenseSummary::of(r, now))
                .collect(),
            next_cursor: page.next_cursor.as_ref().map(ToString::to_string),
            scanned: page.scanned,
        }
    }
}

/// A license's devices (seed 000's shape).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceList {
    /// Devices, active and past, oldest first.
    pub devices: Vec<DeviceView>,
}

/// A license's live sessions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    /// Live sessions, oldest first.
    pub sessions: Vec<AdminSession>,
}

/// What a renewal left.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Renewed {
    /// The license.
    pub license_key: String,
    /// New end of validity (null: the license never expires).
    pub valid_until: Option<String>,
}

/// What a delete did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    /// The deleted license's key.
    pub deleted: String,
    /// Live sessions ended (reason `admin`).
    pub ended_sessions: u32,
}

/// What a hwid-reset did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HwidResetResult {
    /// Devices deactivated.
    pub deactivated: u32,
    /// Live sessions that ended with them.
    pub ended_sessions: u32,
}

/// What a status change did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatusResult {
    /// New status.
    pub status: String,
    /// Live sessions ended by the change (their end reason is the status).
    pub ended_sessions: u32,
}

/// A product with its release channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    /// The product, its settings and every release kept.
    #[serde(flatten)]
    pub product: ProductDef,
    /// The highest version published (`0.0.0` before the first release).
    pub latest_version: String,
}

impl From<ProductDef> for ProductView {
    fn from(product: ProductDef) -> Self {
        let latest_version = product
            .latest()
            .map_or_else(|| "0.0.0".to_owned(), |r| r.version.clone());
        Self {
            product,
            latest_version,
        }
    }
}

/// `GET /api/admin/customers/{id}/licenses` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerLicenses {
    /// The customer.
    pub customer: Customer,
    /// Its licenses in id order.
    pub licenses: Vec<LicenseSummary>,
    /// Send back as `cursor` for the next page; null at the end.
    pub next_cursor: Option<u64>,
}

impl CustomerLicenses {
    /// The page of `records` (asked for `limit`) of `customer` at `now`.
    pub fn of(
        customer: Customer,
        records: &[LicenseRecord],
        limit: usize,
        now: DateTime<Utc>,
    ) -> Self {
        let next_cursor = (records.len() == limit)
            .then(|| records.last().map(|r| r.id))
            .flatten();
        Self {
            customer,
            licenses: records.iter().map(|r| LicenseSummary::of(r, now)).collect(),
            next_cursor,
        }
    }
}
