//! The OpenAPI document, generated from the handlers' annotations and served at
//! `/openapi.json`, so the reference cannot drift from the code.

use axum::Json;
use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::error::ErrorSchema;
use crate::state::AppState;

struct ApiKeyAuth;

impl Modify for ApiKeyAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Tessera", description = "License and session authority. Error codes: docs/api.md."),
    paths(
        super::license::activate,
        super::license::verify,
        super::license::info,
        super::session::start,
        super::session::heartbeat,
        super::session::end,
        super::version::check,
        super::version::latest,
        super::instance_v2::register_instance,
        super::instance_v2::begin_session,
        super::instance_v2::extend_session,
        super::instance_v2::end_session,
        super::admin::issue_licenses,
        super::admin::show,
        super::admin::set_status,
        super::admin::add_warning,
    ),
    components(schemas(ErrorSchema)),
    modifiers(&ApiKeyAuth)
)]
pub struct ApiDoc;

/// `GET /openapi.json` (public).
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
