//! `tessera migrate --from STORE --to STORE [--force]`: copies one stopped store into
//! another (embedded ↔ Redis). The work is `crate::migrate`'s; this parses and prints.

use std::process::ExitCode;

use clap::Args;

use super::config::ConfigArgs;
use crate::migrate::{Endpoint, migrate};

/// `tessera migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The store to copy: `embedded` (the config's data_dir), `embedded:DIR`, `redis` (the
    /// config's redis_url) or a Redis URL. Stop every server using it first.
    #[arg(long, value_name = "STORE")]
    pub from: String,
    /// The store to copy into, named the same way. No server may use it meanwhile.
    #[arg(long, value_name = "STORE")]
    pub to: String,
    /// Overwrite items the target holds differently (items only in the target are kept).
    #[arg(long)]
    pub force: bool,
    /// The config (its `store` section gives `embedded`, `redis`, the Redis CA file and timeout).
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Runs `tessera migrate`.
pub async fn run(args: MigrateArgs) -> ExitCode {
    let config = match tessera_config::load(args.config.path().as_deref()) {
        Ok(c) => c,
        Err(errs) => {
            eprintln!("{errs}");
            return ExitCode::from(2);
        }
    };
    let (from, to) = match (
        Endpoint::parse(&args.from, &config),
        Endpoint::parse(&args.to, &config),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("Migrating {} -> {}", from.label(), to.label());
    let shown = |t: &crate::migrate::Tally| {
        println!("Before the copy (compared with the target):");
        print!("{t}");
    };
    match migrate(&config, &from, &to, args.force, shown).await {
        Ok(report) => {
            println!("After the copy, verified (every source item is in the target as is):");
            print!("{}", report.after);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
