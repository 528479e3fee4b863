//! Operator endpoints under `/api/admin/licenses` (admin key or operator token, by scope;
//! see `routes.rs`): issue (seed 001), list and find, read one in full, edit, renew, change
//! status, warn, delete, reset devices, list and end sessions, bulk actions. Each handler
//! parses, calls the admin service once (acting as the caller) and renders its answer.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tessera_actors::LimitOverrides;
use utoipa::{IntoParams, ToSchema};

use super::input;
use crate::admin::bulk::{BulkAction, BulkOutcome, BulkRequest, BulkTarget};
use crate::admin::view::{
    AdminLicense, AdminSession, Deleted, HwidResetResult, LicenseList, Renewed, SessionList,
    rfc3339,
};
use crate::admin::{Admin, AdminError, NewLicense, parse_status};
use crate::admin::{LicenseEdit, LicenseFilter, StatusFilter};
use crate::auth::access::Caller;
use crate::auth::scopes::Scope;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ApiJson;
use crate::state::AppState;

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid { field, message } => ApiError::validation(field, message),
            AdminError::License(e) => e.into(),
            AdminError::Store(e) => ApiError::store(e),
            AdminError::CustomerNotFound(_) => {
                ApiError::new(ErrorCode::CustomerNotFound, e.to_string())
            }
            AdminError::ProductNotFound(_) => {
                ApiError::new(ErrorCode::ProductNotFound, e.to_string())
            }
            AdminError::PlanNotFound(_) => ApiError::new(ErrorCode::PlanNotFound, e.to_string()),
            AdminError::Conflict(m) => ApiError::new(ErrorCode::Conflict, m),
            AdminError::DeviceNotFound(_) => {
                ApiError::new(ErrorCode::DeviceNotFound, e.to_string())
            }
            AdminError::ConfirmationRequired => {
                ApiError::new(ErrorCode::ConfirmationRequired, e.to_string())
            }
            AdminError::Unexpected => ApiError::internal(e),
        }
    }
}

/// A bulk failure named as the API names errors (code and sentence).
pub(crate) fn classify(e: &AdminError) -> (String, String) {
    let api = ApiError::from(e.clone());
    let message = match &api {
        ApiError::Code { message, .. } => message.to_string(),
        other => other.code().default_message().to_string(),
    };
    (api.code().as_str().to_string(), message)
}

/// The admin service acting as the authenticated caller (named in its events).
pub(crate) fn acting(state: &AppState, caller: &Caller) -> Admin {
    state.admin.acting_as(caller.actor())
}

/// `POST /api/admin/licenses` body (seed 001's license issue, plus `max_sessions` and `count`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// Plan (must be configured under `[plans.<name>]`); default plan when absent.
    #[serde(default)]
    #[schema(max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub plan: Option<String>,
    /// Product (default: `licenses.default_product`).
    #[serde(default)]
    #[schema(max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub product: Option<String>,
    /// Owner / customer name (default: the customer's name when `customer_id` is given).
    #[serde(default)]
    #[schema(max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub owner: Option<String>,
    /// The customer the licenses belong to (`POST /api/admin/customers`).
    #[serde(default)]
    pub customer_id: Option<u64>,
    /// Seed 001's `level` (recorded as the license type when given).
    #[serde(default)]
    #[schema(max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub level: Option<String>,
    /// Validity in days (default: the plan's, else perpetual).
    #[serde(default)]
    #[schema(maximum = 36525)]
    pub days_valid: Option<u32>,
    /// Lifetime activations (0 = unlimited).
    #[serde(default)]
    #[schema(maximum = 1_000_000)]
    pub max_activations: Option<u32>,
    /// Devices at once.
    #[serde(default)]
    #[schema(maximum = 1_000_000)]
    pub max_devices: Option<u32>,
    /// Live sessions at once (seed 000's `max_users`).
    #[serde(default, alias = "max_users")]
    #[schema(maximum = 1_000_000)]
    pub max_sessions: Option<u32>,
    /// How many licenses to issue (1..=1000, default 1).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
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
        (status = 404, description = "CUSTOMER_NOT_FOUND (`customer_id`)", body = crate::http::error::ErrorSchema),
        (status = 401, description = "UNAUTHENTICATED", body = crate::http::error::ErrorSchema),
        (status = 403, description = "INSUFFICIENT_SCOPE, FORBIDDEN_ROLE", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn issue_licenses(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<IssueRequest>,
) -> Result<(StatusCode, Json<IssueResponse>), ApiError> {
    let owner = input::optional_text("owner", body.owner.as_deref())?;
    input::optional_text("level", body.level.as_deref())?;
    let new = NewLicense {
        plan: input::optional_text("plan", body.plan.as_deref())?,
        product: input::optional_text("product", body.product.as_deref())?,
        customer_name: owner,
        customer_id: body.customer_id,
        overrides: LimitOverrides {
            max_devices: body.max_devices,
            max_activations: body.max_activations,
            max_sessions: body.max_sessions,
            on_session_limit: None,
        },
        days: body.days_valid,
    };
    let licenses: Vec<IssuedLicense> = acting(&state, &caller)
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
    params(("license_key" = String, Path, description = "License key", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")),
    responses(
        (status = 200, description = "The license", body = AdminLicense),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Path(license_key): Path<String>,
) -> Result<Json<AdminLicense>, ApiError> {
    let key = state.admin.resolve(&license_key).await?;
    let detail = state.admin.show_full(&key).await?;
    Ok(Json(AdminLicense::of(&detail, Utc::now())))
}

/// `POST /api/admin/licenses/{key}/status` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// `active`, `suspended`, `revoked` or `banned`.
    #[schema(pattern = "^\\s*(active|suspended|revoked|banned)\\s*$")]
    pub status: String,
    /// Operator note.
    #[serde(default)]
    #[schema(max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub reason: Option<String>,
    /// For `suspended` and `banned`: lapse after this many seconds (default: until changed).
    #[serde(default)]
    #[schema(maximum = 3_162_240_000_f64)]
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
    params(("license_key" = String, Path, description = "License key", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")),
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
    Extension(caller): Extension<Caller>,
    Path(license_key): Path<String>,
    ApiJson(body): ApiJson<StatusRequest>,
) -> Result<Json<StatusResponse>, ApiError> {
    let admin = acting(&state, &caller);
    let key = admin.resolve(&license_key).await?;
    let status = parse_status("status", &body.status)?;
    let reason = input::optional_text("reason", body.reason.as_deref())?;
    let change = admin
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
    #[schema(
        max_length = 256,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
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
    params(("license_key" = String, Path, description = "License key", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")),
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
    Extension(caller): Extension<Caller>,
    Path(license_key): Path<String>,
    ApiJson(body): ApiJson<WarningRequest>,
) -> Result<Json<WarningResponse>, ApiError> {
    let admin = acting(&state, &caller);
    let key = admin.resolve(&license_key).await?;
    let note = input::text("note", &body.note)?;
    let license = admin.add_warning(&key).await?;
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

// ---- listing and changing licenses under /api/admin/licenses ----

/// `GET /api/admin/licenses` query. Every field is optional; all given must match.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// `active`, `suspended`, `revoked`, `banned` or `expired`.
    #[param(pattern = "^\\s*(active|suspended|revoked|banned|expired)?\\s*$")]
    pub status: Option<String>,
    /// Plan name.
    #[param(max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub plan: Option<String>,
    /// Product name.
    #[param(max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub product: Option<String>,
    /// Customer id, or part of the customer name.
    #[param(max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub customer: Option<String>,
    /// Only licenses valid until before this time (RFC 3339 or `YYYY-MM-DD`).
    #[param(schema_with = input::time_filter_schema)]
    pub expires_before: Option<String>,
    /// Part of the key, customer name or note.
    #[param(max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub q: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^\\s*[A-Za-z0-9_-]{0,64}\\s*$")]
    pub cursor: Option<String>,
    /// Rows (1 to 500, default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

/// A date or time as admin inputs take it (see [`crate::admin::edit::parse_time`]).
pub(crate) fn parse_time(
    field: &'static str,
    raw: &str,
) -> Result<chrono::DateTime<Utc>, ApiError> {
    Ok(crate::admin::edit::parse_time(field, raw)?)
}

impl ListQuery {
    fn filter(&self) -> Result<LicenseFilter, ApiError> {
        Ok(LicenseFilter {
            status: match self
                .status
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                Some(s) => Some(StatusFilter::parse("status", s)?),
                None => None,
            },
            plan: input::optional_text("plan", self.plan.as_deref())?,
            product: input::optional_text("product", self.product.as_deref())?,
            customer: input::optional_text("customer", self.customer.as_deref())?,
            expires_before: match self
                .expires_before
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                Some(t) => Some(parse_time("expires_before", t)?),
                None => None,
            },
            q: input::optional_text("q", self.q.as_deref())?,
        })
    }
}

/// List licenses: filters, key order, cursor pagination.
#[utoipa::path(get, path = "/api/admin/licenses", tag = "admin",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of licenses", body = LicenseList),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
        (status = 503, description = "STORE_UNAVAILABLE", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<LicenseList>, ApiError> {
    let filter = q.filter()?;
    let cursor = match q.cursor.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => Some(input::license_key("cursor", c)?),
        None => None,
    };
    let limit = match q.limit.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::validation("limit", "must be a whole number"))?,
        None => crate::admin::list::DEFAULT_PAGE,
    };
    let page = state.admin.list(&filter, cursor, limit).await?;
    Ok(Json(LicenseList::of(&page, Utc::now())))
}

/// Edit a license: validity, limits, plan, customer, note, metadata, features. Fields left
/// out stay; `null` clears `valid_until` (perpetual), `customer_name` and `note`.
#[utoipa::path(patch, path = "/api/admin/licenses/{license_key}", tag = "admin",
    params(("license_key" = String, Path, description = "License key or numeric id", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")),
    request_body = LicenseEdit,
    responses(
        (status = 200, description = "The license after the edit", body = AdminLicense),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn edit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(license_key): Path<String>,
    ApiJson(edit): ApiJson<LicenseEdit>,
) -> Result<Json<AdminLicense>, ApiError> {
    let admin = acting(&state, &caller);
    let key = admin.resolve(&license_key).await?;
    admin.edit(&key, &edit).await?;
    Ok(Json(AdminLicense::of(
        &admin.show_full(&key).await?,
        Utc::now(),
    )))
}

/// `POST /api/admin/licenses/{key}/renew` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// Days to add past the later of `valid_until` and now (1 to 36525).
    #[schema(minimum = 1, maximum = 36525)]
    pub days: u32,
}

/// Renew: extend validity by N days (a perpetual license stays perpetual).
#[utoipa::path(post, path = "/api/admin/licenses/{license_key}/renew", tag = "admin",
    params(("license_key" = String, Path, description = "License key or numeric id", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")),
    request_body = RenewRequest,
    responses(
        (status = 200, description = "Renewed", body = Renewed),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn renew(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(license_key): Path<String>,
    ApiJson(body): ApiJson<RenewRequest>,
) -> Result<Json<Renewed>, ApiError> {
    let admin = acting(&state, &caller);
    let key = admin.resolve(&license_key).await?;
    let view = admin.renew(&key, body.days).await?;
    Ok(Json(Renewed {
        license_key: key.to_string(),
        valid_until: view.record.valid_until.map(rfc3339),
    }))
}

/// Apply a bundle preset (seed 001): the preset's features replace the license's, its
/// limits and plan apply, validity runs one more cycle (`lifetime`: forever).
#[utoipa::path(post, path = "/api/admin/licenses/{license_key}/bundle", tag = "admin",
    params(("license_key" = String, Path, description = "License key or numeric id", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")),
    request_body = crate::admin::BundleRequest,
    responses(
        (status = 200, description = "The license after the bundle", body = AdminLicense),
        (status = 400, description = "VALIDATION_ERROR: unknown preset or cycle", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn bundle(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(license_key): Path<String>,
    ApiJson(body): ApiJson<crate::admin::BundleRequest>,
) -> Result<Json<AdminLicense>, ApiError> {
    let admin = acting(&state, &caller);
    let key = admin.resolve(&license_key).await?;
    admin.bundle(&key, &body).await?;
    let detail = admin.show_full(&key).await?;
    Ok(Json(AdminLicense::of(&detail, Utc::now())))
}

/// `GET /api/admin/presets` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct PresetList {
    /// Every `[presets.NAME]` in force, by name.
    pub presets: Vec<crate::admin::PresetView>,
}

/// The bundle presets a license can be given (`[presets.NAME]` of the configuration).
#[utoipa::path(get, path = "/api/admin/presets", tag = "admin",
    responses((status = 200, description = "The presets", body = PresetList)),
    security(("bearer" = [])))]
pub async fn presets(State(state): State<AppState>) -> Json<PresetList> {
    Json(PresetList {
        presets: state.admin.presets(),
    })
}

/// `DELETE /api/admin/licenses/{key}` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// The license key itself, to confirm.
    #[serde(default)]
    pub confirm: Option<String>,
}

/// Delete a license: live sessions end (`admin`), devices go, resources return to their
/// pools. Needs `confirm` = the license key.
#[utoipa::path(delete, path = "/api/admin/licenses/{license_key}", tag = "admin",
    params(("license_key" = String, Path, description = "License key or numeric id", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")),
    request_body = DeleteRequest,
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 400, description = "CONFIRMATION_REQUIRED", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(license_key): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Deleted>, ApiError> {
    // The body is optional (DELETE): without one the confirmation is missing.
    let confirm = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<DeleteRequest>(&body)
            .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("invalid body: {e}")))?
            .confirm
    };
    let admin = acting(&state, &caller);
    let key = admin.resolve(&license_key).await?;
    let ended = admin.delete(&key, confirm.as_deref()).await?;
    Ok(Json(Deleted {
        deleted: key.to_string(),
        ended_sessions: ended,
    }))
}

/// `POST /api/admin/licenses/{key}/hwid-reset` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HwidResetRequest {
    /// Also start the lifetime activation count again from zero.
    #[serde(default)]
    pub refund_activations: bool,
}

/// Deactivate every device of a license (their sessions end with `deactivated`).
#[utoipa::path(post, path = "/api/admin/licenses/{license_key}/hwid-reset", tag = "admin",
    params(("license_key" = String, Path, description = "License key or numeric id", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")),
    request_body = HwidResetRequest,
    responses(
        (status = 200, description = "Reset", body = HwidResetResult),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn hwid_reset(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(license_key): Path<String>,
    ApiJson(body): ApiJson<HwidResetRequest>,
) -> Result<Json<HwidResetResult>, ApiError> {
    let admin = acting(&state, &caller);
    let key = admin.resolve(&license_key).await?;
    let refund = body.refund_activations;
    let reset = admin.hwid_reset(&key, refund).await?;
    Ok(Json(HwidResetResult {
        deactivated: reset.deactivated,
        ended_sessions: reset.ended_sessions,
    }))
}

/// A license's live sessions.
#[utoipa::path(get, path = "/api/admin/licenses/{license_key}/sessions", tag = "admin",
    params(("license_key" = String, Path, description = "License key or numeric id", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")),
    responses(
        (status = 200, description = "Live sessions", body = SessionList),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn sessions(
    State(state): State<AppState>,
    Path(license_key): Path<String>,
) -> Result<Json<SessionList>, ApiError> {
    let key = state.admin.resolve(&license_key).await?;
    let sessions = state.admin.sessions(&key).await?;
    Ok(Json(SessionList {
        sessions: sessions.iter().map(AdminSession::from).collect(),
    }))
}

/// End one live session with reason `admin` (the client learns it at its next heartbeat,
/// or at once over the session WebSocket).
#[utoipa::path(delete, path = "/api/admin/licenses/{license_key}/sessions/{session_id}", tag = "admin",
    params(
        ("license_key" = String, Path, description = "License key or numeric id", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$"),
        ("session_id" = String, Path, description = "Session id (SHA-256 hex of the token)", pattern = "^\\s*[0-9A-Fa-f]{64}\\s*$"),
    ),
    responses(
        (status = 204, description = "Ended"),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND, SESSION_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn kick(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((license_key, session_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let admin = acting(&state, &caller);
    let key = admin.resolve(&license_key).await?;
    admin.kick(&key, &session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/admin/licenses/bulk` body: `keys` or `filter`, not both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// `activate`, `suspend`, `revoke`, `renew`, `hwid-reset` or `delete`.
    pub action: BulkAction,
    /// For `renew`: days.
    #[serde(default)]
    pub days: Option<u32>,
    /// These licenses.
    #[serde(default)]
    pub keys: Option<Vec<String>>,
    /// Or every license this filter matches.
    #[serde(default)]
    pub filter: Option<LicenseFilter>,
    /// Only report what would be touched.
    #[serde(default)]
    pub dry_run: bool,
    /// For `delete`: the number of licenses matched (from a dry run).
    #[serde(default)]
    pub confirm: Option<serde_json::Value>,
    /// A retry with the same id returns the first run's outcome.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// The confirmation of a bulk delete, sent as a number or a string.
pub(crate) fn confirm_text(v: Option<serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One action over many licenses, with a dry-run preview.
#[utoipa::path(post, path = "/api/admin/licenses/bulk", tag = "admin",
    request_body = BulkBody,
    responses(
        (status = 200, description = "What was (or would be) done", body = BulkOutcome),
        (status = 400, description = "VALIDATION_ERROR, CONFIRMATION_REQUIRED", body = crate::http::error::ErrorSchema),
        (status = 403, description = "INSUFFICIENT_SCOPE (delete needs licenses:delete)", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn bulk(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<BulkBody>,
) -> Result<Json<BulkOutcome>, ApiError> {
    // Deleting needs the delete scope, whatever the route's own scope is.
    if body.action == BulkAction::Delete {
        crate::auth::access::Access::Admin(Scope::LicensesDelete).admit(Some(&caller), false)?;
    }
    let target = match (body.keys, body.filter) {
        (Some(keys), None) => BulkTarget::Keys(
            keys.iter()
                .map(|k| input::license_key("keys", k))
                .collect::<Result<_, _>>()?,
        ),
        (None, Some(filter)) => BulkTarget::Filter(filter),
        _ => {
            return Err(ApiError::validation(
                "keys",
                "send either `keys` or `filter`",
            ));
        }
    };
    let req = BulkRequest {
        action: body.action,
        target,
        days: body.days,
        dry_run: body.dry_run,
        confirm: confirm_text(body.confirm),
        request_id: body.request_id,
    };
    Ok(Json(acting(&state, &caller).bulk(req, classify).await?))
}
