//! The first operator endpoints under `/api/admin` (system API key): issue licenses
//! (seed 001's issue shape), read one with its live sessions, change its status.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tessera_actors::{LicenseStatus, LimitOverrides, Reply, Request};
use utoipa::ToSchema;

use super::input;
use super::license::{rfc3339, unexpected};
use crate::error::{ApiError, ErrorCode};
use crate::extract::ApiJson;
use crate::licenses::{IssueError, NewLicense, issue};
use crate::state::AppState;

/// Most licenses one issue request may create.
pub const MAX_ISSUE_COUNT: u32 = 1_000;

/// Admin routes (authenticated, `api` rate limit).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/licenses", post(issue_licenses))
        .route("/api/admin/licenses/{license_key}", get(show))
        .route("/api/admin/licenses/{license_key}/status", post(set_status))
        .route(
            "/api/admin/licenses/{license_key}/warnings",
            post(add_warning),
        )
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
        (status = 400, description = "VALIDATION_ERROR (unknown plan or product, count out of range)", body = crate::api::openapi::ErrorSchema),
        (status = 401, description = "INVALID_API_KEY", body = crate::api::openapi::ErrorSchema),
    ),
    security(("api_key" = [])))]
pub async fn issue_licenses(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<IssueRequest>,
) -> Result<(StatusCode, Json<IssueResponse>), ApiError> {
    let count = body.count.unwrap_or(1);
    if !(1..=MAX_ISSUE_COUNT).contains(&count) {
        return Err(ApiError::validation(
            "count",
            format!("must be between 1 and {MAX_ISSUE_COUNT}"),
        ));
    }
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
    let mut licenses = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let record = issue(
            &state.config,
            state.licenses.store().as_ref(),
            new.clone(),
            Utc::now(),
        )
        .await
        .map_err(|e| match e {
            IssueError::UnknownPlan(p) => {
                ApiError::validation("plan", format!("unknown plan `{p}`"))
            }
            IssueError::UnknownProduct(p) => {
                ApiError::validation("product", format!("unknown product `{p}`"))
            }
            IssueError::Store(e) => ApiError::store(e),
        })?;
        licenses.push(IssuedLicense {
            license_key: record.key.to_string(),
            id: record.id,
            plan: record.plan,
            product: record.product,
            valid_until: record.valid_until.map(rfc3339),
        });
    }
    metrics::counter!("tessera_licenses_issued_total").increment(licenses.len() as u64);
    Ok((
        StatusCode::CREATED,
        Json(IssueResponse {
            count: licenses.len(),
            licenses,
        }),
    ))
}

/// A live session in the admin view (never its token).
#[derive(Debug, Serialize, ToSchema)]
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

/// `GET /api/admin/licenses/{key}` reply.
#[derive(Debug, Serialize, ToSchema)]
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

/// Read a license with its effective limits and live sessions.
#[utoipa::path(get, path = "/api/admin/licenses/{license_key}", tag = "admin",
    params(("license_key" = String, Path, description = "License key")),
    responses(
        (status = 200, description = "The license", body = AdminLicense),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::api::openapi::ErrorSchema),
    ),
    security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Path(license_key): Path<String>,
) -> Result<Json<AdminLicense>, ApiError> {
    let key = input::license_key("license_key", &license_key)?;
    let reply = state.licenses.call(&key, Request::Info).await?;
    let Reply::Info {
        license, sessions, ..
    } = reply
    else {
        return Err(unexpected(&reply));
    };
    Ok(Json(admin_view(&license, &sessions)))
}

/// The admin view of a license (shared with `tessera license show`).
pub fn admin_view(
    license: &tessera_actors::LicenseView,
    sessions: &[tessera_actors::SessionRecord],
) -> AdminLicense {
    let r = &license.record;
    AdminLicense {
        license_key: r.key.to_string(),
        status: r.effective_status(Utc::now()).as_str().into(),
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
        sessions: sessions
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
        (status = 400, description = "VALIDATION_ERROR", body = crate::api::openapi::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::api::openapi::ErrorSchema),
        (status = 503, description = "STORE_UNAVAILABLE", body = crate::api::openapi::ErrorSchema),
    ),
    security(("api_key" = [])))]
pub async fn set_status(
    State(state): State<AppState>,
    Path(license_key): Path<String>,
    ApiJson(body): ApiJson<StatusRequest>,
) -> Result<Json<StatusResponse>, ApiError> {
    let key = input::license_key("license_key", &license_key)?;
    let status = match body.status.trim() {
        "active" => LicenseStatus::Active,
        "suspended" => LicenseStatus::Suspended,
        "revoked" => LicenseStatus::Revoked,
        "banned" => LicenseStatus::Banned,
        other => {
            return Err(ApiError::new(
                ErrorCode::ValidationError,
                format!("status: `{other}` is not one of active, suspended, revoked, banned"),
            ));
        }
    };
    let reason = input::optional_text("reason", body.reason.as_deref())?;
    let reply = state
        .licenses
        .call(
            &key,
            Request::SetStatus {
                status,
                reason,
                until: crate::licenses::lapse_after(body.duration_secs),
            },
        )
        .await?;
    let Reply::StatusSet { ended_sessions, .. } = reply else {
        return Err(unexpected(&reply));
    };
    Ok(Json(StatusResponse {
        status: status.as_str().into(),
        ended_sessions,
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
        (status = 400, description = "VALIDATION_ERROR", body = crate::api::openapi::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::api::openapi::ErrorSchema),
        (status = 503, description = "STORE_UNAVAILABLE", body = crate::api::openapi::ErrorSchema),
    ),
    security(("api_key" = [])))]
pub async fn add_warning(
    State(state): State<AppState>,
    Path(license_key): Path<String>,
    ApiJson(body): ApiJson<WarningRequest>,
) -> Result<Json<WarningResponse>, ApiError> {
    let key = input::license_key("license_key", &license_key)?;
    let note = input::text("note", &body.note)?;
    let patch = tessera_actors::LicensePatch {
        add_warnings: 1,
        ..Default::default()
    };
    let reply = state.licenses.call(&key, Request::Update(patch)).await?;
    let Reply::Updated { license } = reply else {
        return Err(unexpected(&reply));
    };
    tracing::info!(license = %key, warnings = license.record.warnings, note = %note, "warning recorded");
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
