//! `tessera restore --from FILE [--force]`: a snapshot back into a stopped server's data
//! directory (`store.data_dir` of the config). The checks and the copy are
//! `crate::backup::restore`'s.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use tessera_config::{Config, StoreBackend};

use super::config::ConfigArgs;
use crate::backup::REDIS_NOTE;
use crate::backup::restore::{RestoreReport, restore as restore_into};
use crate::control;

/// `tessera restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot `tessera backup` wrote.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// Restore over an existing store; it is kept as `tessera.redb.bak-<UTC time>`.
    #[arg(long)]
    pub force: bool,
    /// The server's config (its `store` section says where the store is).
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Restores `from` into the data directory of `config`; refused while a server runs there.
pub async fn restore(config: &Config, from: &Path, force: bool) -> anyhow::Result<RestoreReport> {
    if config.store.backend == StoreBackend::Redis {
        anyhow::bail!("{REDIS_NOTE}");
    }
    let socket = control::socket_path(config);
    Ok(restore_into(from, &config.store.embedded_path(), &socket, force).await?)
}

/// Runs `tessera restore`.
pub async fn run(args: RestoreArgs) -> ExitCode {
    let config = match tessera_config::load(args.config.path().as_deref()) {
        Ok(c) => c,
        Err(errs) => {
            eprintln!("{errs}");
            return ExitCode::from(2);
        }
    };
    match restore(&config, &args.from, args.force).await {
        Ok(report) => {
            println!(
                "Restored {} into {} (the store as of {}).",
                args.from.display(),
                report.into.display(),
                report.manifest.created_at.to_rfc3339()
            );
            if let Some(bak) = &report.previous {
                println!("The store that was there is kept as {}.", bak.display());
            }
            for (table, rows) in &report.manifest.tables {
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
