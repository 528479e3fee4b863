//! Library side of `tessera plugin check` and `tessera plugin run`: check a module, run one
//! event, or run a file of events (JSON lines) through one instance and one KV.

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
    let mut runner = LocalRunner::new(wasm, plugin_config, opts)?;
    let mut de = serde_json::Deserializer::from_str(event_json);
    let event = Event::deserialize_for(hook, &mut de)
        .and_then(|ev| de.end().map(|()| ev))
        .map_err(|e| PluginError::Event(format!("{hook} event: {e}")))?;
    runner.run(event)
}

/// One line of an events file: `{"hook": "on_activate", "event": {...}}`, the event in the
/// JSON shape of `plugins/ABI.md` (`ts_ms` defaults to now).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLine {
    /// The hook, e.g. `on_activate`.
    pub hook: String,
    /// The hook's payload.
    pub event: serde_json::Value,
}

/// What one line of an events file led to.
#[derive(Debug)]
pub struct LineResult {
    /// Line number in the file, from 1.
    pub line: usize,
    /// The hook of the line, when it could be read.
    pub hook: Option<Hook>,
    /// The plugin's decision, or why there is none (an unreadable line, a hook the plugin
    /// does not export, a failed call).
    pub result: Result<Decision, PluginError>,
}

impl LineResult {
    /// The line as `tessera plugin run --events` prints it, keys in this order:
    /// `{"line":3,"hook":"on_activate","decision":"deny","code":...,"message":...,"status":...}`,
    /// or `{"line":3,"hook":...,"error":"..."}` when there is no decision.
    #[must_use]
    pub fn to_json_line(&self) -> String {
        let mut out = format!("{{\"line\":{}", self.line);
        if let Some(hook) = self.hook {
            out.push_str(&format!(",\"hook\":\"{}\"", hook.name()));
        }
        let rest = match &self.result {
            // A decision serializes as a JSON object in its own field order.
            Ok(decision) => serde_json::to_string(decision).ok(),
            Err(_) => None,
        };
        match (rest, &self.result) {
            (Some(obj), _) if obj.len() > 2 => {
                out.push(',');
                out.push_str(&obj[1..]);
            }
            (_, Err(e)) => {
                let msg = serde_json::Value::String(e.to_string());
                out.push_str(&format!(",\"error\":{msg}}}"));
            }
            _ => out.push('}'),
        }
        out
    }
}

/// Runs every event of `events` (JSON lines, see [`EventLine`]; blank lines are skipped)
/// through one instance of the module, in order, with one KV for the whole run, so counters
/// and windows carry from one event to the next as in the server. A failed call discards the
/// instance (the next event gets a fresh one, as in the server); the KV stays.
///
/// # Errors
/// Load and `init` errors as [`run_once`]; per-line problems are in the [`LineResult`]s.
pub fn run_events(
    wasm: &[u8],
    events: &str,
    plugin_config: &serde_json::Value,
    opts: &RunOptions,
) -> Result<Vec<LineResult>, PluginError> {
    let mut runner = LocalRunner::new(wasm, plugin_config, opts)?;
    let mut out = Vec::new();
    for (i, text) in events.lines().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let line = i + 1;
        let parsed = serde_json::from_str::<EventLine>(text)
            .map_err(|e| PluginError::Event(format!("line {line}: {e}")))
            .and_then(|l| {
                let hook: Hook = l
                    .hook
                    .parse()
                    .map_err(|e| PluginError::Event(format!("line {line}: {e}")))?;
                Ok((hook, l.event))
            });
        let (hook, event) = match parsed {
            Ok(p) => p,
            Err(e) => {
                out.push(LineResult {
                    line,
                    hook: None,
                    result: Err(e),
                });
                continue;
            }
        };
        let result = Event::deserialize_for(hook, event)
            .map_err(|e| PluginError::Event(format!("line {line}: {hook} event: {e}")))
            .and_then(|ev| runner.run(ev));
        out.push(LineResult {
            line,
            hook: Some(hook),
            result,
        });
    }
    Ok(out)
}

/// A module loaded for local runs: one engine, one KV, one instance reused across events
/// and replaced after a failure.
struct LocalRunner {
    engine: wasmtime::Engine,
    pre: wasmtime::InstancePre<crate::instance::HostState>,
    shared: Arc<PluginShared>,
    info: ModuleInfo,
    init_payload: Vec<u8>,
    memory_limit_bytes: usize,
    ticks: u64,
    instance: Option<PluginInstance>,
    ticker: Ticker,
}

impl LocalRunner {
    fn new(
        wasm: &[u8],
        plugin_config: &serde_json::Value,
        opts: &RunOptions,
    ) -> Result<Self, PluginError> {
        let settings = HostSettings {
            memory_limit_bytes: opts.memory_limit_bytes,
            ..HostSettings::default()
        };
        let engine = build_engine(&settings, false)?;
        let module =
            Module::new(&engine, wasm).map_err(|e| PluginError::Compile(format!("{e:#}")))?;
        let info = inspect(&module)?;
        let init_payload = tessera_plugin_abi::encode_msgpack(plugin_config)
            .map_err(|e| PluginError::Event(e.to_string()))?;
        let pre = linker(&engine)?
            .instantiate_pre(&module)
            .map_err(|e| PluginError::Abi(format!("{e:#}")))?;
        let ticker = Ticker::start(&engine, settings.epoch_tick)?;
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
        let mut runner = LocalRunner {
            engine,
            pre,
            shared,
            info,
            init_payload,
            memory_limit_bytes: opts.memory_limit_bytes,
            ticks: ticks_for(opts.timeout, settings.epoch_tick),
            instance: None,
            ticker,
        };
        // `init` runs up front so a refused config fails the whole run.
        runner.instance = Some(runner.instantiate(wall_ms())?);
        Ok(runner)
    }

    fn instantiate(&self, now_ms: i64) -> Result<PluginInstance, PluginError> {
        // `init` runs guest code under the plugin's deadline.
        let _running = self.ticker.running();
        PluginInstance::new(
            &self.engine,
            &self.pre,
            Arc::clone(&self.shared),
            self.memory_limit_bytes,
            &self.init_payload,
            self.ticks,
            now_ms,
        )
        .map_err(|f| PluginError::Init(format!("{}: {}", f.kind, f.message)))
    }

    fn run(&mut self, mut event: Event) -> Result<Decision, PluginError> {
        let hook = event.hook();
        if !self.info.hooks.contains(&hook) {
            return Err(PluginError::HookNotExported(hook));
        }
        if event.ts_ms() == 0 {
            event.set_ts_ms(wall_ms());
        }
        let now = event.ts_ms();
        let payload = tessera_plugin_abi::encode_msgpack(&event)
            .map_err(|e| PluginError::Event(e.to_string()))?;
        let mut inst = match self.instance.take() {
            Some(i) => i,
            None => self.instantiate(now)?,
        };
        let result = {
            let _running = self.ticker.running();
            inst.call(hook, &payload, now, self.ticks)
        };
        if result.is_ok() {
            self.instance = Some(inst);
        }
        result.map_err(|f| PluginError::Call {
            kind: f.kind,
            message: f.message,
        })
    }
}
