//! The panel's session (`/api/panel/session`) and its dashboard numbers
//! (`/api/admin/overview`). Logging in to the panel is seed 001's login (the same body, the
//! same checks, events and hooks); the token goes into an `HttpOnly` cookie instead of the
//! reply, and the reply carries the CSRF value the panel sends with every change.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{LoginRequest, log_in};
use crate::auth::access::Caller;
use crate::auth::panel_cookie;
use crate::http::client_ip::ClientIp;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ApiJson;
use crate::panel::overview::Sample;
use crate::state::AppState;

/// The panel's session as its pages see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PanelSession {
    /// Operator.
    pub username: String,
    /// `admin` or `super_admin`.
    pub role: String,
    /// Unix seconds when the session ends.
    pub expires_at: i64,
    /// Send as `X-CSRF-Token` with every change made with the cookie.
    pub csrf_token: String,
}

fn with_cookie(body: impl IntoResponse, cookie: Option<HeaderValue>) -> Response {
    let mut resp = body.into_response();
    match cookie {
        Some(c) => {
            resp.headers_mut().insert(SET_COOKIE, c);
            resp
        }
        None => ApiError::new(
            ErrorCode::InternalError,
            "the session cookie could not be written",
        )
        .into_response(),
    }
}

/// Log in to the panel: seed 001's login body; the token is set as the `tessera_panel`
/// cookie (`HttpOnly`, `SameSite=Strict`, `Secure` over TLS), never put in the reply.
#[utoipa::path(post, path = "/api/panel/session", tag = "panel", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; the cookie is set", body = PanelSession),
        (status = 400, description = "VALIDATION_ERROR, ENCRYPTION_REQUIRED", body = crate::http::error::ErrorSchema),
        (status = 401, description = "INVALID_CREDENTIALS, LOGIN_CHALLENGE_INVALID", body = crate::http::error::ErrorSchema),
        (status = 403, description = "CSRF_FAILED: sent from another site", body = crate::http::error::ErrorSchema),
        (status = 429, description = "RATE_LIMITED", body = crate::http::error::ErrorSchema),
    ))]
pub async fn log_in_to_panel(
    State(state): State<AppState>,
    ip: ClientIp,
    uri: Uri,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Response {
    // Another site must not log a browser in (to an account of its choosing).
    if let Err(e) = panel_cookie::check_same_origin(&uri, &headers) {
        return e.into_response();
    }
    let username = body.username.trim().to_string();
    let ok = match log_in(&state, ip, "/api/panel/session", body).await {
        Ok(ok) => ok,
        Err(e) => return e.into_response(),
    };
    let now = chrono::Utc::now().timestamp();
    let secure = panel_cookie::over_tls(state.tls.is_some(), &headers);
    let cookie = panel_cookie::set(&ok.token, ok.expires_at.saturating_sub(now), secure);
    let session = PanelSession {
        username,
        role: ok.role,
        expires_at: ok.expires_at,
        csrf_token: panel_cookie::csrf_for(&ok.token),
    };
    with_cookie(Json(session), cookie)
}

/// The panel's session: who is logged in and the CSRF value, for a page (re)loaded with the
/// cookie. Only the panel's own origin can read it.
#[utoipa::path(get, path = "/api/panel/session", tag = "panel",
    responses(
        (status = 200, description = "The session", body = PanelSession),
        (status = 401, description = "UNAUTHENTICATED", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn panel_session(
    headers: HeaderMap,
    Extension(caller): Extension<Caller>,
) -> Result<Json<PanelSession>, ApiError> {
    let Caller::Operator(op) = caller else {
        return Err(ErrorCode::InsufficientScope.into());
    };
    // A bearer caller has no cookie: no CSRF value to give (it needs none).
    let csrf_token = panel_cookie::token(&headers)
        .map(panel_cookie::csrf_for)
        .unwrap_or_default();
    Ok(Json(PanelSession {
        username: op.username,
        role: op.role.as_str().into(),
        expires_at: op.expires_at,
        csrf_token,
    }))
}

/// `DELETE /api/panel/session` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedOut {
    /// True.
    pub logged_out: bool,
}

/// Log out of the panel: the token stops working on every server and the cookie is removed.
#[utoipa::path(delete, path = "/api/panel/session", tag = "panel",
    responses(
        (status = 200, description = "Logged out; the cookie is removed", body = LoggedOut),
        (status = 401, description = "UNAUTHENTICATED", body = crate::http::error::ErrorSchema),
        (status = 403, description = "CSRF_FAILED", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn log_out_of_panel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(caller): Extension<Caller>,
) -> Response {
    let Caller::Operator(op) = caller else {
        return ApiError::from(ErrorCode::InsufficientScope).into_response();
    };
    if let Err(e) = crate::auth::tokens::revoke(state.auth.meta().as_ref(), &op.hash).await {
        return ApiError::from(e).into_response();
    }
    tracing::info!(operator = %op.username, "operator logged out of the panel");
    let secure = panel_cookie::over_tls(state.tls.is_some(), &headers);
    with_cookie(
        Json(LoggedOut { logged_out: true }),
        panel_cookie::clear(secure),
    )
}

/// `GET /api/admin/overview` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverviewResponse {
    /// This server's numbers now.
    pub now: Sample,
    /// One sample every 10 s over the last hour, oldest first.
    pub history: Vec<Sample>,
    /// Seconds since this server started.
    pub uptime_secs: u64,
}

/// The dashboard's numbers of this server: live sessions, heartbeats per second,
/// activations, refusals by code, bans, with the last hour's history.
#[utoipa::path(get, path = "/api/admin/overview", tag = "panel",
    responses(
        (status = 200, description = "The numbers", body = OverviewResponse),
    ),
    security(("bearer" = ["events:read"])))]
pub async fn overview(State(state): State<AppState>) -> Json<OverviewResponse> {
    let (now, history) = state.overview.current();
    Json(OverviewResponse {
        now,
        history,
        uptime_secs: state.started_at.elapsed().as_secs(),
    })
}
