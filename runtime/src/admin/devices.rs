//! A license's devices and live sessions as operators manage them: register a device for a
//! customer, free one (or all: hwid-reset), end one session.

use serde_json::json;
use tessera_actors::{
    Activation, DeviceRef, EndReason, LicenseKey, LicensePatch, Reply, Request, SessionRecord,
    TokenHash,
};

use super::edit::text;
use super::error::AdminError;
use super::service::Admin;

/// What a hwid-reset did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HwidReset {
    /// Devices deactivated.
    pub deactivated: u32,
    /// Live sessions that ended with them.
    pub ended_sessions: u32,
}

impl Admin {
    /// Every device of the license (active and past), oldest first.
    pub async fn devices(&self, key: &LicenseKey) -> Result<Vec<Activation>, AdminError> {
        Ok(self.show(key).await?.activations)
    }

    /// Activates a device on the customer's behalf (seed 000's register-device); the
    /// license's device and activation limits apply as for a client. Registering an active
    /// device again returns it.
    pub async fn register_device(
        &self,
        key: &LicenseKey,
        hardware_hash: &str,
        machine_name: Option<&str>,
        app_version: Option<&str>,
    ) -> Result<Activation, AdminError> {
        let hardware_hash = text("hardware_hash", Some(hardware_hash), 256)?
            .ok_or_else(|| AdminError::invalid("hardware_hash", "must not be empty"))?;
        let machine_name = text("machine_name", machine_name, 256)?.unwrap_or_default();
        let app_version = text("app_version", app_version, 64)?.unwrap_or_default();
        let req = Request::Activate {
            device: DeviceRef::Hash(hardware_hash),
            machine_name,
            app_version,
        };
        match self.licenses.call(key, req).await? {
            Reply::Activated {
                activation,
                existing,
                ..
            } => {
                if !existing {
                    self.emit(
                        "admin.device.registered",
                        Some(key),
                        format!("device {} registered", activation.id),
                        json!({ "device_id": activation.id, "machine_name": activation.machine_name }),
                    ).await?;
                }
                Ok(activation)
            }
            _ => Err(AdminError::Unexpected),
        }
    }

    /// Deactivates the active device with id `device_id`, ending its sessions (reason
    /// `deactivated`). Returns how many sessions ended.
    pub async fn deactivate_device(
        &self,
        key: &LicenseKey,
        device_id: u64,
    ) -> Result<u32, AdminError> {
        let device = self
            .devices(key)
            .await?
            .into_iter()
            .find(|a| a.id == device_id && a.is_active)
            .ok_or(AdminError::DeviceNotFound(device_id))?;
        let ended = self.deactivate(key, &device.hardware_hash).await?;
        self.emit(
            "admin.device.deactivated",
            Some(key),
            format!("device {device_id} deactivated"),
            json!({ "device_id": device_id, "ended_sessions": ended }),
        )
        .await?;
        Ok(ended)
    }

    async fn deactivate(&self, key: &LicenseKey, hardware_hash: &str) -> Result<u32, AdminError> {
        let req = Request::Deactivate {
            hardware_hash: hardware_hash.to_string(),
        };
        match self.licenses.call(key, req).await? {
            Reply::Deactivated { ended_sessions } => Ok(ended_sessions),
            _ => Err(AdminError::Unexpected),
        }
    }

    /// Deactivates every active device (the customer changed machines); with
    /// `refund_activations` the lifetime activation count starts again from zero.
    pub async fn hwid_reset(
        &self,
        key: &LicenseKey,
        refund_activations: bool,
    ) -> Result<HwidReset, AdminError> {
        let mut reset = HwidReset {
            deactivated: 0,
            ended_sessions: 0,
        };
        for device in self.devices(key).await?.iter().filter(|a| a.is_active) {
            reset.ended_sessions += self.deactivate(key, &device.hardware_hash).await?;
            reset.deactivated += 1;
        }
        if refund_activations {
            let patch = LicensePatch {
                reset_activations: true,
                ..LicensePatch::default()
            };
            match self.licenses.call(key, Request::Update(patch)).await? {
                Reply::Updated { .. } => {}
                _ => return Err(AdminError::Unexpected),
            }
        }
        self.emit(
            "admin.license.hwid_reset",
            Some(key),
            format!("{} devices deactivated", reset.deactivated),
            json!({
                "deactivated": reset.deactivated,
                "ended_sessions": reset.ended_sessions,
                "refund_activations": refund_activations,
            }),
        )
        .await?;
        Ok(reset)
    }

    /// The license's live sessions, oldest first.
    pub async fn sessions(&self, key: &LicenseKey) -> Result<Vec<SessionRecord>, AdminError> {
        Ok(self.show(key).await?.sessions)
    }

    /// Ends one live session (named by its id, the token's SHA-256 hex) with reason `admin`.
    pub async fn kick(&self, key: &LicenseKey, session_id: &str) -> Result<(), AdminError> {
        let token_hash = TokenHash::from_hex(session_id.trim())
            .ok_or_else(|| AdminError::invalid("session_id", "must be 64 hex digits"))?;
        let req = Request::EndSession {
            token_hash,
            reason: EndReason::Admin,
        };
        match self.licenses.call(key, req).await? {
            Reply::SessionEnded { .. } => {}
            _ => return Err(AdminError::Unexpected),
        }
        self.emit(
            "admin.session.kicked",
            Some(key),
            "session ended by an operator".to_string(),
            json!({ "session_id": token_hash.to_hex() }),
        )
        .await?;
        Ok(())
    }
}
