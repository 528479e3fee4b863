//! `tessera plugin new|check|run|record`: tools for plugin authors. `new` (in
//! `plugin_new.rs`), `check` and `run` need no server; `record` (in `plugin_record.rs`)
//! captures a running server's hook events.
//!
//! `run --events FILE.jsonl` runs recorded or hand-written events (one
//! `{"hook": ..., "event": {...}}` per line) through one instance and one KV and prints one
//! decision per line, so a plugin's test is a file of events and a file of decisions.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use tessera_plugins::{Decision, Hook, RunOptions, check_module, run_events, run_once};

use super::plugin_new::{self, NewArgs};
use super::plugin_record::{self, RecordArgs};

/// `tessera plugin ...`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Start a plugin: write a project (Rust, AssemblyScript or C) that builds and passes its
    /// own test as generated.
    New(NewArgs),
    /// Validate a plugin against ABI v1 and list the hooks it handles.
    Check(CheckArgs),
    /// Run one hook of a plugin on an event (`--hook`, `--event`), or a file of events
    /// (`--events`, JSON lines), and print the decisions (JSON).
    Run(RunArgs),
    /// Record the hook events of a running server into an events file for `run --events`
    /// (license keys replaced by pseudonyms; needs an admin key with `security:read`).
    Record(RecordArgs),
}

/// `tessera plugin check FILE`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The plugin (`.wasm`, or `.wat` text).
    pub file: PathBuf,
}

/// `tessera plugin run FILE (--hook HOOK --event EVENT.json | --events EVENTS.jsonl)
/// [--config PLUGIN.toml]`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plugin (`.wasm`, or `.wat` text).
    pub file: PathBuf,
    /// The hook, e.g. `on_heartbeat` (with `--event`).
    #[arg(long, requires = "event")]
    pub hook: Option<String>,
    /// The event as JSON (the shapes in plugins/ABI.md); `-` reads stdin.
    #[arg(long, requires = "hook", conflicts_with = "events")]
    pub event: Option<PathBuf>,
    /// A file of events, one `{"hook": "on_activate", "event": {...}}` per line (`-` reads
    /// stdin), run in order through one instance and one KV; prints one line per event and
    /// exits non-zero if any event got no decision.
    #[arg(long, required_unless_present = "event")]
    pub events: Option<PathBuf>,
    /// The plugin's config as TOML (what `[plugins.config]` would hold).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs `tessera plugin ...`.
pub async fn run(cmd: PluginCommand) -> ExitCode {
    let result = match cmd {
        PluginCommand::Record(a) => return plugin_record::run(a).await,
        PluginCommand::New(a) => plugin_new::run(&a),
        PluginCommand::Check(a) => check(&a),
        PluginCommand::Run(a) if a.events.is_some() => return run_file(&a),
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
    let (Some(hook), Some(event)) = (&a.hook, &a.event) else {
        anyhow::bail!("give --hook and --event, or --events");
    };
    let hook: Hook = hook.parse().map_err(|e| anyhow::anyhow!("--hook: {e}"))?;
    let wasm = read(&a.file)?;
    let event = String::from_utf8(read(event)?).context("the event is not UTF-8")?;
    let config = plugin_config(a)?;
    let decision: Decision = run_once(&wasm, hook, &event, &config)?;
    Ok(serde_json::to_string_pretty(&decision)?)
}

fn run_file(a: &RunArgs) -> ExitCode {
    let lines = (|| -> anyhow::Result<_> {
        let path = a.events.as_ref().context("--events")?;
        let events = String::from_utf8(read(path)?).context("the events are not UTF-8")?;
        let wasm = read(&a.file)?;
        Ok(run_events(
            &wasm,
            &events,
            &plugin_config(a)?,
            &RunOptions::default(),
        )?)
    })();
    match lines {
        Ok(lines) => {
            for l in &lines {
                println!("{}", l.to_json_line());
            }
            if lines.iter().any(|l| l.result.is_err()) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn plugin_config(a: &RunArgs) -> anyhow::Result<serde_json::Value> {
    Ok(match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let table: toml::Table = toml::from_str(&text)
                .with_context(|| format!("{} is not valid TOML", p.display()))?;
            serde_json::to_value(table)?
        }
        None => serde_json::Value::Object(serde_json::Map::new()),
    })
}
