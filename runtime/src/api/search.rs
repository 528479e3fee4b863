//! Seed 000's global search, `GET /api/search?q=&type=&limit=`, in its exact shape.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::admin::search::DEFAULT_LIMIT;
use crate::admin::{SearchResults, SearchType};
use crate::http::error::ApiError;
use crate::state::AppState;

/// `GET /api/search` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct SearchQuery {
    /// Search text: a prefix of a word (or of the whole field) of a customer's name, email
    /// or company, a license's key, customer or note, a device's hardware hash or name.
    pub q: String,
    /// Only this type: `customer`, `license` or `device`.
    #[serde(rename = "type")]
    #[param(value_type = Option<String>)]
    pub kind: Option<SearchType>,
    /// Most results (default 20, at most 100).
    pub limit: Option<usize>,
}

/// Search customers, licenses and devices (seed 000).
#[utoipa::path(get, path = "/api/search", tag = "customers",
    params(SearchQuery),
    responses(
        (status = 200, description = "Hits, customers first", body = SearchResults),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn search(
    State(state): State<AppState>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    Ok(Json(
        state
            .admin
            .search(&q.q, q.kind, q.limit.unwrap_or(DEFAULT_LIMIT))
            .await?,
    ))
}
