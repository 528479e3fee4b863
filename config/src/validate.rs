//! Range and cross-key rules, checked after every key parsed on its own.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::load::Cx;
use crate::{Config, StoreBackend};

/// Longest validity of a plan, in days (100 years; the same bound as an issued license's).
pub(crate) const MAX_VALID_DAYS: u32 = 36_525;

const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// `info`, `warn,tessera=debug`: every directive's level must be a known one, so a typo such
/// as `inf` is an error rather than a target filter that matches nothing.
fn valid_log_filter(filter: &str) -> bool {
    !filter.trim().is_empty()
        && filter.split(',').all(|part| {
            let level = part.rsplit_once('=').map_or(part, |(_, l)| l).trim();
            LEVELS.contains(&level.to_ascii_lowercase().as_str())
        })
}

/// A release version: one to four dot-separated numbers (`1.2.0`, `2024.10.01.3`),
/// optionally followed by a semver pre-release (`-rc.1`) and build (`+build.5`) of
/// `[0-9A-Za-z.-]`; at most 64 characters. The config and the run-time release API share it.
pub fn valid_version(v: &str) -> bool {
    if v.is_empty() || v.len() > 64 {
        return false;
    }
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let ident = |s: &str| {
        !s.is_empty()
            && s.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    let parts: Vec<&str> = core.split('.').collect();
    (1..=4).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && pre.is_none_or(ident)
        && build.is_none_or(ident)
}

/// A feature name of a preset or a license: 1 to 64 of letters, digits, `_ . : -`.
pub fn valid_feature(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// A release date: `YYYY-MM-DD`.
pub fn valid_release_date(d: &str) -> bool {
    let b = d.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    // Digits only: `u32::from_str` would also take a sign (`+1`).
    let num = |r: std::ops::Range<usize>| {
        d.get(r)
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u32>().ok())
    };
    matches!(
        (num(0..4), num(5..7), num(8..10)),
        (Some(_), Some(m), Some(day)) if (1..=12).contains(&m) && (1..=31).contains(&day)
    )
}

pub(crate) fn validate(c: &Config, cx: &mut Cx<'_>) {
    let s = &c.server;
    if s.service_name.trim().is_empty() {
        cx.error("server.service_name", "must not be empty");
    }
    if !(1..=1 << 30).contains(&s.body_limit_bytes) {
        cx.error(
            "server.body_limit_bytes",
            "must be between 1 and 1073741824",
        );
    }
    if s.request_timeout.is_zero() {
        cx.error("server.request_timeout_ms", "must be at least 1");
    }
    if s.header_read_timeout.is_zero() {
        cx.error("server.header_read_timeout_ms", "must be at least 1");
    }
    // hyper's HTTP/1 read buffer cannot be smaller than 8 KiB.
    if !(8192..=1 << 20).contains(&s.max_header_bytes) {
        cx.error(
            "server.max_header_bytes",
            "must be between 8192 and 1048576",
        );
    }
    if s.max_connections_per_ip == 0 {
        cx.error("server.max_connections_per_ip", "must be at least 1");
    }
    if s.metrics_listen_addr == Some(s.listen_addr) {
        cx.error_any(
            &["server.metrics_listen_addr", "server.listen_addr"],
            "metrics_listen_addr must differ from listen_addr (leave it empty to serve /metrics on listen_addr)",
        );
    }

    check_server_tls(c, cx);

    if !valid_log_filter(&c.log.level) {
        cx.error(
            "log.level",
            format!(
                "`{}` is not a log filter: use a level ({}) or `target=level` pairs separated by commas",
                c.log.level,
                LEVELS.join(", ")
            ),
        );
    }

    let r = &c.rate_limit;
    for (key, v) in [
        ("rate_limit.api_per_minute", r.api_per_minute),
        ("rate_limit.login_per_minute", r.login_per_minute),
        ("rate_limit.heartbeat_per_minute", r.heartbeat_per_minute),
        ("rate_limit.sessions_per_minute", r.sessions_per_minute),
    ] {
        if v == 0 {
            cx.error(
                key,
                "must be at least 1 (set rate_limit.enabled = false to turn limits off)",
            );
        }
    }

    let st = &c.store;
    match st.backend {
        StoreBackend::Redis => {
            let ok = [
                "redis://",
                "rediss://",
                "unix://",
                "redis+unix://",
                "redis+cluster://",
                "rediss+cluster://",
                "redis+sentinel://",
                "rediss+sentinel://",
            ]
            .iter()
            .any(|p| st.redis_url.starts_with(p));
            if st.redis_url.is_empty() {
                cx.error_any(
                    &["store.redis_url", "store.backend"],
                    "store.backend = \"redis\" needs a redis_url",
                );
            } else if !ok {
                cx.error(
                    "store.redis_url",
                    "must start with redis://, rediss://, unix://, redis+unix://, redis+cluster:// or redis+sentinel:// (a comma-separated list of redis:// URLs also names a cluster)",
                );
            }
        }
        StoreBackend::Embedded => {
            if st.data_dir.as_os_str().is_empty() {
                cx.error_any(
                    &["store.data_dir", "store.backend"],
                    "the embedded store needs a data_dir",
                );
            }
        }
    }
    if let Some(ca) = &st.redis_ca_file {
        if st.backend == StoreBackend::Redis && !st.redis_uses_tls() {
            cx.error_any(
                &["store.redis_ca_file", "store.redis_url"],
                "redis_ca_file is only used with TLS: make redis_url rediss:// (or rediss+cluster://), or leave redis_ca_file empty",
            );
        }
        if let Err(e) = read_certificates(ca) {
            cx.error("store.redis_ca_file", e);
        }
    }
    if st.op_timeout.is_zero() {
        cx.error("store.op_timeout_ms", "must be at least 1");
    }
    if st.flush_interval < Duration::from_millis(10) {
        cx.error("store.flush_interval_ms", "must be at least 10");
    }
    if !(1..=1 << 20).contains(&st.embedded_cache_mib) {
        cx.error("store.embedded_cache_mib", "must be between 1 and 1048576");
    }

    let l = &c.licenses;
    if l.shards > 4096 {
        cx.error("licenses.shards", "must be at most 4096 (0 = one per CPU)");
    }
    if l.max_devices == 0 {
        cx.error("licenses.max_devices", "must be at least 1");
    }
    if l.max_sessions == 0 {
        cx.error("licenses.max_sessions", "must be at least 1");
    }
    if !c.products.contains_key(&l.default_product) {
        cx.error(
            "licenses.default_product",
            format!(
                "product `{}` is not defined (add [products.{}])",
                l.default_product, l.default_product
            ),
        );
    }

    for (name, p) in &c.plans {
        for (field, v) in [
            ("max_devices", p.max_devices),
            ("max_sessions", p.max_sessions),
            ("valid_days", p.valid_days),
        ] {
            if v == Some(0) {
                cx.error(&format!("plans.{name}.{field}"), "must be at least 1");
            }
        }
        // Issuing adds the validity to today's date: keep it within chrono's range (and
        // within what `POST /api/admin/licenses` accepts as `days_valid`).
        if p.valid_days.is_some_and(|d| d > MAX_VALID_DAYS) {
            cx.error(
                &format!("plans.{name}.valid_days"),
                format!("must be at most {MAX_VALID_DAYS} (100 years)"),
            );
        }
    }

    for (name, p) in &c.presets {
        let prefix = format!("presets.{name}");
        if !valid_feature(name) {
            cx.error(
                &prefix,
                "a preset name is 1 to 64 of letters, digits, `_ . : -`",
            );
        }
        if p.features.len() > 64 {
            cx.error(&format!("{prefix}.features"), "at most 64 features");
        }
        for f in &p.features {
            if !valid_feature(f) {
                cx.error(
                    &format!("{prefix}.features"),
                    format!("`{f}` is not 1 to 64 of letters, digits, `_ . : -`"),
                );
            }
        }
        if let Some(plan) = &p.plan
            && plan != "default"
            && !c.plans.contains_key(plan)
        {
            cx.error(
                &format!("{prefix}.plan"),
                format!("plan `{plan}` is not defined (add [plans.{plan}])"),
            );
        }
        for (field, v) in [
            ("max_devices", p.max_devices),
            ("max_sessions", p.max_sessions),
        ] {
            if v == Some(0) {
                cx.error(&format!("{prefix}.{field}"), "must be at least 1");
            }
        }
        for (field, v) in [
            ("max_devices", p.max_devices),
            ("max_activations", p.max_activations),
            ("max_sessions", p.max_sessions),
        ] {
            if v.is_some_and(|v| v > 1_000_000) {
                cx.error(&format!("{prefix}.{field}"), "must be at most 1000000");
            }
        }
    }

    check_timing(
        cx,
        c,
        "sessions",
        c.sessions.heartbeat_interval,
        c.sessions.heartbeat_timeout,
    );
    for (id, p) in &c.products {
        let prefix = format!("products.{id}");
        if !valid_version(&p.latest_version) {
            cx.error(
                &format!("{prefix}.latest_version"),
                format!(
                    "`{}` is not a dotted numeric version like 1.2.0",
                    p.latest_version
                ),
            );
        }
        if !p.release_date.is_empty() && !valid_release_date(&p.release_date) {
            cx.error(
                &format!("{prefix}.release_date"),
                format!("`{}` is not a date like 2025-06-20", p.release_date),
            );
        }
        if p.heartbeat_interval.is_some() || p.heartbeat_timeout.is_some() {
            // Checked against what the product's sessions would run with; the merge itself
            // lives in tessera_actors::Rules::timing_for.
            check_timing(
                cx,
                c,
                &prefix,
                p.heartbeat_interval
                    .unwrap_or(c.sessions.heartbeat_interval),
                p.heartbeat_timeout.unwrap_or(c.sessions.heartbeat_timeout),
            );
        }
    }

    let ev = &c.events;
    if !(1..=3650).contains(&ev.retention_days) {
        cx.error("events.retention_days", "must be between 1 and 3650");
    }
    if !(1_000..=100_000_000).contains(&ev.max_events) {
        cx.error("events.max_events", "must be between 1000 and 100000000");
    }
    if !(16..=65_536).contains(&ev.stream_buffer) {
        cx.error("events.stream_buffer", "must be between 16 and 65536");
    }
    let wh = &c.webhooks;
    if !(1..=256).contains(&wh.concurrency) {
        cx.error("webhooks.concurrency", "must be between 1 and 256");
    }
    if wh.timeout.is_zero() || wh.timeout > Duration::from_secs(120) {
        cx.error("webhooks.timeout_ms", "must be between 1 and 120000");
    }
    if wh.disable_after < Duration::from_secs(60)
        || wh.disable_after > Duration::from_secs(90 * 86_400)
    {
        cx.error(
            "webhooks.disable_after_secs",
            "must be between 60 and 7776000 (90 days)",
        );
    }
    if wh.retry_base < Duration::from_millis(10) || wh.retry_base > Duration::from_secs(60) {
        cx.error("webhooks.retry_base_ms", "must be between 10 and 60000");
    }
    if !(10..=100_000).contains(&wh.max_deliveries_per_endpoint) {
        cx.error(
            "webhooks.max_deliveries_per_endpoint",
            "must be between 10 and 100000",
        );
    }

    let sec = &c.security;
    if !(1..=1000).contains(&sec.max_login_attempts) {
        cx.error("security.max_login_attempts", "must be between 1 and 1000");
    }
    if !(10..=86_400).contains(&sec.replay_window_secs) {
        cx.error(
            "security.replay_window_secs",
            "must be between 10 and 86400",
        );
    }
    if sec.lockout.is_zero() || sec.lockout > Duration::from_secs(30 * 86_400) {
        cx.error(
            "security.lockout_secs",
            "must be between 1 and 2592000 (30 days)",
        );
    }
    if sec.address_max_failures == 0 {
        cx.error("security.address_max_failures", "must be at least 1");
    }
    if sec.token_ttl < Duration::from_secs(60) || sec.token_ttl > Duration::from_secs(30 * 86_400) {
        cx.error(
            "security.token_ttl_secs",
            "must be between 60 and 2592000 (30 days)",
        );
    }

    let pol = &c.policy;
    if pol.risk_threshold == 0 {
        cx.error("policy.risk_threshold", "must be at least 1");
    }
    if pol.plugin_memory_limit_bytes < 65_536 {
        cx.error(
            "policy.plugin_memory_limit_bytes",
            "must be at least 65536 (one WebAssembly page)",
        );
    }
    if pol.default_timeout.is_zero() {
        cx.error("policy.default_timeout_ms", "must be at least 1");
    }
    if pol.hook_threads > 256 {
        cx.error(
            "policy.hook_threads",
            "must be at most 256 (0 picks the CPU count)",
        );
    }
    if !(1..=1_000_000).contains(&pol.hook_queue) {
        cx.error("policy.hook_queue", "must be between 1 and 1000000");
    }

    let mut names = HashSet::new();
    for (i, p) in c.plugins.iter().enumerate() {
        let prefix = format!("plugins[{i}]");
        if p.name.is_empty() {
            cx.error_any(
                &[&format!("{prefix}.name"), &prefix],
                "every plugin needs a name",
            );
        } else if !names.insert(p.name.as_str()) {
            cx.error(
                &format!("{prefix}.name"),
                format!("plugin name `{}` is used twice", p.name),
            );
        }
        if p.path.as_os_str().is_empty() {
            cx.error_any(
                &[&format!("{prefix}.path"), &prefix],
                "every plugin needs a path",
            );
        }
        if p.timeout.is_some_and(|t| t.is_zero()) {
            cx.error(&format!("{prefix}.timeout_ms"), "must be at least 1");
        }
    }
}

/// `server.tls_cert_file` and `server.tls_key_file`: both or neither; each readable and
/// holding what it should. Whether the key belongs to the certificate (and is of a type the
/// TLS library signs with) is checked when the server loads them.
fn check_server_tls(c: &Config, cx: &mut Cx<'_>) {
    let s = &c.server;
    match (&s.tls_cert_file, &s.tls_key_file) {
        (None, None) => {}
        (Some(_), None) | (None, Some(_)) => cx.error_any(
            &["server.tls_cert_file", "server.tls_key_file"],
            "set both tls_cert_file and tls_key_file (HTTPS), or neither (plain HTTP)",
        ),
        (Some(cert), Some(key)) => {
            if let Err(e) = read_certificates(cert) {
                cx.error("server.tls_cert_file", e);
            }
            if let Err(e) = read_private_key(key) {
                cx.error("server.tls_key_file", e);
            }
        }
    }
}

/// The PEM `CERTIFICATE` blocks of `path`, in order; at least one.
///
/// # Errors
/// A message naming the file: unreadable, not PEM, or without a certificate.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not valid PEM: {}", path.display(), pem_error(&e)))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// The first PEM private key of `path` (PKCS#8, PKCS#1 or SEC1).
///
/// # Errors
/// A message naming the file: unreadable, not PEM, or without a private key.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "{} holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY; an encrypted key must be decrypted first)",
            path.display()
        ),
        e => format!("{} is not valid PEM: {}", path.display(), pem_error(&e)),
    })
}

fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => {
            format!("no `{}` line", String::from_utf8_lossy(end_marker))
        }
        pem::Error::IllegalSectionStart { line } => {
            format!("malformed line `{}`", String::from_utf8_lossy(line))
        }
        e => e.to_string(),
    }
}

/// Interval ≥ 1 s, timeout ≥ interval, and timeout several flush intervals long (a crash
/// loses at most one flush of `last_seen`; design §4).
fn check_timing(cx: &mut Cx<'_>, c: &Config, prefix: &str, interval: Duration, timeout: Duration) {
    let ik = format!("{prefix}.heartbeat_interval_secs");
    let tk = format!("{prefix}.heartbeat_timeout_secs");
    if interval.is_zero() {
        cx.error(&ik, "must be at least 1");
    }
    if timeout < interval {
        cx.error_any(
            &[&tk, &ik],
            format!(
                "heartbeat_timeout_secs ({}) must be >= heartbeat_interval_secs ({})",
                timeout.as_secs(),
                interval.as_secs()
            ),
        );
    } else if timeout < c.store.flush_interval * 3 {
        cx.error_any(
            &[&tk, "store.flush_interval_ms"],
            format!(
                "heartbeat_timeout_secs ({}) must be at least 3 x store.flush_interval_ms ({} ms)",
                timeout.as_secs(),
                c.store.flush_interval.as_millis()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_filters() {
        assert!(valid_log_filter("info"));
        assert!(valid_log_filter("warn,tessera=debug"));
        assert!(!valid_log_filter("inf"));
        assert!(!valid_log_filter(""));
    }

    fn errors_of(toml: &str) -> Vec<(String, String)> {
        match crate::load_str(toml, None, Vec::new()) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .errors
                .iter()
                .map(|e| (e.key.clone(), e.message.clone()))
                .collect(),
        }
    }

    #[test]
    fn durations_that_would_overflow_a_clock_are_refused_with_their_key() {
        for (toml, key) in [
            (
                "[sessions]\ngrace_secs = 9223372036854775807",
                "sessions.grace_secs",
            ),
            (
                "[sessions]\nheartbeat_timeout_secs = 9223372036854775807",
                "sessions.heartbeat_timeout_secs",
            ),
            (
                "[server]\nrequest_timeout_ms = 9223372036854775807",
                "server.request_timeout_ms",
            ),
            (
                "[auth]\nrotation_overlap_secs = 9223372036854775807",
                "auth.rotation_overlap_secs",
            ),
            (
                "[store]\nrestart_grace_secs = 9223372036854775807",
                "store.restart_grace_secs",
            ),
            (
                "[licenses]\nidle_passivate_secs = 9223372036854775807",
                "licenses.idle_passivate_secs",
            ),
            (
                "[policy]\ndefault_timeout_ms = 9223372036854775807",
                "policy.default_timeout_ms",
            ),
            (
                "[products.p]\ngrace_secs = 9223372036854775807",
                "products.p.grace_secs",
            ),
            (
                "[[plugins]]\nname = \"x\"\npath = \"x.wasm\"\ntimeout_ms = 9223372036854775807",
                "plugins[0].timeout_ms",
            ),
            (
                "[plans.big]\nvalid_days = 4000000000",
                "plans.big.valid_days",
            ),
        ] {
            let errors = errors_of(toml);
            assert!(
                errors.iter().any(|(k, _)| k == key),
                "{toml}: expected an error on {key}, got {errors:?}"
            );
        }
        // A century is still fine.
        assert_eq!(
            errors_of("[auth]\nrotation_overlap_secs = 3155760000"),
            Vec::new()
        );
    }

    #[test]
    fn versions_and_dates() {
        assert!(valid_version("1.0.0"));
        assert!(!valid_version("1.x"));
        assert!(valid_version("1.0.0-rc.1"));
        assert!(valid_version("1.0.0-rc1+build.5"));
        assert!(!valid_version("1.0.0-"));
        assert!(!valid_version("1.0.0-rc..1"));
        assert!(!valid_version("-rc1"));
        assert!(!valid_version(&"1".repeat(65)));
        assert!(valid_release_date("2025-06-20"));
        assert!(!valid_release_date("2025-13-01"));
    }

    #[test]
    fn presets_are_checked() {
        assert_eq!(
            errors_of(
                "[presets.pro]\nfeatures = [\"export.pdf\", \"sso\"]\ncycle = \"monthly\"\nmax_devices = 5"
            ),
            Vec::new()
        );
        let keys =
            |toml: &str| -> Vec<String> { errors_of(toml).into_iter().map(|(k, _)| k).collect() };
        assert_eq!(
            keys("[presets.pro]\nfeatures = [\"has space\"]"),
            ["presets.pro.features"]
        );
        assert_eq!(keys("[presets.pro]\nplan = \"nope\""), ["presets.pro.plan"]);
        assert_eq!(
            keys("[presets.pro]\nmax_devices = 0"),
            ["presets.pro.max_devices"]
        );
        assert!(!keys("[presets.pro]\ncycle = \"weekly\"").is_empty());
    }
}
