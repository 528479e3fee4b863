//! One admin command from the CLI: load the config, reach the server (its store when it is
//! stopped, its control socket when it runs), run the command, print the answer as text or,
//! with `--json`, as the HTTP API's JSON. Every admin command group (`license`, `customer`,
//! `product`) goes through here.

use std::process::ExitCode;

use clap::Args;
use serde_json::Value;
use tessera_config::Config;

use super::config::ConfigArgs;
use super::target::{Target, ask_running, reach};
use crate::admin::command::AdminCommand;
use crate::control::{ControlReply, ControlRequest};

/// Options every admin command shares.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Print the JSON answer (the HTTP API's shape) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Config file.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The configuration `common` names, or `None` after printing why it is invalid.
pub(super) fn load_config(common: &Common) -> Option<Config> {
    match tessera_config::load(common.config.path().as_deref()) {
        Ok(c) => Some(c),
        Err(errs) => {
            eprintln!("{errs}");
            None
        }
    }
}

/// Runs `command` (unless building it failed) and prints its answer with `render`, or
/// the JSON with `--json`.
pub(super) async fn finish(
    config: &Config,
    common: &Common,
    command: anyhow::Result<AdminCommand>,
    render: fn(&Value) -> String,
) -> ExitCode {
    let result = match command {
        Ok(command) => execute(config, command).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(v) => {
            if common.json {
                println!("{}", pretty(&v));
            } else {
                print!("{}", render(&v));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `command` on the server `config` names, running or stopped.
pub(super) async fn execute(config: &Config, command: AdminCommand) -> anyhow::Result<Value> {
    match reach(config).await? {
        Target::Stopped(mut stopped) => {
            let out = match stopped.admin(config).await {
                Ok(admin) => command.run(&admin).await.map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            stopped.close().await;
            out
        }
        Target::Running => match ask_running(config, ControlRequest::Admin(command)).await? {
            ControlReply::Admin(v) => Ok(v),
            _ => anyhow::bail!("unexpected reply from the server"),
        },
    }
}

pub(super) fn pretty(v: &Value) -> String {
    format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default())
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `field: value` lines of an object's top level.
pub(super) fn fields(v: &Value) -> String {
    match v.as_object() {
        Some(map) => map
            .iter()
            .map(|(k, x)| format!("{k}: {}\n", scalar(x)))
            .collect(),
        None => pretty(v),
    }
}

/// The rows of `v[list]` as tab-separated `columns` (keys only when one column).
pub(super) fn column(v: &Value, list: &str, columns: &[&str]) -> String {
    let rows = v[list].as_array().cloned().unwrap_or_default();
    let mut out = String::new();
    if columns.len() > 1 {
        out.push_str(&columns.join("\t"));
        out.push('\n');
    }
    for row in rows {
        let cells: Vec<String> = columns.iter().map(|c| scalar(&row[*c])).collect();
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
    out
}
