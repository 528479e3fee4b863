//! Products, plans and releases at run time (`/api/admin/products`, `/api/admin/plans`):
//! the config's entries are the initial set, these create and change them and publish
//! releases that `version/check` and session start report at once, on every server.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::acting;
use crate::admin::view::ProductView;
use crate::admin::{NewRelease, PlanInput, ProductInput};
use crate::auth::access::Caller;
use crate::catalog::PlanDef;
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::state::AppState;

/// `GET /api/admin/products` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductList {
    /// Every product in force, by id.
    pub products: Vec<ProductView>,
}

/// `POST /api/admin/products` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewProduct {
    /// Product id (1 to 64 of letters, digits, `_ . : -`).
    pub id: String,
    /// Its settings.
    #[serde(flatten)]
    pub settings: ProductInput,
}

/// List products with their releases.
#[utoipa::path(get, path = "/api/admin/products", tag = "products",
    responses((status = 200, description = "Products", body = ProductList)),
    security(("bearer" = [])))]
pub async fn list_products(State(state): State<AppState>) -> Json<ProductList> {
    Json(ProductList {
        products: state.admin.products().into_iter().map(Into::into).collect(),
    })
}

/// Create a product (no release until one is published).
#[utoipa::path(post, path = "/api/admin/products", tag = "products",
    request_body = NewProduct,
    responses(
        (status = 201, description = "Created", body = ProductView),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON", body = crate::http::error::ErrorSchema),
        (status = 409, description = "CONFLICT: the product exists", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn create_product(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewProduct>,
) -> Result<(StatusCode, Json<ProductView>), ApiError> {
    let p = acting(&state, &caller)
        .create_product(body.id.trim(), &body.settings)
        .await?;
    Ok((StatusCode::CREATED, Json(p.into())))
}

/// Read a product with its releases.
#[utoipa::path(get, path = "/api/admin/products/{id}", tag = "products",
    params(("id" = String, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 404, description = "PRODUCT_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn show_product(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ProductView>, ApiError> {
    Ok(Json(state.admin.product(&id)?.into()))
}

/// Change a product's settings (absent fields stay, `null` restores the server default).
#[utoipa::path(patch, path = "/api/admin/products/{id}", tag = "products",
    params(("id" = String, Path, description = "Product id")),
    request_body = ProductInput,
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON", body = crate::http::error::ErrorSchema),
        (status = 404, description = "PRODUCT_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn edit_product(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProductInput>,
) -> Result<Json<ProductView>, ApiError> {
    Ok(Json(
        acting(&state, &caller)
            .edit_product(&id, &body)
            .await?
            .into(),
    ))
}

/// Publish a release: `version/check`, `version/latest` and session start report it at
/// once here and within a second on every other server.
#[utoipa::path(post, path = "/api/admin/products/{id}/releases", tag = "products",
    params(("id" = String, Path, description = "Product id")),
    request_body = NewRelease,
    responses(
        (status = 201, description = "Published; the product with its releases", body = ProductView),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON", body = crate::http::error::ErrorSchema),
        (status = 404, description = "PRODUCT_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 409, description = "CONFLICT: the version is already published", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn publish_release(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewRelease>,
) -> Result<(StatusCode, Json<ProductView>), ApiError> {
    let p = acting(&state, &caller).publish_release(&id, &body).await?;
    Ok((StatusCode::CREATED, Json(p.into())))
}

/// `GET /api/admin/plans` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanList {
    /// Every plan in force, by name.
    pub plans: Vec<PlanDef>,
}

/// `POST /api/admin/plans` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewPlan {
    /// Plan name (1 to 64 of letters, digits, `_ . : -`).
    pub name: String,
    /// Its limits.
    #[serde(flatten)]
    pub limits: PlanInput,
}

/// List plans.
#[utoipa::path(get, path = "/api/admin/plans", tag = "products",
    responses((status = 200, description = "Plans", body = PlanList)),
    security(("bearer" = [])))]
pub async fn list_plans(State(state): State<AppState>) -> Json<PlanList> {
    Json(PlanList {
        plans: state.admin.plans(),
    })
}

/// Create a plan.
#[utoipa::path(post, path = "/api/admin/plans", tag = "products",
    request_body = NewPlan,
    responses(
        (status = 201, description = "Created", body = PlanDef),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON", body = crate::http::error::ErrorSchema),
        (status = 409, description = "CONFLICT: the plan exists", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn create_plan(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewPlan>,
) -> Result<(StatusCode, Json<PlanDef>), ApiError> {
    let p = acting(&state, &caller)
        .create_plan(body.name.trim(), &body.limits)
        .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// Change a plan's limits; licenses on it follow within a second on every server.
#[utoipa::path(patch, path = "/api/admin/plans/{name}", tag = "products",
    params(("name" = String, Path, description = "Plan name")),
    request_body = PlanInput,
    responses(
        (status = 200, description = "The plan", body = PlanDef),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON", body = crate::http::error::ErrorSchema),
        (status = 404, description = "PLAN_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn edit_plan(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<PlanInput>,
) -> Result<Json<PlanDef>, ApiError> {
    Ok(Json(acting(&state, &caller).edit_plan(&name, &body).await?))
}
