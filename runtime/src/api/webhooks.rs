//! Webhooks (`/api/admin/webhooks`): endpoints, secret rotation, the delivery log and
//! redelivery. Every route needs `webhooks:write` (see `routes.rs`); each handler calls the
//! webhook service once.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::access::Caller;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::{ApiJson, parse_json};
use crate::state::AppState;

use crate::webhooks::{
    CreatedEndpoint, DEFAULT_PAGE, DeliveryPage, DeliveryView, EndpointPage, EndpointPatch,
    EndpointView, NewEndpoint, RotatedSecret, WebhookError, Webhooks,
};

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Invalid { field, message } => ApiError::validation(field, message),
            WebhookError::NotFound(_) => ApiError::new(ErrorCode::WebhookNotFound, e.to_string()),
            WebhookError::DeliveryNotFound { .. } => {
                ApiError::new(ErrorCode::WebhookDeliveryNotFound, e.to_string())
            }
            WebhookError::TargetRefused(m) => ApiError::new(ErrorCode::WebhookTargetRefused, m),
            WebhookError::Conflict(m) => ApiError::new(ErrorCode::Conflict, m),
            WebhookError::Store(s) => s.into(),
            WebhookError::Corrupt(_) => ApiError::internal(e),
        }
    }
}

fn acting(state: &AppState, caller: &Caller) -> Webhooks {
    state
        .webhooks
        .acting_as(caller.actor(), state.admin.events())
}

/// `?limit=&cursor=` of the listings.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// At most this many (1 to 500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^\\s*([0-9]{1,19})?\\s*$")]
    pub cursor: Option<String>,
}

impl PageQuery {
    /// `limit`, refused outside 1 to 500 as the document says (not clamped).
    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(n) if (1..=500).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::validation("limit", "must be between 1 and 500")),
        }
    }
}

/// `POST /api/admin/webhooks/{id}/rotate-secret` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the old secret keeps signing (deliveries carry both signatures meanwhile):
    /// default 86400 (24 h), at most 2592000 (30 days), 0 for no overlap.
    #[serde(default)]
    #[schema(maximum = 2592000)]
    pub overlap_secs: Option<u64>,
}

/// Register a webhook endpoint; the answer carries its signing secret, shown this once.
#[utoipa::path(post, path = "/api/admin/webhooks", tag = "webhooks",
    request_body = NewEndpoint,
    responses(
        (status = 201, description = "Created, with its secret", body = CreatedEndpoint),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON, WEBHOOK_TARGET_REFUSED (an internal address while webhooks.allow_private_targets is off)", body = crate::http::error::ErrorSchema),
        (status = 409, description = "CONFLICT: 100 endpoints exist", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewEndpoint>,
) -> Result<(StatusCode, Json<CreatedEndpoint>), ApiError> {
    let created = acting(&state, &caller).create(body).await?;
    // The audit keeps the endpoint, never its secret.
    let mut shown = serde_json::to_value(&created).unwrap_or_default();
    if let Some(o) = shown.as_object_mut() {
        o.remove("secret");
    }
    let target = format!("webhook:{}", shown["id"]);
    super::audit::audit_only(
        &state,
        &caller,
        "admin.webhook.created",
        target,
        "webhook endpoint created".into(),
        shown,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// List webhook endpoints (never their secrets).
#[utoipa::path(get, path = "/api/admin/webhooks", tag = "webhooks",
    params(PageQuery),
    responses(
        (status = 200, description = "Endpoints by id", body = EndpointPage),
        (status = 400, description = "VALIDATION_ERROR: a bad cursor", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
) -> Result<Json<EndpointPage>, ApiError> {
    let page = state
        .webhooks
        .list(
            super::input::numeric_cursor("cursor", q.cursor.as_deref())?,
            q.limit()?,
        )
        .await?;
    Ok(Json(page))
}

/// Read a webhook endpoint.
#[utoipa::path(get, path = "/api/admin/webhooks/{id}", tag = "webhooks",
    params(("id" = u64, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 404, description = "WEBHOOK_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    Ok(Json(state.webhooks.get(&id).await?))
}

/// Change a webhook endpoint (absent fields stay); enabling clears its failure streak.
#[utoipa::path(patch, path = "/api/admin/webhooks/{id}", tag = "webhooks",
    params(("id" = u64, Path, description = "Endpoint id")),
    request_body = EndpointPatch,
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON, WEBHOOK_TARGET_REFUSED", body = crate::http::error::ErrorSchema),
        (status = 404, description = "WEBHOOK_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn edit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EndpointPatch>,
) -> Result<Json<EndpointView>, ApiError> {
    let view = acting(&state, &caller).edit(&id, body).await?;
    let after = serde_json::to_value(&view).unwrap_or_default();
    super::audit::audit_only(
        &state,
        &caller,
        "admin.webhook.edited",
        format!("webhook:{id}"),
        "webhook endpoint edited".into(),
        after,
    )
    .await?;
    Ok(Json(view))
}

/// Delete a webhook endpoint; its pending deliveries are not sent.
#[utoipa::path(delete, path = "/api/admin/webhooks/{id}", tag = "webhooks",
    params(("id" = u64, Path, description = "Endpoint id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "WEBHOOK_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    acting(&state, &caller).delete(&id).await?;
    super::audit::audit_only(
        &state,
        &caller,
        "admin.webhook.deleted",
        format!("webhook:{id}"),
        "webhook endpoint deleted".into(),
        serde_json::Value::Null,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate the signing secret; the old one keeps signing for `overlap_secs`.
#[utoipa::path(post, path = "/api/admin/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = u64, Path, description = "Endpoint id")),
    request_body(content = RotateRequest, description = "Optional; `{}` or no body for the 24 h default"),
    responses(
        (status = 200, description = "The new secret, shown this once", body = RotatedSecret),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON", body = crate::http::error::ErrorSchema),
        (status = 404, description = "WEBHOOK_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<RotatedSecret>, ApiError> {
    // The body is optional: none (or blank) rotates with the default overlap.
    let overlap = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        parse_json::<RotateRequest>(&body)?.overlap_secs
    };
    let rotated = acting(&state, &caller).rotate_secret(&id, overlap).await?;
    super::audit::audit_only(
        &state,
        &caller,
        "admin.webhook.secret_rotated",
        format!("webhook:{id}"),
        "webhook secret rotated".into(),
        serde_json::json!({ "overlap_secs": overlap }),
    )
    .await?;
    Ok(Json(rotated))
}

/// An endpoint's delivery log, newest first (the newest
/// `webhooks.max_deliveries_per_endpoint` are kept).
#[utoipa::path(get, path = "/api/admin/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = u64, Path, description = "Endpoint id"), PageQuery),
    responses(
        (status = 200, description = "Deliveries, newest first", body = DeliveryPage),
        (status = 400, description = "VALIDATION_ERROR: a bad cursor", body = crate::http::error::ErrorSchema),
        (status = 404, description = "WEBHOOK_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let page = state
        .webhooks
        .deliveries(
            &id,
            super::input::numeric_cursor("cursor", q.cursor.as_deref())?,
            q.limit()?,
        )
        .await?;
    Ok(Json(page))
}

/// Send a delivery again (same `webhook-id`, a fresh retry schedule), now if there is room.
#[utoipa::path(post, path = "/api/admin/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(
        ("id" = u64, Path, description = "Endpoint id"),
        ("delivery_id" = u64, Path, description = "Delivery id"),
    ),
    responses(
        (status = 202, description = "Queued", body = DeliveryView),
        (status = 404, description = "WEBHOOK_NOT_FOUND, WEBHOOK_DELIVERY_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 409, description = "CONFLICT: the endpoint is disabled, or an attempt is running", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn redeliver(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let view = acting(&state, &caller).redeliver(&id, &delivery_id).await?;
    super::audit::audit_only(
        &state,
        &caller,
        "admin.webhook.redelivered",
        format!("webhook:{id}"),
        format!("delivery {delivery_id} queued again"),
        serde_json::json!({ "delivery_id": delivery_id }),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}
