//! Policy plugins in the running server: builds the plugin host from `[policy]` and
//! `[[plugins]]`, calls the hooks from the request path and from license events, and applies
//! decisions — `deny` answers the client with the plugin's code, `ban` bans the license
//! durably (its live sessions end with reason `banned`), `flag` and `risk` are recorded.
//!
//! Hooks a plugin does not export cost two atomic loads ([`PluginHost::has_hook`] and
//! whether anyone records, [`record`]).

pub mod kv;
pub mod pool;
pub mod record;
pub mod shared_kv;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;
use parking_lot::Mutex;
use tessera_actors::{
    EndReason, EventSink, LicenseError, LicenseEvent, LicenseKey, LicenseStatus, Licenses, Reply,
    Request as LicenseRequest,
};
use tessera_config::{Config, FailMode as CfgFailMode};
use tessera_plugins::abi::{
    ActivateEvent, AttemptOutcome, CredentialKind, EndReason as AbiEndReason,
    Fingerprint as AbiFingerprint, HeartbeatEvent, LoginFailureEvent, RequestEvent,
    SessionEndEvent, SessionStartEvent, TickEvent, WarningEvent,
};
use tessera_plugins::{
    Decision, Event, FailMode, FileWatcher, Hook, HostSettings, Outcome, PluginHost, PluginSpec,
    ReloadReport,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::http::client_ip::ClientIp;
use crate::http::error::{ApiError, ErrorCode};
use crate::policy::kv::PluginKv;
use crate::policy::pool::HookPool;
use crate::policy::record::Recorder;
use crate::policy::shared_kv::SharedKv;
use crate::store::{MetaStore, SharedPluginKv};

/// What a client sent with a request, beyond its address and what the handler passes
/// explicitly, for the hook events. Extracted in the handlers (never fails).
#[derive(Debug, Clone, Default)]
pub struct HookClient {
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// `machine_id` of a session start.
    pub machine_id: Option<String>,
    /// The application version of a session start (`version`).
    pub app_version: Option<String>,
}

impl HookClient {
    /// With a session start's `machine_id` and `version`.
    pub fn with_session(mut self, machine_id: Option<&str>, version: Option<&str>) -> Self {
        self.machine_id = machine_id.map(str::to_owned);
        self.app_version = version.map(str::to_owned);
        self
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for HookClient {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(512).collect());
        Ok(HookClient {
            user_agent,
            ..HookClient::default()
        })
    }
}

fn some_text(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn abi_fingerprint(fp: Option<&tessera_actors::Fingerprint>) -> Option<AbiFingerprint> {
    fp.map(|fp| AbiFingerprint {
        cpu_id: fp.cpu_id.clone(),
        mb_serial: fp.mb_serial.clone(),
        mac_addresses: fp.mac_addresses.clone(),
        volume_hash: fp.volume_hash.clone(),
        host_name: fp.host_name.clone(),
    })
}

/// How often `on_tick` runs.
pub const TICK_INTERVAL: Duration = Duration::from_secs(10);
/// License events waiting for `on_session_end`; beyond this they are dropped and counted.
const EVENT_QUEUE: usize = 16_384;
/// Routes that never reach plugins: probes and documentation.
const UNHOOKED_ROUTES: &[&str] = &[
    "/",
    "/health",
    "/healthz",
    "/ready",
    "/metrics",
    "/openapi.json",
];

/// Why the policy host could not start.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A plugin or the engine failed to load.
    #[error("{0}")]
    Plugin(#[from] tessera_plugins::PluginError),
    /// The durable plugin KV could not be read.
    #[error("durable plugin KV: {0}")]
    Kv(#[from] crate::store::StoreError),
    /// The hook threads could not start.
    #[error("plugin hook threads: {0}")]
    Threads(#[from] std::io::Error),
}

/// The host settings of `[policy]`.
pub fn host_settings(cfg: &Config) -> HostSettings {
    HostSettings {
        memory_limit_bytes: cfg.policy.plugin_memory_limit_bytes,
        risk_threshold: i64::from(cfg.policy.risk_threshold),
        ..HostSettings::default()
    }
}

/// The plugin specs of `[[plugins]]`.
pub fn plugin_specs(cfg: &Config) -> Vec<PluginSpec> {
    cfg.plugins
        .iter()
        .map(|p| PluginSpec {
            name: p.name.clone(),
            path: p.path.clone(),
            enabled: p.enabled,
            fail_mode: match p.fail_mode {
                CfgFailMode::Open => FailMode::Open,
                CfgFailMode::Closed => FailMode::Closed,
            },
            timeout: p.effective_timeout(&cfg.policy),
            order: p.order,
            config: serde_json::to_value(&p.config).unwrap_or_default(),
        })
        .collect()
}

/// Forwards license events to the policy task (and logs the interesting ones). Never blocks
/// the shard: a full queue drops the event and counts it.
pub struct PolicyEvents {
    tx: mpsc::Sender<LicenseEvent>,
}

impl PolicyEvents {
    /// A sink and the receiving end for [`Policy::start`].
    pub fn channel() -> (Arc<Self>, mpsc::Receiver<LicenseEvent>) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        (Arc::new(Self { tx }), rx)
    }
}

impl EventSink for PolicyEvents {
    fn emit(&self, event: &LicenseEvent) {
        crate::licenses::LogEvents.emit(event);
        if matches!(event, LicenseEvent::SessionEnded { .. })
            && self.tx.try_send(event.clone()).is_err()
        {
            metrics::counter!("tessera_policy_events_dropped_total").increment(1);
        }
    }
}

/// The policy service.
pub struct Policy {
    host: PluginHost,
    /// Where hook calls run: never on a request worker.
    pool: HookPool,
    /// Hook events for `tessera plugin record`.
    recorder: Recorder,
    licenses: Licenses,
    kv: Arc<PluginKv>,
    watcher: Mutex<Option<FileWatcher>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Where denials are published as `policy.denied` events (set once at start-up).
    events: std::sync::OnceLock<crate::events::Events>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("plugins", &self.host.plugins().len())
            .finish()
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Policy {
    /// Loads the plugins (a broken plugin stops the start with a message naming it), the
    /// durable KV, the file watcher and the tick and event tasks.
    pub async fn start(
        cfg: &Config,
        meta: Arc<dyn MetaStore>,
        shared: Option<Arc<dyn SharedPluginKv>>,
        licenses: Licenses,
        events: mpsc::Receiver<LicenseEvent>,
    ) -> Result<Arc<Self>, PolicyError> {
        let kv = PluginKv::load(meta, cfg.plugins.iter().map(|p| p.name.clone())).await?;
        let settings = host_settings(cfg);
        let specs = plugin_specs(cfg);
        // On a store other servers share, durable keys live there, one value for all;
        // otherwise in memory, written back as blobs.
        let durable: Arc<dyn tessera_plugins::DurableKv> = match shared {
            Some(store) => Arc::new(SharedKv::new(store, cfg.store.op_timeout)),
            None => kv.clone(),
        };
        let host = tokio::task::spawn_blocking(move || PluginHost::new(settings, specs, durable))
            .await
            .map_err(|e| tessera_plugins::PluginError::Engine(e.to_string()))??;
        for p in host.plugins() {
            tracing::info!(plugin = %p.spec.name, status = ?p, "plugin loaded");
        }
        let pool = HookPool::start(cfg.policy.hook_threads, cfg.policy.hook_queue)?;
        let policy = Arc::new(Self {
            host,
            pool,
            recorder: Recorder::default(),
            licenses,
            kv: Arc::clone(&kv),
            watcher: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            events: std::sync::OnceLock::new(),
        });
        if cfg.policy.watch_plugins && !cfg.plugins.is_empty() {
            policy.watch();
        }
        let tasks = vec![
            kv.spawn_flusher(Duration::from_secs(1)),
            spawn_ticker(Arc::downgrade(&policy)),
            spawn_event_consumer(Arc::downgrade(&policy), events),
        ];
        *policy.tasks.lock() = tasks;
        Ok(policy)
    }

    /// The plugin host.
    pub fn host(&self) -> &PluginHost {
        &self.host
    }

    /// The tap that records hook events for `tessera plugin record`.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Whether events of `hook` are wanted: a plugin exports it or someone records.
    fn wants(&self, hook: Hook) -> bool {
        self.host.has_hook(hook) || self.recorder.active()
    }

    fn watch(&self) {
        match self.host.watch(Duration::from_millis(200), log_reload) {
            Ok(w) => *self.watcher.lock() = Some(w),
            Err(e) => tracing::warn!("cannot watch plugin files; reload with SIGHUP: {e}"),
        }
    }

    /// Replaces the plugin chain with `cfg`'s (compiled off the hot path; a broken plugin
    /// keeps its previous version serving) and re-watches the files.
    pub async fn reload(self: &Arc<Self>, cfg: &Config) -> ReloadReport {
        let specs = plugin_specs(cfg);
        let me = Arc::clone(self);
        let report = tokio::task::spawn_blocking(move || me.host.reload(specs))
            .await
            .unwrap_or_default();
        log_reload(&report);
        if cfg.policy.watch_plugins && !cfg.plugins.is_empty() {
            self.watch();
        }
        report
    }

    /// Flushes the durable KV and stops the background tasks.
    pub async fn shutdown(&self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
        self.watcher.lock().take();
        self.pool.close();
        if let Err(e) = self.kv.close().await {
            tracing::error!("final durable plugin KV flush failed: {e}");
        }
    }

    /// Publishes denials to `events` from now on.
    pub fn publish_to(&self, events: crate::events::Events) {
        let _ = self.events.set(events);
    }

    fn publish_denial(
        &self,
        hook: Hook,
        outcome: &Outcome,
        code: &str,
        license: Option<&LicenseKey>,
    ) {
        let Some(events) = self.events.get() else {
            return;
        };
        let mut e = crate::events::NewEvent::new(
            "policy.denied",
            crate::events::Severity::Warning,
            format!("denied by policy ({code}) on {}", hook.name()),
        )
        .risk(u32::try_from(outcome.risk.max(0)).unwrap_or(u32::MAX))
        .data(serde_json::json!({
            "hook": hook.name(),
            "code": code,
            "plugin": outcome.decided_by.as_deref(),
        }));
        if let Some(k) = license {
            e = e.license(k);
        }
        events.publish(e);
    }

    /// Runs `event` through the chain and applies the outcome. `license` is the license the
    /// event concerns (the target of a `ban`).
    pub async fn decide(&self, event: Event, license: Option<&LicenseKey>) -> Result<(), ApiError> {
        let hook = event.hook();
        self.recorder.offer(&event);
        if !self.host.has_hook(hook) {
            return Ok(());
        }
        let host = self.host.clone();
        let outcome = match self.pool.run(move || host.call(&event)).await {
            Ok(outcome) => outcome,
            Err(e) => {
                // The server is stopping, or the host broke its never-panics promise.
                tracing::error!(hook = hook.name(), "plugin hook not run: {e}");
                return Err(ApiError::from(ErrorCode::InternalError));
            }
        };
        record(hook, &outcome);
        match outcome.decision {
            Decision::Allow | Decision::Flag { .. } | Decision::Risk { .. } => Ok(()),
            Decision::Deny {
                ref code,
                ref message,
                status,
            } => {
                self.publish_denial(hook, &outcome, code, license);
                Err(denial(code.clone(), message.clone(), status))
            }
            Decision::Ban {
                reason,
                duration_secs,
            } => match license {
                Some(key) => {
                    self.ban(key, &reason, duration_secs).await;
                    Err(ApiError::new(
                        ErrorCode::LicenseBanned,
                        format!("License is banned: {reason}"),
                    ))
                }
                None => Err(denial("POLICY_DENIED".into(), reason, None)),
            },
        }
    }

    /// Bans `key` durably; its live sessions end with reason `banned`.
    pub async fn ban(&self, key: &LicenseKey, reason: &str, duration_secs: Option<u64>) {
        let note = match duration_secs {
            Some(d) => format!("policy: {reason} ({d} s)"),
            None => format!("policy: {reason}"),
        };
        let result = self
            .licenses
            .call(
                key,
                LicenseRequest::SetStatus {
                    status: LicenseStatus::Banned,
                    reason: Some(note),
                    // A guest's duration past the bound bans until changed.
                    until: crate::admin::lapse_after(duration_secs, Utc::now())
                        .ok()
                        .flatten(),
                },
            )
            .await;
        match result {
            Ok(Reply::StatusSet { ended_sessions, .. }) => {
                metrics::counter!("tessera_policy_bans_total").increment(1);
                tracing::warn!(license = %key.masked(), reason, ended_sessions, "license banned by policy");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(license = %key.masked(), reason, "policy ban could not be applied: {e}")
            }
        }
    }

    /// `on_activate`, after the attempt. A denial of a new activation undoes it.
    /// `on_activate` for an attempt the license is expected to accept, asked before anything
    /// is written, so a denial leaves no trace (no activation, no lifetime activation used).
    /// Returns whether the hook was asked; `after_activate` then only reports a failure.
    /// Not asked (`false`) when no plugin exports the hook, or the license is expected to
    /// refuse (status, expiry, limits): the attempt runs and `after_activate` reports it.
    pub async fn before_activate(
        &self,
        key: &LicenseKey,
        device_hash: &str,
        machine_name: &str,
        app_version: &str,
        ip: ClientIp,
        client: &HookClient,
    ) -> Result<bool, ApiError> {
        if !self.wants(Hook::Activate) {
            return Ok(false);
        }
        let Ok(Reply::Info {
            license,
            activations,
            ..
        }) = self.licenses.call(key, LicenseRequest::Info).await
        else {
            return Ok(false);
        };
        let (record, limits) = (&license.record, &license.limits);
        let existing = activations
            .iter()
            .any(|a| a.is_active && a.hardware_hash == device_hash);
        let usable = record.status == LicenseStatus::Active
            && record.valid_until.is_none_or(|t| t > Utc::now());
        let room = existing
            || (license.active_devices < limits.max_devices
                && (limits.max_activations == 0
                    || record.activations_used < limits.max_activations));
        if !(usable && room) {
            return Ok(false);
        }
        // What the license holds before this attempt (ABI: `active_devices` before it).
        let event = ActivateEvent {
            ts_ms: now_ms(),
            license_key: key.to_string(),
            device_hash: device_hash.to_string(),
            ip: Some(ip.0.to_string()),
            user_agent: client.user_agent.clone(),
            product: Some(record.product.clone()),
            plan: Some(record.plan.clone()),
            active_devices: license.active_devices,
            max_devices: Some(limits.max_devices),
            machine_name: some_text(machine_name),
            app_version: some_text(app_version),
            license_type: Some(record.license_type.clone()),
            valid_until_ms: record.valid_until.map(|t| t.timestamp_millis()),
            activations_used: Some(record.activations_used),
            max_activations: Some(limits.max_activations),
            features: record.features.clone(),
            metadata: record.metadata.clone(),
            ..ActivateEvent::default()
        };
        self.decide(Event::Activate(event), Some(key)).await?;
        Ok(true)
    }

    /// `on_activate` after the attempt: a failure is reported (outcome `failed`); a success
    /// is decided here only when [`Policy::before_activate`] did not ask (`asked`), and a
    /// denial then takes the new device back.
    pub async fn after_activate(
        &self,
        key: &LicenseKey,
        device_hash: &str,
        ip: ClientIp,
        client: &HookClient,
        asked: bool,
        result: &Result<Reply, LicenseError>,
    ) -> Result<(), ApiError> {
        if !self.wants(Hook::Activate) || (asked && result.is_ok()) {
            return Ok(());
        }
        let mut event = ActivateEvent {
            ts_ms: now_ms(),
            license_key: key.to_string(),
            device_hash: device_hash.to_string(),
            ip: Some(ip.0.to_string()),
            user_agent: client.user_agent.clone(),
            ..ActivateEvent::default()
        };
        let mut created = None;
        match result {
            Ok(Reply::Activated {
                activation,
                existing,
                license,
            }) => {
                event.product = Some(license.record.product.clone());
                event.plan = Some(license.record.plan.clone());
                event.active_devices = license.active_devices;
                event.max_devices = Some(license.limits.max_devices);
                event.device_hash = activation.hardware_hash.clone();
                event.machine_name = some_text(&activation.machine_name);
                event.app_version = some_text(&activation.app_version);
                event.fingerprint = abi_fingerprint(activation.fingerprint.as_deref());
                event.license_type = Some(license.record.license_type.clone());
                event.valid_until_ms = license.record.valid_until.map(|t| t.timestamp_millis());
                event.activations_used = Some(license.record.activations_used);
                event.max_activations = Some(license.limits.max_activations);
                event.features = license.record.features.clone();
                event.metadata = license.record.metadata.clone();
                if !existing {
                    created = Some(activation.hardware_hash.clone());
                }
            }
            Ok(_) => {}
            Err(e) => {
                event.outcome = AttemptOutcome::Failed;
                event.error_code = Some(ApiError::from(*e).code().as_str().to_string());
            }
        }
        let decided = self.decide(Event::Activate(event), Some(key)).await;
        if decided.is_err()
            && let Some(hardware_hash) = created
        {
            // The policy refused what was already written: take the device back.
            let _ = self
                .licenses
                .call(key, LicenseRequest::Deactivate { hardware_hash })
                .await;
        }
        decided
    }

    /// `on_session_start`, before the session is created (a denial changes nothing). The
    /// license and the device's activation are read first (one more call to the license's
    /// shard, only when a plugin exports the hook) so the event carries what they know.
    pub async fn before_session_start(
        &self,
        key: &LicenseKey,
        device_hash: &str,
        session_hash: &str,
        ip: ClientIp,
        client: &HookClient,
    ) -> Result<(), ApiError> {
        if !self.wants(Hook::SessionStart) {
            return Ok(());
        }
        let mut event = SessionStartEvent {
            ts_ms: now_ms(),
            license_key: key.to_string(),
            device_hash: device_hash.to_string(),
            session_hash: session_hash.to_string(),
            ip: Some(ip.0.to_string()),
            user_agent: client.user_agent.clone(),
            machine_id: client.machine_id.clone(),
            app_version: client.app_version.clone(),
            ..SessionStartEvent::default()
        };
        let known = self
            .licenses
            .call(
                key,
                LicenseRequest::Verify {
                    device: Some(tessera_actors::DeviceRef::Hash(device_hash.to_string())),
                },
            )
            .await;
        // A license or device the server refuses is refused by the start itself, next.
        if let Ok(Reply::Verified {
            license,
            activation,
        }) = known
        {
            event.product = Some(license.record.product.clone());
            event.plan = Some(license.record.plan.clone());
            event.live_sessions = license.live_sessions;
            event.max_sessions = Some(license.limits.max_sessions);
            event.license_type = Some(license.record.license_type.clone());
            event.valid_until_ms = license.record.valid_until.map(|t| t.timestamp_millis());
            event.activations_used = Some(license.record.activations_used);
            event.max_activations = Some(license.limits.max_activations);
            event.features = license.record.features.clone();
            event.metadata = license.record.metadata.clone();
            if let Some(a) = activation {
                event.machine_name = some_text(&a.machine_name);
                event.fingerprint = abi_fingerprint(a.fingerprint.as_deref());
                if event.app_version.is_none() {
                    event.app_version = some_text(&a.app_version);
                }
            }
        }
        self.decide(Event::SessionStart(event), Some(key)).await
    }

    /// `on_heartbeat`, after the heartbeat was recorded.
    pub async fn after_heartbeat(
        &self,
        key: &LicenseKey,
        session: &tessera_actors::SessionRecord,
        ip: ClientIp,
        client: &HookClient,
    ) -> Result<(), ApiError> {
        if !self.wants(Hook::Heartbeat) {
            return Ok(());
        }
        let event = HeartbeatEvent {
            ts_ms: now_ms(),
            license_key: key.to_string(),
            product: None,
            plan: None,
            device_hash: session.hardware_hash.clone(),
            session_hash: session.token_hash.to_hex(),
            ip: Some(ip.0.to_string()),
            started_ms: session.started_at.timestamp_millis(),
            last_seen_ms: session.last_heartbeat.timestamp_millis(),
            machine_id: some_text(&session.machine_id),
            app_version: some_text(&session.version),
            user_agent: client.user_agent.clone(),
        };
        self.decide(Event::Heartbeat(event), Some(key)).await
    }

    /// `on_warning`, after a warning was recorded; a `ban` decision bans the license.
    pub async fn after_warning(
        &self,
        license: &tessera_actors::LicenseView,
        note: &str,
        actor: &str,
    ) -> Result<(), ApiError> {
        let event = WarningEvent {
            ts_ms: now_ms(),
            license_key: license.record.key.to_string(),
            product: Some(license.record.product.clone()),
            plan: Some(license.record.plan.clone()),
            note: note.to_string(),
            warning_count: license.record.warnings,
            actor: Some(actor.to_string()),
            license_type: Some(license.record.license_type.clone()),
            valid_until_ms: license.record.valid_until.map(|t| t.timestamp_millis()),
        };
        self.decide(Event::Warning(event), Some(&license.record.key))
            .await
    }
}

/// A plugin's denial as a client error: its code if it is `UPPER_SNAKE`, 403 unless it
/// asked for 429 (or 503 for a closed-failing plugin).
fn denial(code: String, message: String, status: Option<u16>) -> ApiError {
    let valid_code = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    let code = if valid_code {
        code
    } else {
        "POLICY_DENIED".to_string()
    };
    let status = match status {
        Some(429) => StatusCode::TOO_MANY_REQUESTS,
        Some(503) if code == tessera_plugins::PLUGIN_FAILURE_CODE => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::FORBIDDEN,
    };
    let mut message: String = message
        .chars()
        .filter(|c| !c.is_control())
        .take(256)
        .collect();
    if message.is_empty() {
        message = ErrorCode::PolicyDenied.default_message().to_string();
    }
    ApiError::Policy {
        code,
        message,
        status,
    }
}

fn record(hook: Hook, outcome: &Outcome) {
    for r in &outcome.reports {
        let decision = match &r.decision {
            Decision::Allow => "allow",
            Decision::Deny { .. } => "deny",
            Decision::Ban { .. } => "ban",
            Decision::Flag { .. } => "flag",
            Decision::Risk { .. } => "risk",
        };
        metrics::counter!("tessera_policy_decisions_total", "plugin" => r.plugin.to_string(), "hook" => hook.name(), "decision" => decision)
            .increment(1);
        tracing::info!(plugin = %r.plugin, hook = hook.name(), decision = ?r.decision, failure = ?r.failure, "policy decision");
    }
}

fn log_reload(report: &ReloadReport) {
    for (name, error, kept_old) in report.failures() {
        metrics::counter!("tessera_plugin_reload_failures_total", "plugin" => name.to_string())
            .increment(1);
        tracing::error!(
            plugin = name,
            kept_previous = kept_old,
            "plugin reload failed: {error}"
        );
    }
    if report.is_ok() {
        tracing::info!("plugins reloaded");
    }
}

fn abi_reason(r: EndReason) -> AbiEndReason {
    match r {
        EndReason::ClientEnd => AbiEndReason::ClientEnd,
        EndReason::Timeout => AbiEndReason::Timeout,
        EndReason::Evicted => AbiEndReason::Evicted,
        EndReason::Replaced => AbiEndReason::Replaced,
        EndReason::Revoked => AbiEndReason::Revoked,
        EndReason::Suspended => AbiEndReason::Suspended,
        EndReason::Banned => AbiEndReason::Banned,
        EndReason::Expired => AbiEndReason::Expired,
        EndReason::ForceReauth => AbiEndReason::ForceReauth,
        EndReason::Admin => AbiEndReason::Admin,
    }
}

fn spawn_event_consumer(
    policy: std::sync::Weak<Policy>,
    mut events: mpsc::Receiver<LicenseEvent>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let Some(policy) = policy.upgrade() else {
                return;
            };
            if let LicenseEvent::SessionEnded {
                key,
                product,
                session,
                ended_at,
                reason,
                ..
            } = event
            {
                if !policy.wants(Hook::SessionEnd) {
                    continue;
                }
                let ev = SessionEndEvent {
                    ts_ms: ended_at.timestamp_millis(),
                    license_key: key.to_string(),
                    product: some_text(&product),
                    plan: None,
                    device_hash: session.hardware_hash.clone(),
                    session_hash: session.token_hash.to_hex(),
                    reason: abi_reason(reason),
                    started_ms: session.started_at.timestamp_millis(),
                    last_seen_ms: session.last_heartbeat.timestamp_millis(),
                    machine_id: some_text(&session.machine_id),
                    app_version: some_text(&session.version),
                };
                let _ = policy.decide(Event::SessionEnd(ev), Some(&key)).await;
            }
        }
    })
}

fn spawn_ticker(policy: std::sync::Weak<Policy>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(policy) = policy.upgrade() else {
                return;
            };
            let ev = TickEvent {
                ts_ms: now_ms(),
                interval_ms: TICK_INTERVAL.as_millis() as u64,
            };
            let _ = policy.decide(Event::Tick(ev), None).await;
        }
    })
}

/// `on_request` before an API call on `route` (probes and documentation are never hooked):
/// a denial answers the request instead of the handler.
pub async fn request_hook(
    policy: &Policy,
    ip: ClientIp,
    method: &axum::http::Method,
    route: Option<&str>,
) -> Result<(), ApiError> {
    if !runs_request_hook(policy, route) {
        return Ok(());
    }
    let event = RequestEvent {
        ts_ms: now_ms(),
        ip: ip.0.to_string(),
        method: method.as_str().to_string(),
        route: route.map(str::to_owned),
        api_key_id: None,
        license_key: None,
    };
    policy.decide(Event::Request(event), None).await
}

/// Whether [`request_hook`] would call a plugin for `route`.
pub fn runs_request_hook(policy: &Policy, route: Option<&str>) -> bool {
    is_hooked(route) && policy.wants(Hook::Request)
}

/// `on_login_failure` after an API call on `route` answered 401.
pub async fn login_failure_hook(
    policy: &Policy,
    ip: ClientIp,
    route: Option<&str>,
    status: StatusCode,
) {
    // The operator logins report their own failures, with the username
    // (`operator_login_failed`).
    if status != StatusCode::UNAUTHORIZED
        || !is_hooked(route)
        || route.is_some_and(|r| OPERATOR_LOGIN_ROUTES.contains(&r))
        || !policy.wants(Hook::LoginFailure)
    {
        return;
    }
    let event = LoginFailureEvent {
        ts_ms: now_ms(),
        ip: Some(ip.0.to_string()),
        kind: CredentialKind::ApiKey,
        route: route.map(str::to_owned),
        username: None,
        license_key: None,
        error_code: ErrorCode::InvalidApiKey.as_str().to_string(),
    };
    let _ = policy.decide(Event::LoginFailure(event), None).await;
}

/// The operator login routes (the API's and the panel's), whose failures
/// [`operator_login_failed`] reports.
pub const OPERATOR_LOGIN_ROUTES: [&str; 2] = ["/api/auth/login", "/api/panel/session"];

/// `on_login_failure` for a failed operator login on `route`: kind `password`, the
/// username tried and the error code answered. Every failure fires it, whatever its cause.
pub async fn operator_login_failed(
    policy: &Policy,
    ip: ClientIp,
    route: &str,
    username: &str,
    code: ErrorCode,
) {
    if !policy.wants(Hook::LoginFailure) {
        return;
    }
    let event = LoginFailureEvent {
        ts_ms: now_ms(),
        ip: Some(ip.0.to_string()),
        kind: CredentialKind::Password,
        route: Some(route.to_owned()),
        username: Some(username.to_owned()),
        license_key: None,
        error_code: code.as_str().to_string(),
    };
    let _ = policy.decide(Event::LoginFailure(event), None).await;
}

fn is_hooked(route: Option<&str>) -> bool {
    route.is_none_or(|r| !UNHOOKED_ROUTES.contains(&r))
}
