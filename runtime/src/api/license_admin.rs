//! Seed 000's admin-panel license API, at its exact paths and shapes: quick-edit, toggle,
//! devices (list, register, deactivate), a fresh key, and the bulk activate / deactivate /
//! delete over `license_ids`. `{license_id}` is the numeric id or the key. Operator routes
//! (see `routes.rs`); each handler calls the admin service once.

use axum::Json;
use axum::extract::{Extension, Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::{acting, classify, confirm_text, parse_time};
use super::input;
use crate::admin::LicenseEdit;
use crate::admin::bulk::{BulkAction, BulkRequest, BulkTarget};
use crate::admin::view::DeviceList;
use crate::auth::access::{Access, Caller};
use crate::auth::scopes::Scope;
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::state::AppState;

/// Seed 000's `{success, message}` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    /// Always true (failures are errors).
    pub success: bool,
    /// What happened.
    pub message: String,
}

fn done(message: impl Into<String>) -> Json<Done> {
    Json(Done {
        success: true,
        message: message.into(),
    })
}

/// `POST /api/license/{license_id}/quick-edit` body (seed 000, plus the other editable
/// fields of `PATCH /api/admin/licenses/{key}`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuickEdit {
    /// New end of validity: `YYYY-MM-DD` or RFC 3339; `null` makes it perpetual.
    #[serde(default, with = "crate::admin::edit::double_option")]
    #[schema(schema_with = input::valid_until_schema)]
    pub valid_until: Option<Option<String>>,
    /// Lifetime activations (0 = unlimited).
    #[serde(default)]
    #[schema(maximum = 1_000_000)]
    pub max_activations: Option<u32>,
    /// Live sessions at once (seed 000's name).
    #[serde(default, alias = "max_sessions")]
    #[schema(maximum = 1_000_000)]
    pub max_users: Option<u32>,
    /// Devices at once.
    #[serde(default)]
    #[schema(maximum = 1_000_000)]
    pub max_devices: Option<u32>,
    /// Plan.
    #[serde(default)]
    pub plan: Option<String>,
    /// Customer name (`null` clears it).
    #[serde(default, with = "crate::admin::edit::double_option")]
    #[schema(value_type = Option<String>, max_length = 256, pattern = "^[^\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub customer_name: Option<Option<String>>,
    /// The customer (`GET /api/customers`) the license belongs to; `null` detaches it.
    /// Without `customer_name`, the customer's name becomes the license's.
    #[serde(default, with = "crate::admin::edit::double_option")]
    #[schema(value_type = Option<u64>)]
    pub customer_id: Option<Option<u64>>,
    /// Operator note (`null` clears it).
    #[serde(default, with = "crate::admin::edit::double_option")]
    #[schema(value_type = Option<String>, max_length = 2000, pattern = "^[^\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub note: Option<Option<String>>,
    /// Metadata (replaces the map).
    #[serde(default)]
    #[schema(schema_with = input::metadata_schema)]
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
}

/// Quick edit license properties (seed 000).
#[utoipa::path(post, path = "/api/license/{license_id}/quick-edit", tag = "license-admin",
    params(("license_id" = String, Path, description = "Numeric id or license key", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")),
    request_body = QuickEdit,
    responses(
        (status = 200, description = "Updated", body = Done),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn quick_edit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(license_id): Path<String>,
    ApiJson(body): ApiJson<QuickEdit>,
) -> Result<Json<Done>, ApiError> {
    let valid_until = match body.valid_until {
        Some(Some(t)) => Some(Some(parse_time("valid_until", &t)?)),
        Some(None) => Some(None),
        None => None,
    };
    let edit = LicenseEdit {
        valid_until,
        plan: input::optional_text("plan", body.plan.as_deref())?,
        max_devices: body.max_devices,
        max_activations: body.max_activations,
        max_sessions: body.max_users,
        customer_name: body.customer_name,
        customer_id: body.customer_id,
        note: body.note,
        metadata: body.metadata,
        ..LicenseEdit::default()
    };
    let admin = acting(&state, &caller);
    let key = admin.resolve(&license_id).await?;
    admin.edit(&key, &edit).await?;
    Ok(done("License updated successfully"))
}

/// `POST /api/license/{license_id}/toggle` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct Toggled {
    /// Always true.
    pub success: bool,
    /// The status now: `active` or `suspended`.
    pub status: String,
    /// Whether the license is active now.
    pub is_active: bool,
    /// Live sessions the change ended.
    pub ended_sessions: u32,
    /// What happened.
    pub message: String,
}

/// Toggle active status (seed 000): active becomes suspended (ending live sessions), any
/// other status becomes active.
#[utoipa::path(post, path = "/api/license/{license_id}/toggle", tag = "license-admin",
    params(("license_id" = String, Path, description = "Numeric id or license key", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")),
    responses(
        (status = 200, description = "Toggled", body = Toggled),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn toggle(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(license_id): Path<String>,
) -> Result<Json<Toggled>, ApiError> {
    let admin = acting(&state, &caller);
    let key = admin.resolve(&license_id).await?;
    let change = admin.toggle(&key).await?;
    let status = change.status.as_str();
    Ok(Json(Toggled {
        success: true,
        status: status.into(),
        is_active: status == "active",
        ended_sessions: change.ended_sessions,
        message: format!("License is now {status}"),
    }))
}

/// `POST /api/generate-license-key` reply (seed 000).
#[derive(Debug, Serialize, ToSchema)]
pub struct GeneratedKey {
    /// A key no license has (not reserved: issue it to keep it).
    pub license_key: String,
}

/// Generate a new license key (seed 000).
#[utoipa::path(post, path = "/api/generate-license-key", tag = "license-admin",
    responses((status = 200, description = "A fresh key", body = GeneratedKey)),
    security(("bearer" = [])))]
pub async fn generate_key(State(state): State<AppState>) -> Result<Json<GeneratedKey>, ApiError> {
    Ok(Json(GeneratedKey {
        license_key: state.admin.generate_key().await?.to_string(),
    }))
}

/// Get devices for a license (seed 000).
#[utoipa::path(get, path = "/api/license/{license_id}/devices", tag = "license-admin",
    params(("license_id" = String, Path, description = "Numeric id or license key", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")),
    responses(
        (status = 200, description = "Devices", body = DeviceList),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn devices(
    State(state): State<AppState>,
    Path(license_id): Path<String>,
) -> Result<Json<DeviceList>, ApiError> {
    let key = state.admin.resolve(&license_id).await?;
    let devices = state.admin.devices(&key).await?;
    Ok(Json(DeviceList {
        devices: devices.iter().map(Into::into).collect(),
    }))
}

/// `POST /api/license/{license_id}/register-device` body (seed 000).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterDevice {
    /// The device's hardware hash.
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

/// `POST /api/license/{license_id}/register-device` reply (seed 000).
#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    /// Always true.
    pub success: bool,
    /// The device's id.
    pub device_id: u64,
    /// What happened.
    pub message: String,
}

/// Register a new device (seed 000); the license's device and activation limits apply.
#[utoipa::path(post, path = "/api/license/{license_id}/register-device", tag = "license-admin",
    params(("license_id" = String, Path, description = "Numeric id or license key", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")),
    request_body = RegisterDevice,
    responses(
        (status = 200, description = "Registered", body = Registered),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 409, description = "DEVICE_LIMIT_REACHED, ACTIVATION_LIMIT_REACHED", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn register_device(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(license_id): Path<String>,
    ApiJson(body): ApiJson<RegisterDevice>,
) -> Result<Json<Registered>, ApiError> {
    let admin = acting(&state, &caller);
    let key = admin.resolve(&license_id).await?;
    let device = admin
        .register_device(
            &key,
            &body.hardware_hash,
            body.machine_name.as_deref(),
            body.app_version.as_deref(),
        )
        .await?;
    Ok(Json(Registered {
        success: true,
        device_id: device.id,
        message: "Device registered successfully".into(),
    }))
}

/// Deactivate a device (seed 000); its live sessions end with `deactivated`.
#[utoipa::path(post, path = "/api/license/{license_id}/deactivate-device/{device_id}", tag = "license-admin",
    params(
        ("license_id" = String, Path, description = "Numeric id or license key", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$"),
        ("device_id" = u64, Path, description = "Device id"),
    ),
    responses(
        (status = 200, description = "Deactivated", body = Done),
        (status = 404, description = "LICENSE_NOT_FOUND, DEVICE_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn deactivate_device(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((license_id, device_id)): Path<(String, String)>,
) -> Result<Json<Done>, ApiError> {
    let device_id: u64 = device_id
        .trim()
        .parse()
        .map_err(|_| ApiError::validation("device_id", "must be a device id (a whole number)"))?;
    let admin = acting(&state, &caller);
    let key = admin.resolve(&license_id).await?;
    admin.deactivate_device(&key, device_id).await?;
    Ok(done("Device deactivated successfully"))
}

/// `POST /api/licenses/bulk-*` body (seed 000).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkIds {
    /// Licenses: numeric ids or keys.
    #[schema(schema_with = input::license_ids_schema)]
    pub license_ids: Vec<LicenseId>,
    /// For bulk-delete: the number of licenses, to confirm.
    #[serde(default)]
    pub confirm: Option<serde_json::Value>,
}

/// A license named by numeric id or key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum LicenseId {
    /// Numeric id.
    Id(u64),
    /// License key.
    Key(String),
}

/// `POST /api/licenses/bulk-*` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkDone {
    /// Whether every license was changed.
    pub success: bool,
    /// Licenses changed.
    pub count: usize,
    /// Licenses that failed, with why.
    pub failed: Vec<crate::admin::bulk::BulkFailure>,
    /// What happened.
    pub message: String,
}

async fn bulk_ids(
    state: &AppState,
    caller: &Caller,
    action: BulkAction,
    body: BulkIds,
) -> Result<Json<BulkDone>, ApiError> {
    if body.license_ids.len() > crate::admin::bulk::MAX_BULK {
        return Err(ApiError::validation(
            "license_ids",
            format!("at most {} licenses at once", crate::admin::bulk::MAX_BULK),
        ));
    }
    let admin = acting(state, caller);
    let mut keys = Vec::with_capacity(body.license_ids.len());
    let mut failed = Vec::new();
    // What the document refuses is refused before anything changes: an id past `int64`,
    // text that is no key. A well-formed key or id that names no license is a failure of
    // its own in `failed`.
    for id in &body.license_ids {
        match id {
            LicenseId::Id(n) => {
                input::id("license_ids", *n)?;
            }
            LicenseId::Key(k) => {
                input::license_key("license_ids", k)?;
            }
        }
    }
    for id in &body.license_ids {
        let raw = match id {
            LicenseId::Id(n) => n.to_string(),
            LicenseId::Key(k) => k.clone(),
        };
        match admin.resolve(&raw).await {
            Ok(k) => keys.push(k),
            Err(e) => {
                let (code, error) = classify(&e);
                failed.push(crate::admin::bulk::BulkFailure {
                    license_key: raw,
                    code,
                    error,
                });
            }
        }
    }
    let mut count = 0;
    if !keys.is_empty() {
        let req = BulkRequest {
            action,
            target: BulkTarget::Keys(keys),
            days: None,
            dry_run: false,
            confirm: confirm_text(body.confirm),
            request_id: None,
        };
        let outcome = admin.bulk(req, classify).await?;
        count = outcome.changed;
        failed.extend(outcome.failed);
    } else if body.license_ids.is_empty() {
        return Err(ApiError::validation(
            "license_ids",
            "must name at least one license",
        ));
    }
    Ok(Json(BulkDone {
        success: failed.is_empty(),
        count,
        message: format!("{count} licenses updated"),
        failed,
    }))
}

/// Activate multiple licenses (seed 000).
#[utoipa::path(post, path = "/api/licenses/bulk-activate", tag = "license-admin",
    request_body = BulkIds,
    responses((status = 200, description = "Done", body = BulkDone),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema)),
    security(("bearer" = [])))]
pub async fn bulk_activate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<BulkIds>,
) -> Result<Json<BulkDone>, ApiError> {
    bulk_ids(&state, &caller, BulkAction::Activate, body).await
}

/// Deactivate (suspend) multiple licenses, ending their live sessions (seed 000).
#[utoipa::path(post, path = "/api/licenses/bulk-deactivate", tag = "license-admin",
    request_body = BulkIds,
    responses((status = 200, description = "Done", body = BulkDone),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema)),
    security(("bearer" = [])))]
pub async fn bulk_deactivate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<BulkIds>,
) -> Result<Json<BulkDone>, ApiError> {
    bulk_ids(&state, &caller, BulkAction::Suspend, body).await
}

/// Delete multiple licenses (seed 000); needs `confirm` = the number of licenses.
#[utoipa::path(post, path = "/api/licenses/bulk-delete", tag = "license-admin",
    request_body = BulkIds,
    responses((status = 200, description = "Done", body = BulkDone),
        (status = 400, description = "VALIDATION_ERROR, CONFIRMATION_REQUIRED", body = crate::http::error::ErrorSchema)),
    security(("bearer" = [])))]
pub async fn bulk_delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<BulkIds>,
) -> Result<Json<BulkDone>, ApiError> {
    Access::Admin(Scope::LicensesDelete).admit(Some(&caller), false)?;
    bulk_ids(&state, &caller, BulkAction::Delete, body).await
}
