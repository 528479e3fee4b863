//! Config reload: on SIGHUP or a change of the config file, apply every setting that can
//! change while the server runs — rate limits, license limits, plans, products and session
//! timing (for new sessions), bundle presets, security defaults, the log level, the plugin
//! chain and the TLS certificate — without dropping sessions or connections.
//!
//! A setting that needs a restart (listen address, store, ...; [`settings`] classifies every
//! one) keeps its running value and is reported in the log, in
//! `tessera_config_restart_pending` and by `tessera config check --against-running`; it is
//! never half-applied. A file that fails validation changes nothing.

pub mod settings;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use self::settings::{Change, Class, Context, Settings};
use crate::state::AppState;

/// What a reload applied and what it left for a restart.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Settings now in effect with their new values.
    pub applied: Vec<Change>,
    /// Settings the file changes that keep their running value until a restart.
    pub needs_restart: Vec<Change>,
}

/// How `state` classifies settings.
pub fn context(state: &AppState) -> Context {
    Context {
        tls_running: state.tls.is_some(),
    }
}

/// Every setting as `state` runs it.
pub fn running_settings(state: &AppState) -> Settings {
    settings::settings(&state.running_config.load_full(), context(state))
}

/// Applies `path` (or the defaults and environment when `None`) to the running `state`.
///
/// # Errors
/// What was not applied, in one message: the config did not load (nothing changed), the
/// catalog could not be refreshed (nothing changed), or the certificate, the log level or
/// some plugins kept their previous state (the rest was applied).
pub async fn reload(state: &AppState, path: Option<&Path>) -> Result<Outcome, String> {
    let mut next = tessera_config::load(path).map_err(|e| format!("nothing changed: {e}"))?;
    let _one_at_a_time = state.reload_lock.lock().await;
    let running = state.running_config.load_full();
    let changes = settings::reloadable(&running, &mut next, context(state));
    let (mut applied, needs_restart): (Vec<Change>, Vec<Change>) =
        changes.into_iter().partition(|c| c.class == Class::Reload);
    for c in &needs_restart {
        tracing::warn!(
            setting = %c.key,
            running = %c.from,
            file = %c.to,
            "this setting needs a restart; the running value stays until then"
        );
    }
    metrics::gauge!("tessera_config_restart_pending").set(needs_restart.len() as f64);

    let mut failed = Vec::new();
    let touched =
        |applied: &[Change], prefix: &str| applied.iter().any(|c| c.key.starts_with(prefix));
    if touched(&applied, "log.level")
        && let Err(e) = crate::telemetry::set_level(&next.log.level)
    {
        failed.push(e);
        next.log.level.clone_from(&running.log.level);
        applied.retain(|c| c.key != "log.level");
    }
    let next = Arc::new(next);
    // The license rules, presets and release channels reach the actors through the
    // catalog's listeners. It is the one step that can fail on the store: put the running
    // base back and change nothing else.
    let catalog = state.admin.catalog();
    if let Err(e) = catalog.set_base(Arc::clone(&next)).await {
        let _ = catalog.set_base(Arc::clone(&running)).await;
        if touched(&applied, "log.level") {
            let _ = crate::telemetry::set_level(&running.log.level);
        }
        return Err(format!(
            "nothing changed: products and plans could not be refreshed from the store: {e}"
        ));
    }
    if touched(&applied, "rate_limit.") {
        state.rate_limits.reconfigure(&next.rate_limit);
    }
    if touched(&applied, "security.") {
        state.auth.reconfigure(&next.security);
    }
    if let Some(tls) = &state.tls
        && let Err(e) = tls.reload_from(&next.server)
    {
        failed.push(format!(
            "TLS certificate not reloaded, the previous one keeps serving: {e}"
        ));
    }
    if !state.policy.reload(&next).await.is_ok() {
        failed.push("some plugins failed to reload; their previous versions keep serving".into());
    }
    state.running_config.store(next);
    let names: Vec<&str> = applied.iter().map(|c| c.key.as_str()).collect();
    tracing::info!(
        applied = %names.join(", "),
        needs_restart = needs_restart.len(),
        "configuration reloaded"
    );
    if failed.is_empty() {
        Ok(Outcome {
            applied,
            needs_restart,
        })
    } else {
        Err(failed.join("; "))
    }
}

/// Reloads the plugin chain as a SIGHUP does, from the running config's `[[plugins]]`
/// (`POST /api/admin/plugins/reload`): every plugin file is read again, a changed one is
/// compiled and swapped in, and one that fails to load keeps its previous version serving.
/// Nothing else is reloaded; a change of `[[plugins]]` in the file needs a config reload.
/// Serialized with config reloads.
pub async fn reload_plugins(state: &AppState) -> tessera_plugins::ReloadReport {
    let _one_at_a_time = state.reload_lock.lock().await;
    let running = state.running_config.load_full();
    state.policy.reload(&running).await
}

/// Quiet time after the last write to the config file before it is read: editors write in
/// several steps.
const FILE_DEBOUNCE: Duration = Duration::from_millis(300);

/// Reloads on every SIGHUP and, when the server runs from a file, on every change of it,
/// until the task is aborted.
#[cfg(unix)]
pub fn spawn(
    state: AppState,
    path: Option<PathBuf>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let (changed_tx, mut changed) = tokio::sync::mpsc::channel::<()>(1);
    let watcher = match &path {
        Some(p) => {
            match tessera_plugins::watch_paths(std::slice::from_ref(p), FILE_DEBOUNCE, move |_| {
                // A reload already queued covers this change too.
                let _ = changed_tx.try_send(());
            }) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(
                        "cannot watch {}; changes apply on SIGHUP only: {e}",
                        p.display()
                    );
                    None
                }
            }
        }
        None => None,
    };
    Ok(tokio::spawn(async move {
        let _watching = watcher;
        loop {
            let why = tokio::select! {
                Some(()) = hup.recv() => "SIGHUP",
                Some(()) = changed.recv() => "the config file changed",
                else => break,
            };
            tracing::info!("{why}: reloading configuration");
            if let Err(e) = reload(&state, path.as_deref()).await {
                metrics::counter!("tessera_config_reload_failures_total").increment(1);
                tracing::error!("reload failed: {e}");
            }
        }
    }))
}
