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
use axum::middleware::{from_fn, from_fn_with_state};
use tower_http::trace::TraceLayer;

use crate::state::AppState;
use crate::{auth, client_ip, metrics, policy, rate_limit, server};

pub mod admin;
mod input;
pub mod instance_v2;
pub mod license;
pub mod openapi;
mod public;
pub mod session;
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
            sessions: session::routes(),
            login: Router::new(),
        }
    }
}

/// Applies the group layers and the global ones (metrics, error normalization, tracing, body
/// limit, timeout, client address, JSON 404/405) and binds the state.
pub fn router(state: AppState, routes: Routes) -> Router {
    let mut app = routes.public;
    // `route_layer` panics on a router without routes; empty groups are skipped.
    if routes.api.has_routes() {
        app = app.merge(
            routes
                .api
                .route_layer(from_fn_with_state(state.clone(), rate_limit::api_layer))
                .route_layer(from_fn_with_state(state.clone(), auth::require_api_key)),
        );
    }
    if routes.sessions.has_routes() {
        app = app.merge(
            routes
                .sessions
                .route_layer(from_fn_with_state(state.clone(), auth::require_api_key)),
        );
    }
    if routes.login.has_routes() {
        app = app.merge(
            routes
                .login
                .route_layer(from_fn_with_state(state.clone(), rate_limit::login_layer)),
        );
    }
    let body_limit = state.config.server.body_limit_bytes;
    app.fallback(server::not_found)
        .method_not_allowed_fallback(server::method_not_allowed)
        .route_layer(from_fn_with_state(state.clone(), policy::request_layer))
        .route_layer(from_fn(metrics::capture_route))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(from_fn_with_state(state.clone(), client_ip::layer))
        .layer(from_fn_with_state(state.clone(), server::timeout_layer))
        .layer(from_fn_with_state(state.clone(), server::body_limit_layer))
        .layer(TraceLayer::new_for_http())
        .layer(from_fn(server::catch_panic))
        .layer(from_fn(server::normalize_errors))
        .layer(from_fn(metrics::track))
        .with_state(state)
}
