//! `tessera license create|show`: thin callers of the admin service, on a stopped server's
//! store or, through the control socket, on the running server that holds it.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use tessera_actors::{LicenseKey, LimitOverrides};
use tessera_config::Config;

use super::config::ConfigArgs;
use super::target::{Target, ask_running, reach};
use crate::admin::NewLicense;
use crate::admin::view::AdminLicense;
use crate::control::{ControlReply, ControlRequest};

/// `tessera license ...`.
#[derive(Debug, Subcommand)]
pub enum LicenseCommand {
    /// Issue a license and print its key.
    Create(CreateArgs),
    /// Print a license with its effective limits and live sessions (JSON).
    Show(ShowArgs),
}

/// Options of a new license; unset limits inherit from the plan, then `[licenses]`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Plan (configured under `[plans.<name>]`).
    #[arg(long)]
    pub plan: Option<String>,
    /// Product (default: `licenses.default_product`).
    #[arg(long)]
    pub product: Option<String>,
    /// Customer name.
    #[arg(long)]
    pub customer: Option<String>,
    /// Devices at once.
    #[arg(long)]
    pub max_devices: Option<u32>,
    /// Lifetime activations (0 = unlimited).
    #[arg(long)]
    pub max_activations: Option<u32>,
    /// Live sessions at once.
    #[arg(long)]
    pub max_sessions: Option<u32>,
    /// Validity in days (default: the plan's, else perpetual).
    #[arg(long)]
    pub days: Option<u32>,
    /// Config file.
    #[command(flatten)]
    pub config: ConfigArgs,
}

impl CreateArgs {
    fn new_license(&self) -> NewLicense {
        NewLicense {
            plan: self.plan.clone(),
            product: self.product.clone(),
            customer_name: self.customer.clone(),
            overrides: LimitOverrides {
                max_devices: self.max_devices,
                max_activations: self.max_activations,
                max_sessions: self.max_sessions,
                on_session_limit: None,
            },
            days: self.days,
        }
    }
}

/// `tessera license show KEY`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The license key.
    pub key: String,
    /// Config file.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Runs `tessera license ...`.
pub async fn run(cmd: LicenseCommand) -> ExitCode {
    let path = match &cmd {
        LicenseCommand::Create(a) => a.config.path(),
        LicenseCommand::Show(a) => a.config.path(),
    };
    let config = match tessera_config::load(path.as_deref()) {
        Ok(c) => c,
        Err(errs) => {
            eprintln!("{errs}");
            return ExitCode::from(2);
        }
    };
    let result = match cmd {
        LicenseCommand::Create(a) => create(&config, &a).await.map(|key| println!("{key}")),
        LicenseCommand::Show(a) => show(&config, &a.key).await.and_then(|view| {
            println!("{}", serde_json::to_string_pretty(&view)?);
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Issues a license and returns its key.
pub async fn create(config: &Config, args: &CreateArgs) -> anyhow::Result<String> {
    let new = args.new_license();
    let keys = match reach(config).await? {
        Target::Stopped(mut stopped) => {
            let issued = match stopped.admin(config).await {
                Ok(admin) => admin.issue(new, 1).await.map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            stopped.close().await;
            issued?.into_iter().map(|r| r.key.to_string()).collect()
        }
        Target::Running => {
            match ask_running(config, ControlRequest::IssueLicenses { new, count: 1 }).await? {
                ControlReply::Issued(keys) => keys,
                _ => anyhow::bail!("unexpected reply from the server"),
            }
        }
    };
    keys.into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no license was issued"))
}

/// The admin view of a license, from its license actor.
pub async fn show(config: &Config, key: &str) -> anyhow::Result<AdminLicense> {
    let key = LicenseKey::parse(key)?;
    match reach(config).await? {
        Target::Stopped(mut stopped) => {
            let shown = match stopped.admin(config).await {
                Ok(admin) => admin.show(&key).await.map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            stopped.close().await;
            Ok(AdminLicense::of(&shown?, chrono::Utc::now()))
        }
        Target::Running => {
            let req = ControlRequest::ShowLicense {
                license_key: key.to_string(),
            };
            match ask_running(config, req).await? {
                ControlReply::License(view) => Ok(*view),
                _ => anyhow::bail!("unexpected reply from the server"),
            }
        }
    }
}
