//! Seed 000's License API: activate, verify, info. Paths and fields exactly as the seed
//! shows them; extra fields are additions.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_actors::{Activation, DeviceRef, LicenseView, Reply, Request};
use tessera_config::ProductConfig;
use utoipa::ToSchema;

use super::input;
use crate::http::client_ip::ClientIp;
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::policy::HookClient;
use crate::state::AppState;

/// RFC 3339 UTC with a `Z`, second precision.
pub(crate) use crate::admin::view::rfc3339;

/// While an operator has frozen activations, only a device already active on the license
/// may activate (idempotently); a new one gets 403 `ACTIVATIONS_FROZEN`.
pub(crate) async fn refuse_if_frozen(
    state: &AppState,
    key: &tessera_actors::LicenseKey,
    device: &DeviceRef,
) -> Result<(), ApiError> {
    if !state.auth.security.activations_frozen().await {
        return Ok(());
    }
    let known = state
        .licenses
        .call(
            key,
            Request::Verify {
                device: Some(device.clone()),
            },
        )
        .await;
    match known {
        Ok(_) => Ok(()),
        Err(tessera_actors::LicenseError::NotActivated) => {
            Err(crate::http::error::ErrorCode::ActivationsFrozen.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// A calendar date, as seed 000 shows `valid_from` / `valid_until`.
pub(crate) fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// The release channel of `product` (the default product's if unknown) as the catalog
/// holds it now: a release published on any server shows here within a second.
pub(crate) fn product(state: &AppState, product: &str) -> Option<ProductConfig> {
    state
        .admin
        .catalog()
        .snapshot()
        .product_or_default(product)
        .cloned()
}

/// `POST /api/license/activate` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ActivateRequest {
    /// License key.
    #[schema(pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")]
    pub license_key: String,
    /// Device identifier computed by the client.
    #[schema(
        max_length = 256,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub hardware_hash: String,
    /// Machine name.
    #[serde(default)]
    #[schema(max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub machine_name: Option<String>,
    /// Client version.
    #[serde(default)]
    #[schema(max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub app_version: Option<String>,
}

/// An activation as seed 000 shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivationBody {
    /// Activation id.
    pub id: u64,
    /// License key (in activation replies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_key: Option<String>,
    /// Device identifier.
    pub hardware_hash: String,
    /// Machine name.
    pub machine_name: String,
    /// Activation time (RFC 3339).
    pub activated_at: String,
    /// Last heartbeat of a session on this device (RFC 3339).
    pub last_heartbeat: String,
    /// False once deactivated.
    pub is_active: bool,
    /// Client version at activation.
    pub app_version: String,
}

impl ActivationBody {
    fn new(a: &Activation, license_key: Option<String>) -> Self {
        Self {
            id: a.id,
            license_key,
            hardware_hash: a.hardware_hash.clone(),
            machine_name: a.machine_name.clone(),
            activated_at: rfc3339(a.activated_at),
            last_heartbeat: rfc3339(a.last_heartbeat),
            is_active: a.is_active,
            app_version: a.app_version.clone(),
        }
    }
}

/// `POST /api/license/activate` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivateResponse {
    /// Human message.
    pub message: String,
    /// The activation.
    pub activation: ActivationBody,
    /// True when this device was already active (nothing was counted).
    pub already_active: bool,
    /// Devices active now.
    pub active_devices: u32,
    /// Device limit.
    pub max_devices: u32,
    /// Lifetime activations used.
    pub activations_used: u32,
    /// Lifetime activation limit (0 = unlimited).
    pub max_activations: u32,
}

/// Activate a license on a device (idempotent for an already active device).
#[utoipa::path(post, path = "/api/license/activate", tag = "license",
    request_body = ActivateRequest,
    responses(
        (status = 200, description = "Activated (or already active)", body = ActivateResponse),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON", body = crate::http::error::ErrorSchema),
        (status = 401, description = "INVALID_API_KEY", body = crate::http::error::ErrorSchema),
        (status = 403, description = "LICENSE_SUSPENDED, LICENSE_REVOKED, LICENSE_BANNED, LICENSE_EXPIRED, POLICY_DENIED", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 409, description = "DEVICE_LIMIT_REACHED, ACTIVATION_LIMIT_REACHED", body = crate::http::error::ErrorSchema),
        (status = 503, description = "STORE_UNAVAILABLE", body = crate::http::error::ErrorSchema),
    ),
    security(("api_key" = [])))]
pub async fn activate(
    State(state): State<AppState>,
    ip: ClientIp,
    client: HookClient,
    ApiJson(body): ApiJson<ActivateRequest>,
) -> Result<Json<ActivateResponse>, ApiError> {
    let key = input::license_key("license_key", &body.license_key)?;
    let hardware_hash = input::text("hardware_hash", &body.hardware_hash)?;
    let machine_name = input::optional_text("machine_name", body.machine_name.as_deref())?;
    let app_version = input::optional_text("app_version", body.app_version.as_deref())?;
    refuse_if_frozen(&state, &key, &DeviceRef::Hash(hardware_hash.clone())).await?;
    // Asked before the write: a denied activation must not use up a lifetime activation.
    let asked = state
        .policy
        .before_activate(
            &key,
            &hardware_hash,
            machine_name.as_deref().unwrap_or_default(),
            app_version.as_deref().unwrap_or_default(),
            ip,
            &client,
        )
        .await?;
    let result = state
        .licenses
        .call(
            &key,
            Request::Activate {
                device: DeviceRef::Hash(hardware_hash.clone()),
                machine_name: machine_name.unwrap_or_default(),
                app_version: app_version.unwrap_or_default(),
            },
        )
        .await;
    state
        .policy
        .after_activate(&key, &hardware_hash, ip, &client, asked, &result)
        .await?;
    let reply = result?;
    let Reply::Activated {
        activation,
        existing,
        license,
    } = reply
    else {
        return Err(unexpected(&reply));
    };
    Ok(Json(ActivateResponse {
        message: if existing {
            "License already activated on this device".into()
        } else {
            "License activated successfully".into()
        },
        activation: ActivationBody::new(&activation, Some(key.to_string())),
        already_active: existing,
        active_devices: license.active_devices,
        max_devices: license.limits.max_devices,
        activations_used: license.record.activations_used,
        max_activations: license.limits.max_activations,
    }))
}

/// `POST /api/license/verify` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// License key.
    #[schema(pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")]
    pub license_key: String,
    /// Device identifier; when given, the device must be activated.
    #[serde(default)]
    #[schema(max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub hardware_hash: Option<String>,
    /// Client version, for update information.
    #[serde(default)]
    #[schema(max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub app_version: Option<String>,
}

/// The license part of a verify reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifiedLicense {
    /// License key.
    pub key: String,
    /// Last valid day (`YYYY-MM-DD`), or null when perpetual.
    pub valid_until: Option<String>,
    /// Concurrent sessions allowed (the seed's `max_users`).
    pub max_users: u32,
    /// Devices allowed.
    pub max_devices: u32,
    /// Status.
    pub status: String,
    /// Product id.
    pub product: String,
    /// Plan.
    pub plan: String,
    /// Features granted to this license (names, sorted).
    pub features: Vec<String>,
}

/// `POST /api/license/verify` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse {
    /// Always true in a 200 reply (refusals are errors).
    pub valid: bool,
    /// Human message.
    pub message: String,
    /// The license.
    pub license: VerifiedLicense,
    /// Whether a newer version than `app_version` exists.
    pub update_available: bool,
    /// Latest version of the license's product.
    pub latest_version: String,
}

/// Verify that a license is usable (and, with `hardware_hash`, activated on that device).
#[utoipa::path(post, path = "/api/license/verify", tag = "license",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "The license is valid", body = VerifyResponse),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON", body = crate::http::error::ErrorSchema),
        (status = 403, description = "LICENSE_SUSPENDED, LICENSE_REVOKED, LICENSE_BANNED, LICENSE_EXPIRED, NOT_ACTIVATED", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("api_key" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<Json<VerifyResponse>, ApiError> {
    let key = input::license_key("license_key", &body.license_key)?;
    let device =
        input::optional_text("hardware_hash", body.hardware_hash.as_deref())?.map(DeviceRef::Hash);
    let app_version = input::optional_text("app_version", body.app_version.as_deref())?;
    let reply = state
        .licenses
        .call(&key, Request::Verify { device })
        .await?;
    let Reply::Verified { license, .. } = reply else {
        return Err(unexpected(&reply));
    };
    let latest = product(&state, &license.record.product)
        .map(|p| p.latest_version.clone())
        .unwrap_or_default();
    let update_available = app_version
        .as_deref()
        .is_some_and(|current| input::is_newer(&latest, current));
    Ok(Json(VerifyResponse {
        valid: true,
        message: "License is valid".into(),
        license: verified_license(&license),
        update_available,
        latest_version: latest,
    }))
}

fn verified_license(l: &LicenseView) -> VerifiedLicense {
    VerifiedLicense {
        key: l.record.key.to_string(),
        valid_until: l.record.valid_until.map(date),
        max_users: l.limits.max_sessions,
        max_devices: l.limits.max_devices,
        status: l.record.effective_status(Utc::now()).as_str().into(),
        product: l.record.product.clone(),
        plan: l.record.plan.clone(),
        features: l.record.features.clone(),
    }
}

/// The license part of an info reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct LicenseInfo {
    /// Numeric id.
    pub id: u64,
    /// License key.
    pub key: String,
    /// Customer name.
    pub customer_name: Option<String>,
    /// `perpetual` or `subscription`.
    #[serde(rename = "type")]
    pub license_type: String,
    /// First valid day.
    pub valid_from: String,
    /// Last valid day, or null when perpetual.
    pub valid_until: Option<String>,
    /// Lifetime activation limit (0 = unlimited).
    pub max_activations: u32,
    /// Concurrent sessions allowed.
    pub max_users: u32,
    /// Active and not expired.
    pub is_active: bool,
    /// Devices allowed at once.
    pub max_devices: u32,
    /// Status (`active`, `suspended`, `revoked`, `banned`).
    pub status: String,
    /// Plan.
    pub plan: String,
    /// Product id.
    pub product: String,
    /// Lifetime activations used.
    pub activations_used: u32,
    /// Live sessions now.
    pub live_sessions: u32,
    /// Warnings recorded.
    pub warnings: u32,
}

/// `GET /api/license/info/{license_key}` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct InfoResponse {
    /// The license.
    pub license: LicenseInfo,
    /// Its activations, active or not.
    pub activations: Vec<ActivationBody>,
}

/// Read a license with its activations.
#[utoipa::path(get, path = "/api/license/info/{license_key}", tag = "license",
    params(("license_key" = String, Path, description = "License key", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")),
    responses(
        (status = 200, description = "The license", body = InfoResponse),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("api_key" = [])))]
pub async fn info(
    State(state): State<AppState>,
    Path(license_key): Path<String>,
) -> Result<Json<InfoResponse>, ApiError> {
    let key = input::license_key("license_key", &license_key)?;
    let reply = state.licenses.call(&key, Request::Info).await?;
    let Reply::Info {
        license,
        activations,
        ..
    } = reply
    else {
        return Err(unexpected(&reply));
    };
    let r = &license.record;
    let now = Utc::now();
    Ok(Json(InfoResponse {
        license: LicenseInfo {
            id: r.id,
            key: r.key.to_string(),
            customer_name: r.customer_name.clone(),
            license_type: r.license_type.clone(),
            valid_from: date(r.valid_from),
            valid_until: r.valid_until.map(date),
            max_activations: license.limits.max_activations,
            max_users: license.limits.max_sessions,
            is_active: r.effective_status(now) == tessera_actors::LicenseStatus::Active
                && !r.is_expired(now),
            max_devices: license.limits.max_devices,
            status: r.effective_status(now).as_str().into(),
            plan: r.plan.clone(),
            product: r.product.clone(),
            activations_used: r.activations_used,
            live_sessions: license.live_sessions,
            warnings: r.warnings,
        },
        activations: activations
            .iter()
            .map(|a| ActivationBody::new(a, None))
            .collect(),
    }))
}

/// A reply of the wrong kind: a bug, reported as a 500 with the cause logged.
pub(crate) fn unexpected(reply: &Reply) -> ApiError {
    ApiError::internal(anyhow::anyhow!("unexpected actor reply: {reply:?}"))
}
