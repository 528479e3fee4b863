//! `tessera api-key regenerate`.

use std::sync::Arc;

use anyhow::Context;
use tessera_config::Config;

use super::target::{Target, ask_running, reach};
use crate::auth::system_key::{ApiKeys, write_key_file};
use crate::control::{ControlReply, ControlRequest};

/// Replaces the system API key and returns the new one; writes `auth.api_key_file` if set.
///
/// Opens the store directly; when a running server holds the embedded store, asks that
/// server through its control socket instead (it then refuses the old key at once).
pub async fn regenerate_api_key(config: &Config) -> anyhow::Result<String> {
    let overlap = config.auth.rotation_overlap;
    let key = match reach(config).await? {
        Target::Stopped(stopped) => {
            let key = ApiKeys::new(Arc::clone(&stopped.meta))
                .regenerate(overlap)
                .await;
            stopped.close().await;
            key?
        }
        Target::Running => {
            let req = ControlRequest::RegenerateApiKey {
                rotation_overlap_secs: overlap.as_secs(),
            };
            match ask_running(config, req).await? {
                ControlReply::ApiKey(key) => key,
                _ => anyhow::bail!("unexpected reply from the server"),
            }
        }
    };
    if let Some(path) = &config.auth.api_key_file {
        write_key_file(path, &key)
            .with_context(|| format!("cannot write auth.api_key_file {}", path.display()))?;
    }
    Ok(key)
}

pub(super) fn print_new_key(key: &str, config: &Config) {
    println!("System API key (shown only now; the server keeps only its SHA-256):");
    println!();
    println!("    {key}");
    println!();
    if let Some(path) = &config.auth.api_key_file {
        println!("Also written to {} (mode 0600).", path.display());
    }
}
