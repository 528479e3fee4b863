//! How an operator sees the plugins (`GET /api/admin/plugins`) and a reload's result
//! (`POST /api/admin/plugins/reload`): the host's [`PluginState`] and [`ReloadReport`] as
//! JSON, times in RFC 3339.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tessera_plugins::{CallStats, PluginState, ReloadReport, ReloadStatus};
use utoipa::ToSchema;

use crate::admin::view::rfc3339;

fn time(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(rfc3339)
}

/// One configured plugin.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PluginView {
    /// Its name (`[[plugins]] name`).
    pub name: String,
    /// Whether the config enables it.
    pub enabled: bool,
    /// Whether a version of it serves (false: disabled, or its first load failed).
    pub loaded: bool,
    /// The `.wasm` file of the version that serves (else the configured one).
    pub path: String,
    /// `open` (a failed call allows) or `closed` (it denies with `PLUGIN_FAILURE`).
    #[schema(pattern = "^(open|closed)$")]
    pub fail_mode: String,
    /// Budget of one call, milliseconds.
    pub timeout_ms: u64,
    /// Position in the chain (lower runs first).
    pub order: i32,
    /// The hooks it exports (`on_activate`, ...); empty when not loaded.
    pub hooks: Vec<String>,
    /// The file the serving version was compiled from.
    pub version: Option<PluginFile>,
    /// When the serving version was loaded (or reloaded with a new file or config), RFC 3339.
    #[schema(format = DateTime)]
    pub loaded_at: Option<String>,
    /// Calls since `loaded_at`, by result.
    pub calls: PluginCalls,
    /// Failed calls since `loaded_at`, by kind.
    pub failures: PluginFailures,
    /// 99th percentile of call durations since `loaded_at` (every hook), in milliseconds:
    /// the upper bound of its histogram bucket (buckets at most 25 % wide); `null` before
    /// the first call.
    pub p99_ms: Option<f64>,
    /// The last reload that failed to load this plugin, until one loads it.
    pub last_reload_error: Option<PluginReloadError>,
}

/// A plugin file.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PluginFile {
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Its modification time when loaded, RFC 3339.
    #[schema(format = DateTime)]
    pub modified_at: Option<String>,
}

/// Calls by result (`tessera_plugin_calls_total{result}`, counted since the load).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct PluginCalls {
    /// Allowed.
    pub allow: u64,
    /// Denied.
    pub deny: u64,
    /// Banned the license.
    pub ban: u64,
    /// Flagged.
    pub flag: u64,
    /// Added risk.
    pub risk: u64,
    /// Failed; the fail mode decided.
    pub failure: u64,
}

/// Failed calls by kind (`tessera_plugin_failures_total{kind}`, counted since the load).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct PluginFailures {
    /// The plugin trapped.
    pub trap: u64,
    /// The call ran past the timeout.
    pub timeout: u64,
    /// The plugin grew its memory past the limit.
    pub memory_limit: u64,
    /// The hook returned something that is not a decision.
    pub bad_decision: u64,
    /// No instance could be created.
    pub instantiate: u64,
    /// A durable key could not be read.
    pub kv_unavailable: u64,
}

/// A reload that failed to load a plugin.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PluginReloadError {
    /// Why.
    pub message: String,
    /// When, RFC 3339.
    #[schema(format = DateTime)]
    pub at: Option<String>,
    /// Whether the previous version kept serving.
    pub kept_previous: bool,
}

fn counts(stats: &CallStats) -> (PluginCalls, PluginFailures) {
    let (c, f) = (&stats.calls, &stats.failures);
    (
        PluginCalls {
            allow: c.allow,
            deny: c.deny,
            ban: c.ban,
            flag: c.flag,
            risk: c.risk,
            failure: c.failure,
        },
        PluginFailures {
            trap: f.trap,
            timeout: f.timeout,
            memory_limit: f.memory_limit,
            bad_decision: f.bad_decision,
            instantiate: f.instantiate,
            kv_unavailable: f.kv_unavailable,
        },
    )
}

impl From<PluginState> for PluginView {
    fn from(s: PluginState) -> Self {
        let (calls, failures) = s
            .loaded
            .as_ref()
            .map(|l| counts(&l.stats))
            .unwrap_or_default();
        PluginView {
            name: s.spec.name,
            enabled: s.enabled,
            loaded: s.loaded.is_some(),
            path: s.spec.path.display().to_string(),
            fail_mode: s.spec.fail_mode.as_str().to_owned(),
            timeout_ms: u64::try_from(s.spec.timeout.as_millis()).unwrap_or(u64::MAX),
            order: s.spec.order,
            hooks: s
                .loaded
                .as_ref()
                .map(|l| l.hooks.iter().map(|h| h.name().to_owned()).collect())
                .unwrap_or_default(),
            version: s.loaded.as_ref().map(|l| PluginFile {
                sha256: l.file.sha256.clone(),
                size_bytes: l.file.size_bytes,
                modified_at: l.file.modified_ms.and_then(time),
            }),
            loaded_at: s.loaded.as_ref().and_then(|l| time(l.loaded_ms)),
            calls,
            failures,
            p99_ms: s
                .loaded
                .as_ref()
                .and_then(|l| l.stats.p99)
                .map(|d| d.as_secs_f64() * 1000.0),
            last_reload_error: s.last_reload_error.map(|e| PluginReloadError {
                message: e.message,
                at: time(e.at_ms),
                kept_previous: e.kept_previous,
            }),
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReloadView {
    /// Whether every configured plugin loaded (or was unchanged or disabled).
    pub ok: bool,
    /// One entry per configured plugin, in config order.
    pub plugins: Vec<ReloadEntryView>,
    /// Plugins that were loaded before and are not anymore (removed or disabled).
    pub removed: Vec<String>,
}

/// What a reload did to one plugin.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReloadEntryView {
    /// The plugin.
    pub name: String,
    /// `loaded` (first time), `updated` (new file), `reconfigured` (same file, new
    /// settings), `unchanged`, `disabled` or `failed`.
    #[schema(pattern = "^(loaded|updated|reconfigured|unchanged|disabled|failed)$")]
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// After a failure: whether the previous version keeps serving.
    pub kept_previous: Option<bool>,
}

impl From<&ReloadReport> for ReloadView {
    fn from(r: &ReloadReport) -> Self {
        ReloadView {
            ok: r.is_ok(),
            plugins: r
                .entries
                .iter()
                .map(|e| {
                    let (status, error, kept_previous) = match &e.status {
                        ReloadStatus::Loaded => ("loaded", None, None),
                        ReloadStatus::Updated => ("updated", None, None),
                        ReloadStatus::Reconfigured => ("reconfigured", None, None),
                        ReloadStatus::Unchanged => ("unchanged", None, None),
                        ReloadStatus::Disabled => ("disabled", None, None),
                        ReloadStatus::Failed {
                            error,
                            kept_previous,
                        } => ("failed", Some(error.to_string()), Some(*kept_previous)),
                    };
                    ReloadEntryView {
                        name: e.name.clone(),
                        status: status.to_owned(),
                        error,
                        kept_previous,
                    }
                })
                .collect(),
            removed: r.removed.clone(),
        }
    }
}
