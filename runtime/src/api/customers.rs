//! Customers: seed 000's Select2 search (`GET /api/customers?q=&page=`, its exact shape)
//! and the admin CRUD under `/api/admin/customers`. Operator routes (see `routes.rs`); each
//! handler calls the admin service once.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::admin::acting;
use super::input;
use crate::admin::customers::{MAX_CUSTOMER_LICENSES, SELECT2_PAGE};
use crate::admin::view::CustomerLicenses;
use crate::admin::{Customer, CustomerInput, CustomerPage, NewCustomer};
use crate::auth::access::Caller;
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::state::AppState;

/// `GET /api/customers` and `GET /api/admin/customers` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct CustomerQuery {
    /// Search text: a prefix of a word of the name, email or company (blank: everyone).
    pub q: Option<String>,
    /// Page number, from 1 (default 1, at most 50).
    #[param(minimum = 1, maximum = 50)]
    pub page: Option<u32>,
}

/// One Select2 option.
#[derive(Debug, Serialize, ToSchema)]
pub struct Select2Option {
    /// Customer id.
    pub id: u64,
    /// `"Name - email"`.
    pub text: String,
}

/// Select2's pagination block.
#[derive(Debug, Serialize, ToSchema)]
pub struct Select2Pagination {
    /// Whether another page follows.
    pub more: bool,
}

/// `GET /api/customers` reply (seed 000, Select2).
#[derive(Debug, Serialize, ToSchema)]
pub struct Select2Reply {
    /// The options.
    pub results: Vec<Select2Option>,
    /// Pagination.
    pub pagination: Select2Pagination,
}

/// Search customers for a Select2 dropdown (seed 000).
#[utoipa::path(get, path = "/api/customers", tag = "customers",
    params(CustomerQuery),
    responses(
        (status = 200, description = "Matching customers, 20 per page", body = Select2Reply),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn select2(
    State(state): State<AppState>,
    Query(q): Query<CustomerQuery>,
) -> Result<Json<Select2Reply>, ApiError> {
    let page = state
        .admin
        .customers(q.q.as_deref(), q.page.unwrap_or(1), SELECT2_PAGE)
        .await?;
    Ok(Json(Select2Reply {
        results: page
            .customers
            .iter()
            .map(|c| Select2Option {
                id: c.id,
                text: c.select2_text(),
            })
            .collect(),
        pagination: Select2Pagination { more: page.more },
    }))
}

/// List customers in full (admin).
#[utoipa::path(get, path = "/api/admin/customers", tag = "customers",
    params(CustomerQuery),
    responses(
        (status = 200, description = "Matching customers, 20 per page", body = CustomerPage),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<CustomerQuery>,
) -> Result<Json<CustomerPage>, ApiError> {
    Ok(Json(
        state
            .admin
            .customers(q.q.as_deref(), q.page.unwrap_or(1), SELECT2_PAGE)
            .await?,
    ))
}

/// Create a customer.
#[utoipa::path(post, path = "/api/admin/customers", tag = "customers",
    request_body = NewCustomer,
    responses(
        (status = 201, description = "Created", body = Customer),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewCustomer>,
) -> Result<(StatusCode, Json<Customer>), ApiError> {
    let c = acting(&state, &caller)
        .create_customer(&CustomerInput::from(body))
        .await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// Read a customer.
#[utoipa::path(get, path = "/api/admin/customers/{id}", tag = "customers",
    params(("id" = u64, Path, description = "Customer id")),
    responses(
        (status = 200, description = "The customer", body = Customer),
        (status = 404, description = "CUSTOMER_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<Customer>, ApiError> {
    Ok(Json(state.admin.customer(id).await?))
}

/// Change a customer (absent fields stay, `null` clears); a new name reaches its licenses.
#[utoipa::path(patch, path = "/api/admin/customers/{id}", tag = "customers",
    params(("id" = u64, Path, description = "Customer id")),
    request_body = CustomerInput,
    responses(
        (status = 200, description = "The customer", body = Customer),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON", body = crate::http::error::ErrorSchema),
        (status = 404, description = "CUSTOMER_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 409, description = "CONFLICT: changed concurrently, retry", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn edit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
    ApiJson(body): ApiJson<CustomerInput>,
) -> Result<Json<Customer>, ApiError> {
    Ok(Json(
        acting(&state, &caller).edit_customer(id, &body).await?,
    ))
}

/// `DELETE /api/admin/customers/{id}` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerDeleted {
    /// The deleted customer's id.
    pub deleted: u64,
}

/// Delete a customer no license belongs to.
#[utoipa::path(delete, path = "/api/admin/customers/{id}", tag = "customers",
    params(("id" = u64, Path, description = "Customer id")),
    responses(
        (status = 200, description = "Deleted", body = CustomerDeleted),
        (status = 404, description = "CUSTOMER_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 409, description = "CONFLICT: the customer still has licenses", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
) -> Result<Json<CustomerDeleted>, ApiError> {
    acting(&state, &caller).delete_customer(id).await?;
    Ok(Json(CustomerDeleted { deleted: id }))
}

/// `GET /api/admin/customers/{id}/licenses` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct CustomerLicensesQuery {
    /// Continue after this license id (the last `id` of the previous page).
    #[param(maximum = 9_223_372_036_854_775_807_i64)]
    pub cursor: Option<u64>,
    /// Page size (default 100, at most 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

/// A customer's licenses.
#[utoipa::path(get, path = "/api/admin/customers/{id}/licenses", tag = "customers",
    params(("id" = u64, Path, description = "Customer id"), CustomerLicensesQuery),
    responses(
        (status = 200, description = "The customer and its licenses", body = CustomerLicenses),
        (status = 404, description = "CUSTOMER_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn licenses(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Query(q): Query<CustomerLicensesQuery>,
) -> Result<Json<CustomerLicenses>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_CUSTOMER_LICENSES).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {MAX_CUSTOMER_LICENSES}"),
        ));
    }
    let customer = state.admin.customer(id).await?;
    let cursor = q.cursor.map(|c| input::id("cursor", c)).transpose()?;
    let records = state.admin.customer_licenses(id, cursor, limit).await?;
    Ok(Json(CustomerLicenses::of(
        customer,
        &records,
        limit,
        Utc::now(),
    )))
}
