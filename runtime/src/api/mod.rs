//! The HTTP API: route groups assembled from per-area modules, each group with its layers.
//!
//! To add an area: write `api/<area>.rs` with `pub(crate) fn routes() -> Router<AppState>`,
//! declare it below, and merge its routes into the right group in [`Routes::standard`]:
//!
//! | group      | auth        | rate limit                                       |
//! |------------|-------------|--------------------------------------------------|
//! | `public`   | none        | none (`/`, `/health`, `/metrics`)                |
//! | `api`      | `X-API-Key` | `api` class per client address (seed 000)       |
//! | `sessions` | `X-API-Key` | none here; handlers call `check_heartbeat(token)` |
//! | `login`    | none        | `login` class per client address (`/api/auth/*`) |
//!
//! Auth runs before the rate limit, so unauthenticated floods do not drain a client's bucket.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;

use crate::http::fallback;
use crate::http::gateway::{self, GatewayLayer, GatewaySettings, GroupRules, RouteGate};
use crate::http::rate_limit::RateClass;
use crate::state::AppState;

pub mod admin;
mod input;
pub mod instance_v2;
pub mod license;
pub mod openapi;
mod public;
pub mod session;
pub mod session_ws;
pub mod version;

pub use public::{Health, Ready};

/// The routes of each group, before layers. Build with [`Routes::standard`], optionally
/// add test routes, then turn into an app with [`router`].
#[derive(Default)]
pub struct Routes {
    /// No credentials, no rate limit.
    pub public: Router<AppState>,
    /// `X-API-Key` required; `api` rate limit per client address.
    pub api: Router<AppState>,
    /// `X-API-Key` required; rate-limited by the handlers per session or license.
    pub sessions: Router<AppState>,
    /// No API key; `login` rate limit per client address.
    pub login: Router<AppState>,
}

impl Routes {
    /// Every area's routes in its group.
    pub fn standard() -> Self {
        Self {
            public: public::routes()
                .merge(openapi::routes())
                .merge(instance_v2::routes()),
            api: license::routes()
                .merge(version::routes())
                .merge(admin::routes()),
            sessions: session::routes().merge(session_ws::routes()),
            login: Router::new(),
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
    // `route_layer` panics on a router without routes; empty groups are skipped.
    let groups = [
        (
            routes.public,
            GroupRules {
                auth: false,
                rate_limit: None,
            },
        ),
        (
            routes.api,
            GroupRules {
                auth: true,
                rate_limit: Some(RateClass::Api),
            },
        ),
        (
            routes.sessions,
            GroupRules {
                auth: true,
                rate_limit: None,
            },
        ),
        (
            routes.login,
            GroupRules {
                auth: false,
                rate_limit: Some(RateClass::Login),
            },
        ),
    ];
    for (group, rules) in groups {
        if group.has_routes() {
            app = app.merge(group.route_layer(gate(rules)));
        }
    }
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
