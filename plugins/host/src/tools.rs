//! Library side of `tessera plugin check` and `tessera plugin run`.

use std::sync::Arc;
use std::time::Duration;

use tessera_plugin_abi::{Decision, Event, Hook};
use wasmtime::Module;

use crate::engine::{Ticker, build_engine, ticks_for};
use crate::error::PluginError;
use crate::instance::{PluginInstance, PluginShared, linker};
use crate::kv::{DurableKv, MemoryKv, Namespace, wall_ms};
use crate::module::{ModuleInfo, inspect};
use crate::spec::HostSettings;

/// Validates a module against ABI v1 without running it (`tessera plugin check`):
/// compiles it, checks the marker, memory, `alloc`, `init`, hook signatures and imports.
/// Accepts WebAssembly binary or WAT text.
///
/// # Errors
/// [`PluginError::Compile`] for invalid WebAssembly, [`PluginError::Abi`] with a message
/// naming the offending export or import.
pub fn check_module(bytes: &[u8]) -> Result<ModuleInfo, PluginError> {
    let engine = build_engine(&HostSettings::default(), false)?;
    let module = Module::new(&engine, bytes).map_err(|e| PluginError::Compile(format!("{e:#}")))?;
    inspect(&module)
}

/// Options of [`run_once_with`].
#[derive(Clone)]
pub struct RunOptions {
    /// Timeout of `init` and of the hook call.
    pub timeout: Duration,
    /// Memory limit of the instance.
    pub memory_limit_bytes: usize,
    /// The KV store the plugin sees (all keys, durable or not, start from it).
    pub kv: Arc<dyn DurableKv>,
    /// Plugin name (the KV namespace and the `plugin` field of its logs).
    pub name: String,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("timeout", &self.timeout)
            .field("memory_limit_bytes", &self.memory_limit_bytes)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            timeout: Duration::from_secs(1),
            memory_limit_bytes: HostSettings::default().memory_limit_bytes,
            kv: Arc::new(MemoryKv::new()),
            name: "local".into(),
        }
    }
}

/// Runs one hook of a module once (`tessera plugin run FILE --hook H --event E [--config C]`)
/// with a 1 s timeout and an in-memory KV. `event_json` is the hook's payload as JSON
/// (`ts_ms` defaults to now); `plugin_config` the plugin's config table as JSON.
///
/// # Errors
/// Load errors as [`check_module`]; [`PluginError::Event`] when the JSON does not match
/// the hook's schema; [`PluginError::HookNotExported`]; [`PluginError::Init`] when `init`
/// fails; [`PluginError::Call`] when the call traps, times out or returns a bad decision.
pub fn run_once(
    wasm: &[u8],
    hook: Hook,
    event_json: &str,
    plugin_config: &serde_json::Value,
) -> Result<Decision, PluginError> {
    run_once_with(
        wasm,
        hook,
        event_json,
        plugin_config,
        &RunOptions::default(),
    )
}

/// [`run_once`] with explicit [`RunOptions`].
///
/// # Errors
/// As [`run_once`].
pub fn run_once_with(
    wasm: &[u8],
    hook: Hook,
    event_json: &str,
    plugin_config: &serde_json::Value,
    opts: &RunOptions,
) -> Result<Decision, PluginError> {
    let settings = HostSettings {
        memory_limit_bytes: opts.memory_limit_bytes,
        ..HostSettings::default()
    };
    let engine = build_engine(&settings, false)?;
    let module = Module::new(&engine, wasm).map_err(|e| PluginError::Compile(format!("{e:#}")))?;
    let info = inspect(&module)?;
    if !info.hooks.contains(&hook) {
        return Err(PluginError::HookNotExported(hook));
    }
    let mut de = serde_json::Deserializer::from_str(event_json);
    let mut event = Event::deserialize_for(hook, &mut de)
        .and_then(|ev| de.end().map(|()| ev))
        .map_err(|e| PluginError::Event(format!("{hook} event: {e}")))?;
    if event.ts_ms() == 0 {
        event.set_ts_ms(wall_ms());
    }
    let payload = tessera_plugin_abi::encode_msgpack(&event)
        .map_err(|e| PluginError::Event(e.to_string()))?;
    let init_payload = tessera_plugin_abi::encode_msgpack(plugin_config)
        .map_err(|e| PluginError::Event(e.to_string()))?;

    let pre = linker(&engine)?
        .instantiate_pre(&module)
        .map_err(|e| PluginError::Abi(format!("{e:#}")))?;
    let _ticker = Ticker::start(&engine, settings.epoch_tick)?;
    let ticks = ticks_for(opts.timeout, settings.epoch_tick);
    let kv = Arc::new(Namespace::new(
        opts.name.as_str().into(),
        Arc::clone(&opts.kv),
        usize::MAX,
    ));
    let shared = Arc::new(PluginShared::new(
        opts.name.as_str().into(),
        kv,
        plugin_config.clone(),
    ));
    let now = event.ts_ms();
    let mut inst = PluginInstance::new(
        &engine,
        &pre,
        shared,
        opts.memory_limit_bytes,
        &init_payload,
        ticks,
        now,
    )
    .map_err(|f| PluginError::Init(format!("{}: {}", f.kind, f.message)))?;
    inst.call(hook, &payload, now, ticks)
        .map_err(|f| PluginError::Call {
            kind: f.kind,
            message: f.message,
        })
}
