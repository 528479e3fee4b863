//! What to load ([`PluginSpec`]) and how the host behaves ([`HostSettings`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the host does when a plugin call fails (trap, timeout, memory limit, bad decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Treat the failure as `allow` (availability first).
    #[default]
    Open,
    /// Treat the failure as a deny with code `PLUGIN_FAILURE` (status 503).
    Closed,
}

impl FailMode {
    /// `open` or `closed`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            FailMode::Open => "open",
            FailMode::Closed => "closed",
        }
    }
}

/// One configured plugin (a `[[plugins]]` entry of the server config).
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    /// Unique name; labels metrics and logs and names the plugin's KV namespace
    /// (so renaming a plugin starts it with empty state).
    pub name: String,
    /// Path of the `.wasm` file (a `.wat` text file is accepted too).
    pub path: PathBuf,
    /// Disabled specs are skipped (and a loaded plugin of that name is unloaded).
    pub enabled: bool,
    /// What a failed call counts as.
    pub fail_mode: FailMode,
    /// Budget of one hook call (and of `init`); past it the call is interrupted.
    pub timeout: Duration,
    /// Position in the chain: lower runs first; ties run in name order.
    pub order: i32,
    /// The plugin's config table, passed to `init` as MessagePack and readable with
    /// `config_get`. Usually a JSON object converted from the TOML table.
    pub config: serde_json::Value,
}

impl PluginSpec {
    /// Default per-call timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

    /// A spec with defaults: enabled, fail open, 50 ms timeout, order 0, empty config.
    #[must_use]
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> PluginSpec {
        PluginSpec {
            name: name.into(),
            path: path.into(),
            enabled: true,
            fail_mode: FailMode::Open,
            timeout: Self::DEFAULT_TIMEOUT,
            order: 0,
            config: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// Sets the fail mode.
    #[must_use]
    pub fn with_fail_mode(mut self, fail_mode: FailMode) -> PluginSpec {
        self.fail_mode = fail_mode;
        self
    }

    /// Sets the timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> PluginSpec {
        self.timeout = timeout;
        self
    }

    /// Sets the order.
    #[must_use]
    pub fn with_order(mut self, order: i32) -> PluginSpec {
        self.order = order;
        self
    }

    /// Sets the config value.
    #[must_use]
    pub fn with_config(mut self, config: serde_json::Value) -> PluginSpec {
        self.config = config;
        self
    }
}

/// Host-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSettings {
    /// Largest linear memory of one plugin instance; growing past it traps the call. The
    /// default, 16 MiB, is the server's (`policy.plugin_memory_limit_bytes`), so
    /// `tessera plugin run` fails where the server would.
    pub memory_limit_bytes: usize,
    /// Risk total at which the host turns a request into a deny (`RISK_THRESHOLD`);
    /// `0` or less disables risk denial.
    pub risk_threshold: i64,
    /// Instance slots in the pooling allocator: at least (threads that call the host)
    /// × (plugins), with headroom for a reload. A call that finds the pool exhausted
    /// fails with kind `instantiate`.
    pub max_instances: u32,
    /// Granularity of timeouts: the epoch ticker's period.
    pub epoch_tick: Duration,
    /// Most live KV entries one plugin may hold in memory; `kv_set` of a new key past it
    /// returns `ERR_FULL`.
    pub kv_max_entries_per_plugin: usize,
    /// Wasm stack budget of a call, bytes.
    pub max_wasm_stack_bytes: usize,
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            memory_limit_bytes: 16 * 1024 * 1024,
            risk_threshold: 100,
            max_instances: 256,
            epoch_tick: Duration::from_millis(1),
            kv_max_entries_per_plugin: 1_000_000,
            max_wasm_stack_bytes: 512 * 1024,
        }
    }
}
