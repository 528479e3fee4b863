//! Resource pools over HTTP: seed 000's Resource Management API (`GET
//! /api/license/{license_id}/resources`, `POST /api/resources/allocate`, `GET
//! /api/resources/check-availability`) with its exact shapes, plus the release and the pool
//! management under `/api/admin/resources`. Thin: parse, call [`Resources`], render.
//! Every route needs an admin credential (`licenses:read` to read, `licenses:write` to change).

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tessera_actors::LicenseKey;
use utoipa::{IntoParams, ToSchema};

use crate::admin::view::rfc3339;
use crate::auth::access::Caller;
use crate::events::Severity;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ApiJson;
use crate::resources::{Listing, ResourceError, Resources};
use crate::state::AppState;
use crate::store::resources::Resource;

impl From<ResourceError> for ApiError {
    fn from(e: ResourceError) -> Self {
        let code = match e {
            ResourceError::Invalid { field, message } => {
                return ApiError::validation(field, message);
            }
            ResourceError::Store(s) => return s.into(),
            ResourceError::NotFound(_) => ErrorCode::ResourceNotFound,
            ResourceError::Unavailable(_) => ErrorCode::ResourceUnavailable,
            ResourceError::NotAllocated(_) => ErrorCode::ResourceNotAllocated,
        };
        ApiError::new(code, format!("{}; nothing was changed", capitalized(&e)))
    }
}

fn capitalized(e: &ResourceError) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

fn service(state: &AppState) -> Resources {
    Resources::new(state.resource_store.clone())
}

/// The license a `{license_id}` names: its key, or its numeric id (seed 000), which must
/// exist. 404 `LICENSE_NOT_FOUND` otherwise.
pub async fn resolve_license(state: &AppState, raw: &str) -> Result<LicenseKey, ApiError> {
    let key = state.admin.resolve(raw).await?;
    match state.licenses.store().load(&key).await? {
        Some(_) => Ok(key),
        None => Err(ErrorCode::LicenseNotFound.into()),
    }
}

/// A license named in a body: seed 000's numeric id or the license key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum LicenseRef {
    /// Numeric id.
    Id(u64),
    /// License key.
    Key(String),
}

impl LicenseRef {
    /// The id or key as text; an id past the document's `int64` is refused.
    fn raw(&self) -> Result<String, ApiError> {
        match self {
            Self::Id(id) => Ok(super::input::id("license_id", *id)?.to_string()),
            Self::Key(k) => Ok(k.clone()),
        }
    }
}

// ---- seed 000 ----

/// A resource held by a license (seed 000).
#[derive(Debug, Serialize, ToSchema)]
pub struct LicenseResource {
    /// Resource id.
    pub id: u64,
    /// Type (`server`, `domain`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Identifier.
    pub identifier: String,
    /// `allocated`.
    pub status: String,
    /// When it was allocated (RFC 3339).
    pub allocated_at: Option<String>,
}

impl From<&Resource> for LicenseResource {
    fn from(r: &Resource) -> Self {
        Self {
            id: r.id,
            kind: r.kind.to_string(),
            identifier: r.identifier.clone(),
            status: r.status().as_str().into(),
            allocated_at: r.allocated_at.map(rfc3339),
        }
    }
}

/// `GET /api/license/{license_id}/resources` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct LicenseResources {
    /// What the license holds, in id order.
    pub resources: Vec<LicenseResource>,
}

/// The resources a license holds (seed 000).
#[utoipa::path(get, path = "/api/license/{license_id}/resources", tag = "resources",
    params(("license_id" = String, Path, description = "License key (or seed 000's numeric id)", pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")),
    responses(
        (status = 200, description = "The license's resources", body = LicenseResources),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 503, description = "STORE_UNAVAILABLE", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn license_resources(
    State(state): State<AppState>,
    Path(license_id): Path<String>,
) -> Result<Json<LicenseResources>, ApiError> {
    let key = resolve_license(&state, &license_id).await?;
    let held = service(&state).held_by(&key).await?;
    Ok(Json(LicenseResources {
        resources: held.iter().map(LicenseResource::from).collect(),
    }))
}

/// `POST /api/resources/allocate` body (seed 000).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocateRequest {
    /// The license: its key or numeric id.
    #[schema(schema_with = super::input::license_ref_schema)]
    pub license_id: LicenseRef,
    /// Resources to give it (1 to 1000 distinct ids).
    #[schema(schema_with = super::input::resource_ids_schema)]
    pub resource_ids: Vec<u64>,
    /// When given, every resource must be of this type.
    #[serde(default)]
    #[schema(pattern = "^\\s*[A-Za-z0-9_-]{1,32}\\s*$")]
    pub resource_type: Option<String>,
}

/// `POST /api/resources/allocate` reply (seed 000).
#[derive(Debug, Serialize, ToSchema)]
pub struct AllocateResponse {
    /// Always true (a refusal is an error).
    pub success: bool,
    /// How many were allocated.
    pub allocated: usize,
    /// `"N resources allocated successfully"`.
    pub message: String,
}

/// Allocate resources to a license: all of them or none (seed 000).
#[utoipa::path(post, path = "/api/resources/allocate", tag = "resources",
    request_body = AllocateRequest,
    responses(
        (status = 200, description = "Allocated", body = AllocateResponse),
        (status = 400, description = "VALIDATION_ERROR (ids missing, repeated or too many; a resource of another type than resource_type)", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND, RESOURCE_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 409, description = "RESOURCE_UNAVAILABLE: a resource is allocated already; nothing was allocated", body = crate::http::error::ErrorSchema),
        (status = 503, description = "STORE_UNAVAILABLE", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn allocate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<AllocateRequest>,
) -> Result<Json<AllocateResponse>, ApiError> {
    let key = resolve_license(&state, &body.license_id.raw()?).await?;
    let done = service(&state)
        .allocate(&key, &body.resource_ids, body.resource_type.as_deref())
        .await?;
    let ids: Vec<u64> = done.iter().map(|r| r.id).collect();
    super::audit::record(
        &state,
        &caller,
        "admin.resource.allocated",
        Severity::Info,
        format!("{} resources allocated to {}", ids.len(), key.masked()),
        None,
        json!({ "license": key.to_string(), "resource_ids": ids }),
    )
    .await?;
    Ok(Json(AllocateResponse {
        success: true,
        allocated: done.len(),
        message: format!("{} resources allocated successfully", done.len()),
    }))
}

/// `GET /api/resources/check-availability` query (seed 000).
#[derive(Debug, Deserialize, IntoParams)]
pub struct AvailabilityQuery {
    /// Resource type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    #[param(required = true, pattern = "^\\s*[A-Za-z0-9_-]{1,32}\\s*$")]
    pub kind: Option<String>,
    /// Number of resources needed (1 to 1000, default 1).
    #[param(pattern = "^\\s*(1000|[1-9][0-9]{0,2})?\\s*$")]
    pub count: Option<String>,
}

/// A free resource (seed 000).
#[derive(Debug, Serialize, ToSchema)]
pub struct FreeResource {
    /// Resource id.
    pub id: u64,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Identifier.
    pub identifier: String,
}

/// `GET /api/resources/check-availability` reply (seed 000).
#[derive(Debug, Serialize, ToSchema)]
pub struct AvailabilityResponse {
    /// Whether `count` resources of the type are free.
    pub available: bool,
    /// How many of the type are free.
    pub count: u64,
    /// Up to `count` free resources, lowest ids first.
    pub resources: Vec<FreeResource>,
}

/// Check whether a pool has enough free resources (seed 000).
#[utoipa::path(get, path = "/api/resources/check-availability", tag = "resources",
    params(AvailabilityQuery),
    responses(
        (status = 200, description = "Availability", body = AvailabilityResponse),
        (status = 400, description = "VALIDATION_ERROR (type missing or malformed, count out of range)", body = crate::http::error::ErrorSchema),
        (status = 503, description = "STORE_UNAVAILABLE", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn check_availability(
    State(state): State<AppState>,
    Query(q): Query<AvailabilityQuery>,
) -> Result<Json<AvailabilityResponse>, ApiError> {
    let a = service(&state)
        .availability(q.kind.as_deref(), q.count.as_deref())
        .await?;
    Ok(Json(AvailabilityResponse {
        available: a.available,
        count: a.free,
        resources: a
            .resources
            .iter()
            .map(|r| FreeResource {
                id: r.id,
                kind: r.kind.to_string(),
                identifier: r.identifier.clone(),
            })
            .collect(),
    }))
}

// ---- release and pool management ----

/// `POST /api/resources/release` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// The license holding them: its key or numeric id.
    #[schema(schema_with = super::input::license_ref_schema)]
    pub license_id: LicenseRef,
    /// Resources to return to their pools (1 to 1000 distinct ids).
    #[schema(schema_with = super::input::resource_ids_schema)]
    pub resource_ids: Vec<u64>,
}

/// `POST /api/resources/release` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseResponse {
    /// Always true (a refusal is an error).
    pub success: bool,
    /// How many were released.
    pub released: usize,
    /// `"N resources released successfully"`.
    pub message: String,
}

/// Return resources a license holds to their pools: all of them or none.
#[utoipa::path(post, path = "/api/resources/release", tag = "resources",
    request_body = ReleaseRequest,
    responses(
        (status = 200, description = "Released", body = ReleaseResponse),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND, RESOURCE_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 409, description = "RESOURCE_NOT_ALLOCATED: a resource is not held by this license; nothing was released", body = crate::http::error::ErrorSchema),
        (status = 503, description = "STORE_UNAVAILABLE", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn release(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<ReleaseRequest>,
) -> Result<Json<ReleaseResponse>, ApiError> {
    let key = resolve_license(&state, &body.license_id.raw()?).await?;
    let done = service(&state).release(&key, &body.resource_ids).await?;
    let ids: Vec<u64> = done.iter().map(|r| r.id).collect();
    super::audit::record(
        &state,
        &caller,
        "admin.resource.released",
        Severity::Info,
        format!("{} resources released from {}", ids.len(), key.masked()),
        None,
        json!({ "license": key.to_string(), "resource_ids": ids }),
    )
    .await?;
    Ok(Json(ReleaseResponse {
        success: true,
        released: done.len(),
        message: format!("{} resources released successfully", done.len()),
    }))
}

/// A resource as operators see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminResource {
    /// Resource id.
    pub id: u64,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Identifier.
    pub identifier: String,
    /// `free` or `allocated`.
    pub status: String,
    /// The license holding it, if allocated.
    pub license_key: Option<String>,
    /// When it was allocated (RFC 3339).
    pub allocated_at: Option<String>,
    /// When it entered the pool (RFC 3339).
    pub created_at: String,
}

impl From<&Resource> for AdminResource {
    fn from(r: &Resource) -> Self {
        Self {
            id: r.id,
            kind: r.kind.to_string(),
            identifier: r.identifier.clone(),
            status: r.status().as_str().into(),
            license_key: r.holder.as_ref().map(ToString::to_string),
            allocated_at: r.allocated_at.map(rfc3339),
            created_at: rfc3339(r.created_at),
        }
    }
}

/// `POST /api/admin/resources` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// The pool: 1 to 32 characters of `a-z 0-9 _ -` (lower-cased).
    #[serde(rename = "type")]
    #[schema(pattern = "^\\s*[A-Za-z0-9_-]{1,32}\\s*$")]
    pub kind: String,
    /// 1 to 1000 identifiers, each 1 to 128 printable ASCII characters without spaces
    /// (around them, white space is trimmed).
    #[schema(min_items = 1, max_items = 1000, inline, value_type = Vec<Identifier>)]
    pub identifiers: Vec<String>,
}

/// A resource identifier, as the document describes it.
#[derive(ToSchema)]
#[schema(pattern = "^\\s*[!-~]{1,128}\\s*$")]
#[allow(dead_code)]
struct Identifier(String);

/// `POST /api/admin/resources` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreateResponse {
    /// The pool.
    #[serde(rename = "type")]
    pub kind: String,
    /// Resources added.
    pub created: usize,
    /// Identifiers that were in the pool already (unchanged).
    pub existing: usize,
    /// Every identifier's resource, in the order given.
    pub resources: Vec<AdminResource>,
}

/// Create or import resources into a pool; idempotent on (type, identifier).
#[utoipa::path(post, path = "/api/admin/resources", tag = "resources",
    request_body = CreateRequest,
    responses(
        (status = 201, description = "At least one resource was added", body = CreateResponse),
        (status = 200, description = "Every identifier was in the pool already", body = CreateResponse),
        (status = 400, description = "VALIDATION_ERROR (type, identifiers; a new type past the limit of types)", body = crate::http::error::ErrorSchema),
        (status = 503, description = "STORE_UNAVAILABLE", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateRequest>,
) -> Result<(StatusCode, Json<CreateResponse>), ApiError> {
    let import = service(&state)
        .import(&body.kind, &body.identifiers)
        .await?;
    super::audit::record(
        &state,
        &caller,
        "admin.resource.imported",
        Severity::Info,
        format!(
            "{} resources imported ({} existed)",
            import.created, import.existing
        ),
        None,
        json!({ "type": body.kind, "created": import.created, "existing": import.existing }),
    )
    .await?;
    let status = if import.created > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(CreateResponse {
            kind: import
                .resources
                .first()
                .map(|r| r.kind.to_string())
                .unwrap_or_default(),
            created: import.created,
            existing: import.existing,
            resources: import.resources.iter().map(AdminResource::from).collect(),
        }),
    ))
}

/// `GET /api/admin/resources` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only this type.
    #[serde(rename = "type")]
    #[param(rename = "type", pattern = "^\\s*([A-Za-z0-9_-]{1,32})?\\s*$")]
    pub kind: Option<String>,
    /// Only `free` or only `allocated`.
    #[param(pattern = "^\\s*(free|allocated)?\\s*$")]
    pub status: Option<String>,
    /// The previous page's `next_cursor`.
    #[param(pattern = "^\\s*([0-9]{1,19})?\\s*$")]
    pub cursor: Option<String>,
    /// Page size (1 to 500, default 50).
    #[param(pattern = "^\\s*(500|[1-4][0-9]{2}|[1-9][0-9]?)?\\s*$")]
    pub limit: Option<String>,
}

/// `GET /api/admin/resources` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse {
    /// Resources in id order.
    pub items: Vec<AdminResource>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// List the pools, filtered by type and status, with cursor pagination.
#[utoipa::path(get, path = "/api/admin/resources", tag = "resources",
    params(ListQuery),
    responses(
        (status = 200, description = "One page", body = ListResponse),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
        (status = 503, description = "STORE_UNAVAILABLE", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ListResponse>, ApiError> {
    let page = service(&state)
        .list(Listing {
            kind: q.kind.as_deref(),
            status: q.status.as_deref(),
            cursor: super::input::numeric_cursor("cursor", q.cursor.as_deref())?,
            limit: q.limit.as_deref(),
        })
        .await?;
    Ok(Json(ListResponse {
        items: page.items.iter().map(AdminResource::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `DELETE /api/admin/resources/{id}` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteResponse {
    /// Always true (a refusal is an error).
    pub success: bool,
    /// The resource as it was.
    pub resource: AdminResource,
}

/// Remove a free resource from its pool (an allocated one must be released first).
#[utoipa::path(delete, path = "/api/admin/resources/{id}", tag = "resources",
    params(("id" = String, Path, description = "Resource id", pattern = "^\\s*[0-9]{1,19}\\s*$")),
    responses(
        (status = 200, description = "Deleted", body = DeleteResponse),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
        (status = 404, description = "RESOURCE_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 409, description = "RESOURCE_UNAVAILABLE: a license holds it", body = crate::http::error::ErrorSchema),
        (status = 503, description = "STORE_UNAVAILABLE", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<DeleteResponse>, ApiError> {
    let gone = service(&state).delete(&id).await?;
    super::audit::record(
        &state,
        &caller,
        "admin.resource.deleted",
        Severity::Warning,
        format!("resource {} deleted", gone.id),
        None,
        json!({ "resource_id": gone.id, "type": gone.kind.to_string(), "identifier": gone.identifier }),
    )
    .await?;
    Ok(Json(DeleteResponse {
        success: true,
        resource: AdminResource::from(&gone),
    }))
}
