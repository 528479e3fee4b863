//! The first operator endpoints under `/api/admin` (admin key or operator token, by scope;
//! see `routes.rs`): issue licenses (seed 001), read one with its live sessions, change its status.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tessera_actors::LimitOverrides;
use utoipa::ToSchema;

use super::input;
use crate::admin::view::{AdminLicense, rfc3339};
use crate::admin::{AdminError, NewLicense, parse_status};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ApiJson;
use crate::state::AppState;

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid { field, message } => ApiError::validation(field, message),
            AdminError::License(e) => e.into(),
            AdminError::Store(e) => ApiError::store(e),
            AdminError::Unexpected => ApiError::internal(e),
        }
    }
}

/// `POST /api/admin/licenses` body (seed 001's license issue, plus `max_sessions` and `count`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// Plan (must be configured under `[plans.<name>]`); default plan when absent.
    #[serde(default)]
    pub plan: Option<String>,
    /// Product (default: `licenses.default_product`).
    #[serde(default)]
    pub product: Option<String>,
    /// Owner / customer name.
    #[serde(default)]
    pub owner: Option<String>,
    /// Seed 001's `level` (recorded as the license type when given).
    #[serde(default)]
    pub level: Option<String>,
    /// Validity in days (default: the plan's, else perpetual).
    #[serde(default)]
    pub days_valid: Option<u32>,
    /// Lifetime activations (0 = unlimited).
    #[serde(default)]
    pub max_activations: Option<u32>,
    /// Devices at once.
    #[serde(default)]
    pub max_devices: Option<u32>,
    /// Live sessions at once (seed 000's `max_users`).
    #[serde(default, alias = "max_users")]
    pub max_sessions: Option<u32>,
    /// How many licenses to issue (1..=1000, default 1).
    #[serde(default)]
    pub count: Option<u32>,
}

/// One issued license.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedLicense {
    /// The key to hand to the customer.
    pub license_key: String,
    /// Numeric id.
    pub id: u64,
    /// Plan.
    pub plan: String,
    /// Product.
    pub product: String,
    /// End of validity (RFC 3339) or null.
    pub valid_until: Option<String>,
}

/// `POST /api/admin/licenses` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssueResponse {
    /// How many were issued.
    pub count: usize,
    /// The licenses.
    pub licenses: Vec<IssuedLicense>,
}

/// Issue licenses.
#[utoipa::path(post, path = "/api/admin/licenses", tag = "admin",
    request_body = IssueRequest,
    responses(
        (status = 201, description = "Issued", body = IssueResponse),
        (status = 400, description = "VALIDATION_ERROR (unknown plan or product, count out of range)", body = crate::http::error::ErrorSchema),
        (status = 401, description = "UNAUTHENTICATED", body = crate::http::error::ErrorSchema),
        (status = 403, description = "INSUFFICIENT_SCOPE, FORBIDDEN_ROLE", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn issue_licenses(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<IssueRequest>,
) -> Result<(StatusCode, Json<IssueResponse>), ApiError> {
    let owner = input::optional_text("owner", body.owner.as_deref())?;
    input::optional_text("level", body.level.as_deref())?;
    let new = NewLicense {
        plan: input::optional_text("plan", body.plan.as_deref())?,
        product: input::optional_text("product", body.product.as_deref())?,
        customer_name: owner,
        overrides: LimitOverrides {
            max_devices: body.max_devices,
            max_activations: body.max_activations,
            max_sessions: body.max_sessions,
            on_session_limit: None,
        },
        days: body.days_valid,
    };
    let licenses: Vec<IssuedLicense> = state
        .admin
        .issue(new, body.count.unwrap_or(1))
        .await?
        .into_iter()
        .map(|record| IssuedLicense {
            license_key: record.key.to_string(),
            id: record.id,
            plan: record.plan,
            product: record.product,
            valid_until: record.valid_until.map(rfc3339),
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(IssueResponse {
            count: licenses.len(),
            licenses,
        }),
    ))
}

/// Read a license with its effective limits and live sessions.
#[utoipa::path(get, path = "/api/admin/licenses/{license_key}", tag = "admin",
    params(("license_key" = String, Path, description = "License key")),
    responses(
        (status = 200, description = "The license", body = AdminLicense),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Path(license_key): Path<String>,
) -> Result<Json<AdminLicense>, ApiError> {
    let key = input::license_key("license_key", &license_key)?;
    let detail = state.admin.show(&key).await?;
    Ok(Json(AdminLicense::of(&detail, Utc::now())))
}

/// `POST /api/admin/licenses/{key}/status` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// `active`, `suspended`, `revoked` or `banned`.
    pub status: String,
    /// Operator note.
    #[serde(default)]
    pub reason: Option<String>,
    /// For `suspended` and `banned`: lapse after this many seconds (default: until changed).
    #[serde(default)]
    pub duration_secs: Option<u64>,
}

/// `POST /api/admin/licenses/{key}/status` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusResponse {
    /// New status.
    pub status: String,
    /// Live sessions ended by the change (their end reason is the status).
    pub ended_sessions: u32,
}

/// Change a license's status; anything but `active` ends its live sessions.
#[utoipa::path(post, path = "/api/admin/licenses/{license_key}/status", tag = "admin",
    params(("license_key" = String, Path, description = "License key")),
    request_body = StatusRequest,
    responses(
        (status = 200, description = "Changed", body = StatusResponse),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 503, description = "STORE_UNAVAILABLE", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn set_status(
    State(state): State<AppState>,
    Path(license_key): Path<String>,
    ApiJson(body): ApiJson<StatusRequest>,
) -> Result<Json<StatusResponse>, ApiError> {
    let key = input::license_key("license_key", &license_key)?;
    let status = parse_status("status", &body.status)?;
    let reason = input::optional_text("reason", body.reason.as_deref())?;
    let change = state
        .admin
        .set_status(&key, status, reason, body.duration_secs)
        .await?;
    Ok(Json(StatusResponse {
        status: change.status.as_str().into(),
        ended_sessions: change.ended_sessions,
    }))
}

/// `POST /api/admin/licenses/{key}/warnings` body (seed 001's warning).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarningRequest {
    /// Why the warning is recorded.
    pub note: String,
}

/// `POST /api/admin/licenses/{key}/warnings` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct WarningResponse {
    /// Warnings recorded on the license now.
    pub warnings: u32,
    /// Whether policy (e.g. the ban-threshold plugin) banned the license for it.
    pub banned: bool,
}

/// Record a warning; policy plugins (`on_warning`) decide whether it becomes a ban.
#[utoipa::path(post, path = "/api/admin/licenses/{license_key}/warnings", tag = "admin",
    params(("license_key" = String, Path, description = "License key")),
    request_body = WarningRequest,
    responses(
        (status = 200, description = "Recorded", body = WarningResponse),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 503, description = "STORE_UNAVAILABLE", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn add_warning(
    State(state): State<AppState>,
    Path(license_key): Path<String>,
    ApiJson(body): ApiJson<WarningRequest>,
) -> Result<Json<WarningResponse>, ApiError> {
    let key = input::license_key("license_key", &license_key)?;
    let note = input::text("note", &body.note)?;
    let license = state.admin.add_warning(&key).await?;
    tracing::info!(license = %key.masked(), warnings = license.record.warnings, note = %note, "warning recorded");
    let banned = match state.policy.after_warning(&license, &note, "admin").await {
        Ok(()) => false,
        Err(e) if e.code() == ErrorCode::LicenseBanned => true,
        Err(e) => return Err(e),
    };
    Ok(Json(WarningResponse {
        warnings: license.record.warnings,
        banned,
    }))
}
