//! The `tessera` command line: `serve`, `config check`, `api-key regenerate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tessera_config::{Config, StoreBackend};
use tokio::net::TcpListener;

use crate::auth::{ApiKeys, write_key_file};
use crate::control::{self, ControlReply, ControlRequest};
use crate::server::{serve, shutdown_signal};
use crate::state::{AppState, StartupError, open_stores};
use crate::store::StoreError;

/// Tessera: license and session server.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ConfigArgs),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// System API key tools.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Issue and inspect licenses.
    #[command(subcommand)]
    License(crate::license_cli::LicenseCommand),
    /// Seal or open seed 003's `{key, data}` envelope (for client authors).
    #[command(subcommand)]
    Envelope(crate::license_cli::EnvelopeCommand),
    /// Check a policy plugin or run one of its hooks locally (for plugin authors).
    #[command(subcommand)]
    Plugin(crate::plugin_cli::PluginCommand),
}

/// `tessera config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration; print every error as `FILE:LINE: key: message`.
    Check(ConfigArgs),
}

/// `tessera api-key ...`.
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Make a new system API key and print it once. The old key stops working at once,
    /// or after `auth.rotation_overlap_secs`.
    Regenerate(ConfigArgs),
}

/// `--config FILE`.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// Config file (TOML). Default: ./tessera.toml if it exists, else built-in defaults.
    #[arg(long, short = 'c', env = "TESSERA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ConfigArgs {
    /// The file to read: `--config`, else `./tessera.toml` when present.
    pub fn path(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            let default = PathBuf::from("tessera.toml");
            default.exists().then_some(default)
        })
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve_command(args.path()).await,
        Command::License(cmd) => crate::license_cli::run_license(cmd).await,
        Command::Envelope(cmd) => crate::license_cli::run_envelope(cmd),
        Command::Plugin(cmd) => crate::plugin_cli::run(cmd),
        Command::Config(ConfigCommand::Check(args)) => {
            match check_config(args.path().as_deref(), std::env::vars()) {
                Ok(report) => {
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(report) => {
                    eprintln!("{report}");
                    ExitCode::from(2)
                }
            }
        }
        Command::ApiKey(ApiKeyCommand::Regenerate(args)) => {
            let config = match tessera_config::load(args.path().as_deref()) {
                Ok(c) => c,
                Err(errs) => {
                    eprintln!("{errs}");
                    return ExitCode::from(2);
                }
            };
            match regenerate_api_key(&config).await {
                Ok(key) => {
                    print_new_key(&key, &config);
                    if !config.auth.rotation_overlap.is_zero() {
                        println!(
                            "The previous key keeps working for {} s.",
                            config.auth.rotation_overlap.as_secs()
                        );
                    } else {
                        println!("The previous key no longer works.");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `tessera config check`: `Ok("OK ...")`, or `Err` with one `FILE:LINE: key: message` per line.
pub fn check_config(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<String, String> {
    match tessera_config::load_with_env(path, env) {
        Ok(_) => Ok(match path {
            Some(p) => format!("OK: {}", p.display()),
            None => "OK: no config file, built-in defaults and TESSERA_* variables".to_owned(),
        }),
        Err(errs) => Err(errs.to_string()),
    }
}

/// Replaces the system API key and returns the new one; writes `auth.api_key_file` if set.
///
/// Opens the store directly; when a running server holds the embedded store, asks that
/// server through its control socket instead (it then refuses the old key at once).
pub async fn regenerate_api_key(config: &Config) -> anyhow::Result<String> {
    let overlap = config.auth.rotation_overlap;
    let key = match open_stores(config).await {
        Ok((meta, _embedded, _licenses)) => ApiKeys::new(meta).regenerate(overlap).await?,
        Err(StartupError::Store(StoreError::Locked { .. }))
            if config.store.backend == StoreBackend::Embedded =>
        {
            let socket = control::socket_path(config);
            let req = ControlRequest::RegenerateApiKey {
                rotation_overlap_secs: overlap.as_secs(),
            };
            match control::request(&socket, &req).await.context(
                "the store is held by a running server that did not answer on its control socket",
            )? {
                ControlReply::ApiKey(key) => key,
                ControlReply::Error(e) => anyhow::bail!("the running server refused: {e}"),
                ControlReply::Json(_) => anyhow::bail!("unexpected reply from the server"),
            }
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(path) = &config.auth.api_key_file {
        write_key_file(path, &key)
            .with_context(|| format!("cannot write auth.api_key_file {}", path.display()))?;
    }
    Ok(key)
}

fn print_new_key(key: &str, config: &Config) {
    println!("System API key (shown only now; the server keeps only its SHA-256):");
    println!();
    println!("    {key}");
    println!();
    if let Some(path) = &config.auth.api_key_file {
        println!("Also written to {} (mode 0600).", path.display());
    }
}

async fn serve_command(path: Option<PathBuf>) -> ExitCode {
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
        Err(StartupError::Store(StoreError::Locked { path })) => {
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
    if let Err(e) = crate::reload::spawn_on_sighup(opened.state.clone(), path.clone()) {
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

/// How long the CLI waits for a server's control socket.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
