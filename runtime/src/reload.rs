//! SIGHUP: re-read the config file and apply what can change at run time — the TLS
//! certificate, the license rules (limits, plans, products' session settings and release
//! channels, as the catalog merges them with what was changed through the API), bundle
//! presets and the plugin chain — without dropping sessions or connections. Other settings
//! need a restart; an invalid file changes nothing.

use std::path::PathBuf;

use crate::state::AppState;

/// Applies `path` (or the defaults and environment when `None`) to the running `state`.
///
/// # Errors
/// What was not applied, in one message: the config did not load (nothing changed), the
/// certificate did not load (the previous one serves; the rest was applied), the catalog
/// refused it (plugins not reloaded either), or some plugins kept their previous versions.
pub async fn reload(state: &AppState, path: Option<&std::path::Path>) -> Result<(), String> {
    let config = std::sync::Arc::new(tessera_config::load(path).map_err(|e| e.to_string())?);
    let mut failed = Vec::new();
    match &state.tls {
        Some(tls) => {
            if let Err(e) = tls.reload_from(&config.server) {
                failed.push(format!(
                    "TLS certificate not reloaded, the previous one keeps serving: {e}"
                ));
            }
        }
        None if config.server.tls_files().is_some() => tracing::warn!(
            "server.tls_cert_file is set but the server started without TLS: HTTPS needs a restart"
        ),
        None => {}
    }
    // The catalog's listeners replace the license rules and the release channels.
    if let Err(e) = state
        .admin
        .catalog()
        .set_base(std::sync::Arc::clone(&config))
        .await
    {
        failed.push(format!("products and plans not reloaded: {e}"));
        return Err(failed.join("; "));
    }
    if !state.policy.reload(&config).await.is_ok() {
        failed.push("some plugins failed to reload; their previous versions keep serving".into());
    }
    if failed.is_empty() {
        tracing::info!("configuration reloaded");
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// Reloads on every SIGHUP until the task is aborted.
#[cfg(unix)]
pub fn spawn_on_sighup(
    state: AppState,
    path: Option<PathBuf>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading configuration");
            if let Err(e) = reload(&state, path.as_deref()).await {
                metrics::counter!("tessera_config_reload_failures_total").increment(1);
                tracing::error!("reload failed: {e}");
            }
        }
    }))
}
