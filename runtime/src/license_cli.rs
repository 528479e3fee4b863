//! `tessera license create|show` and `tessera envelope encrypt|decrypt`.
//!
//! License commands open the configured store directly; when a running server holds the
//! embedded store, they ask that server over its control socket instead.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use tessera_actors::{LicenseKey, LicenseView, LimitOverrides, Store};
use tessera_config::{Config, StoreBackend};

use crate::api::admin::{AdminLicense, admin_view};
use crate::cli::ConfigArgs;
use crate::control::{self, ControlReply, ControlRequest};
use crate::licenses::{NewLicense, issue, rules_from_config};
use crate::state::{StartupError, open_stores};
use crate::store::StoreError as MetaStoreError;

/// `tessera license ...`.
#[derive(Debug, Subcommand)]
pub enum LicenseCommand {
    /// Issue a license and print its key.
    Create(CreateArgs),
    /// Print a license with its effective limits and live sessions (JSON).
    Show(ShowArgs),
}

/// Options of a new license; unset limits inherit from the plan, then `[licenses]`.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
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
    #[serde(skip)]
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

/// `tessera envelope ...` (seed 003's `{key, data}`).
#[derive(Debug, Subcommand)]
pub enum EnvelopeCommand {
    /// Read JSON on stdin, print the `data` value sealed for `--key`.
    Encrypt(EnvelopeArgs),
    /// Read a `data` value on stdin, print the JSON it holds.
    Decrypt(EnvelopeArgs),
}

/// The API key an envelope is sealed for.
#[derive(Debug, Args)]
pub struct EnvelopeArgs {
    /// The system API key (`AF-...`).
    #[arg(long, env = "TESSERA_API_KEY")]
    pub key: String,
}

/// Runs `tessera envelope ...`.
pub fn run_envelope(cmd: EnvelopeCommand) -> ExitCode {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("error: cannot read stdin: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cmd {
        EnvelopeCommand::Encrypt(a) => crate::envelope::seal(&a.key, trim(&input)),
        EnvelopeCommand::Decrypt(a) => {
            crate::envelope::open(&a.key, &String::from_utf8_lossy(&input))
                .map(|plain| String::from_utf8_lossy(&plain).into_owned())
        }
    };
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// Runs `tessera license ...`.
pub async fn run_license(cmd: LicenseCommand) -> ExitCode {
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

/// Opens the license store, or `None` when a running server holds the embedded store.
async fn direct_store(config: &Config) -> anyhow::Result<Option<std::sync::Arc<dyn Store>>> {
    match open_stores(config).await {
        Ok((_, _, store)) => Ok(Some(store)),
        Err(StartupError::Store(MetaStoreError::Locked { .. }))
            if config.store.backend == StoreBackend::Embedded =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

async fn via_server(config: &Config, req: ControlRequest) -> anyhow::Result<serde_json::Value> {
    let socket = control::socket_path(config);
    match control::request(&socket, &req).await.context(
        "the store is held by a running server that did not answer on its control socket",
    )? {
        ControlReply::Json(v) => Ok(v),
        ControlReply::ApiKey(_) => anyhow::bail!("unexpected reply from the server"),
        ControlReply::Error(e) => anyhow::bail!("the running server refused: {e}"),
    }
}

/// Issues a license and returns its key.
pub async fn create(config: &Config, args: &CreateArgs) -> anyhow::Result<String> {
    match direct_store(config).await? {
        Some(store) => {
            let record = issue(
                config,
                store.as_ref(),
                args.new_license(),
                chrono::Utc::now(),
            )
            .await?;
            Ok(record.key.to_string())
        }
        None => {
            let v = via_server(config, ControlRequest::CreateLicense(args.clone())).await?;
            v.as_str()
                .map(str::to_string)
                .context("the server did not return a key")
        }
    }
}

/// The admin view of a license.
pub async fn show(config: &Config, key: &str) -> anyhow::Result<serde_json::Value> {
    let key = LicenseKey::parse(key)?;
    match direct_store(config).await? {
        Some(store) => Ok(serde_json::to_value(
            view_from_store(config, store.as_ref(), &key).await?,
        )?),
        None => {
            via_server(
                config,
                ControlRequest::ShowLicense {
                    license_key: key.to_string(),
                },
            )
            .await
        }
    }
}

/// Builds the admin view from what the store holds (no running actors).
pub async fn view_from_store(
    config: &Config,
    store: &dyn Store,
    key: &LicenseKey,
) -> anyhow::Result<AdminLicense> {
    let snap = store
        .load(key)
        .await?
        .with_context(|| format!("license {key} not found"))?;
    let rules = rules_from_config(config);
    let view = LicenseView {
        limits: rules.limits_for(&snap.record),
        timing: rules.timing_for(&snap.record),
        live_sessions: snap.sessions.len() as u32,
        active_devices: snap.activations.iter().filter(|a| a.is_active).count() as u32,
        record: snap.record,
    };
    Ok(admin_view(&view, &snap.sessions))
}

/// `license create` inside a running server (control socket).
pub async fn create_with(
    state: &crate::state::AppState,
    args: &CreateArgs,
) -> anyhow::Result<String> {
    let record = issue(
        &state.config,
        state.licenses.store().as_ref(),
        args.new_license(),
        chrono::Utc::now(),
    )
    .await?;
    tracing::info!(license = %record.key, "license issued via control socket");
    Ok(record.key.to_string())
}

/// `license show` inside a running server (control socket).
pub async fn show_with(
    state: &crate::state::AppState,
    key: &str,
) -> anyhow::Result<serde_json::Value> {
    let key = LicenseKey::parse(key)?;
    Ok(serde_json::to_value(
        view_from_store(&state.config, state.licenses.store().as_ref(), &key).await?,
    )?)
}
