//! Serving: the app, the listener loop with graceful shutdown, and the global middleware.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::IntoResponse;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::http::conn_cap::ConnCap;
use crate::http::fallback::not_found;

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
///
/// Connections are served by hyper directly rather than `axum::serve`, for what that one
/// does not offer: a header read timeout (`server.header_read_timeout_ms`), a cap on header
/// size (`server.max_header_bytes`, 431 beyond it) and on open connections per client address
/// (`server.max_connections_per_ip`), and the split of `/metrics` and `/openapi.json` onto
/// `server.metrics_listen_addr`.
pub async fn serve_router<F>(
    listener: TcpListener,
    state: AppState,
    router: Router,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let cfg = &state.config.server;
    let ops_listener = match cfg.metrics_listen_addr {
        Some(addr) => Some(TcpListener::bind(addr).await?),
        None => None,
    };
    let control = start_control(&state);
    let upkeep = tokio::spawn(upkeep(state.clone()));

    let conns = Arc::new(ConnSettings::new(cfg));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let main_role = if ops_listener.is_some() {
        Role::PublicOnly
    } else {
        Role::Everything
    };
    // HTTPS on the main listener only; the metrics listener stays plain HTTP.
    let tls = state.tls.as_ref().map(|t| t.acceptor());
    let main = accept_loop(
        listener,
        router.clone(),
        main_role,
        Arc::clone(&conns),
        (&graceful, tls),
        rx.clone(),
    );
    let ops = async {
        if let Some(l) = ops_listener {
            accept_loop(
                l,
                router,
                Role::OpsOnly,
                conns,
                (&graceful, None),
                rx.clone(),
            )
            .await;
        }
    };
    let stopping = async {
        shutdown.await;
        let _ = tx.send(true);
    };
    // Runs until both loops have stopped accepting.
    tokio::join!(main, ops, stopping);

    let grace = state.config.server.shutdown_grace;
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "shutdown grace over; dropping open connections");
        }
    }
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
    Ok(())
}

/// Paths that `server.metrics_listen_addr` moves off the main listener.
const OPS_PATHS: &[&str] = &["/metrics", "/openapi.json"];

/// Which routes a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The main listener without a separate metrics listener: every route.
    Everything,
    /// The main listener while a metrics listener exists: all but [`OPS_PATHS`].
    PublicOnly,
    /// The metrics listener: [`OPS_PATHS`] only.
    OpsOnly,
}

impl Role {
    fn serves(self, path: &str) -> bool {
        match self {
            Self::Everything => true,
            Self::PublicOnly => !OPS_PATHS.contains(&path),
            Self::OpsOnly => OPS_PATHS.contains(&path),
        }
    }
}

/// Per-connection settings and the per-address cap.
struct ConnSettings {
    header_read_timeout: Duration,
    max_header_bytes: usize,
    cap: Arc<ConnCap>,
}

impl ConnSettings {
    fn new(cfg: &tessera_config::ServerConfig) -> Self {
        Self {
            header_read_timeout: cfg.header_read_timeout,
            max_header_bytes: cfg.max_header_bytes,
            cap: Arc::new(ConnCap::new(
                cfg.max_connections_per_ip,
                cfg.trusted_proxies.clone(),
            )),
        }
    }
}

/// Accepts on `listener` until `stop` turns true, serving each connection on a task watched
/// by `graceful`; with `tls`, each connection's TLS handshake runs first, on that task, within
/// `server.header_read_timeout_ms`.
async fn accept_loop(
    listener: TcpListener,
    router: Router,
    role: Role,
    conns: Arc<ConnSettings>,
    (graceful, tls): (
        &hyper_util::server::graceful::GracefulShutdown,
        Option<tokio_rustls::TlsAcceptor>,
    ),
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(conns.header_read_timeout)
        .max_buf_size(conns.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(conns.max_header_bytes).unwrap_or(u32::MAX));
    let mut backoff = crate::control::AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|stopping| *stopping) => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff.succeeded();
                a
            }
            Err(e) => {
                // Out of file descriptors, say: wait instead of spinning on the error.
                let delay = backoff.failed();
                tracing::warn!(error = %e, retry_ms = delay.as_millis() as u64, "accept failed");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        let Some(admitted) = conns.cap.admit(peer.ip()) else {
            metrics::counter!("tessera_http_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let slot = admitted.clone();
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            // A connection that upgrades outlives this HTTP connection's task: it takes
            // the slot along. Only upgrade requests (HTTP/1.1 `GET` with `Upgrade`) pay
            // for the extension; a heartbeat's `POST` skips even the header lookup.
            if req.method() == axum::http::Method::GET
                && req.headers().contains_key(hyper::header::UPGRADE)
            {
                req.extensions_mut().insert(slot.clone());
            }
            let router = router.clone();
            async move {
                if !role.serves(req.uri().path()) {
                    let (method, uri) = (req.method().clone(), req.uri().clone());
                    return Ok::<_, Infallible>(not_found(method, uri).await.into_response());
                }
                router.oneshot(req.map(Body::new)).await
            }
        });
        let Some(acceptor) = &tls else {
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                let _ = conn.await;
                drop(admitted);
            });
            continue;
        };
        // Taken before the handshake, so a shutdown meanwhile still reaches the connection.
        let watcher = graceful.watcher();
        let (acceptor, builder) = (acceptor.clone(), builder.clone());
        let handshake_timeout = conns.header_read_timeout;
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        metrics::counter!(crate::http::tls::HANDSHAKE_FAILURES).increment(1);
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        metrics::counter!(crate::http::tls::HANDSHAKE_FAILURES).increment(1);
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let _ = watcher.watch(conn).await;
            drop(admitted);
        });
    }
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
