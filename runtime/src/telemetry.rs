//! Logging setup: `tracing` to stderr, text or JSON, filtered by `log.level`, which a config
//! reload can change (the format cannot: the output layer is built once).

use std::io::IsTerminal;
use std::sync::OnceLock;

use tessera_config::{LogConfig, LogFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// The handle that swaps the level filter of the subscriber this process installed.
static LEVEL: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the global subscriber; a second call (tests) keeps the first and returns `Ok`.
pub fn init(log: &LogConfig) -> Result<(), String> {
    let filter = parse(&log.level)?;
    let (filter, handle) = reload::Layer::new(filter);
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let output = match log.format {
        LogFormat::Text => output.boxed(),
        LogFormat::Json => output.json().flatten_event(true).boxed(),
    };
    // try_init fails only when a subscriber is already set, which is fine.
    if tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .is_ok()
    {
        let _ = LEVEL.set(handle);
    }
    Ok(())
}

fn parse(level: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(level).map_err(|e| format!("log.level: {e}"))
}

/// Filters the log by `level` from now on (`log.level` syntax).
///
/// # Errors
/// The level does not parse, or this process's subscriber was not installed by [`init`]
/// (another one was already set, as in tests).
pub fn set_level(level: &str) -> Result<(), String> {
    let filter = parse(level)?;
    let handle = LEVEL
        .get()
        .ok_or("the log subscriber was not installed by this server")?;
    handle
        .reload(filter)
        .map_err(|e| format!("log.level not changed: {e}"))
}
