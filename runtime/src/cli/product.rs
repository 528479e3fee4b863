//! `tessera product ...` and `tessera plan ...`: products, releases and plans at run time,
//! on a stopped server's store or through a running server's control socket. A release
//! published here reaches `version/check` on every server within a second.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::admin_call::{Common, column, finish, load_config, pretty};
use crate::admin::command::AdminCommand;
use crate::admin::{NewRelease, PlanInput, ProductInput};

/// `tessera product ...`.
#[derive(Debug, Subcommand)]
pub enum ProductCommand {
    /// List products with their latest version.
    List(Only),
    /// Print one product with its releases (JSON).
    Show(One),
    /// Create a product (no release until one is published).
    Create(ProductArgs),
    /// Change a product's name or session settings.
    Edit(ProductArgs),
    /// Publish a release of a product.
    Release(ReleaseArgs),
}

/// `tessera plan ...`.
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// List plans with their limits.
    List(Only),
    /// Create a plan.
    Create(PlanArgs),
    /// Change a plan's limits.
    Edit(PlanArgs),
}

/// Shared options only.
#[derive(Debug, Args)]
pub struct Only {
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// One product by id.
#[derive(Debug, Args)]
pub struct One {
    /// Product id.
    pub id: String,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// A product's settings.
#[derive(Debug, Args)]
pub struct ProductArgs {
    /// Product id.
    pub id: String,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Heartbeat interval in seconds.
    #[arg(long)]
    pub heartbeat_interval_secs: Option<u64>,
    /// Heartbeat timeout in seconds.
    #[arg(long)]
    pub heartbeat_timeout_secs: Option<u64>,
    /// Grace in seconds.
    #[arg(long)]
    pub grace_secs: Option<u64>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `tessera product release`.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// Product id.
    pub id: String,
    /// The version (`1.2.0`, `1.3.0-rc.1`).
    #[arg(value_name = "VERSION")]
    pub release_version: String,
    /// Release date `YYYY-MM-DD` (default: today).
    #[arg(long)]
    pub date: Option<String>,
    /// Download URL.
    #[arg(long)]
    pub download_url: Option<String>,
    /// Release notes.
    #[arg(long)]
    pub notes: Option<String>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// A plan's limits.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Plan name.
    pub name: String,
    /// Devices per license.
    #[arg(long)]
    pub max_devices: Option<u32>,
    /// Lifetime activations per license (0 = unlimited).
    #[arg(long)]
    pub max_activations: Option<u32>,
    /// Live sessions per license.
    #[arg(long)]
    pub max_sessions: Option<u32>,
    /// Validity of a newly issued license, in days.
    #[arg(long)]
    pub valid_days: Option<u32>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

impl ProductArgs {
    fn input(&self) -> ProductInput {
        ProductInput {
            name: self.name.clone(),
            heartbeat_interval_secs: self.heartbeat_interval_secs.map(Some),
            heartbeat_timeout_secs: self.heartbeat_timeout_secs.map(Some),
            grace_secs: self.grace_secs.map(Some),
            on_session_limit: None,
        }
    }
}

impl PlanArgs {
    fn input(&self) -> PlanInput {
        PlanInput {
            max_devices: self.max_devices.map(Some),
            max_activations: self.max_activations.map(Some),
            max_sessions: self.max_sessions.map(Some),
            on_session_limit: None,
            valid_days: self.valid_days.map(Some),
        }
    }
}

fn products_table(v: &Value) -> String {
    column(v, "products", &["id", "name", "latest_version"])
}

fn release_line(v: &Value) -> String {
    format!(
        "{} latest version: {}\n",
        scalar_str(&v["id"]),
        scalar_str(&v["latest_version"])
    )
}

fn scalar_str(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// Runs `tessera product ...`.
pub async fn run(cmd: ProductCommand) -> ExitCode {
    let (common, render): (&Common, fn(&Value) -> String) = match &cmd {
        ProductCommand::List(a) => (&a.common, products_table),
        ProductCommand::Show(a) => (&a.common, pretty),
        ProductCommand::Create(a) | ProductCommand::Edit(a) => (&a.common, pretty),
        ProductCommand::Release(a) => (&a.common, release_line),
    };
    let common = common.clone();
    let Some(config) = load_config(&common) else {
        return ExitCode::from(2);
    };
    let command = match cmd {
        ProductCommand::List(_) => AdminCommand::Products,
        ProductCommand::Show(a) => AdminCommand::Product { id: a.id },
        ProductCommand::Create(a) => AdminCommand::CreateProduct {
            input: a.input(),
            id: a.id,
        },
        ProductCommand::Edit(a) => AdminCommand::EditProduct {
            input: a.input(),
            id: a.id,
        },
        ProductCommand::Release(a) => AdminCommand::PublishRelease {
            product: a.id,
            release: NewRelease {
                version: a.release_version,
                release_date: a.date,
                download_url: a.download_url,
                release_notes: a.notes,
            },
        },
    };
    finish(&config, &common, Ok(command), render).await
}

/// Runs `tessera plan ...`.
pub async fn run_plan(cmd: PlanCommand) -> ExitCode {
    let common = match &cmd {
        PlanCommand::List(a) => &a.common,
        PlanCommand::Create(a) | PlanCommand::Edit(a) => &a.common,
    }
    .clone();
    let Some(config) = load_config(&common) else {
        return ExitCode::from(2);
    };
    let (command, render): (AdminCommand, fn(&Value) -> String) = match cmd {
        PlanCommand::List(_) => (AdminCommand::Plans, |v| {
            column(
                v,
                "plans",
                &[
                    "name",
                    "max_devices",
                    "max_activations",
                    "max_sessions",
                    "valid_days",
                ],
            )
        }),
        PlanCommand::Create(a) => (
            AdminCommand::CreatePlan {
                input: a.input(),
                name: a.name,
            },
            pretty,
        ),
        PlanCommand::Edit(a) => (
            AdminCommand::EditPlan {
                input: a.input(),
                name: a.name,
            },
            pretty,
        ),
    };
    finish(&config, &common, Ok(command), render).await
}
