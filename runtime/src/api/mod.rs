//! The HTTP API: one module per area, and the router built from the route table
//! (`routes.rs`), where every route names who may call it ([`Access`]). Each route gets the
//! route gate for its access: the system API key for client routes, an admin key or operator
//! token with the right scope or role for admin routes, and the rate limit of its class.
//!
//! Auth runs before the rate limit, so unauthenticated floods do not drain a client's bucket.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::MethodRouter;

use crate::auth::access::Access;
use crate::http::fallback;
use crate::http::gateway::{self, GatewayLayer, GatewaySettings, GroupRules, RouteGate};
use crate::state::AppState;

pub mod admin;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod customers;
pub mod events;
mod input;
pub mod instance_v2;
pub mod license;
pub mod license_admin;
pub mod openapi;
pub mod operators;
pub mod panel;
pub mod plugins;
mod public;
pub mod resources;
pub mod routes;
pub mod search;
pub mod security;
pub mod session;
pub mod session_ws;
pub mod stats;
pub mod version;
pub mod webhooks;

pub use public::{Health, Ready};

/// The server's routes: the table, plus routes tests add in a group. Build with
/// [`Routes::standard`], optionally add test routes, then turn into an app with [`router`].
#[derive(Default)]
pub struct Routes {
    table: Vec<routes::Route>,
    /// Extra routes with no credentials and no rate limit.
    pub public: Router<AppState>,
    /// Extra routes behind the system API key and the `api` rate limit.
    pub api: Router<AppState>,
    /// Extra routes behind the system API key and the `sessions` rate limit.
    pub sessions: Router<AppState>,
    /// Extra routes with no API key and the `login` rate limit.
    pub login: Router<AppState>,
}

impl Routes {
    /// Every route of the table.
    pub fn standard() -> Self {
        Self {
            table: routes::entries(),
            ..Self::default()
        }
    }
}

/// Applies each group's [`gateway::route_gate`] and the global [`GatewayLayer`] (metrics,
/// error normalization, tracing, body limit, timeout, client address, JSON 404/405) and
/// binds the state.
pub fn router(state: AppState, routes: Routes) -> Router {
    let gate = |rules: GroupRules| {
        from_fn_with_state(
            RouteGate {
                state: state.clone(),
                rules,
            },
            gateway::route_gate,
        )
    };
    let mut app = Router::new();
    // One method router per path, each method behind the gate of its own access.
    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for route in routes.table {
        let gated = route
            .handler
            .route_layer(gate(GroupRules::of(route.spec.access)));
        let merged = match by_path.remove(route.spec.path) {
            Some(existing) => existing.merge(gated),
            None => gated,
        };
        by_path.insert(route.spec.path, merged);
    }
    for (path, methods) in by_path {
        app = app.route(path, methods);
    }
    // `route_layer` panics on a router without routes; empty groups are skipped.
    let groups = [
        (routes.public, Access::Public),
        (routes.api, Access::Client),
        (routes.sessions, Access::Sessions),
        (routes.login, Access::Login),
    ];
    for (group, access) in groups {
        if group.has_routes() {
            app = app.merge(group.route_layer(gate(GroupRules::of(access))));
        }
    }
    // The panel's files: public, read-only, outside the route table (they are not API
    // routes; every call the pages make goes through the table's gates).
    app = app
        .route("/panel", axum::routing::get(crate::panel::assets::index))
        .route("/panel/", axum::routing::get(crate::panel::assets::index))
        .route(
            "/panel/{*file}",
            axum::routing::get(crate::panel::assets::file),
        );
    let server = &state.config.server;
    let gateway = GatewayLayer::new(GatewaySettings {
        body_limit_bytes: server.body_limit_bytes as u64,
        request_timeout: server.request_timeout,
        trusted_proxies: server.trusted_proxies.clone(),
    });
    let body_limit = server.body_limit_bytes;
    app.fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(gateway)
        .with_state(state)
}
