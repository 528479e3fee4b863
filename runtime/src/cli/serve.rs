//! `tessera serve`: load the config, open the store, listen, run until a signal.

use std::path::PathBuf;
use std::process::ExitCode;

use tokio::net::TcpListener;

use super::api_key::print_new_key;
use crate::http::server::{serve, shutdown_signal};
use crate::state::{AppState, StartupError};
use crate::store::StoreError;

pub(super) async fn run(path: Option<PathBuf>) -> ExitCode {
    let config = match tessera_config::load(path.as_deref()) {
        Ok(c) => c,
        Err(errs) => {
            eprintln!("{errs}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = crate::telemetry::init(&config.log) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    tracing::info!(
        config = %path.as_deref().map_or_else(|| "(defaults)".to_owned(), |p| p.display().to_string()),
        store = ?config.store.backend,
        "starting {} {}",
        config.server.service_name,
        env!("CARGO_PKG_VERSION")
    );
    let addr = config.server.listen_addr;
    let opened = match AppState::open(config).await {
        Ok(o) => o,
        Err(StartupError::Store(StoreError::Locked(path))) => {
            tracing::error!(
                "{} is held by another process (is another `tessera serve` running on this data_dir?)",
                path.display()
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(key) = &opened.new_api_key {
        print_new_key(key, &opened.state.config);
    }
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, "cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "listening");
    #[cfg(unix)]
    if let Err(e) = crate::reload::spawn(opened.state.clone(), path.clone()) {
        tracing::warn!("cannot install the SIGHUP handler; reload needs a restart: {e}");
    }
    match serve(listener, opened.state, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}
