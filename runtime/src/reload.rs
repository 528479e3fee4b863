//! SIGHUP: re-read the config file and apply what can change at run time — the license
//! rules (limits, plans, products' session settings and release channels, as the catalog
//! merges them with what was changed through the API), bundle presets and the plugin chain —
//! without dropping sessions. Other settings need a restart; an invalid file changes nothing.

use std::path::PathBuf;

use crate::state::AppState;

/// Applies `path` (or the defaults and environment when `None`) to the running `state`.
pub async fn reload(state: &AppState, path: Option<&std::path::Path>) -> Result<(), String> {
    let config = std::sync::Arc::new(tessera_config::load(path).map_err(|e| e.to_string())?);
    // The catalog's listeners replace the license rules and the release channels.
    state
        .admin
        .catalog()
        .set_base(std::sync::Arc::clone(&config))
        .await
        .map_err(|e| format!("products and plans not reloaded: {e}"))?;
    let report = state.policy.reload(&config).await;
    if report.is_ok() {
        tracing::info!("configuration reloaded");
        Ok(())
    } else {
        Err("some plugins failed to reload; their previous versions keep serving".into())
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
