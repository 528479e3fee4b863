//! The `tessera` command line, one module per command group. Commands are thin: they parse,
//! reach the server (`target.rs`: its store when it is stopped, its control socket when it
//! runs), call the admin service, and print.

pub mod admin_call;
pub mod api_key;
pub mod auth;
pub mod backup;
pub mod config;
pub mod credentials;
pub mod customer;
pub mod envelope;
pub mod license;
pub mod migrate;
pub mod plugin;
pub mod plugin_new;
pub mod plugin_record;
pub mod product;
pub mod restore;
mod serve;
mod target;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use api_key::regenerate_api_key;
pub use config::{ConfigArgs, check_config};

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
    License(license::LicenseCommand),
    /// Customers: list, search, create, edit, delete, their licenses.
    #[command(subcommand)]
    Customer(customer::CustomerCommand),
    /// Products and their releases (publish a release without a restart).
    #[command(subcommand)]
    Product(product::ProductCommand),
    /// Plans (limits) at run time.
    #[command(subcommand)]
    Plan(product::PlanCommand),
    /// Seal or open seed 003's `{key, data}` envelope (for client authors).
    #[command(subcommand)]
    Envelope(envelope::EnvelopeCommand),
    /// Admin API keys for automation (`tsa_...`, scoped).
    #[command(subcommand, name = "admin-key")]
    AdminKey(credentials::AdminKeyCommand),
    /// Operator accounts for people (admin, super_admin).
    #[command(subcommand)]
    Operator(credentials::OperatorCommand),
    /// Login helpers for scripts (encrypt a password for POST /api/auth/login).
    #[command(subcommand)]
    Auth(auth::AuthCommand),
    /// Start, check or run a policy plugin locally (for plugin authors).
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Write a consistent snapshot of the embedded store (a running server writes it).
    Backup(backup::BackupArgs),
    /// Restore a snapshot into a stopped server's data directory.
    Restore(restore::RestoreArgs),
    /// Copy one stopped store into another (embedded <-> Redis), verified, safe to rerun.
    Migrate(migrate::MigrateArgs),
}

/// `tessera config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration; print every error as `FILE:LINE: key: message`.
    Check(config::CheckArgs),
}

/// `tessera api-key ...`.
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Make a new system API key and print it once. The old key stops working at once,
    /// or after `auth.rotation_overlap_secs`.
    Regenerate(ConfigArgs),
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve::run(args.path()).await,
        Command::License(cmd) => license::run(cmd).await,
        Command::Customer(cmd) => customer::run(cmd).await,
        Command::Product(cmd) => product::run(cmd).await,
        Command::Plan(cmd) => product::run_plan(cmd).await,
        Command::Envelope(cmd) => envelope::run(cmd),
        Command::AdminKey(cmd) => credentials::run_admin_key(cmd).await,
        Command::Operator(cmd) => credentials::run_operator(cmd).await,
        Command::Auth(cmd) => auth::run(cmd),
        Command::Plugin(cmd) => plugin::run(cmd).await,
        Command::Backup(args) => backup::run(args).await,
        Command::Restore(args) => restore::run(args).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::Config(ConfigCommand::Check(args)) if args.against_running => {
            match config::check_against_running(args.config.path().as_deref()).await {
                Ok(config::Comparison::Reloadable(report)) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Ok(config::Comparison::NeedsRestart(report)) => {
                    print!("{report}");
                    ExitCode::from(3)
                }
                Err(report) => {
                    eprintln!("{report}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Config(ConfigCommand::Check(args)) => {
            match check_config(args.config.path().as_deref(), std::env::vars()) {
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
                    api_key::print_new_key(&key, &config);
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// clap checks every subcommand's arguments only when that subcommand is parsed; this
    /// checks them all (a duplicate name, such as `--version` in a subcommand, panics here).
    #[test]
    fn every_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
