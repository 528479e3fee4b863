//! Errors of loading and calling plugins.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use tessera_plugin_abi::Hook;

/// Why a plugin could not be loaded, checked or run.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin file could not be read.
    #[error("cannot read plugin file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid WebAssembly module (or WAT text).
    #[error("invalid WebAssembly module: {0}")]
    Compile(String),
    /// The module is valid WebAssembly but does not follow Tessera ABI v1.
    #[error("ABI mismatch: {0}")]
    Abi(String),
    /// The module could not be instantiated (e.g. its minimum memory exceeds the limit).
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    /// The plugin's `init` rejected its configuration or failed.
    #[error("init failed: {0}")]
    Init(String),
    /// A plugin spec is invalid (empty or duplicate name, zero timeout).
    #[error("invalid plugin spec: {0}")]
    Spec(String),
    /// The wasmtime engine could not be set up with the host settings.
    #[error("engine setup failed: {0}")]
    Engine(String),
    /// An event given to [`crate::run_once`] does not match its hook's schema.
    #[error("invalid event: {0}")]
    Event(String),
    /// The plugin does not export the hook asked for.
    #[error("the plugin does not export {0} (the host would never call it for this hook)")]
    HookNotExported(Hook),
    /// A call into the plugin failed (trap, timeout, memory limit, bad decision).
    #[error("plugin call failed ({kind}): {message}")]
    Call {
        /// What kind of failure.
        kind: FailureKind,
        /// Details (trap message, decode error).
        message: String,
    },
    /// The file watcher could not be started.
    #[error("file watcher: {0}")]
    Watch(String),
    /// An error about one named plugin.
    #[error("plugin `{name}`: {source}")]
    Plugin {
        /// The plugin's name from its spec.
        name: String,
        /// What went wrong.
        #[source]
        source: Box<PluginError>,
    },
}

impl PluginError {
    pub(crate) fn for_plugin(name: &str, source: PluginError) -> PluginError {
        PluginError::Plugin {
            name: name.to_owned(),
            source: Box::new(source),
        }
    }
}

/// How a plugin call failed; the `kind` label of `tessera_plugin_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The guest trapped (unreachable, out-of-bounds access, bad pointer to a host function).
    Trap,
    /// The call ran past the plugin's timeout and was interrupted.
    Timeout,
    /// The guest tried to grow its memory past the limit.
    MemoryLimit,
    /// The hook returned a payload that is not a valid decision.
    BadDecision,
    /// A fresh instance could not be created or its `init` failed.
    Instantiate,
    /// The durable KV store could not be read for a durable key.
    KvUnavailable,
}

impl FailureKind {
    /// The metrics label of this kind.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::MemoryLimit => "memory_limit",
            FailureKind::BadDecision => "bad_decision",
            FailureKind::Instantiate => "instantiate",
            FailureKind::KvUnavailable => "kv_unavailable",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
