//! Seed 000's Version API: update checks against each product's release channel
//! (configured under `[products.<id>]`, published at run time through
//! `POST /api/admin/products/{id}/releases`).

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use tessera_actors::{Reply, Request};
use tessera_config::ProductConfig;
use utoipa::{IntoParams, ToSchema};

use super::input;
use super::license::{product, unexpected};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ApiJson;
use crate::state::AppState;

/// `POST /api/version/check` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CheckRequest {
    /// The client's version.
    #[schema(
        max_length = 256,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub current_version: String,
    /// License key; its product's channel is used (else the default product's).
    #[serde(default)]
    #[schema(pattern = "^\\s*([A-Za-z0-9_-]{1,64})?\\s*$")]
    pub license_key: Option<String>,
}

/// `POST /api/version/check` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResponse {
    /// Whether `latest_version` is newer than `current_version`.
    pub update_available: bool,
    /// Latest version.
    pub latest_version: String,
    /// Where to download it.
    pub download_url: String,
    /// Its release notes.
    pub release_notes: String,
}

/// Check for an update.
#[utoipa::path(post, path = "/api/version/check", tag = "version",
    request_body = CheckRequest,
    responses(
        (status = 200, description = "Update information", body = CheckResponse),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("api_key" = [])))]
pub async fn check(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CheckRequest>,
) -> Result<Json<CheckResponse>, ApiError> {
    let current = input::text("current_version", &body.current_version)?;
    let product_id = match input::optional_text("license_key", body.license_key.as_deref())? {
        Some(k) => {
            let key = input::license_key("license_key", &k)?;
            match state.licenses.call(&key, Request::Info).await? {
                Reply::Info { license, .. } => license.record.product,
                other => return Err(unexpected(&other)),
            }
        }
        None => state.config.licenses.default_product.clone(),
    };
    let p = release(&state, &product_id)?;
    Ok(Json(CheckResponse {
        update_available: input::is_newer(&p.latest_version, &current),
        latest_version: p.latest_version.clone(),
        download_url: p.download_url.clone(),
        release_notes: p.release_notes.clone(),
    }))
}

fn release(state: &AppState, product_id: &str) -> Result<ProductConfig, ApiError> {
    product(state, product_id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("No release channel is configured for product `{product_id}`"),
        )
    })
}

/// `GET /api/version/latest` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LatestQuery {
    /// Product id (default: the default product).
    pub product: Option<String>,
}

/// `GET /api/version/latest` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatestResponse {
    /// Latest version.
    pub version: String,
    /// Its release date.
    pub release_date: String,
    /// Where to download it.
    pub download_url: String,
    /// Its release notes.
    pub release_notes: String,
}

/// Latest version of a product.
#[utoipa::path(get, path = "/api/version/latest", tag = "version",
    params(LatestQuery),
    responses(
        (status = 200, description = "Latest release", body = LatestResponse),
        (status = 404, description = "NOT_FOUND: unknown product", body = crate::http::error::ErrorSchema),
    ),
    security(("api_key" = [])))]
pub async fn latest(
    State(state): State<AppState>,
    Query(q): Query<LatestQuery>,
) -> Result<Json<LatestResponse>, ApiError> {
    let id = q
        .product
        .unwrap_or_else(|| state.config.licenses.default_product.clone());
    if !state.admin.catalog().snapshot().products.contains_key(&id) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("Unknown product `{id}`"),
        ));
    }
    let p = release(&state, &id)?;
    Ok(Json(LatestResponse {
        version: p.latest_version.clone(),
        release_date: p.release_date.clone(),
        download_url: p.download_url.clone(),
        release_notes: p.release_notes.clone(),
    }))
}
