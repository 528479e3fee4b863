//! The OpenAPI document, generated from the handlers' annotations and served at
//! `/openapi.json`, so the reference cannot drift from the code.
//!
//! Who may call an operation comes from the route table (`routes.rs`), not from the
//! annotations: [`Credentials`] sets every operation's security requirement from its
//! [`Access`] (`api_key` for client routes, `bearer` with the scope or role for admin routes,
//! none for public, login and seed 003 routes), so the document cannot disagree with the gate.
//! A test checks that the document and the table list the same routes.

use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::{Modify, OpenApi};

use crate::auth::access::Access;
use crate::http::error::ErrorSchema;

/// The security schemes.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "The system API key (seed 000). It ships inside client software, so it reaches \
                 the client API only; on an admin route it gets 403 INSUFFICIENT_SCOPE.",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("tsa_… admin key or tso_… operator token")
                    .description(Some(
                        "An admin API key (`tsa_…`, scoped) or an operator's token from \
                         POST /api/auth/login. The requirement lists the scope the route needs \
                         (an operator's role grants scopes), or `super_admin`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document with each operation's security requirement taken from the route table's
/// `(method, path, access)` entries (passed in: the table names this module's handler).
pub fn document_for(
    routes: impl IntoIterator<Item = (axum::http::Method, &'static str, Access)>,
) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for (method, path, access) in routes {
        {
            let Some(item) = doc.paths.paths.get_mut(path) else {
                continue;
            };
            let Some(op) = operation_mut(item, &method) else {
                continue;
            };
            op.security = match access {
                Access::Client | Access::Sessions => Some(vec![SecurityRequirement::new(
                    "api_key",
                    Vec::<String>::new(),
                )]),
                Access::Admin(scope) => {
                    Some(vec![SecurityRequirement::new("bearer", [scope.as_str()])])
                }
                Access::SuperAdmin => {
                    Some(vec![SecurityRequirement::new("bearer", ["super_admin"])])
                }
                Access::Operator => Some(vec![SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]),
                // Seed 003 carries the key inside the envelope, not in a header.
                Access::Public | Access::Login | Access::Envelope => None,
            };
        }
    }
    doc
}

fn operation_mut<'a>(
    item: &'a mut PathItem,
    method: &axum::http::Method,
) -> Option<&'a mut utoipa::openapi::path::Operation> {
    use axum::http::Method;
    match *method {
        Method::GET => item.get.as_mut(),
        Method::POST => item.post.as_mut(),
        Method::PUT => item.put.as_mut(),
        Method::DELETE => item.delete.as_mut(),
        Method::PATCH => item.patch.as_mut(),
        _ => None,
    }
}

/// The operational endpoints, whose handlers answer plain shapes without annotations.
struct Probes;

impl Modify for Probes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let probes = [
            ("/", "Service name and time (seed 000)."),
            (
                "/health",
                "Liveness: 200 while the process serves, with the store's state.",
            ),
            ("/healthz", "Alias of /health."),
            (
                "/ready",
                "Readiness: 503 STORE_UNAVAILABLE while the store cannot make changes durable.",
            ),
            ("/metrics", "Prometheus metrics (text exposition format)."),
            ("/openapi.json", "This document."),
        ];
        for (path, summary) in probes {
            let op = OperationBuilder::new()
                .tag("public")
                .summary(Some(summary))
                .response("200", ResponseBuilder::new().description("OK").build())
                .build();
            doc.paths
                .add_path_operation(path, vec![HttpMethod::Get], op);
        }
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Tessera", description = "License and session authority. Error codes and the credentials: docs/api.md."),
    paths(
        super::security::public_config,
        super::license::activate,
        super::license::verify,
        super::license::info,
        super::session::start,
        super::session::heartbeat,
        super::session::end,
        super::session_ws::upgrade,
        super::version::check,
        super::version::latest,
        super::instance_v2::register_instance,
        super::instance_v2::begin_session,
        super::instance_v2::extend_session,
        super::instance_v2::end_session,
        super::auth::challenge,
        super::auth::keys,
        super::auth::login,
        super::auth::logout,
        super::auth::me,
        super::admin::issue_licenses,
        super::admin::show,
        super::admin::set_status,
        super::admin::add_warning,
        super::admin::list,
        super::admin::edit,
        super::admin::delete,
        super::admin::renew,
        super::admin::hwid_reset,
        super::admin::sessions,
        super::admin::kick,
        super::admin::bulk,
        super::admin::bundle,
        super::customers::select2,
        super::customers::list,
        super::customers::create,
        super::customers::show,
        super::customers::edit,
        super::customers::delete,
        super::customers::licenses,
        super::search::search,
        super::events::list,
        super::events::stream,
        super::plugins::record,
        super::stats::report,
        super::audit::list,
        super::audit::verify,
        super::catalog::list_products,
        super::catalog::create_product,
        super::catalog::show_product,
        super::catalog::edit_product,
        super::catalog::publish_release,
        super::catalog::list_plans,
        super::catalog::create_plan,
        super::catalog::edit_plan,
        super::license_admin::quick_edit,
        super::license_admin::toggle,
        super::license_admin::devices,
        super::license_admin::register_device,
        super::license_admin::deactivate_device,
        super::license_admin::generate_key,
        super::license_admin::bulk_activate,
        super::license_admin::bulk_deactivate,
        super::license_admin::bulk_delete,
        super::resources::license_resources,
        super::resources::allocate,
        super::resources::release,
        super::resources::check_availability,
        super::resources::create,
        super::resources::list,
        super::resources::delete,
        super::security::show,
        super::security::change,
        super::security::features,
        super::security::set_features,
        super::security::emergency,
        super::webhooks::create,
        super::webhooks::list,
        super::webhooks::show,
        super::webhooks::edit,
        super::webhooks::delete,
        super::webhooks::rotate_secret,
        super::webhooks::deliveries,
        super::webhooks::redeliver,
    ),
    components(schemas(ErrorSchema)),
    modifiers(&Probes, &Credentials)
)]
pub struct ApiDoc;
