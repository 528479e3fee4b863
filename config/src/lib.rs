//! Typed Tessera configuration: defaults, validation with line numbers, env overrides.
//!
//! Settings are layered defaults → file (`tessera.toml`) → environment (`TESSERA_<SECTION>_<KEY>`)
//! and validated once, at load, into typed values: durations are [`Duration`], addresses
//! [`SocketAddr`], choices enums, proxy ranges [`IpNet`]. The rest of the server never sees a raw
//! string from config.
//!
//! [`load`] collects *every* problem (unknown key, wrong type, out-of-range value, a semantic
//! rule broken) as a [`ConfigError`] carrying the dotted key and where it came from (file and
//! line, or environment variable), so `tessera config check` can print them all at once.
//!
//! The types are plain data (`Clone + PartialEq`) so a later reload can build a new [`Config`]
//! and diff it against the running one.
#![forbid(unsafe_code)]

mod error;
mod load;
mod serde_util;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use error::{ConfigError, ConfigErrors, Origin};
use ipnet::IpNet;
pub use load::{ENV_PREFIX, load, load_str, load_with_env};
use serde::Deserialize;
pub use validate::{
    read_certificates, read_private_key, valid_feature, valid_release_date, valid_version,
};

/// The id of the product that exists even when the file defines none.
pub const DEFAULT_PRODUCT: &str = "default";

/// The whole Tessera configuration. Every field has a default ([`Config::default`]).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: HTTP listener and request handling.
    pub server: ServerConfig,
    /// `[log]`: log output.
    pub log: LogConfig,
    /// `[auth]`: the system API key.
    pub auth: AuthConfig,
    /// `[rate_limit]`: token buckets per route class.
    pub rate_limit: RateLimitConfig,
    /// `[security]`: operator login and the defaults of the security controls.
    pub security: SecurityConfig,
    /// `[store]`: persistence backend.
    pub store: StoreConfig,
    /// `[licenses]`: default license limits and the shard hosts.
    pub licenses: LicensesConfig,
    /// `[sessions]`: default heartbeat timing.
    pub sessions: SessionsConfig,
    /// `[plans.<name>]`: per-plan overrides of the license limits.
    pub plans: BTreeMap<String, PlanConfig>,
    /// `[products.<id>]`: products with their release channel and session settings.
    /// Always contains [`DEFAULT_PRODUCT`] after [`load`].
    pub products: BTreeMap<String, ProductConfig>,
    /// `[presets.<name>]`: bundle presets (seed 001) an operator applies to a license with
    /// `POST /api/admin/licenses/{key}/bundle`.
    pub presets: BTreeMap<String, PresetConfig>,
    /// `[envelope]`: the seed-003 `{key, data}` envelope on `/api/v2`.
    pub envelope: EnvelopeConfig,
    /// `[policy]`: the WebAssembly policy host.
    pub policy: PolicyConfig,
    /// `[events]`: the event log and its live stream.
    pub events: EventsConfig,
    /// `[webhooks]`: outgoing Standard Webhooks deliveries.
    pub webhooks: WebhooksConfig,
    /// `[[plugins]]`: policy plugins, run in `order`.
    pub plugins: Vec<PluginConfig>,
}

impl Default for Config {
    fn default() -> Self {
        let mut products = BTreeMap::new();
        products.insert(
            DEFAULT_PRODUCT.to_owned(),
            ProductConfig::named(DEFAULT_PRODUCT),
        );
        Self {
            server: ServerConfig::default(),
            log: LogConfig::default(),
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            security: SecurityConfig::default(),
            store: StoreConfig::default(),
            licenses: LicensesConfig::default(),
            sessions: SessionsConfig::default(),
            plans: BTreeMap::new(),
            products,
            presets: BTreeMap::new(),
            envelope: EnvelopeConfig::default(),
            policy: PolicyConfig::default(),
            events: EventsConfig::default(),
            webhooks: WebhooksConfig::default(),
            plugins: Vec::new(),
        }
    }
}

/// `[server]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `listen_addr`: address the HTTP server binds.
    #[serde(with = "serde_util::socket_addr")]
    pub listen_addr: SocketAddr,
    /// `service_name`: reported by `GET /` and `GET /health`.
    pub service_name: String,
    /// `body_limit_bytes`: larger request bodies get 413.
    pub body_limit_bytes: usize,
    /// `request_timeout_ms`: a request still running after this gets 408.
    #[serde(rename = "request_timeout_ms", with = "serde_util::millis")]
    pub request_timeout: Duration,
    /// `shutdown_grace_ms`: how long in-flight requests may finish after a shutdown signal.
    #[serde(rename = "shutdown_grace_ms", with = "serde_util::millis")]
    pub shutdown_grace: Duration,
    /// `trusted_proxies`: peers whose `X-Forwarded-For` is believed (CIDRs or plain addresses).
    #[serde(with = "serde_util::nets")]
    pub trusted_proxies: Vec<IpNet>,
    /// `header_read_timeout_ms`: a connection that has not sent a whole request header this
    /// long after it started one is closed.
    #[serde(rename = "header_read_timeout_ms", with = "serde_util::millis")]
    pub header_read_timeout: Duration,
    /// `max_header_bytes`: a request header larger than this gets 431 and the connection
    /// is closed.
    pub max_header_bytes: usize,
    /// `max_connections_per_ip`: open connections one client address may hold (an IPv6
    /// client's address is its /64), session WebSockets included; more are closed at once.
    /// Trusted proxies are exempt.
    pub max_connections_per_ip: usize,
    /// `metrics_listen_addr`: when set, `/metrics` and `/openapi.json` are served only on
    /// this address, not on `listen_addr`. Empty: served on `listen_addr`.
    #[serde(with = "serde_util::opt_socket_addr")]
    pub metrics_listen_addr: Option<SocketAddr>,
    /// `tls_cert_file`: PEM certificate chain (the server's certificate first). With
    /// `tls_key_file`, `listen_addr` serves HTTPS instead of HTTP. Empty: plain HTTP.
    #[serde(with = "serde_util::opt_path")]
    pub tls_cert_file: Option<PathBuf>,
    /// `tls_key_file`: PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert_file`.
    #[serde(with = "serde_util::opt_path")]
    pub tls_key_file: Option<PathBuf>,
}

impl ServerConfig {
    /// The certificate and key files when TLS is configured (validation guarantees both or
    /// neither are set).
    pub fn tls_files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            _ => None,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            service_name: "Tessera License Server".to_owned(),
            body_limit_bytes: 64 * 1024,
            request_timeout: Duration::from_millis(10_000),
            shutdown_grace: Duration::from_millis(10_000),
            trusted_proxies: Vec::new(),
            header_read_timeout: Duration::from_millis(10_000),
            max_header_bytes: 16 * 1024,
            max_connections_per_ip: 256,
            metrics_listen_addr: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `format`: `text` or `json`.
    pub format: LogFormat,
    /// `level`: a `tracing` filter such as `info` or `info,tessera=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[auth]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `api_key_file`: a newly generated API key is also written here (mode 0600). Empty: none.
    #[serde(with = "serde_util::opt_path")]
    pub api_key_file: Option<PathBuf>,
    /// `rotation_overlap_secs`: how long the previous key keeps working after a regenerate.
    #[serde(rename = "rotation_overlap_secs", with = "serde_util::secs")]
    pub rotation_overlap: Duration,
}

/// How strictly a protection works (seed 001's `ip_reputation_mode` and
/// `network_protection_mode`). Plugins read it; `off` disables what they would enforce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtectionMode {
    /// No enforcement.
    Off,
    /// The default.
    Standard,
    /// Stricter thresholds.
    Strict,
}

/// `[security]`: operator login and the defaults of the security controls. The controls
/// themselves (`PUT /api/admin/security`) are stored and override these on every server.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// `enforce_login_payload_encryption`: refuse plaintext `{username, password}` logins.
    pub enforce_login_payload_encryption: bool,
    /// `max_login_attempts`: failed logins of one account before it is locked.
    pub max_login_attempts: u32,
    /// `replay_window_secs`: how long a login challenge is good, and how far a login's
    /// `challenge_ts` may be from the server's clock.
    pub replay_window_secs: u64,
    /// `ip_reputation_mode`: `off`, `standard` or `strict`.
    pub ip_reputation_mode: ProtectionMode,
    /// `network_protection_mode`: `off`, `standard` or `strict`.
    pub network_protection_mode: ProtectionMode,
    /// `lockout_secs`: how long a locked account (or a failing address) is refused.
    #[serde(rename = "lockout_secs", with = "serde_util::secs")]
    pub lockout: Duration,
    /// `address_max_failures`: failed logins from one address, across accounts, before the
    /// address is refused for `lockout_secs`.
    pub address_max_failures: u32,
    /// `token_ttl_secs`: lifetime of an operator's bearer token.
    #[serde(rename = "token_ttl_secs", with = "serde_util::secs")]
    pub token_ttl: Duration,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            enforce_login_payload_encryption: true,
            max_login_attempts: 5,
            replay_window_secs: 120,
            ip_reputation_mode: ProtectionMode::Standard,
            network_protection_mode: ProtectionMode::Standard,
            lockout: Duration::from_secs(900),
            address_max_failures: 20,
            token_ttl: Duration::from_secs(8 * 3600),
        }
    }
}

/// `[rate_limit]`: token buckets per route class, never keyed by API key alone.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// `enabled`: turn all rate limits off with `false`.
    pub enabled: bool,
    /// `api_per_minute`: API requests per client address.
    pub api_per_minute: u32,
    /// `login_per_minute`: login attempts per client address.
    pub login_per_minute: u32,
    /// `heartbeat_per_minute`: heartbeats per session token (or license key).
    pub heartbeat_per_minute: u32,
    /// `sessions_per_minute`: requests of the session routes (start, heartbeat, end) per
    /// client address, on top of the per-token limit. Generous: a whole office may sit
    /// behind one address.
    pub sessions_per_minute: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            api_per_minute: 100,
            login_per_minute: 5,
            heartbeat_per_minute: 120,
            sessions_per_minute: 30_000,
        }
    }
}

/// `[store]`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `backend`: `embedded` (a redb file under `data_dir`) or `redis`.
    pub backend: StoreBackend,
    /// `data_dir`: directory of the embedded store (`data_dir/tessera.redb`).
    pub data_dir: PathBuf,
    /// `redis_url`: used when `backend = "redis"`. May hold a password: never logged.
    pub redis_url: String,
    /// `redis_ca_file`: PEM certificates that a `rediss://` server's certificate must chain
    /// to (a private CA), instead of the system's trust store. Empty: the system's.
    #[serde(with = "serde_util::opt_path")]
    pub redis_ca_file: Option<PathBuf>,
    /// `op_timeout_ms`: a store operation taking longer fails with `STORE_UNAVAILABLE`.
    #[serde(rename = "op_timeout_ms", with = "serde_util::millis")]
    pub op_timeout: Duration,
    /// `flush_interval_ms`: write-behind period of heartbeats.
    #[serde(rename = "flush_interval_ms", with = "serde_util::millis")]
    pub flush_interval: Duration,
    /// `restart_grace_secs`: after a restart, sessions get this long to heartbeat before expiry.
    #[serde(rename = "restart_grace_secs", with = "serde_util::secs")]
    pub restart_grace: Duration,
    /// `embedded_cache_mib`: page cache of the embedded store, in MiB. Part of the server's
    /// memory; pages beyond it are read from the file (and the OS page cache).
    pub embedded_cache_mib: u32,
}

impl StoreConfig {
    /// Whether `redis_url` asks for TLS (`rediss://`, `rediss+cluster://`, or a node list
    /// with a `rediss://` node).
    pub fn redis_uses_tls(&self) -> bool {
        self.redis_url
            .split(',')
            .any(|u| u.trim_start().starts_with("rediss"))
    }

    /// Path of the embedded database file.
    pub fn embedded_path(&self) -> PathBuf {
        self.data_dir.join("tessera.redb")
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Embedded,
            data_dir: PathBuf::from("tessera-data"),
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            redis_ca_file: None,
            op_timeout: Duration::from_millis(2_000),
            flush_interval: Duration::from_millis(1_000),
            restart_grace: Duration::from_secs(60),
            embedded_cache_mib: 64,
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("backend", &self.backend)
            .field("data_dir", &self.data_dir)
            .field("redis_url", &redact_url(&self.redis_url))
            .field("redis_ca_file", &self.redis_ca_file)
            .field("op_timeout", &self.op_timeout)
            .field("flush_interval", &self.flush_interval)
            .field("restart_grace", &self.restart_grace)
            .field("embedded_cache_mib", &self.embedded_cache_mib)
            .finish()
    }
}

/// `url` with any password (`user:password@`) replaced by `***`, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let redacted = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_owned()
            };
            format!("{}{}{}", &url[..scheme_end + 3], redacted, &rest[at..])
        }
        None => url.to_owned(),
    }
}

/// Which persistence adapter serves the Store port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreBackend {
    /// redb file under `data_dir`; no external service needed.
    Embedded,
    /// Redis (or Redis Cluster) at `redis_url`.
    Redis,
}

/// `[licenses]`: defaults for every license, overridable per plan and per license.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LicensesConfig {
    /// `shards`: shard actors hosting license state machines; 0 means one per CPU.
    pub shards: usize,
    /// `max_devices`: devices active at once.
    pub max_devices: u32,
    /// `max_activations`: lifetime activations; 0 means unlimited.
    pub max_activations: u32,
    /// `max_sessions`: live sessions at once (the seeds' `max_users`).
    pub max_sessions: u32,
    /// `on_session_limit`: what a session start does at `max_sessions`.
    pub on_session_limit: SessionLimitStrategy,
    /// `idle_passivate_secs`: a license with no live session and no message this long is
    /// dropped from memory.
    #[serde(rename = "idle_passivate_secs", with = "serde_util::secs")]
    pub idle_passivate: Duration,
    /// `fingerprint_match`: how fingerprint components identify an existing device.
    pub fingerprint_match: FingerprintMatch,
    /// `default_product`: product of licenses issued without one.
    pub default_product: String,
}

impl LicensesConfig {
    /// `shards`, with 0 resolved to the number of CPUs.
    pub fn effective_shards(&self) -> usize {
        if self.shards == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.shards
        }
    }
}

impl Default for LicensesConfig {
    fn default() -> Self {
        Self {
            shards: 0,
            max_devices: 1,
            max_activations: 10,
            max_sessions: 1,
            on_session_limit: SessionLimitStrategy::Reject,
            idle_passivate: Duration::from_secs(600),
            fingerprint_match: FingerprintMatch::MatchMost,
            default_product: DEFAULT_PRODUCT.to_owned(),
        }
    }
}

/// What a session start does when the license already has `max_sessions` live sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionLimitStrategy {
    /// Refuse with 409 `SESSION_LIMIT_REACHED`.
    Reject,
    /// A start from a device that already holds a session replaces that session; others 409.
    ReplaceSameDevice,
    /// End the oldest live session (reason `evicted`) and start the new one.
    EvictOldest,
}

/// How the fingerprint components of a seed-003 instance identify a known device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FingerprintMatch {
    /// Every component must match.
    MatchAll,
    /// More than half of the components must match.
    MatchMost,
    /// One matching component is enough.
    MatchAny,
}

/// `[sessions]`: default heartbeat timing (products may override).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// `heartbeat_interval_secs`: told to clients at session start.
    #[serde(rename = "heartbeat_interval_secs", with = "serde_util::secs")]
    pub heartbeat_interval: Duration,
    /// `heartbeat_timeout_secs`: silence after which a session is timed out (before grace).
    #[serde(rename = "heartbeat_timeout_secs", with = "serde_util::secs")]
    pub heartbeat_timeout: Duration,
    /// `grace_secs`: extra time after the timeout before the session is ended.
    #[serde(rename = "grace_secs", with = "serde_util::secs")]
    pub grace: Duration,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(90),
            grace: Duration::from_secs(30),
        }
    }
}

/// `[plans.<name>]`: overrides of the `[licenses]` limits; unset keys inherit.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PlanConfig {
    /// `max_devices`.
    pub max_devices: Option<u32>,
    /// `max_activations` (0 = unlimited).
    pub max_activations: Option<u32>,
    /// `max_sessions`.
    pub max_sessions: Option<u32>,
    /// `on_session_limit`.
    pub on_session_limit: Option<SessionLimitStrategy>,
    /// `valid_days`: validity of a newly issued license; unset means perpetual.
    pub valid_days: Option<u32>,
}

/// How long a bundle applied with a preset runs before it must be renewed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BundleCycle {
    /// One calendar month.
    Monthly,
    /// One calendar year.
    #[default]
    Yearly,
    /// No end: the license becomes perpetual.
    Lifetime,
}

impl BundleCycle {
    /// `monthly`, `yearly` or `lifetime`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
            Self::Lifetime => "lifetime",
        }
    }
}

/// `[presets.<name>]`: a bundle of entitlements (seed 001): the features and limits a license
/// gets, and for how long, when an operator applies the preset.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PresetConfig {
    /// `features`: feature names granted (they replace the license's features).
    pub features: Vec<String>,
    /// `plan`: plan the license moves to; unset keeps its plan.
    pub plan: Option<String>,
    /// `max_devices`: per-license override; unset keeps the license's.
    pub max_devices: Option<u32>,
    /// `max_activations` (0 = unlimited): per-license override; unset keeps the license's.
    pub max_activations: Option<u32>,
    /// `max_sessions`: per-license override; unset keeps the license's.
    pub max_sessions: Option<u32>,
    /// `cycle`: `monthly`, `yearly` (default) or `lifetime`; a bundle request may name another.
    pub cycle: BundleCycle,
}

/// `[products.<id>]`: a product's release channel and session settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProductConfig {
    /// `name`: display name; defaults to the product id.
    pub name: String,
    /// `latest_version`: dotted numeric version (`1.2.0`).
    pub latest_version: String,
    /// `release_date`: `YYYY-MM-DD` or empty.
    pub release_date: String,
    /// `download_url`: where the latest version is downloaded.
    pub download_url: String,
    /// `release_notes`: free text.
    pub release_notes: String,
    /// `heartbeat_interval_secs`: overrides `[sessions]`.
    #[serde(rename = "heartbeat_interval_secs", with = "serde_util::opt_secs")]
    pub heartbeat_interval: Option<Duration>,
    /// `heartbeat_timeout_secs`: overrides `[sessions]`.
    #[serde(rename = "heartbeat_timeout_secs", with = "serde_util::opt_secs")]
    pub heartbeat_timeout: Option<Duration>,
    /// `grace_secs`: overrides `[sessions]`.
    #[serde(rename = "grace_secs", with = "serde_util::opt_secs")]
    pub grace: Option<Duration>,
    /// `on_session_limit`: overrides `[licenses]`.
    pub on_session_limit: Option<SessionLimitStrategy>,
}

impl ProductConfig {
    /// A product with default settings and the given display name.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }
}

impl Default for ProductConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            latest_version: "1.0.0".to_owned(),
            release_date: String::new(),
            download_url: String::new(),
            release_notes: String::new(),
            heartbeat_interval: None,
            heartbeat_timeout: None,
            grace: None,
            on_session_limit: None,
        }
    }
}

/// `[envelope]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvelopeConfig {
    /// `enabled`: accept the seed-003 `{key, data}` encrypted envelope on `/api/v2`.
    pub enabled: bool,
}

impl Default for EnvelopeConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// `[policy]`: the WebAssembly policy host.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// `risk_threshold`: summed `risk` deltas at or past this deny the request.
    pub risk_threshold: u32,
    /// `plugin_memory_limit_bytes`: linear memory cap per plugin instance.
    pub plugin_memory_limit_bytes: usize,
    /// `default_timeout_ms`: per-hook deadline of plugins that set none.
    #[serde(rename = "default_timeout_ms", with = "serde_util::millis")]
    pub default_timeout: Duration,
    /// `watch_plugins`: reload a plugin when its file changes.
    pub watch_plugins: bool,
    /// `hook_threads`: threads that run plugin hooks, apart from the request workers; 0
    /// picks the number of CPUs (at least 2).
    pub hook_threads: usize,
    /// `hook_queue`: hook calls that may wait for a hook thread; further requests wait
    /// (asynchronously) for room.
    pub hook_queue: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            risk_threshold: 100,
            plugin_memory_limit_bytes: 16 * 1024 * 1024,
            default_timeout: Duration::from_millis(50),
            watch_plugins: true,
            hook_threads: 0,
            hook_queue: 4096,
        }
    }
}

/// `[events]`: what is kept of the event log, and the live stream's limits.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// `retention_days`: events older than this are trimmed.
    pub retention_days: u32,
    /// `max_events`: at most this many events are kept (the oldest go first).
    pub max_events: u64,
    /// `stream_buffer`: events queued for one live-stream subscriber; one that falls this far
    /// behind is disconnected (with a final event saying so) instead of growing memory.
    pub stream_buffer: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            retention_days: 30,
            max_events: 1_000_000,
            stream_buffer: 256,
        }
    }
}

/// `[webhooks]`: outgoing deliveries.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// `allow_private_targets`: allow endpoints on loopback and private ranges (off: a
    /// webhook cannot probe the operator's own network).
    pub allow_private_targets: bool,
    /// `concurrency`: deliveries in flight at once, over every endpoint.
    pub concurrency: usize,
    /// `timeout_ms`: one delivery attempt's deadline (connect and answer).
    #[serde(rename = "timeout_ms", with = "serde_util::millis")]
    pub timeout: Duration,
    /// `disable_after_secs`: an endpoint whose deliveries fail for this long is disabled.
    #[serde(rename = "disable_after_secs", with = "serde_util::secs")]
    pub disable_after: Duration,
    /// `retry_base_ms`: the delay before the first retry; the later ones are fixed multiples
    /// of it (at the default 5 s: 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 8 h, 8 h).
    /// Tests lower it; production has no reason to.
    #[serde(rename = "retry_base_ms", with = "serde_util::millis")]
    pub retry_base: Duration,
    /// `max_deliveries_per_endpoint`: the delivery log keeps this many of each endpoint's
    /// newest deliveries; older ones are removed, pending or not.
    pub max_deliveries_per_endpoint: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            concurrency: 8,
            timeout: Duration::from_secs(10),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            retry_base: Duration::from_secs(5),
            max_deliveries_per_endpoint: 1_000,
        }
    }
}

/// `[[plugins]]`: one policy plugin.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginConfig {
    /// `name`: unique; used in metrics and plugin kv namespaces.
    pub name: String,
    /// `path`: the `.wasm` file.
    pub path: PathBuf,
    /// `enabled`.
    pub enabled: bool,
    /// `fail_mode`: what a trap or timeout means.
    pub fail_mode: FailMode,
    /// `timeout_ms`: per-hook deadline; unset uses `policy.default_timeout_ms`.
    #[serde(rename = "timeout_ms", with = "serde_util::opt_millis")]
    pub timeout: Option<Duration>,
    /// `order`: plugins run in ascending order (ties by position in the file).
    pub order: i32,
    /// `config`: free table handed to the plugin's `init`.
    pub config: toml::Table,
}

impl PluginConfig {
    /// The per-hook deadline: `timeout_ms`, else `policy.default_timeout_ms`.
    pub fn effective_timeout(&self, policy: &PolicyConfig) -> Duration {
        self.timeout.unwrap_or(policy.default_timeout)
    }
}

impl Default for PluginConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            path: PathBuf::new(),
            enabled: true,
            fail_mode: FailMode::Open,
            timeout: None,
            order: 0,
            config: toml::Table::new(),
        }
    }
}

impl fmt::Debug for PluginConfig {
    // A plugin's config may hold credentials (e.g. a reputation service token): keys only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config_keys: Vec<&String> = self.config.keys().collect();
        f.debug_struct("PluginConfig")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("enabled", &self.enabled)
            .field("fail_mode", &self.fail_mode)
            .field("timeout", &self.timeout)
            .field("order", &self.order)
            .field("config_keys", &config_keys)
            .finish()
    }
}

/// What a failing plugin (trap, timeout, bad decision) means for the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Treat as allow.
    Open,
    /// Treat as deny.
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_password_only() {
        assert_eq!(
            redact_url("redis://:hunter2@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact_url("rediss://user:pw@host/0"),
            "rediss://user:***@host/0"
        );
        assert_eq!(redact_url("redis://tok@host"), "redis://***@host");
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn debug_redacts_redis_password_and_plugin_config() {
        let mut c = Config::default();
        c.store.redis_url = "redis://:s3cret@h:1".into();
        c.plugins.push(PluginConfig {
            name: "p".into(),
            config: toml::toml! { token = "tok-s3cret" },
            ..PluginConfig::default()
        });
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        assert!(dbg.contains("token"));
    }
}
