//! Every admin operation as one serializable command, run the same way wherever it comes
//! from: the control socket (a CLI talking to a running server) and the CLI on a stopped
//! server's store. The answers are the same JSON views the HTTP API sends, so `--json`
//! output and API replies agree.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::bulk::{BulkRequest, Classify};
use super::edit::LicenseEdit;
use super::error::AdminError;
use super::issue::NewLicense;
use super::list::{DEFAULT_PAGE, LicenseFilter};
use super::service::{Admin, parse_status};
use super::view::{
    AdminLicense, AdminSession, Deleted, DeviceList, DeviceView, HwidResetResult, LicenseList,
    Renewed, SessionList, StatusResult, rfc3339,
};

/// One administrative command; `license` is a key or a numeric id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminCommand {
    /// Issue licenses.
    Issue {
        /// What they get.
        new: NewLicense,
        /// How many.
        count: u32,
    },
    /// A page of licenses.
    List {
        /// Which.
        #[serde(default)]
        filter: LicenseFilter,
        /// Continue after this key.
        #[serde(default)]
        cursor: Option<String>,
        /// Page size.
        #[serde(default)]
        limit: Option<usize>,
    },
    /// One license in full.
    Show {
        /// The license.
        license: String,
    },
    /// Change fields.
    Edit {
        /// The license.
        license: String,
        /// What changes.
        edit: LicenseEdit,
    },
    /// Extend validity.
    Renew {
        /// The license.
        license: String,
        /// Days.
        days: u32,
    },
    /// Set the status.
    SetStatus {
        /// The license.
        license: String,
        /// `active|suspended|revoked|banned`.
        status: String,
        /// Operator note.
        #[serde(default)]
        reason: Option<String>,
        /// Lapse after this many seconds.
        #[serde(default)]
        duration_secs: Option<u64>,
    },
    /// Delete (`confirm` = the key).
    Delete {
        /// The license.
        license: String,
        /// Must be the license key.
        #[serde(default)]
        confirm: Option<String>,
    },
    /// The license's devices.
    Devices {
        /// The license.
        license: String,
    },
    /// Deactivate one device.
    DeactivateDevice {
        /// The license.
        license: String,
        /// Device id.
        device_id: u64,
    },
    /// Deactivate every device.
    HwidReset {
        /// The license.
        license: String,
        /// Also reset the lifetime activation count.
        #[serde(default)]
        refund_activations: bool,
    },
    /// Live sessions.
    Sessions {
        /// The license.
        license: String,
    },
    /// End one session with reason `admin`.
    Kick {
        /// The license.
        license: String,
        /// Session id (token SHA-256 hex).
        session_id: String,
    },
    /// A bulk action.
    Bulk(BulkRequest),
}

/// Failures named as the CLI prints them (no HTTP codes off the wire).
fn plain(e: &AdminError) -> (String, String) {
    let code = match e {
        AdminError::Invalid { .. } => "VALIDATION_ERROR",
        AdminError::License(tessera_actors::LicenseError::NotFound) => "LICENSE_NOT_FOUND",
        AdminError::DeviceNotFound(_) => "DEVICE_NOT_FOUND",
        AdminError::NotFound(_) => "NOT_FOUND",
        AdminError::Conflict(_) => "CONFLICT",
        AdminError::ConfirmationRequired => "CONFIRMATION_REQUIRED",
        AdminError::Store(_)
        | AdminError::License(tessera_actors::LicenseError::StoreUnavailable) => {
            "STORE_UNAVAILABLE"
        }
        AdminError::License(_) => "REFUSED",
        AdminError::Unexpected => "INTERNAL_ERROR",
    };
    (code.to_string(), e.to_string())
}

fn to_json(v: impl Serialize) -> Result<Value, AdminError> {
    serde_json::to_value(v).map_err(|_| AdminError::Unexpected)
}

impl AdminCommand {
    /// Runs the command; the answer is the JSON the HTTP API would send for it.
    pub async fn run(self, admin: &Admin) -> Result<Value, AdminError> {
        self.run_with(admin, plain).await
    }

    /// [`AdminCommand::run`] with bulk failures named by `classify`.
    pub async fn run_with(self, admin: &Admin, classify: Classify) -> Result<Value, AdminError> {
        let now = Utc::now();
        let out = match self {
            Self::Issue { new, count } => {
                let issued = admin.issue(new, count).await?;
                json!({
                    "count": issued.len(),
                    "licenses": issued.iter().map(|r| json!({
                        "license_key": r.key.to_string(),
                        "id": r.id,
                        "plan": r.plan,
                        "product": r.product,
                        "valid_until": r.valid_until.map(rfc3339),
                    })).collect::<Vec<_>>(),
                })
            }
            Self::List {
                filter,
                cursor,
                limit,
            } => {
                let cursor = match cursor.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
                    Some(c) => Some(
                        tessera_actors::LicenseKey::parse(c)
                            .map_err(|e| AdminError::invalid("cursor", e.to_string()))?,
                    ),
                    None => None,
                };
                let page = admin
                    .list(&filter, cursor, limit.unwrap_or(DEFAULT_PAGE))
                    .await?;
                to_json(LicenseList::of(&page, now))?
            }
            Self::Show { license } => {
                let key = admin.resolve(&license).await?;
                to_json(AdminLicense::of(&admin.show_full(&key).await?, now))?
            }
            Self::Edit { license, edit } => {
                let key = admin.resolve(&license).await?;
                admin.edit(&key, &edit).await?;
                to_json(AdminLicense::of(&admin.show_full(&key).await?, now))?
            }
            Self::Renew { license, days } => {
                let key = admin.resolve(&license).await?;
                let view = admin.renew(&key, days).await?;
                to_json(Renewed {
                    license_key: key.to_string(),
                    valid_until: view.record.valid_until.map(rfc3339),
                })?
            }
            Self::SetStatus {
                license,
                status,
                reason,
                duration_secs,
            } => {
                let key = admin.resolve(&license).await?;
                let status = parse_status("status", &status)?;
                let reason = super::edit::text("reason", reason.as_deref(), 256)?;
                let change = admin
                    .set_status(&key, status, reason, duration_secs)
                    .await?;
                to_json(StatusResult {
                    status: change.status.as_str().into(),
                    ended_sessions: change.ended_sessions,
                })?
            }
            Self::Delete { license, confirm } => {
                let key = admin.resolve(&license).await?;
                let ended = admin.delete(&key, confirm.as_deref()).await?;
                to_json(Deleted {
                    deleted: key.to_string(),
                    ended_sessions: ended,
                })?
            }
            Self::Devices { license } => {
                let key = admin.resolve(&license).await?;
                let devices = admin.devices(&key).await?;
                to_json(DeviceList {
                    devices: devices.iter().map(DeviceView::from).collect(),
                })?
            }
            Self::DeactivateDevice { license, device_id } => {
                let key = admin.resolve(&license).await?;
                let ended = admin.deactivate_device(&key, device_id).await?;
                json!({ "device_id": device_id, "ended_sessions": ended })
            }
            Self::HwidReset {
                license,
                refund_activations,
            } => {
                let key = admin.resolve(&license).await?;
                let reset = admin.hwid_reset(&key, refund_activations).await?;
                to_json(HwidResetResult {
                    deactivated: reset.deactivated,
                    ended_sessions: reset.ended_sessions,
                })?
            }
            Self::Sessions { license } => {
                let key = admin.resolve(&license).await?;
                let sessions = admin.sessions(&key).await?;
                to_json(SessionList {
                    sessions: sessions.iter().map(AdminSession::from).collect(),
                })?
            }
            Self::Kick {
                license,
                session_id,
            } => {
                let key = admin.resolve(&license).await?;
                admin.kick(&key, &session_id).await?;
                json!({ "ended": session_id.trim() })
            }
            Self::Bulk(req) => to_json(admin.bulk(req, classify).await?)?,
        };
        Ok(out)
    }
}
