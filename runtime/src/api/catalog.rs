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

/// `POST /api/admin/products` body: the id and [`ProductInput`]'s settings, written out
/// (not flattened) so unknown fields are refused and the document has one plain object.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// Product id (1 to 64 of letters, digits, `_ . : -`).
    #[schema(pattern = "^\\s*[A-Za-z0-9_.:-]{1,64}\\s*$")]
    pub id: String,
    /// Display name (default: the id): 1 to 100 characters, no control characters.
    #[serde(default)]
    #[schema(
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: Option<String>,
    /// Heartbeat interval in seconds (1 to 86400; default `[sessions]`).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    pub heartbeat_interval_secs: Option<u64>,
    /// Heartbeat timeout in seconds (at most 86400, at least the interval).
    #[serde(default)]
    #[schema(maximum = 86400)]
    pub heartbeat_timeout_secs: Option<u64>,
    /// Grace in seconds (at most 86400).
    #[serde(default)]
    #[schema(maximum = 86400)]
    pub grace_secs: Option<u64>,
    /// Strategy at the session limit (default `[licenses]`).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(reject|replace_same_device|evict_oldest)$")]
    pub on_session_limit: Option<tessera_config::SessionLimitStrategy>,
}

impl NewProduct {
    fn settings(&self) -> ProductInput {
        ProductInput {
            name: self.name.clone(),
            heartbeat_interval_secs: self.heartbeat_interval_secs.map(Some),
            heartbeat_timeout_secs: self.heartbeat_timeout_secs.map(Some),
            grace_secs: self.grace_secs.map(Some),
            on_session_limit: self.on_session_limit.map(Some),
        }
    }
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
        .create_product(body.id.trim(), &body.settings())
        .await?;
    Ok((StatusCode::CREATED, Json(p.into())))
}

/// Read a product with its releases.
#[utoipa::path(get, path = "/api/admin/products/{id}", tag = "products",
    params(("id" = String, Path, description = "Product id", pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
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
    params(("id" = String, Path, description = "Product id", pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
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
    params(("id" = String, Path, description = "Product id", pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
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

/// `POST /api/admin/plans` body: the name and [`PlanInput`]'s limits, written out (not
/// flattened) so unknown fields are refused and the document has one plain object.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPlan {
    /// Plan name (1 to 64 of letters, digits, `_ . : -`; not `default`, which always exists).
    #[schema(pattern = "^\\s*[A-Za-z0-9_.:-]{1,64}\\s*$")]
    pub name: String,
    /// Devices per license (1 to 1000000; default `[licenses]`).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_devices: Option<u32>,
    /// Lifetime activations per license (0 = unlimited; at most 1000000).
    #[serde(default)]
    #[schema(maximum = 1_000_000)]
    pub max_activations: Option<u32>,
    /// Live sessions per license (1 to 1000000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_sessions: Option<u32>,
    /// Strategy at the session limit.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(reject|replace_same_device|evict_oldest)$")]
    pub on_session_limit: Option<tessera_config::SessionLimitStrategy>,
    /// Validity of a newly issued license, in days (1 to 36525; unset: perpetual).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 36525)]
    pub valid_days: Option<u32>,
}

impl NewPlan {
    fn limits(&self) -> PlanInput {
        PlanInput {
            max_devices: self.max_devices.map(Some),
            max_activations: self.max_activations.map(Some),
            max_sessions: self.max_sessions.map(Some),
            on_session_limit: self.on_session_limit.map(Some),
            valid_days: self.valid_days.map(Some),
        }
    }
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
        .create_plan(body.name.trim(), &body.limits())
        .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// Change a plan's limits; licenses on it follow within a second on every server.
#[utoipa::path(patch, path = "/api/admin/plans/{name}", tag = "products",
    params(("name" = String, Path, description = "Plan name", pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
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
