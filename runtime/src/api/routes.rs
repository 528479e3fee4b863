//! The route table: every route of the server, once, with who may call it. The router is
//! built from this table (`api::router`), the authorization test walks it with every kind of
//! caller, and a test checks that the OpenAPI document and the table list the same routes.
//!
//! To add a route: write its handler in its area's module and add one line here.

use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post, put};

use super::{
    admin, audit, auth, catalog, customers, events, instance_v2, license, license_admin, openapi,
    operators, panel, plugins, public, resources, search, security, session, session_ws, stats,
    version, webhooks,
};
use crate::auth::access::Access;
use crate::auth::scopes::Scope;
use crate::state::AppState;

/// One route: method, path template (axum syntax) and who may call it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// Path template, e.g. `/api/admin/licenses/{license_key}`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

/// A table entry with its handler.
pub(crate) struct Route {
    pub(crate) spec: RouteSpec,
    pub(crate) handler: MethodRouter<AppState>,
}

fn r(method: Method, path: &'static str, access: Access, handler: MethodRouter<AppState>) -> Route {
    Route {
        spec: RouteSpec {
            method,
            path,
            access,
        },
        handler,
    }
}

/// Every route with its handler.
pub(crate) fn entries() -> Vec<Route> {
    use Access::*;
    use Method as M;
    vec![
        // Public: health, docs, the front end's config.
        r(M::GET, "/", Public, get(public::root)),
        r(M::GET, "/health", Public, get(public::health)),
        r(M::GET, "/healthz", Public, get(public::health)),
        r(M::GET, "/ready", Public, get(public::ready)),
        r(M::GET, "/metrics", Public, get(public::metrics)),
        r(M::GET, "/openapi.json", Public, get(openapi_document)),
        r(
            M::GET,
            "/api/public/config",
            Public,
            get(security::public_config),
        ),
        // Client software (seed 000): the system API key.
        r(
            M::POST,
            "/api/license/activate",
            Client,
            post(license::activate),
        ),
        r(
            M::POST,
            "/api/license/verify",
            Client,
            post(license::verify),
        ),
        r(
            M::GET,
            "/api/license/info/{license_key}",
            Client,
            get(license::info),
        ),
        r(M::POST, "/api/version/check", Client, post(version::check)),
        r(M::GET, "/api/version/latest", Client, get(version::latest)),
        r(
            M::POST,
            "/api/license/session/start",
            Sessions,
            post(session::start),
        ),
        r(
            M::POST,
            "/api/license/session/heartbeat",
            Sessions,
            post(session::heartbeat),
        ),
        r(
            M::POST,
            "/api/license/session/end",
            Sessions,
            post(session::end),
        ),
        r(M::GET, session_ws::PATH, Sessions, get(session_ws::upgrade)),
        // Client software (seed 003): the system API key inside the envelope.
        r(
            M::POST,
            "/api/v2/register_instance",
            Envelope,
            post(instance_v2::register_instance),
        ),
        r(
            M::POST,
            "/api/v2/begin_session",
            Envelope,
            post(instance_v2::begin_session),
        ),
        r(
            M::POST,
            "/api/v2/extend_session",
            Envelope,
            post(instance_v2::extend_session),
        ),
        r(
            M::POST,
            "/api/v2/end_session",
            Envelope,
            post(instance_v2::end_session),
        ),
        // Operator login (seed 001).
        r(M::GET, "/api/auth/challenge", Login, get(auth::challenge)),
        r(M::GET, "/api/auth/keys", Login, get(auth::keys)),
        r(M::POST, "/api/auth/login", Login, post(auth::login)),
        r(M::POST, "/api/auth/logout", Operator, post(auth::logout)),
        r(M::GET, "/api/auth/me", Operator, get(auth::me)),
        // The operator panel: its session (the token in a cookie) and the dashboard.
        r(
            M::POST,
            "/api/panel/session",
            Login,
            post(panel::log_in_to_panel),
        ),
        r(
            M::GET,
            "/api/panel/session",
            Operator,
            get(panel::panel_session),
        ),
        r(
            M::DELETE,
            "/api/panel/session",
            Operator,
            delete(panel::log_out_of_panel),
        ),
        r(
            M::GET,
            "/api/admin/overview",
            Admin(Scope::EventsRead),
            get(panel::overview),
        ),
        // Administration.
        r(
            M::POST,
            "/api/admin/licenses",
            Admin(Scope::LicensesWrite),
            post(admin::issue_licenses),
        ),
        r(
            M::GET,
            "/api/admin/licenses",
            Admin(Scope::LicensesRead),
            get(admin::list),
        ),
        // Bulk delete checks `licenses:delete` in the handler as well.
        r(
            M::POST,
            "/api/admin/licenses/bulk",
            Admin(Scope::LicensesWrite),
            post(admin::bulk),
        ),
        r(
            M::GET,
            "/api/admin/licenses/{license_key}",
            Admin(Scope::LicensesRead),
            get(admin::show),
        ),
        r(
            M::PATCH,
            "/api/admin/licenses/{license_key}",
            Admin(Scope::LicensesWrite),
            patch(admin::edit),
        ),
        r(
            M::DELETE,
            "/api/admin/licenses/{license_key}",
            Admin(Scope::LicensesDelete),
            delete(admin::delete),
        ),
        r(
            M::POST,
            "/api/admin/licenses/{license_key}/renew",
            Admin(Scope::LicensesWrite),
            post(admin::renew),
        ),
        r(
            M::POST,
            "/api/admin/licenses/{license_key}/hwid-reset",
            Admin(Scope::LicensesWrite),
            post(admin::hwid_reset),
        ),
        r(
            M::GET,
            "/api/admin/licenses/{license_key}/sessions",
            Admin(Scope::LicensesRead),
            get(admin::sessions),
        ),
        r(
            M::DELETE,
            "/api/admin/licenses/{license_key}/sessions/{session_id}",
            Admin(Scope::LicensesWrite),
            delete(admin::kick),
        ),
        r(
            M::POST,
            "/api/admin/licenses/{license_key}/bundle",
            Admin(Scope::LicensesWrite),
            post(admin::bundle),
        ),
        r(
            M::GET,
            "/api/admin/presets",
            Admin(Scope::LicensesRead),
            get(admin::presets),
        ),
        // Customers and search (seed 000).
        r(
            M::GET,
            "/api/customers",
            Admin(Scope::LicensesRead),
            get(customers::select2),
        ),
        r(
            M::GET,
            "/api/search",
            Admin(Scope::LicensesRead),
            get(search::search),
        ),
        r(
            M::GET,
            "/api/admin/customers",
            Admin(Scope::LicensesRead),
            get(customers::list),
        ),
        r(
            M::POST,
            "/api/admin/customers",
            Admin(Scope::LicensesWrite),
            post(customers::create),
        ),
        r(
            M::GET,
            "/api/admin/customers/{id}",
            Admin(Scope::LicensesRead),
            get(customers::show),
        ),
        r(
            M::PATCH,
            "/api/admin/customers/{id}",
            Admin(Scope::LicensesWrite),
            patch(customers::edit),
        ),
        r(
            M::DELETE,
            "/api/admin/customers/{id}",
            Admin(Scope::LicensesWrite),
            delete(customers::delete),
        ),
        r(
            M::GET,
            "/api/admin/customers/{id}/licenses",
            Admin(Scope::LicensesRead),
            get(customers::licenses),
        ),
        // Events, the live stream, statistics.
        r(
            M::GET,
            "/api/admin/events",
            Admin(Scope::EventsRead),
            get(events::list),
        ),
        r(
            M::GET,
            "/api/admin/events/stream",
            Admin(Scope::EventsRead),
            get(events::stream),
        ),
        // Plugins: their status, a reload, and (for plugin authors) the running server's
        // hook events, recorded.
        r(
            M::GET,
            "/api/admin/plugins",
            Admin(Scope::SecurityRead),
            get(plugins::list),
        ),
        r(
            M::POST,
            "/api/admin/plugins/reload",
            Admin(Scope::SecurityWrite),
            post(plugins::reload),
        ),
        r(
            M::GET,
            "/api/admin/plugins/record",
            Admin(Scope::SecurityRead),
            get(plugins::record),
        ),
        r(
            M::GET,
            "/api/admin/audit",
            Admin(Scope::AuditRead),
            get(audit::list),
        ),
        r(
            M::GET,
            "/api/admin/audit/verify",
            Admin(Scope::AuditRead),
            get(audit::verify),
        ),
        r(
            M::GET,
            "/api/admin/stats/{period}",
            Admin(Scope::EventsRead),
            get(stats::report),
        ),
        // Products, plans and releases at run time.
        r(
            M::GET,
            "/api/admin/products",
            Admin(Scope::LicensesRead),
            get(catalog::list_products),
        ),
        r(
            M::POST,
            "/api/admin/products",
            Admin(Scope::ProductsWrite),
            post(catalog::create_product),
        ),
        r(
            M::GET,
            "/api/admin/products/{id}",
            Admin(Scope::LicensesRead),
            get(catalog::show_product),
        ),
        r(
            M::PATCH,
            "/api/admin/products/{id}",
            Admin(Scope::ProductsWrite),
            patch(catalog::edit_product),
        ),
        r(
            M::POST,
            "/api/admin/products/{id}/releases",
            Admin(Scope::ProductsWrite),
            post(catalog::publish_release),
        ),
        r(
            M::GET,
            "/api/admin/plans",
            Admin(Scope::LicensesRead),
            get(catalog::list_plans),
        ),
        r(
            M::POST,
            "/api/admin/plans",
            Admin(Scope::ProductsWrite),
            post(catalog::create_plan),
        ),
        r(
            M::PATCH,
            "/api/admin/plans/{name}",
            Admin(Scope::ProductsWrite),
            patch(catalog::edit_plan),
        ),
        // Seed 000's admin-panel license API.
        r(
            M::POST,
            "/api/license/{license_id}/quick-edit",
            Admin(Scope::LicensesWrite),
            post(license_admin::quick_edit),
        ),
        r(
            M::POST,
            "/api/license/{license_id}/toggle",
            Admin(Scope::LicensesWrite),
            post(license_admin::toggle),
        ),
        r(
            M::GET,
            "/api/license/{license_id}/devices",
            Admin(Scope::LicensesRead),
            get(license_admin::devices),
        ),
        r(
            M::POST,
            "/api/license/{license_id}/register-device",
            Admin(Scope::LicensesWrite),
            post(license_admin::register_device),
        ),
        r(
            M::POST,
            "/api/license/{license_id}/deactivate-device/{device_id}",
            Admin(Scope::LicensesWrite),
            post(license_admin::deactivate_device),
        ),
        r(
            M::POST,
            "/api/generate-license-key",
            Admin(Scope::LicensesWrite),
            post(license_admin::generate_key),
        ),
        r(
            M::POST,
            "/api/licenses/bulk-activate",
            Admin(Scope::LicensesWrite),
            post(license_admin::bulk_activate),
        ),
        r(
            M::POST,
            "/api/licenses/bulk-deactivate",
            Admin(Scope::LicensesWrite),
            post(license_admin::bulk_deactivate),
        ),
        r(
            M::POST,
            "/api/licenses/bulk-delete",
            Admin(Scope::LicensesDelete),
            post(license_admin::bulk_delete),
        ),
        r(
            M::POST,
            "/api/admin/licenses/{license_key}/status",
            Admin(Scope::LicensesWrite),
            post(admin::set_status),
        ),
        r(
            M::POST,
            "/api/admin/licenses/{license_key}/warnings",
            Admin(Scope::LicensesWrite),
            post(admin::add_warning),
        ),
        // Resource pools (seed 000, plus release and pool management).
        r(
            M::GET,
            "/api/license/{license_id}/resources",
            Admin(Scope::LicensesRead),
            get(resources::license_resources),
        ),
        r(
            M::POST,
            "/api/resources/allocate",
            Admin(Scope::LicensesWrite),
            post(resources::allocate),
        ),
        r(
            M::POST,
            "/api/resources/release",
            Admin(Scope::LicensesWrite),
            post(resources::release),
        ),
        r(
            M::GET,
            "/api/resources/check-availability",
            Admin(Scope::LicensesRead),
            get(resources::check_availability),
        ),
        r(
            M::POST,
            "/api/admin/resources",
            Admin(Scope::LicensesWrite),
            post(resources::create),
        ),
        r(
            M::GET,
            "/api/admin/resources",
            Admin(Scope::LicensesRead),
            get(resources::list),
        ),
        r(
            M::DELETE,
            "/api/admin/resources/{id}",
            Admin(Scope::LicensesWrite),
            delete(resources::delete),
        ),
        r(
            M::GET,
            "/api/admin/security",
            Admin(Scope::SecurityRead),
            get(security::show),
        ),
        r(
            M::PUT,
            "/api/admin/security",
            Admin(Scope::SecurityWrite),
            put(security::change),
        ),
        r(
            M::GET,
            "/api/admin/features",
            Admin(Scope::SecurityRead),
            get(security::features),
        ),
        r(
            M::PUT,
            "/api/admin/features",
            Admin(Scope::SecurityWrite),
            put(security::set_features),
        ),
        r(
            M::GET,
            "/api/admin/emergency",
            Admin(Scope::SecurityRead),
            get(security::emergency_state),
        ),
        r(
            M::POST,
            "/api/admin/emergency",
            SuperAdmin,
            post(security::emergency),
        ),
        // Operator accounts and admin keys (as `tessera operator|admin-key`).
        r(
            M::GET,
            "/api/admin/operators",
            Admin(Scope::OperatorsWrite),
            get(operators::list_operators),
        ),
        r(
            M::POST,
            "/api/admin/operators",
            Admin(Scope::OperatorsWrite),
            post(operators::create_operator),
        ),
        r(
            M::POST,
            "/api/admin/operators/{username}/disable",
            Admin(Scope::OperatorsWrite),
            post(operators::disable_operator),
        ),
        r(
            M::POST,
            "/api/admin/operators/{username}/enable",
            Admin(Scope::OperatorsWrite),
            post(operators::enable_operator),
        ),
        r(
            M::POST,
            "/api/admin/operators/{username}/password",
            Admin(Scope::OperatorsWrite),
            post(operators::reset_password),
        ),
        r(
            M::GET,
            "/api/admin/keys",
            Admin(Scope::OperatorsWrite),
            get(operators::list_keys),
        ),
        r(
            M::POST,
            "/api/admin/keys",
            Admin(Scope::OperatorsWrite),
            post(operators::create_key),
        ),
        r(
            M::DELETE,
            "/api/admin/keys/{id}",
            Admin(Scope::OperatorsWrite),
            delete(operators::revoke_key),
        ),
        // Webhooks (Standard Webhooks).
        r(
            M::POST,
            "/api/admin/webhooks",
            Admin(Scope::WebhooksWrite),
            post(webhooks::create),
        ),
        r(
            M::GET,
            "/api/admin/webhooks",
            Admin(Scope::WebhooksWrite),
            get(webhooks::list),
        ),
        r(
            M::GET,
            "/api/admin/webhooks/{id}",
            Admin(Scope::WebhooksWrite),
            get(webhooks::show),
        ),
        r(
            M::PATCH,
            "/api/admin/webhooks/{id}",
            Admin(Scope::WebhooksWrite),
            patch(webhooks::edit),
        ),
        r(
            M::DELETE,
            "/api/admin/webhooks/{id}",
            Admin(Scope::WebhooksWrite),
            delete(webhooks::delete),
        ),
        r(
            M::POST,
            "/api/admin/webhooks/{id}/rotate-secret",
            Admin(Scope::WebhooksWrite),
            post(webhooks::rotate_secret),
        ),
        r(
            M::GET,
            "/api/admin/webhooks/{id}/deliveries",
            Admin(Scope::WebhooksWrite),
            get(webhooks::deliveries),
        ),
        r(
            M::POST,
            "/api/admin/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            Admin(Scope::WebhooksWrite),
            post(webhooks::redeliver),
        ),
    ]
}

/// `GET /openapi.json`: the document, with each operation's credentials from this table.
async fn openapi_document() -> axum::Json<serde_json::Value> {
    axum::Json(openapi::served(
        table().into_iter().map(|r| (r.method, r.path, r.access)),
    ))
}

/// The table without handlers, for tests and documentation.
pub fn table() -> Vec<RouteSpec> {
    entries().into_iter().map(|r| r.spec).collect()
}
