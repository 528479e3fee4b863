//! The OpenAPI document, generated from the handlers' annotations and served at
//! `/openapi.json`, so the reference cannot drift from the code.
//!
//! Who may call an operation comes from the route table (`routes.rs`), not from the
//! annotations: [`Credentials`] sets every operation's security requirement from its
//! [`Access`] (`api_key` for client routes, `bearer` with the scope or role for admin routes,
//! none for public, login and seed 003 routes), so the document cannot disagree with the gate.
//! A test checks that the document and the table list the same routes.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, PathItem};
use utoipa::openapi::response::{ResponseBuilder, Responses};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Ref, RefOr};
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
            gate_responses(op, path, access);
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

/// The document as `/openapi.json` serves it: [`document_for`] with each pattern's `\s`
/// made exact.
pub fn served(
    routes: impl IntoIterator<Item = (axum::http::Method, &'static str, Access)>,
) -> serde_json::Value {
    let mut value = serde_json::to_value(document_for(routes)).unwrap_or_default();
    exact_whitespace(&mut value);
    value
}

/// What `str::trim` and `char::is_whitespace` count as white space (Unicode `White_Space`),
/// as the ranges of a regex character class.
const WHITE_SPACE: &str =
    "\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/// The annotations write `\s` for the white space the server trims; Python's and ECMAScript's
/// `\s` also match `\x1c`-`\x1f` (and `\ufeff`), which Rust's `trim` keeps. Each `\s` of a
/// pattern becomes the exact class, so the document allows what the server accepts.
fn exact_whitespace(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                match child {
                    serde_json::Value::String(p) if k == "pattern" => *p = rewrite(p),
                    _ => exact_whitespace(child),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(exact_whitespace),
        _ => {}
    }
}

/// `pattern` with each `\s` outside a class as `[WHITE_SPACE]` and inside one as its ranges.
fn rewrite(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let (mut in_class, mut chars) = (false, pattern.chars());
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('s') if in_class => out.push_str(WHITE_SPACE),
                Some('s') => {
                    out.push('[');
                    out.push_str(WHITE_SPACE);
                    out.push(']');
                }
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            },
            '[' => {
                in_class = true;
                out.push(c);
            }
            ']' => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Adds the answers every operation of its kind can give before or around its handler, so
/// no operation's annotation has to repeat them: the route gate's (credentials, rate limit,
/// the `on_request` hook), the gateway's (timeout, declared body size) and the extractors'
/// (a body or a parameter that does not parse). An answer the annotation has already is
/// kept, with the codes it lacks added to its description.
fn gate_responses(op: &mut Operation, path: &str, access: Access) {
    // Seed 003 answers its own failures in its shape (`V2Failure`), `end_session` all as 422;
    // the gateway's (408, 413 on `Content-Length`), 429 and 5xx keep the standard one.
    let v2 = matches!(access, Access::Envelope);
    let own = if v2 { "V2Failure" } else { "ErrorSchema" };
    let v2_status = |status: &'static str| {
        if v2 && path == "/api/v2/end_session" {
            "422"
        } else {
            status
        }
    };
    let mut add = |status: &'static str, codes: &str, schema: &str| {
        add_error(&mut op.responses, status, codes, schema);
    };
    let body = op.request_body.is_some();
    let params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    if body {
        add(v2_status("400"), "INVALID_JSON, VALIDATION_ERROR", own);
        add(v2_status("415"), "UNSUPPORTED_MEDIA_TYPE", own);
        add("413", "PAYLOAD_TOO_LARGE", "ErrorSchema");
    }
    if params {
        add("400", "VALIDATION_ERROR", own);
    }
    match access {
        Access::Public => return,
        Access::Client | Access::Sessions => {
            add("401", "INVALID_API_KEY", own);
            add("403", "POLICY_DENIED", own);
        }
        Access::Envelope => {
            add(v2_status("401"), "INVALID_API_KEY", own);
            add(v2_status("403"), "POLICY_DENIED", own);
        }
        Access::Login => add("403", "POLICY_DENIED", own),
        Access::Admin(_) | Access::SuperAdmin | Access::Operator => {
            add("401", "UNAUTHENTICATED", own);
            add(
                "403",
                "INSUFFICIENT_SCOPE, FORBIDDEN_ROLE, POLICY_DENIED",
                own,
            );
        }
    }
    add("408", "REQUEST_TIMEOUT", "ErrorSchema");
    add("429", "RATE_LIMITED", "ErrorSchema");
    add("503", "STORE_UNAVAILABLE", "ErrorSchema");
}

/// Documents `codes` under `status`: a new JSON answer with `schema`, or the codes the
/// existing answer's description lacks.
fn add_error(responses: &mut Responses, status: &str, codes: &str, schema: &str) {
    match responses.responses.get_mut(status) {
        Some(RefOr::T(existing)) => {
            let missing: Vec<&str> = codes
                .split(", ")
                .filter(|c| !existing.description.contains(c))
                .collect();
            if !missing.is_empty() {
                existing.description = format!("{}; {}", existing.description, missing.join(", "));
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let response = ResponseBuilder::new()
                .description(codes)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(schema)))
                        .build(),
                )
                .build();
            responses
                .responses
                .insert(status.to_owned(), RefOr::T(response));
        }
    }
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

/// The operational endpoints, whose handlers have no annotations: each with the body it
/// answers.
struct Probes;

impl Modify for Probes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let json = |schema: &str| {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .build()
        };
        let any_object = ContentBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .description(Some("An OpenAPI 3.1 document.")),
            ))
            .build();
        let text = ContentBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build();
        let probes = [
            (
                "/",
                "Service name and time (seed 000).",
                "application/json",
                json("Root"),
            ),
            (
                "/health",
                "Liveness: 200 while the process serves, with the store's state.",
                "application/json",
                json("Health"),
            ),
            (
                "/healthz",
                "Alias of /health.",
                "application/json",
                json("Health"),
            ),
            (
                "/ready",
                "Readiness: 503 STORE_UNAVAILABLE while the store cannot make changes durable.",
                "application/json",
                json("Ready"),
            ),
            (
                "/metrics",
                "Prometheus metrics (text exposition format).",
                "text/plain",
                text,
            ),
            (
                "/openapi.json",
                "This document.",
                "application/json",
                any_object,
            ),
        ];
        for (path, summary, content_type, content) in probes {
            let mut op = OperationBuilder::new()
                .tag("public")
                .summary(Some(summary))
                .response(
                    "200",
                    ResponseBuilder::new()
                        .description("OK")
                        .content(content_type, content)
                        .build(),
                )
                .build();
            if path == "/ready" {
                add_error(&mut op.responses, "503", "STORE_UNAVAILABLE", "ErrorSchema");
            }
            doc.paths
                .add_path_operation(path, vec![HttpMethod::Get], op);
        }
    }
}

/// Edit bodies whose every field is optional and where any present field (`null`
/// included) is a change: an empty object changes nothing and is refused.
struct EditBodies;

impl Modify for EditBodies {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        for name in ["PlanInput", "ProductInput"] {
            if let Some(RefOr::T(utoipa::openapi::schema::Schema::Object(o))) =
                components.schemas.get_mut(name)
            {
                o.min_properties = Some(1);
            }
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
        super::panel::log_in_to_panel,
        super::panel::panel_session,
        super::panel::log_out_of_panel,
        super::panel::overview,
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
        super::admin::presets,
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
        super::plugins::list,
        super::plugins::reload,
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
        super::security::emergency_state,
        super::security::emergency,
        super::operators::list_operators,
        super::operators::create_operator,
        super::operators::disable_operator,
        super::operators::enable_operator,
        super::operators::reset_password,
        super::operators::list_keys,
        super::operators::create_key,
        super::operators::revoke_key,
        super::webhooks::create,
        super::webhooks::list,
        super::webhooks::show,
        super::webhooks::edit,
        super::webhooks::delete,
        super::webhooks::rotate_secret,
        super::webhooks::deliveries,
        super::webhooks::redeliver,
    ),
    components(schemas(ErrorSchema, super::public::Root, super::public::Health, super::public::Ready)),
    modifiers(&Probes, &Credentials, &EditBodies)
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn white_space_in_patterns_is_what_trim_takes() {
        assert_eq!(
            rewrite("^\\s*[^\\s\\x00]\\.$"),
            format!("^[{WHITE_SPACE}]*[^{WHITE_SPACE}\\x00]\\.$")
        );
    }
}
