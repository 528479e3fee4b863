//! WebAssembly policy plugin host for Tessera (wasmtime).
//!
//! Integrators write policy as WebAssembly modules following ABI v1 (`plugins/ABI.md`);
//! this crate loads them, calls them on server events and combines their decisions.
//!
//! - [`PluginHost::new`] loads a list of [`PluginSpec`]s with [`HostSettings`] and a
//!   [`DurableKv`] (the runtime's store, for keys plugins mark durable).
//! - [`PluginHost::has_hook`] is one atomic load: check it before building an event.
//! - [`PluginHost::call`] runs an [`Event`] through the chain and returns an [`Outcome`]
//!   (verdict, risk, per-plugin reports). A plugin that traps, times out, exceeds its
//!   memory or returns garbage is contained: its instance is discarded and its
//!   [`FailMode`] applies.
//! - [`PluginHost::reload`] swaps in new specs atomically; [`PluginHost::watch`] reloads
//!   on file change.
//! - [`PluginHost::status`] shows each configured plugin for a status page: the file its
//!   version came from (SHA-256, size, modification time), when it was loaded, its calls by
//!   result, failures by kind and p99 latency since, and its last reload error.
//! - [`check_module`] and [`run_once`] back the `tessera plugin check` / `run` commands.
//!
//! **Architecture invariants:** a guest never gets the host's memory, files, network or
//! clock beyond the host functions of module `tessera`; guest time (epoch deadline) and
//! memory (`StoreLimits` + pooling allocator) are bounded; plugin state lives in the host's
//! KV, never in instance memory.
//!
//! Metrics (via the `metrics` facade): `tessera_plugin_calls_total{plugin,hook,result}`,
//! `tessera_plugin_call_duration_seconds{plugin,hook}`,
//! `tessera_plugin_failures_total{plugin,hook,kind}`,
//! `tessera_plugin_reload_failures_total{plugin}`, `tessera_plugin_custom_total{plugin,name}`.

#![forbid(unsafe_code)]

mod engine;
mod error;
mod host;
mod instance;
mod kv;
mod module;
mod outcome;
mod spec;
mod stats;
mod tools;
mod watch;

pub use error::{FailureKind, PluginError};
pub use host::{
    FileVersion, LoadedVersion, PluginHost, PluginState, PluginStatus, ReloadEntry, ReloadReport,
    ReloadStatus,
};
pub use kv::{DurableKv, KvError, KvRecord, MemoryKv};
pub use module::ModuleInfo;
pub use outcome::{
    Outcome, PLUGIN_FAILURE_CODE, PLUGIN_FAILURE_STATUS, PluginFailure, PluginReport,
    RISK_THRESHOLD_CODE,
};
pub use spec::{FailMode, HostSettings, PluginSpec};
pub use stats::{CallCounts, CallStats, FailureCounts, ReloadFailure};
pub use tessera_plugin_abi as abi;
pub use tessera_plugin_abi::{Decision, Event, Hook, HookSet};
pub use tools::{
    EventLine, LineResult, RunOptions, check_module, run_events, run_once, run_once_with,
};
pub use watch::{FileWatcher, watch_paths};
