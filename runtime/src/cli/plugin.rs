//! `tessera plugin check|run`: tools for plugin authors, no server needed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use tessera_plugins::{Decision, Hook, check_module, run_once};

/// `tessera plugin ...`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Validate a plugin against ABI v1 and list the hooks it handles.
    Check(CheckArgs),
    /// Run one hook of a plugin on an event and print its decision (JSON).
    Run(RunArgs),
}

/// `tessera plugin check FILE`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The plugin (`.wasm`, or `.wat` text).
    pub file: PathBuf,
}

/// `tessera plugin run FILE --hook HOOK --event EVENT.json [--config PLUGIN.toml]`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plugin (`.wasm`, or `.wat` text).
    pub file: PathBuf,
    /// The hook, e.g. `on_heartbeat`.
    #[arg(long)]
    pub hook: String,
    /// The event as JSON (the shapes in plugins/ABI.md); `-` reads stdin.
    #[arg(long)]
    pub event: PathBuf,
    /// The plugin's config as TOML (what `[plugins.config]` would hold).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs `tessera plugin ...`.
pub fn run(cmd: PluginCommand) -> ExitCode {
    let result = match cmd {
        PluginCommand::Check(a) => check(&a),
        PluginCommand::Run(a) => run_hook(&a),
    };
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
        return Ok(buf);
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn check(a: &CheckArgs) -> anyhow::Result<String> {
    let info = check_module(&read(&a.file)?)?;
    let hooks: Vec<String> = info.hooks.iter().map(|h| h.name().to_string()).collect();
    let mut out = format!(
        "OK: {} implements ABI v{}\nhooks: {}\nhost functions: {}",
        a.file.display(),
        info.abi_version,
        if hooks.is_empty() {
            "(none)".to_string()
        } else {
            hooks.join(", ")
        },
        if info.imports.is_empty() {
            "(none)".to_string()
        } else {
            info.imports.join(", ")
        },
    );
    if !info.ignored_exports.is_empty() {
        out.push_str(&format!(
            "\nwarning: unknown hook exports are never called: {}",
            info.ignored_exports.join(", ")
        ));
    }
    Ok(out)
}

fn run_hook(a: &RunArgs) -> anyhow::Result<String> {
    let hook: Hook = a.hook.parse().map_err(|e| anyhow::anyhow!("--hook: {e}"))?;
    let wasm = read(&a.file)?;
    let event = String::from_utf8(read(&a.event)?).context("the event is not UTF-8")?;
    let config = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let table: toml::Table = toml::from_str(&text)
                .with_context(|| format!("{} is not valid TOML", p.display()))?;
            serde_json::to_value(table)?
        }
        None => serde_json::Value::Object(serde_json::Map::new()),
    };
    let decision: Decision = run_once(&wasm, hook, &event, &config)?;
    Ok(serde_json::to_string_pretty(&decision)?)
}
