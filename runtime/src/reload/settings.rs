//! Every configuration setting, named and classified: applied by a reload, or kept until a
//! restart. The walk destructures each section without `..`, so a new setting does not compile
//! until someone decides which kind it is.

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tessera_config::{
    AuthConfig, Config, EnvelopeConfig, EventsConfig, LicensesConfig, LogConfig, PolicyConfig,
    RateLimitConfig, SecurityConfig, ServerConfig, SessionsConfig, StoreConfig, WebhooksConfig,
};

/// Whether a running server can take a new value of a setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// A reload applies it (SIGHUP or a change of the config file).
    Reload,
    /// Only a restart applies it; a reload reports it and keeps the running value.
    Restart,
}

/// How a value may be shown in the log and by `config check --against-running`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Show {
    /// As written.
    Value,
    /// A URL with its password replaced by `***`.
    Url,
    /// Only a short digest: tables (plugin configs may hold credentials) and long lists.
    Digest,
}

/// One setting as the server runs it or a file sets it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// Whether a reload applies it.
    pub class: Class,
    /// The value as it may be shown (never a secret).
    pub shown: String,
    /// SHA-256 prefix of the full value: two settings are equal when their digests are.
    pub digest: String,
}

/// Every setting by dotted name (`rate_limit.api_per_minute`, `plans`, `plugins`).
pub type Settings = BTreeMap<String, Setting>;

/// A setting whose value differs between two configurations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Dotted name.
    pub key: String,
    /// Whether a reload applies it.
    pub class: Class,
    /// The running value, as it may be shown.
    pub from: String,
    /// The new value, as it may be shown.
    pub to: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} -> {}", self.key, self.from, self.to)
    }
}

/// What the walk is told about the running server.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context {
    /// The listener serves TLS: its certificate files can be swapped. Without it, setting
    /// them needs a restart (a plain listener does not become a TLS one).
    pub tls_running: bool,
}

trait Visitor {
    fn field<T: Debug + Clone + PartialEq>(
        &mut self,
        key: &str,
        class: Class,
        show: Show,
        running: &T,
        new: &mut T,
    );
}

/// Every setting of `config`, classified for a server in `ctx`.
pub fn settings(config: &Config, ctx: Context) -> Settings {
    struct Collect(Settings);
    impl Visitor for Collect {
        fn field<T: Debug + Clone + PartialEq>(
            &mut self,
            key: &str,
            class: Class,
            show: Show,
            running: &T,
            _new: &mut T,
        ) {
            self.0.insert(key.to_owned(), setting(class, show, running));
        }
    }
    let mut scratch = config.clone();
    let mut c = Collect(Settings::new());
    walk(config, &mut scratch, ctx, &mut c);
    c.0
}

/// Turns `new` into what a reload of it over `running` puts in effect: every setting that
/// needs a restart keeps its running value. Returns every setting that differs, of both
/// classes.
pub fn reloadable(running: &Config, new: &mut Config, ctx: Context) -> Vec<Change> {
    struct Revert(Vec<Change>);
    impl Visitor for Revert {
        fn field<T: Debug + Clone + PartialEq>(
            &mut self,
            key: &str,
            class: Class,
            show: Show,
            running: &T,
            new: &mut T,
        ) {
            if running == new {
                return;
            }
            self.0.push(Change {
                key: key.to_owned(),
                class,
                from: shown(show, running),
                to: shown(show, new),
            });
            if class == Class::Restart {
                *new = running.clone();
            }
        }
    }
    let mut r = Revert(Vec::new());
    walk(running, new, ctx, &mut r);
    r.0
}

/// The settings whose digests differ between `running` and `file`, classified as the
/// running server classifies them (a setting only one side has counts as a change).
pub fn diff(running: &Settings, file: &Settings) -> Vec<Change> {
    let mut out = Vec::new();
    for (key, f) in file {
        match running.get(key) {
            Some(r) if r.digest == f.digest => {}
            Some(r) => out.push(Change {
                key: key.clone(),
                class: r.class,
                from: r.shown.clone(),
                to: f.shown.clone(),
            }),
            None => out.push(Change {
                key: key.clone(),
                class: Class::Restart,
                from: "(unknown to the running server)".into(),
                to: f.shown.clone(),
            }),
        }
    }
    out
}

fn setting<T: Debug>(class: Class, show: Show, value: &T) -> Setting {
    Setting {
        class,
        shown: shown(show, value),
        digest: digest(value),
    }
}

fn digest<T: Debug>(value: &T) -> String {
    let full = Sha256::digest(format!("{value:?}").as_bytes());
    hex::encode(&full[..8])
}

fn shown<T: Debug>(show: Show, value: &T) -> String {
    match show {
        Show::Value => format!("{value:?}"),
        Show::Url => redact_url(&format!("{value:?}")),
        Show::Digest => format!("<{}>", digest(value)),
    }
}

/// `"redis://user:secret@host"` → `"redis://user:***@host"`; anything else as is.
fn redact_url(s: &str) -> String {
    let Some(scheme_end) = s.find("://") else {
        return s.to_owned();
    };
    let rest = &s[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return s.to_owned();
    };
    let userinfo = &rest[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    format!("{}{user}:***{}", &s[..scheme_end + 3], &rest[at..])
}

/// Visits every setting of `new` beside the same one of `running`.
fn walk(running: &Config, new: &mut Config, ctx: Context, v: &mut impl Visitor) {
    use Class::{Reload, Restart};
    use Show::{Digest, Url, Value};
    let Config {
        server,
        log,
        auth,
        rate_limit,
        security,
        store,
        licenses,
        sessions,
        plans,
        products,
        presets,
        envelope,
        policy,
        events,
        webhooks,
        plugins,
    } = new;

    // Layers, listeners and the shutdown path are built once at start.
    let ServerConfig {
        listen_addr,
        service_name,
        body_limit_bytes,
        request_timeout,
        shutdown_grace,
        trusted_proxies,
        header_read_timeout,
        max_header_bytes,
        max_connections_per_ip,
        metrics_listen_addr,
        tls_cert_file,
        tls_key_file,
    } = server;
    let r = &running.server;
    v.field(
        "server.listen_addr",
        Restart,
        Value,
        &r.listen_addr,
        listen_addr,
    );
    v.field(
        "server.service_name",
        Restart,
        Value,
        &r.service_name,
        service_name,
    );
    v.field(
        "server.body_limit_bytes",
        Restart,
        Value,
        &r.body_limit_bytes,
        body_limit_bytes,
    );
    v.field(
        "server.request_timeout",
        Restart,
        Value,
        &r.request_timeout,
        request_timeout,
    );
    v.field(
        "server.shutdown_grace",
        Restart,
        Value,
        &r.shutdown_grace,
        shutdown_grace,
    );
    v.field(
        "server.trusted_proxies",
        Restart,
        Value,
        &r.trusted_proxies,
        trusted_proxies,
    );
    v.field(
        "server.header_read_timeout",
        Restart,
        Value,
        &r.header_read_timeout,
        header_read_timeout,
    );
    v.field(
        "server.max_header_bytes",
        Restart,
        Value,
        &r.max_header_bytes,
        max_header_bytes,
    );
    v.field(
        "server.max_connections_per_ip",
        Restart,
        Value,
        &r.max_connections_per_ip,
        max_connections_per_ip,
    );
    v.field(
        "server.metrics_listen_addr",
        Restart,
        Value,
        &r.metrics_listen_addr,
        metrics_listen_addr,
    );
    let tls = if ctx.tls_running { Reload } else { Restart };
    v.field(
        "server.tls_cert_file",
        tls,
        Value,
        &r.tls_cert_file,
        tls_cert_file,
    );
    v.field(
        "server.tls_key_file",
        tls,
        Value,
        &r.tls_key_file,
        tls_key_file,
    );

    let LogConfig { format, level } = log;
    v.field("log.format", Restart, Value, &running.log.format, format);
    v.field("log.level", Reload, Value, &running.log.level, level);

    let AuthConfig {
        api_key_file,
        rotation_overlap,
    } = auth;
    let a = &running.auth;
    v.field(
        "auth.api_key_file",
        Restart,
        Value,
        &a.api_key_file,
        api_key_file,
    );
    v.field(
        "auth.rotation_overlap",
        Restart,
        Value,
        &a.rotation_overlap,
        rotation_overlap,
    );

    // A reload swaps the buckets of every class for new full ones.
    let RateLimitConfig {
        enabled,
        api_per_minute,
        login_per_minute,
        heartbeat_per_minute,
        sessions_per_minute,
    } = rate_limit;
    let rl = &running.rate_limit;
    v.field("rate_limit.enabled", Reload, Value, &rl.enabled, enabled);
    v.field(
        "rate_limit.api_per_minute",
        Reload,
        Value,
        &rl.api_per_minute,
        api_per_minute,
    );
    v.field(
        "rate_limit.login_per_minute",
        Reload,
        Value,
        &rl.login_per_minute,
        login_per_minute,
    );
    v.field(
        "rate_limit.heartbeat_per_minute",
        Reload,
        Value,
        &rl.heartbeat_per_minute,
        heartbeat_per_minute,
    );
    v.field(
        "rate_limit.sessions_per_minute",
        Reload,
        Value,
        &rl.sessions_per_minute,
        sessions_per_minute,
    );

    // The defaults of the security controls (the stored controls, once an operator has
    // changed them, win) and the login throttles.
    let SecurityConfig {
        enforce_login_payload_encryption,
        max_login_attempts,
        replay_window_secs,
        ip_reputation_mode,
        network_protection_mode,
        lockout,
        address_max_failures,
        token_ttl,
    } = security;
    let s = &running.security;
    v.field(
        "security.enforce_login_payload_encryption",
        Reload,
        Value,
        &s.enforce_login_payload_encryption,
        enforce_login_payload_encryption,
    );
    v.field(
        "security.max_login_attempts",
        Reload,
        Value,
        &s.max_login_attempts,
        max_login_attempts,
    );
    v.field(
        "security.replay_window_secs",
        Reload,
        Value,
        &s.replay_window_secs,
        replay_window_secs,
    );
    v.field(
        "security.ip_reputation_mode",
        Reload,
        Value,
        &s.ip_reputation_mode,
        ip_reputation_mode,
    );
    v.field(
        "security.network_protection_mode",
        Reload,
        Value,
        &s.network_protection_mode,
        network_protection_mode,
    );
    v.field("security.lockout", Reload, Value, &s.lockout, lockout);
    v.field(
        "security.address_max_failures",
        Reload,
        Value,
        &s.address_max_failures,
        address_max_failures,
    );
    v.field("security.token_ttl", Reload, Value, &s.token_ttl, token_ttl);

    // The store is opened once; `restart_grace` is a license rule.
    let StoreConfig {
        backend,
        data_dir,
        redis_url,
        redis_ca_file,
        op_timeout,
        flush_interval,
        restart_grace,
        embedded_cache_mib,
    } = store;
    let st = &running.store;
    v.field("store.backend", Restart, Value, &st.backend, backend);
    v.field("store.data_dir", Restart, Value, &st.data_dir, data_dir);
    v.field("store.redis_url", Restart, Url, &st.redis_url, redis_url);
    v.field(
        "store.redis_ca_file",
        Restart,
        Value,
        &st.redis_ca_file,
        redis_ca_file,
    );
    v.field(
        "store.op_timeout",
        Restart,
        Value,
        &st.op_timeout,
        op_timeout,
    );
    v.field(
        "store.flush_interval",
        Restart,
        Value,
        &st.flush_interval,
        flush_interval,
    );
    v.field(
        "store.restart_grace",
        Reload,
        Value,
        &st.restart_grace,
        restart_grace,
    );
    v.field(
        "store.embedded_cache_mib",
        Restart,
        Value,
        &st.embedded_cache_mib,
        embedded_cache_mib,
    );

    // The license rules (limits, plans, products, session timing) reach the actors through
    // the catalog; the shard count and the default product are fixed at start.
    let LicensesConfig {
        shards,
        max_devices,
        max_activations,
        max_sessions,
        on_session_limit,
        idle_passivate,
        fingerprint_match,
        default_product,
    } = licenses;
    let l = &running.licenses;
    v.field("licenses.shards", Restart, Value, &l.shards, shards);
    v.field(
        "licenses.max_devices",
        Reload,
        Value,
        &l.max_devices,
        max_devices,
    );
    v.field(
        "licenses.max_activations",
        Reload,
        Value,
        &l.max_activations,
        max_activations,
    );
    v.field(
        "licenses.max_sessions",
        Reload,
        Value,
        &l.max_sessions,
        max_sessions,
    );
    v.field(
        "licenses.on_session_limit",
        Reload,
        Value,
        &l.on_session_limit,
        on_session_limit,
    );
    v.field(
        "licenses.idle_passivate",
        Reload,
        Value,
        &l.idle_passivate,
        idle_passivate,
    );
    v.field(
        "licenses.fingerprint_match",
        Reload,
        Value,
        &l.fingerprint_match,
        fingerprint_match,
    );
    v.field(
        "licenses.default_product",
        Restart,
        Value,
        &l.default_product,
        default_product,
    );

    let SessionsConfig {
        heartbeat_interval,
        heartbeat_timeout,
        grace,
    } = sessions;
    let se = &running.sessions;
    v.field(
        "sessions.heartbeat_interval",
        Reload,
        Value,
        &se.heartbeat_interval,
        heartbeat_interval,
    );
    v.field(
        "sessions.heartbeat_timeout",
        Reload,
        Value,
        &se.heartbeat_timeout,
        heartbeat_timeout,
    );
    v.field("sessions.grace", Reload, Value, &se.grace, grace);

    v.field("plans", Reload, Digest, &running.plans, plans);
    v.field("products", Reload, Digest, &running.products, products);
    v.field("presets", Reload, Digest, &running.presets, presets);

    // Read per request from the startup configuration.
    let EnvelopeConfig { enabled } = envelope;
    v.field(
        "envelope.enabled",
        Restart,
        Value,
        &running.envelope.enabled,
        enabled,
    );

    // The plugin chain reloads; the host's pool, memory limit and risk threshold are built
    // once.
    let PolicyConfig {
        risk_threshold,
        plugin_memory_limit_bytes,
        default_timeout,
        watch_plugins,
        hook_threads,
        hook_queue,
    } = policy;
    let p = &running.policy;
    v.field(
        "policy.risk_threshold",
        Restart,
        Value,
        &p.risk_threshold,
        risk_threshold,
    );
    v.field(
        "policy.plugin_memory_limit_bytes",
        Restart,
        Value,
        &p.plugin_memory_limit_bytes,
        plugin_memory_limit_bytes,
    );
    v.field(
        "policy.default_timeout",
        Reload,
        Value,
        &p.default_timeout,
        default_timeout,
    );
    v.field(
        "policy.watch_plugins",
        Restart,
        Value,
        &p.watch_plugins,
        watch_plugins,
    );
    v.field(
        "policy.hook_threads",
        Restart,
        Value,
        &p.hook_threads,
        hook_threads,
    );
    v.field(
        "policy.hook_queue",
        Restart,
        Value,
        &p.hook_queue,
        hook_queue,
    );
    v.field("plugins", Reload, Digest, &running.plugins, plugins);

    // The event trimmer, the stream and the webhook dispatcher are configured at start.
    let EventsConfig {
        retention_days,
        max_events,
        stream_buffer,
    } = events;
    let e = &running.events;
    v.field(
        "events.retention_days",
        Restart,
        Value,
        &e.retention_days,
        retention_days,
    );
    v.field(
        "events.max_events",
        Restart,
        Value,
        &e.max_events,
        max_events,
    );
    v.field(
        "events.stream_buffer",
        Restart,
        Value,
        &e.stream_buffer,
        stream_buffer,
    );

    let WebhooksConfig {
        allow_private_targets,
        concurrency,
        timeout,
        disable_after,
        retry_base,
        max_deliveries_per_endpoint,
    } = webhooks;
    let w = &running.webhooks;
    v.field(
        "webhooks.allow_private_targets",
        Restart,
        Value,
        &w.allow_private_targets,
        allow_private_targets,
    );
    v.field(
        "webhooks.concurrency",
        Restart,
        Value,
        &w.concurrency,
        concurrency,
    );
    v.field("webhooks.timeout", Restart, Value, &w.timeout, timeout);
    v.field(
        "webhooks.disable_after",
        Restart,
        Value,
        &w.disable_after,
        disable_after,
    );
    v.field(
        "webhooks.retry_base",
        Restart,
        Value,
        &w.retry_base,
        retry_base,
    );
    v.field(
        "webhooks.max_deliveries_per_endpoint",
        Restart,
        Value,
        &w.max_deliveries_per_endpoint,
        max_deliveries_per_endpoint,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed() -> Config {
        let mut c = Config::default();
        c.server.listen_addr = "127.0.0.1:9999".parse().unwrap_or_else(|_| unreachable!());
        c.rate_limit.api_per_minute = 7;
        c.log.level = "debug".into();
        c.store.redis_url = "redis://app:hunter2@db:6379/0".into();
        c
    }

    #[test]
    fn a_reload_applies_what_it_can_and_keeps_the_rest() {
        let running = Config::default();
        let mut new = changed();
        let changes = reloadable(&running, &mut new, Context::default());
        let keys: Vec<_> = changes.iter().map(|c| (c.key.as_str(), c.class)).collect();
        assert_eq!(
            keys,
            [
                ("server.listen_addr", Class::Restart),
                ("log.level", Class::Reload),
                ("rate_limit.api_per_minute", Class::Reload),
                ("store.redis_url", Class::Restart),
            ]
        );
        assert_eq!(new.server.listen_addr, running.server.listen_addr);
        assert_eq!(new.store.redis_url, running.store.redis_url);
        assert_eq!(new.rate_limit.api_per_minute, 7);
        assert_eq!(new.log.level, "debug");
        // Reloading the result over itself changes nothing more.
        let again = new.clone();
        assert!(reloadable(&again, &mut new, Context::default()).is_empty());
    }

    #[test]
    fn a_password_in_a_url_is_never_shown() {
        let running = Config::default();
        let mut new = changed();
        let changes = reloadable(&running, &mut new, Context::default());
        let url = changes
            .iter()
            .find(|c| c.key == "store.redis_url")
            .map(|c| c.to.clone())
            .unwrap_or_default();
        assert_eq!(url, "\"redis://app:***@db:6379/0\"");
        let all = settings(&changed(), Context::default());
        assert!(all.values().all(|s| !s.shown.contains("hunter2")));
        assert_eq!(redact_url("redis://db:6379"), "redis://db:6379");
        assert_eq!(redact_url("rediss://:pw@db/1"), "rediss://:***@db/1");
    }

    #[test]
    fn tls_files_reload_only_on_a_tls_listener() {
        let running = Config::default();
        let mut new = Config::default();
        new.server.tls_cert_file = Some("cert.pem".into());
        let plain = reloadable(&running, &mut new.clone(), Context::default());
        assert_eq!(plain[0].class, Class::Restart);
        let tls = reloadable(&running, &mut new, Context { tls_running: true });
        assert_eq!(tls[0].class, Class::Reload);
    }

    #[test]
    fn diff_compares_digests_and_uses_the_running_class() {
        let running = settings(&Config::default(), Context::default());
        let file = settings(&changed(), Context::default());
        let d = diff(&running, &file);
        assert_eq!(d.len(), 4);
        assert!(diff(&running, &running).is_empty());
        let mut plans = Config::default();
        plans
            .plans
            .insert("pro".into(), tessera_config::PlanConfig::default());
        let d = diff(&running, &settings(&plans, Context::default()));
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].key.as_str(), d[0].class), ("plans", Class::Reload));
        assert!(
            d[0].to.starts_with('<'),
            "maps are shown as digests: {}",
            d[0].to
        );
    }
}
