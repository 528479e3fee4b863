//! The license actors in the server: their rules from configuration, their start, and
//! license key generation. Administrative operations on licenses live in `admin/`.

use std::sync::Arc;
use std::time::Duration;

use tessera_actors::{EventSink, LicenseEvent, Licenses, RegistryConfig, SharedRules, Store};
use tessera_config::Config;

pub mod keys;
pub mod push;
pub mod rules;

pub use keys::{KEY_ALPHABET, generate_license_key};
pub use rules::rules_from_config;

/// Starts the license actors over `store`.
pub async fn start(
    cfg: &Config,
    store: Arc<dyn Store>,
    events: Arc<dyn EventSink>,
) -> Result<Licenses, ractor::SpawnErr> {
    Licenses::start(
        store,
        SharedRules::new(rules_from_config(cfg)),
        events,
        RegistryConfig {
            shards: cfg.licenses.effective_shards(),
            op_timeout: cfg.store.op_timeout,
            flush_interval: cfg.store.flush_interval,
            sweep_interval: Duration::from_secs(30),
        },
    )
    .await
}

/// Logs license events; the plugin host and webhooks subscribe here as they land.
pub struct LogEvents;

impl EventSink for LogEvents {
    fn emit(&self, event: &LicenseEvent) {
        match event {
            LicenseEvent::SessionEnded {
                key,
                session,
                reason,
                ..
            } => {
                tracing::debug!(license = %key.masked(), session = %session.token_hash, reason = reason.as_str(), "session ended")
            }
            LicenseEvent::StatusChanged { key, status, .. } => {
                tracing::info!(license = %key.masked(), status = status.as_str(), "license status changed")
            }
            _ => {}
        }
    }
}
