//! Serving: the app, the listener loop with graceful shutdown, and the global middleware.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::api::{self, Routes};
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
