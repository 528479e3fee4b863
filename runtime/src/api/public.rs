//! Public endpoints of seed 000 (and seed 001's health shape): `/`, `/health`, `/healthz`,
//! `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;
use crate::store::StoreHealth;

/// `GET /ready` reply while ready.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// True.
    pub ready: bool,
    /// Store health: `"ok"`.
    #[schema(value_type = String)]
    pub store: StoreHealth,
}

/// Readiness for load balancers: 200 while the store can make changes durable, 503
/// `STORE_UNAVAILABLE` while it cannot (live heartbeats still work; new sessions would not).
pub(crate) async fn ready(
    State(state): State<AppState>,
) -> Result<Json<Ready>, crate::http::error::ApiError> {
    let meta = tokio::time::timeout(state.config.store.op_timeout, state.meta.health())
        .await
        .unwrap_or(StoreHealth::Degraded);
    let licenses = state.licenses.store().health();
    if meta == StoreHealth::Ok && licenses == tessera_actors::StoreHealth::Ok {
        Ok(Json(Ready {
            ready: true,
            store: StoreHealth::Ok,
        }))
    } else {
        Err(crate::http::error::ApiError::new(
            crate::http::error::ErrorCode::StoreUnavailable,
            "Not ready: the store is unavailable",
        ))
    }
}

/// `GET /` (seed 000).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Root {
    /// `"ok"`.
    #[schema(value_type = String)]
    status: &'static str,
    /// `server.service_name`.
    service: String,
    /// Now, RFC 3339 UTC.
    timestamp: String,
}

pub(crate) async fn root(State(state): State<AppState>) -> Json<Root> {
    Json(Root {
        status: "ok",
        service: state.config.server.service_name.clone(),
        timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
    })
}

/// `GET /health` and `GET /healthz`: the union of seed 000's and seed 001's shapes, plus the
/// store's state. Always 200 while the process serves: with the store degraded, live
/// sessions keep heartbeating from memory.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `"healthy"`, or `"degraded"` when the store does not answer (seed 000).
    #[schema(value_type = String)]
    pub status: &'static str,
    /// `true` when healthy (seed 001).
    pub ok: bool,
    /// `server.service_name`.
    pub service: String,
    /// Server version.
    #[schema(value_type = String)]
    pub version: &'static str,
    /// Now, RFC 3339 UTC (seed 000).
    pub timestamp: String,
    /// Now, unix seconds (seed 001).
    pub time_utc: i64,
    /// Seconds since start (seed 001).
    pub uptime_seconds: u64,
    /// `"ok"` or `"degraded"`.
    #[schema(value_type = String)]
    pub store: StoreHealth,
}

pub(crate) async fn health(State(state): State<AppState>) -> Json<Health> {
    let store = tokio::time::timeout(state.config.store.op_timeout, state.meta.health())
        .await
        .unwrap_or(StoreHealth::Degraded);
    let now = Utc::now();
    let ok = store == StoreHealth::Ok;
    Json(Health {
        status: if ok { "healthy" } else { "degraded" },
        ok,
        service: state.config.server.service_name.clone(),
        version: env!("CARGO_PKG_VERSION"),
        timestamp: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        time_utc: now.timestamp(),
        uptime_seconds: state.started_at.elapsed().as_secs(),
        store,
    })
}

pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
