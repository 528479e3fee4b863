//! `tessera backup --to FILE`: a consistent snapshot of the embedded store. A running server
//! holds the database's lock, so it is asked over its control socket to write the snapshot
//! itself; a stopped server's store is opened here. The work is `crate::backup`'s.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tessera_config::{Config, StoreBackend};

use super::config::ConfigArgs;
use crate::backup::{BackupReport, REDIS_NOTE, write_backup};
use crate::control::{self, ControlReply, ControlRequest};
use crate::store::{EmbeddedStore, StoreError};

/// How long a running server may take to write a snapshot.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// `tessera backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The snapshot file to write (replaced if it exists; written as a temporary file beside
    /// it, mode 0600, then renamed).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// The server's config (its `store` section says where the store is).
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Writes a snapshot of the store of `config` to `to`, through the running server if there
/// is one.
pub async fn backup(config: &Config, to: &Path) -> anyhow::Result<BackupReport> {
    if config.store.backend == StoreBackend::Redis {
        anyhow::bail!("{REDIS_NOTE}");
    }
    let to = std::path::absolute(to).with_context(|| format!("bad path {}", to.display()))?;
    let db = config.store.embedded_path();
    if !db.exists() {
        anyhow::bail!("there is no store at {}", db.display());
    }
    match EmbeddedStore::open(&db) {
        Ok(store) => Ok(write_backup(&store, &to).await?),
        Err(StoreError::Locked(_)) => {
            let req = ControlRequest::Backup { to };
            let socket = control::socket_path(config);
            match control::request_within(&socket, &req, BACKUP_TIMEOUT)
                .await
                .context(
                    "a running server holds the store but did not answer on its control socket",
                )? {
                ControlReply::Backup(report) => Ok(report),
                ControlReply::Error(e) => anyhow::bail!("the running server refused: {e}"),
                _ => anyhow::bail!("unexpected reply from the server"),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs `tessera backup`.
pub async fn run(args: BackupArgs) -> ExitCode {
    let config = match tessera_config::load(args.config.path().as_deref()) {
        Ok(c) => c,
        Err(errs) => {
            eprintln!("{errs}");
            return ExitCode::from(2);
        }
    };
    match backup(&config, &args.to).await {
        Ok(report) => {
            println!(
                "Snapshot written: {} ({} bytes), holding everything committed at {}.",
                report.path.display(),
                report.bytes,
                report.created_at.to_rfc3339()
            );
            for (table, rows) in &report.tables {
                println!("  {table:<20} {rows}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
