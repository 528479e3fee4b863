//! [`PluginHost`]: the loaded chain, calls, reloads.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{DefaultHasher, Hasher};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use metrics::{Counter, Histogram};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tessera_plugin_abi::{Decision, Event, Hook, HookSet, encode_msgpack, encode_msgpack_into};
use wasmtime::{Engine, InstancePre, Linker, Module};

use crate::engine::{Ticker, build_engine, ticks_for};
use crate::error::PluginError;
use crate::instance::{CallFailure, HostState, PluginInstance, PluginShared, linker};
use crate::kv::{DurableKv, Namespaces, wall_ms};
use crate::module::{ModuleInfo, inspect};
use crate::outcome::{Outcome, PluginFailure, plugin_failure_deny};
use crate::spec::{FailMode, HostSettings, PluginSpec};
use crate::stats::{CallStats, LiveStats, ReloadFailure};
use crate::watch::{FileWatcher, watch_paths};

static NEXT_PLUGIN_ID: AtomicU64 = AtomicU64::new(1);

/// Pre-registered metric handles of one (plugin, hook).
struct HookMetrics {
    allow: Counter,
    deny: Counter,
    ban: Counter,
    flag: Counter,
    risk: Counter,
    failure: Counter,
    duration: Histogram,
}

impl HookMetrics {
    fn new(plugin: &str, hook: Hook) -> HookMetrics {
        let c = |result: &'static str| {
            metrics::counter!(
                "tessera_plugin_calls_total",
                "plugin" => plugin.to_owned(),
                "hook" => hook.name(),
                "result" => result
            )
        };
        HookMetrics {
            allow: c("allow"),
            deny: c("deny"),
            ban: c("ban"),
            flag: c("flag"),
            risk: c("risk"),
            failure: c("failure"),
            duration: metrics::histogram!(
                "tessera_plugin_call_duration_seconds",
                "plugin" => plugin.to_owned(),
                "hook" => hook.name()
            ),
        }
    }

    fn count(&self, d: &Decision) {
        match d {
            Decision::Allow => &self.allow,
            Decision::Deny { .. } => &self.deny,
            Decision::Ban { .. } => &self.ban,
            Decision::Flag { .. } => &self.flag,
            Decision::Risk { .. } => &self.risk,
        }
        .increment(1);
    }
}

/// One compiled, validated version of a plugin with its spec.
pub(crate) struct LoadedPlugin {
    id: u64,
    spec: PluginSpec,
    name: Arc<str>,
    digest: (u64, usize),
    info: ModuleInfo,
    hooks: HookSet,
    module: Module,
    pre: InstancePre<HostState>,
    shared: Arc<PluginShared>,
    init_payload: Vec<u8>,
    ticks: u64,
    metrics: [Option<HookMetrics>; 8],
    last_failure_log_ms: AtomicI64,
    /// What this version did since it was loaded, for [`PluginHost::status`].
    stats: LiveStats,
    file: FileVersion,
    loaded_ms: i64,
}

/// The plugin file a version was compiled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVersion {
    /// SHA-256 of the file's bytes, lower-case hex (compare with `sha256sum`).
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Last modification, unix milliseconds, if the file system keeps it.
    pub modified_ms: Option<i64>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            use std::fmt::Write;
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// Reads a plugin file and when it was last modified, from one open handle.
fn read_plugin_file(spec: &PluginSpec) -> Result<(Vec<u8>, Option<i64>), PluginError> {
    let io = |source| PluginError::Io {
        path: spec.path.clone(),
        source,
    };
    let mut file = std::fs::File::open(&spec.path).map_err(io)?;
    let modified_ms = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok());
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    Ok((bytes, modified_ms))
}

struct Chain {
    plugins: Vec<Arc<LoadedPlugin>>,
    by_hook: [Vec<Arc<LoadedPlugin>>; 8],
    hooks: HookSet,
    specs: Vec<PluginSpec>,
}

impl Chain {
    fn new(mut plugins: Vec<Arc<LoadedPlugin>>, specs: Vec<PluginSpec>) -> Chain {
        plugins.sort_by(|a, b| (a.spec.order, &a.spec.name).cmp(&(b.spec.order, &b.spec.name)));
        let mut by_hook: [Vec<Arc<LoadedPlugin>>; 8] = Default::default();
        let mut hooks = HookSet::EMPTY;
        for p in &plugins {
            for h in p.hooks.iter() {
                by_hook[h.index()].push(Arc::clone(p));
                hooks.insert(h);
            }
        }
        Chain {
            plugins,
            by_hook,
            hooks,
            specs,
        }
    }
}

struct HostInner {
    engine: Engine,
    linker: Linker<HostState>,
    settings: HostSettings,
    durable: Arc<dyn DurableKv>,
    namespaces: Namespaces,
    chain: ArcSwap<Chain>,
    hooks: AtomicU16,
    reload_lock: Mutex<()>,
    /// Per plugin name, the last reload that failed, until one loads it (cold path).
    reload_failures: Mutex<HashMap<String, ReloadFailure>>,
    // Last: stops the ticker thread when the host goes away.
    ticker: Ticker,
}

/// The plugin host: loads plugins, runs hook chains, reloads.
///
/// Cheap to clone (an `Arc`); `Send + Sync`; call [`PluginHost::call`] from any thread.
/// Each calling thread keeps one instance per plugin version, created on its first call
/// (so size [`HostSettings::max_instances`] for the number of calling threads).
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<HostInner>,
}

impl fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chain = self.inner.chain.load();
        f.debug_struct("PluginHost")
            .field(
                "plugins",
                &chain.plugins.iter().map(|p| &*p.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A loaded plugin as reported by [`PluginHost::plugins`].
#[derive(Debug, Clone, PartialEq)]
pub struct PluginStatus {
    /// Its spec.
    pub spec: PluginSpec,
    /// The hooks it exports.
    pub hooks: Vec<Hook>,
    /// The host functions it imports.
    pub imports: Vec<String>,
}

/// One configured plugin as the host runs it, for a status page ([`PluginHost::status`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PluginState {
    /// The spec of the version that serves; the configured one when none does (its first
    /// load failed, or it is disabled). They differ after a reload that failed and kept the
    /// previous version.
    pub spec: PluginSpec,
    /// Whether the configured spec is enabled.
    pub enabled: bool,
    /// The version that serves, if one does.
    pub loaded: Option<LoadedVersion>,
    /// The last reload of this plugin that failed, until a reload loads it.
    pub last_reload_error: Option<ReloadFailure>,
}

/// A loaded plugin version.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedVersion {
    /// The hooks it exports.
    pub hooks: Vec<Hook>,
    /// The file it was compiled from.
    pub file: FileVersion,
    /// When this version was (re)loaded, unix milliseconds.
    pub loaded_ms: i64,
    /// What it did since.
    pub stats: CallStats,
}

/// What happened to one spec in a reload.
#[derive(Debug)]
pub enum ReloadStatus {
    /// Loaded for the first time.
    Loaded,
    /// A new version of the file was compiled and swapped in.
    Updated,
    /// Same file, changed spec (config, order, timeout, fail mode): swapped in without
    /// recompiling; instances restart with the new config.
    Reconfigured,
    /// Nothing changed; instances stay warm.
    Unchanged,
    /// The spec is disabled (a loaded version, if any, was unloaded).
    Disabled,
    /// The new version could not be loaded.
    Failed {
        /// Why.
        error: PluginError,
        /// Whether the previous version keeps serving.
        kept_previous: bool,
    },
}

/// One spec's result in a [`ReloadReport`].
#[derive(Debug)]
pub struct ReloadEntry {
    /// The spec's name.
    pub name: String,
    /// What happened.
    pub status: ReloadStatus,
}

/// The result of [`PluginHost::reload`].
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// One entry per spec, in the order given.
    pub entries: Vec<ReloadEntry>,
    /// Plugins that were loaded before and are not anymore (removed or disabled).
    pub removed: Vec<String>,
}

impl ReloadReport {
    /// Whether every spec loaded (or was unchanged or disabled).
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.failures().next().is_none()
    }

    /// The failed specs: name, error, whether the previous version keeps serving.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &PluginError, bool)> {
        self.entries.iter().filter_map(|e| match &e.status {
            ReloadStatus::Failed {
                error,
                kept_previous,
            } => Some((e.name.as_str(), error, *kept_previous)),
            _ => None,
        })
    }
}

impl fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for e in &self.entries {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            match &e.status {
                ReloadStatus::Loaded => write!(f, "{}: loaded", e.name)?,
                ReloadStatus::Updated => write!(f, "{}: updated", e.name)?,
                ReloadStatus::Reconfigured => write!(f, "{}: reconfigured", e.name)?,
                ReloadStatus::Unchanged => write!(f, "{}: unchanged", e.name)?,
                ReloadStatus::Disabled => write!(f, "{}: disabled", e.name)?,
                ReloadStatus::Failed {
                    error,
                    kept_previous: true,
                } => {
                    write!(
                        f,
                        "{}: FAILED, previous version keeps serving: {error}",
                        e.name
                    )?;
                }
                ReloadStatus::Failed {
                    error,
                    kept_previous: false,
                } => {
                    write!(f, "{}: FAILED, not loaded: {error}", e.name)?;
                }
            }
        }
        for r in &self.removed {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{r}: removed")?;
        }
        if first {
            f.write_str("no plugins")?;
        }
        Ok(())
    }
}

fn digest(bytes: &[u8]) -> (u64, usize) {
    let mut h = DefaultHasher::new();
    h.write(bytes);
    (h.finish(), bytes.len())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

// One reused instance per (thread, plugin version). Entries of versions that were
// unloaded are dropped the next time this thread creates an instance.
struct Cached {
    id: u64,
    owner: Weak<LoadedPlugin>,
    instance: Option<PluginInstance>,
}

thread_local! {
    static INSTANCES: RefCell<Vec<Cached>> = const { RefCell::new(Vec::new()) };
    static PAYLOAD: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn take_cached(plugin: &LoadedPlugin) -> Option<PluginInstance> {
    INSTANCES
        .try_with(|c| {
            c.try_borrow_mut()
                .ok()?
                .iter_mut()
                .find(|e| e.id == plugin.id)
                .and_then(|e| e.instance.take())
        })
        .ok()
        .flatten()
}

fn put_cached(plugin: &Arc<LoadedPlugin>, instance: PluginInstance) {
    let leftover = INSTANCES.try_with(|c| {
        let Ok(mut cache) = c.try_borrow_mut() else {
            return Some(instance);
        };
        if let Some(e) = cache.iter_mut().find(|e| e.id == plugin.id) {
            e.instance = Some(instance);
        } else {
            cache.retain(|e| e.owner.strong_count() > 0);
            cache.push(Cached {
                id: plugin.id,
                owner: Arc::downgrade(plugin),
                instance: Some(instance),
            });
        }
        None
    });
    // Thread-local storage gone (thread exiting) or busy: the instance is just dropped.
    drop(leftover);
}

impl HostInner {
    fn new_instance(&self, p: &LoadedPlugin, now_ms: i64) -> Result<PluginInstance, CallFailure> {
        // `init` runs guest code under the plugin's deadline.
        let _running = self.ticker.running();
        PluginInstance::new(
            &self.engine,
            &p.pre,
            Arc::clone(&p.shared),
            self.settings.memory_limit_bytes,
            &p.init_payload,
            p.ticks,
            now_ms,
        )
    }

    fn invoke(
        &self,
        p: &Arc<LoadedPlugin>,
        hook: Hook,
        payload: &[u8],
        now_ms: i64,
    ) -> Result<Decision, CallFailure> {
        let mut inst = match take_cached(p) {
            Some(i) => i,
            None => self.new_instance(p, now_ms)?,
        };
        let result = {
            let _running = self.ticker.running();
            inst.call(hook, payload, now_ms, p.ticks)
        };
        if result.is_ok() {
            put_cached(p, inst);
        }
        result
    }

    /// Compiles (or reuses) and validates one spec, including a trial `init`.
    fn load(
        &self,
        spec: &PluginSpec,
        old: Option<&Arc<LoadedPlugin>>,
    ) -> Result<(Arc<LoadedPlugin>, ReloadStatus), PluginError> {
        if !valid_name(&spec.name) {
            return Err(PluginError::Spec(format!(
                "name `{}` must be 1 to 64 of A-Z, a-z, 0-9, _, -, .",
                spec.name
            )));
        }
        if spec.timeout.is_zero() {
            return Err(PluginError::Spec(
                "timeout must be greater than zero".into(),
            ));
        }
        let (bytes, modified_ms) = read_plugin_file(spec)?;
        let digest = digest(&bytes);
        let (module, info, pre, sha256, status) = match old {
            Some(old) if old.digest == digest => {
                if old.spec == *spec {
                    return Ok((Arc::clone(old), ReloadStatus::Unchanged));
                }
                (
                    old.module.clone(),
                    old.info.clone(),
                    old.pre.clone(),
                    old.file.sha256.clone(),
                    ReloadStatus::Reconfigured,
                )
            }
            _ => {
                let module = Module::new(&self.engine, &bytes)
                    .map_err(|e| PluginError::Compile(format!("{e:#}")))?;
                let info = inspect(&module)?;
                let pre = self
                    .linker
                    .instantiate_pre(&module)
                    .map_err(|e| PluginError::Abi(format!("{e:#}")))?;
                let status = if old.is_some() {
                    ReloadStatus::Updated
                } else {
                    ReloadStatus::Loaded
                };
                (module, info, pre, sha256_hex(&bytes), status)
            }
        };
        let file = FileVersion {
            sha256,
            size_bytes: bytes.len() as u64,
            modified_ms,
        };
        let init_payload = encode_msgpack(&spec.config)
            .map_err(|e| PluginError::Spec(format!("config cannot be encoded: {e}")))?;
        let name: Arc<str> = spec.name.as_str().into();
        let kv = self.namespaces.get_or_create(
            &spec.name,
            &self.durable,
            self.settings.kv_max_entries_per_plugin,
        );
        let hooks = info.hook_set();
        let mut metrics: [Option<HookMetrics>; 8] = Default::default();
        for h in hooks.iter() {
            metrics[h.index()] = Some(HookMetrics::new(&spec.name, h));
        }
        let plugin = LoadedPlugin {
            id: NEXT_PLUGIN_ID.fetch_add(1, Ordering::Relaxed),
            spec: spec.clone(),
            name: Arc::clone(&name),
            digest,
            info,
            hooks,
            module,
            pre,
            shared: Arc::new(PluginShared::new(name, kv, spec.config.clone())),
            init_payload,
            ticks: ticks_for(spec.timeout, self.settings.epoch_tick),
            metrics,
            last_failure_log_ms: AtomicI64::new(i64::MIN),
            stats: LiveStats::new(),
            file,
            loaded_ms: wall_ms(),
        };
        // Trial instance: catches a bad config or a module that cannot start, off the hot path.
        self.new_instance(&plugin, wall_ms())
            .map_err(|f| match f.kind {
                crate::error::FailureKind::Instantiate => PluginError::Init(f.message),
                kind => PluginError::Init(format!("{kind}: {}", f.message)),
            })?;
        Ok((Arc::new(plugin), status))
    }

    fn install(&self, chain: Chain) {
        let mask: u16 = Hook::ALL
            .iter()
            .filter(|h| chain.hooks.contains(**h))
            .fold(0, |m, h| m | 1 << h.index());
        self.chain.store(Arc::new(chain));
        self.hooks.store(mask, Ordering::Release);
    }
}

impl PluginHost {
    /// Creates a host and loads `specs` (compiling each enabled plugin and running a
    /// trial `init` with its config). Blocking: compiling takes milliseconds to seconds.
    ///
    /// Install the `metrics` recorder before calling this: metric handles are registered
    /// at load time.
    ///
    /// # Errors
    /// [`PluginError::Engine`] for unusable settings, or [`PluginError::Plugin`] naming
    /// the first spec that failed to load (a server should refuse to start with a broken
    /// plugin; use [`PluginHost::reload`] afterwards for lenient loading).
    pub fn new(
        settings: HostSettings,
        specs: Vec<PluginSpec>,
        kv: Arc<dyn DurableKv>,
    ) -> Result<PluginHost, PluginError> {
        if settings.memory_limit_bytes < 64 * 1024 {
            return Err(PluginError::Engine(
                "memory_limit_bytes must be at least 65536 (one page)".into(),
            ));
        }
        if settings.epoch_tick.is_zero() {
            return Err(PluginError::Engine(
                "epoch_tick must be greater than zero".into(),
            ));
        }
        let engine = build_engine(&settings, true)?;
        let linker = linker(&engine)?;
        let ticker = Ticker::start(&engine, settings.epoch_tick)?;
        let host = PluginHost {
            inner: Arc::new(HostInner {
                engine,
                linker,
                settings,
                durable: kv,
                namespaces: Namespaces::default(),
                chain: ArcSwap::from_pointee(Chain::new(Vec::new(), Vec::new())),
                hooks: AtomicU16::new(0),
                reload_lock: Mutex::new(()),
                reload_failures: Mutex::new(HashMap::new()),
                ticker,
            }),
        };
        let mut report = host.reload(specs);
        if let Some(i) = report
            .entries
            .iter()
            .position(|e| matches!(e.status, ReloadStatus::Failed { .. }))
        {
            let entry = report.entries.swap_remove(i);
            if let ReloadStatus::Failed { error, .. } = entry.status {
                return Err(PluginError::for_plugin(&entry.name, error));
            }
        }
        Ok(host)
    }

    /// Whether any loaded plugin exports `hook` (one atomic load: check it before
    /// building an event).
    #[must_use]
    pub fn has_hook(&self, hook: Hook) -> bool {
        self.inner.hooks.load(Ordering::Acquire) & (1 << hook.index()) != 0
    }

    /// The hooks some loaded plugin exports.
    #[must_use]
    pub fn hooks(&self) -> HookSet {
        self.inner.chain.load().hooks
    }

    /// Runs `event` through every plugin that exports its hook, in chain order, and
    /// combines their decisions (see [`Outcome`]). Never fails: a plugin failure is
    /// contained (instance discarded, fail mode applied, metrics counted) and reported in
    /// [`Outcome::reports`]. `now_ms` of the call is `event.ts_ms()`.
    ///
    /// Synchronous and bounded by the plugins' timeouts; call it from async code
    /// directly (hooks are microseconds) unless a plugin has a long timeout.
    #[must_use]
    pub fn call(&self, event: &Event) -> Outcome {
        let hook = event.hook();
        if !self.has_hook(hook) {
            return Outcome::allow();
        }
        let chain = self.inner.chain.load();
        let plugins = &chain.by_hook[hook.index()];
        if plugins.is_empty() {
            return Outcome::allow();
        }
        let mut payload = PAYLOAD
            .try_with(|b| std::mem::take(&mut *b.borrow_mut()))
            .unwrap_or_default();
        payload.clear();
        let mut outcome = Outcome::allow();
        if let Err(err) = encode_msgpack_into(event, &mut payload) {
            tracing::error!(hook = hook.name(), "cannot encode plugin event: {err}");
            return outcome;
        }
        let now_ms = event.ts_ms();
        for p in plugins {
            let started = Instant::now();
            let result = self.inner.invoke(p, hook, &payload, now_ms);
            let elapsed = started.elapsed();
            let hm = p.metrics[hook.index()].as_ref();
            if let Some(hm) = hm {
                hm.duration.record(elapsed.as_secs_f64());
            }
            match result {
                Ok(decision) => {
                    if let Some(hm) = hm {
                        hm.count(&decision);
                    }
                    p.stats.decided(&decision, elapsed);
                    outcome.absorb(&p.name, decision, None);
                }
                Err(f) => {
                    if let Some(hm) = hm {
                        hm.failure.increment(1);
                    }
                    p.stats.failed(f.kind, elapsed);
                    self.record_failure(p, hook, &f, now_ms);
                    let decision = match p.spec.fail_mode {
                        FailMode::Open => Decision::Allow,
                        FailMode::Closed => plugin_failure_deny(),
                    };
                    let failure = PluginFailure {
                        kind: f.kind,
                        message: f.message,
                        fail_mode: p.spec.fail_mode,
                    };
                    outcome.absorb(&p.name, decision, Some(failure));
                }
            }
        }
        let _ = PAYLOAD.try_with(|b| *b.borrow_mut() = payload);
        outcome.finish(self.inner.settings.risk_threshold);
        outcome
    }

    fn record_failure(&self, p: &LoadedPlugin, hook: Hook, f: &CallFailure, now_ms: i64) {
        metrics::counter!(
            "tessera_plugin_failures_total",
            "plugin" => p.spec.name.clone(),
            "hook" => hook.name(),
            "kind" => f.kind.as_str()
        )
        .increment(1);
        // At most one log line per plugin per second: a broken plugin on the heartbeat
        // path must not flood the log (metrics and outcome reports count every one).
        let last = p.last_failure_log_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= 1000
            && p.last_failure_log_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                plugin = &*p.name,
                hook = hook.name(),
                kind = f.kind.as_str(),
                fail_mode = p.spec.fail_mode.as_str(),
                "plugin call failed: {}",
                f.message
            );
        }
    }

    /// Replaces the loaded plugins with `specs`: unchanged plugins stay (warm), changed
    /// files are compiled and validated (with a trial `init`) before anything is swapped,
    /// then the new chain replaces the old one atomically. In-flight calls finish on the
    /// version they started with. A spec that fails keeps its previous version serving
    /// (if there was one) and the report says why. Reloads are serialized; blocking.
    pub fn reload(&self, specs: Vec<PluginSpec>) -> ReloadReport {
        let _guard = self.inner.reload_lock.lock();
        let current = self.inner.chain.load_full();
        let mut report = ReloadReport::default();
        let mut next = Vec::new();
        let mut seen = HashSet::new();
        for spec in &specs {
            if !seen.insert(spec.name.as_str()) {
                report.entries.push(ReloadEntry {
                    name: spec.name.clone(),
                    status: ReloadStatus::Failed {
                        error: PluginError::Spec(format!("duplicate plugin name `{}`", spec.name)),
                        kept_previous: false,
                    },
                });
                continue;
            }
            if !spec.enabled {
                report.entries.push(ReloadEntry {
                    name: spec.name.clone(),
                    status: ReloadStatus::Disabled,
                });
                continue;
            }
            let old = current.plugins.iter().find(|p| p.spec.name == spec.name);
            let status = match self.inner.load(spec, old) {
                Ok((plugin, status)) => {
                    next.push(plugin);
                    status
                }
                Err(error) => {
                    if let Some(old) = old {
                        next.push(Arc::clone(old));
                    }
                    metrics::counter!("tessera_plugin_reload_failures_total", "plugin" => spec.name.clone())
                        .increment(1);
                    tracing::error!(plugin = %spec.name, kept_previous = old.is_some(), "plugin load failed: {error}");
                    ReloadStatus::Failed {
                        error,
                        kept_previous: old.is_some(),
                    }
                }
            };
            report.entries.push(ReloadEntry {
                name: spec.name.clone(),
                status,
            });
        }
        report.removed = current
            .plugins
            .iter()
            .filter(|p| !next.iter().any(|n| n.name == p.name))
            .map(|p| p.spec.name.clone())
            .collect();
        self.note_failures(&report, &specs);
        self.inner.install(Chain::new(next, specs));
        tracing::info!("plugins reloaded: {report}");
        report
    }

    /// Remembers each failure of `report` with its time, and forgets those of plugins that
    /// loaded (or are no longer configured).
    fn note_failures(&self, report: &ReloadReport, specs: &[PluginSpec]) {
        let now = wall_ms();
        let mut failures = self.inner.reload_failures.lock();
        failures.retain(|name, _| specs.iter().any(|s| s.name == *name));
        for e in &report.entries {
            match &e.status {
                ReloadStatus::Failed {
                    error,
                    kept_previous,
                } => {
                    failures.insert(
                        e.name.clone(),
                        ReloadFailure {
                            message: error.to_string(),
                            at_ms: now,
                            kept_previous: *kept_previous,
                        },
                    );
                }
                _ => {
                    failures.remove(&e.name);
                }
            }
        }
    }

    /// Every configured plugin (in the order last given, disabled ones included) with the
    /// version that serves it and what that version did since it was loaded, and the last
    /// reload error. Reads counters only: never waits for a call or a reload.
    #[must_use]
    pub fn status(&self) -> Vec<PluginState> {
        let chain = self.inner.chain.load();
        let failures = self.inner.reload_failures.lock().clone();
        let mut seen = HashSet::new();
        chain
            .specs
            .iter()
            .filter(|s| seen.insert(s.name.as_str()))
            .map(|configured| {
                let loaded = chain
                    .plugins
                    .iter()
                    .find(|p| p.spec.name == configured.name);
                PluginState {
                    spec: loaded.map_or_else(|| configured.clone(), |p| p.spec.clone()),
                    enabled: configured.enabled,
                    loaded: loaded.map(|p| LoadedVersion {
                        hooks: p.info.hooks.clone(),
                        file: p.file.clone(),
                        loaded_ms: p.loaded_ms,
                        stats: p.stats.snapshot(),
                    }),
                    last_reload_error: failures.get(&configured.name).cloned(),
                }
            })
            .collect()
    }

    /// Reloads the specs last given to [`PluginHost::new`] or [`PluginHost::reload`]
    /// (picks up changed files).
    pub fn reload_files(&self) -> ReloadReport {
        let specs = self.inner.chain.load().specs.clone();
        self.reload(specs)
    }

    /// The loaded plugins, in chain order.
    #[must_use]
    pub fn plugins(&self) -> Vec<PluginStatus> {
        self.inner
            .chain
            .load()
            .plugins
            .iter()
            .map(|p| PluginStatus {
                spec: p.spec.clone(),
                hooks: p.info.hooks.clone(),
                imports: p.info.imports.clone(),
            })
            .collect()
    }

    /// The host's settings.
    #[must_use]
    pub fn settings(&self) -> &HostSettings {
        &self.inner.settings
    }

    /// Watches the files of the current specs and calls [`PluginHost::reload_files`]
    /// after they change (quiet for `debounce`), then `on_reload` with the report (log it,
    /// record an event for each failure). The returned watcher stops when dropped; after a
    /// reload that changes paths, start a new one. The watcher holds only a weak reference
    /// to the host.
    ///
    /// # Errors
    /// [`PluginError::Watch`] when the OS watcher cannot be created.
    pub fn watch<F>(&self, debounce: Duration, mut on_reload: F) -> Result<FileWatcher, PluginError>
    where
        F: FnMut(&ReloadReport) + Send + 'static,
    {
        let paths: Vec<PathBuf> = self
            .inner
            .chain
            .load()
            .specs
            .iter()
            .filter(|s| s.enabled)
            .map(|s| s.path.clone())
            .collect();
        let weak = Arc::downgrade(&self.inner);
        watch_paths(&paths, debounce, move |changed| {
            if let Some(inner) = weak.upgrade() {
                tracing::info!(files = ?changed, "plugin files changed, reloading");
                let report = PluginHost { inner }.reload_files();
                on_reload(&report);
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_label_safe() {
        assert!(valid_name("ban-threshold"));
        assert!(valid_name("ip_rep.v2"));
        assert!(!valid_name(""));
        assert!(!valid_name("has space"));
    }
}
