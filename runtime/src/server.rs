//! Serving: the app, the listener loop with graceful shutdown, and the global middleware.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use tokio::net::TcpListener;

use crate::api::{self, Routes};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;

/// The whole HTTP application over `state`, ready for `oneshot` in tests or for [`serve`].
pub fn app(state: AppState) -> Router {
    api::router(state, Routes::standard())
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then drains (see [`serve_router`]).
pub async fn serve<F>(listener: TcpListener, state: AppState, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let router = app(state.clone());
    serve_router(listener, state, router, shutdown).await
}

/// Serves `router` on `listener` with the server's background tasks (control socket for the
/// embedded store, rate-limit and metrics upkeep). When `shutdown` resolves: stops accepting,
/// gives in-flight requests `server.shutdown_grace_ms`, then runs the shutdown hooks.
pub async fn serve_router<F>(
    listener: TcpListener,
    state: AppState,
    router: Router,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let control = start_control(&state);
    let upkeep = tokio::spawn(upkeep(state.clone()));

    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown.await;
        let _ = tx.send(true);
    };
    let grace = state.config.server.shutdown_grace;
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal);
    let result = tokio::select! {
        r = server.into_future() => r,
        () = async {
            let _ = rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "shutdown grace over; dropping open connections");
            Ok(())
        }
    };
    tracing::info!("HTTP server stopped");

    // Await the aborted tasks so their state clones (and the store handle) are dropped
    // before we return: a restart on the same data_dir must find the database free.
    upkeep.abort();
    let _ = upkeep.await;
    if let Some((task, path)) = control {
        task.abort();
        let _ = task.await;
        let _ = std::fs::remove_file(path);
    }
    state.shutdown_hooks.run(grace).await;
    result
}

#[cfg(unix)]
fn start_control(state: &AppState) -> Option<(tokio::task::JoinHandle<()>, std::path::PathBuf)> {
    state.embedded.as_ref()?;
    let path = crate::control::socket_path(&state.config);
    match crate::control::spawn(state.clone(), path.clone()) {
        Ok(task) => Some((task, path)),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "control socket unavailable; `tessera api-key regenerate` needs the server stopped");
            None
        }
    }
}

#[cfg(not(unix))]
fn start_control(_state: &AppState) -> Option<(tokio::task::JoinHandle<()>, std::path::PathBuf)> {
    None
}

/// Periodic upkeep: histogram maintenance and dropping idle rate-limit buckets.
async fn upkeep(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.metrics.run_upkeep();
        state.rate_limits.housekeep();
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// JSON 404 for unknown routes.
pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("No route for {method} {}", uri.path()),
    )
}

/// JSON 405 for known routes with another method.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// 408 `REQUEST_TIMEOUT` when a request runs past `server.request_timeout_ms`.
pub(crate) async fn timeout_layer(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(state.config.server.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::from(ErrorCode::RequestTimeout).into_response(),
    }
}

/// 413 at once when `Content-Length` announces more than `server.body_limit_bytes`, before
/// auth or routing; chunked bodies are cut by the extractors' `DefaultBodyLimit`.
pub(crate) async fn body_limit_layer(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = state.config.server.body_limit_bytes as u64;
    if declared.is_some_and(|len| len > limit) {
        return ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("Request body is larger than {limit} bytes"),
        )
        .into_response();
    }
    next.run(req).await
}

/// A panicking handler answers 500 `INTERNAL_ERROR` instead of dropping the connection.
pub(crate) async fn catch_panic(req: Request, next: Next) -> Response {
    let route = req.uri().path().to_owned();
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(resp) => resp,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            ApiError::internal(anyhow::anyhow!("handler for {route} panicked: {what}"))
                .into_response()
        }
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

/// Rewrites error responses made outside our handlers (axum's extractor rejections, layers)
/// into the JSON error shape, keeping their status and headers.
pub(crate) async fn normalize_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(resp.headers()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let code = ErrorCode::for_status(status);
    let message = if text.is_empty() || status.is_server_error() {
        code.default_message().to_owned()
    } else {
        text
    };
    let body = ErrorBody {
        error: &message,
        code,
        status: status.as_u16(),
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    let mut out = Response::from_parts(parts, axum::body::Body::from(json));
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!("non-JSON 500 from a layer");
    }
    *out.status_mut() = status;
    out
}
