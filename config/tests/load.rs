//! Loading the config: defaults, file, env overrides, and errors with key and line.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use tessera_config::{
    Config, FailMode, FingerprintMatch, LogFormat, Origin, SessionLimitStrategy, StoreBackend,
    load_str, load_with_env,
};

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn no_file_and_no_env_gives_documented_defaults() {
    let c = load_with_env(None, no_env()).unwrap();
    assert_eq!(
        c.server.listen_addr,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.server.service_name, "Tessera License Server");
    assert_eq!(c.server.body_limit_bytes, 65_536);
    assert_eq!(c.server.request_timeout, Duration::from_millis(10_000));
    assert!(c.server.trusted_proxies.is_empty());
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.auth.api_key_file, None);
    assert_eq!(c.auth.rotation_overlap, Duration::ZERO);
    assert!(c.rate_limit.enabled);
    assert_eq!(
        (
            c.rate_limit.api_per_minute,
            c.rate_limit.login_per_minute,
            c.rate_limit.heartbeat_per_minute
        ),
        (100, 5, 120)
    );
    assert_eq!(c.store.backend, StoreBackend::Embedded);
    assert_eq!(
        c.store.embedded_path(),
        std::path::Path::new("tessera-data/tessera.redb")
    );
    assert_eq!(c.store.flush_interval, Duration::from_secs(1));
    assert_eq!(c.store.embedded_cache_mib, 64);
    assert_eq!(c.licenses.max_devices, 1);
    assert_eq!(c.licenses.max_activations, 10);
    assert_eq!(c.licenses.on_session_limit, SessionLimitStrategy::Reject);
    assert_eq!(c.licenses.fingerprint_match, FingerprintMatch::MatchMost);
    assert_eq!(c.sessions.heartbeat_timeout, Duration::from_secs(90));
    assert!(c.products.contains_key("default"));
    assert!(c.envelope.enabled);
    assert_eq!(c.policy.default_timeout, Duration::from_millis(50));
    assert!(c.plugins.is_empty());
    assert_eq!(c, {
        let mut d = Config::default();
        d.products.get_mut("default").unwrap().name = "default".into();
        d
    });
}

#[test]
fn example_file_is_valid_and_equals_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tessera.example.toml");
    let c =
        load_with_env(Some(std::path::Path::new(path)), no_env()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c, load_with_env(None, no_env()).unwrap());
}

#[test]
fn file_values_are_typed() {
    let c = load_str(
        r#"
[server]
listen_addr = "0.0.0.0:9000"
trusted_proxies = ["10.0.0.0/8", "192.168.1.7"]
request_timeout_ms = 2500

[log]
format = "json"

[store]
backend = "redis"
redis_url = "redis://10.1.2.3:6380"

[plans.pro]
max_devices = 3

[products.app]
name = "App"
latest_version = "2.1.0"
heartbeat_interval_secs = 10
heartbeat_timeout_secs = 20

[[plugins]]
name = "ban"
path = "ban.wasm"
fail_mode = "closed"
config = { threshold = 3 }
"#,
        None,
        no_env(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.server.listen_addr.port(), 9000);
    assert_eq!(c.server.trusted_proxies.len(), 2);
    assert_eq!(c.server.trusted_proxies[1].to_string(), "192.168.1.7/32");
    assert_eq!(c.server.request_timeout, Duration::from_millis(2500));
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.store.backend, StoreBackend::Redis);
    assert_eq!(c.plans["pro"].max_devices, Some(3));
    assert_eq!(
        c.products["app"].heartbeat_interval,
        Some(Duration::from_secs(10))
    );
    assert!(c.products.contains_key("default"));
    assert_eq!(c.plugins[0].fail_mode, FailMode::Closed);
    assert_eq!(
        c.plugins[0].effective_timeout(&c.policy),
        Duration::from_millis(50)
    );
    assert_eq!(
        c.plugins[0]
            .config
            .get("threshold")
            .and_then(|v| v.as_integer()),
        Some(3)
    );
}

#[test]
fn env_overrides_file_and_parses_types() {
    let c = load_str(
        "[store]\nredis_url = \"redis://file:1\"\n[rate_limit]\napi_per_minute = 7\n",
        None,
        env(&[
            ("TESSERA_STORE_REDIS_URL", "redis://env:2"),
            ("TESSERA_RATE_LIMIT_API_PER_MINUTE", "42"),
            ("TESSERA_RATE_LIMIT_ENABLED", "false"),
            ("TESSERA_SERVER_LISTEN_ADDR", "0.0.0.0:1234"),
            ("TESSERA_SERVER_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
            ("TESSERA_LOG_LEVEL", "debug"),
            ("TESSERA_CONFIG", "ignored.toml"),
            ("PATH", "/bin"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.store.redis_url, "redis://env:2");
    assert_eq!(c.rate_limit.api_per_minute, 42);
    assert!(!c.rate_limit.enabled);
    assert_eq!(c.server.listen_addr.port(), 1234);
    assert_eq!(c.server.trusted_proxies.len(), 2);
    assert_eq!(c.log.level, "debug");
}

#[test]
fn unknown_key_is_an_error_with_key_and_line() {
    let errs = load_str(
        "[server]\nlisten_addr = \"127.0.0.1:1\"\nbody_limit = 10\n",
        Some(std::path::Path::new("t.toml")),
        no_env(),
    )
    .unwrap_err();
    let e = errs
        .for_key("server.body_limit")
        .expect("error for server.body_limit");
    assert_eq!(
        e.origin,
        Origin::File {
            path: "t.toml".into(),
            line: Some(3)
        }
    );
    assert!(
        e.message.contains("unknown field `body_limit`"),
        "{}",
        e.message
    );
    assert!(
        e.to_string()
            .starts_with("t.toml:3: server.body_limit: unknown field"),
        "{e}"
    );
}

#[test]
fn every_bad_value_is_reported_at_once() {
    let text = r#"
[server]
listen_addr = "not-an-address"
body_limit_bytes = "big"

[sessions]
heartbeat_interval_secs = 60
heartbeat_timeout_secs = 30

[store]
backend = "postgres"

[serverz]
x = 1
"#;
    let errs = load_str(text, Some(std::path::Path::new("t.toml")), no_env()).unwrap_err();
    let line = |k: &str| match &errs
        .for_key(k)
        .unwrap_or_else(|| panic!("no error for {k}: {errs}"))
        .origin
    {
        Origin::File { line, .. } => *line,
        o => panic!("{o:?}"),
    };
    assert_eq!(line("server.listen_addr"), Some(3));
    assert_eq!(line("server.body_limit_bytes"), Some(4));
    assert_eq!(line("sessions.heartbeat_timeout_secs"), Some(8));
    assert_eq!(line("store.backend"), Some(11));
    assert_eq!(line("serverz"), Some(13));
    assert!(
        errs.for_key("store.backend")
            .unwrap()
            .message
            .contains("unknown variant `postgres`")
    );
    assert!(
        errs.for_key("server.body_limit_bytes")
            .unwrap()
            .message
            .contains("invalid type")
    );
    assert_eq!(errs.errors.len(), 5, "{errs}");
}

#[test]
fn bad_env_value_names_the_variable() {
    let errs = load_with_env(
        None,
        env(&[
            ("TESSERA_RATE_LIMIT_API_PER_MINUTE", "lots"),
            ("TESSERA_STORE_NOPE", "1"),
            ("TESSERA_STOR_REDIS_URL", "redis://x"),
        ]),
    )
    .unwrap_err();
    let e = errs.for_key("rate_limit.api_per_minute").unwrap();
    assert_eq!(
        e.origin,
        Origin::Env {
            var: "TESSERA_RATE_LIMIT_API_PER_MINUTE".into()
        }
    );
    assert!(
        errs.for_key("store.nope")
            .unwrap()
            .message
            .contains("unknown field")
    );
    assert!(
        errs.to_string()
            .contains("env TESSERA_STOR_REDIS_URL: unknown setting"),
        "{errs}"
    );
}

#[test]
fn semantic_rules_point_at_the_key_that_was_set() {
    let errs = load_str(
        "[store]\nbackend = \"redis\"\nredis_url = \"\"\n[rate_limit]\napi_per_minute = 0\n[licenses]\ndefault_product = \"app\"\n[[plugins]]\nname = \"a\"\n",
        Some(std::path::Path::new("t.toml")),
        no_env(),
    )
    .unwrap_err();
    let s = errs.to_string();
    assert!(
        s.contains("t.toml:3: store.redis_url: store.backend = \"redis\" needs a redis_url"),
        "{s}"
    );
    assert!(
        s.contains("t.toml:5: rate_limit.api_per_minute: must be at least 1"),
        "{s}"
    );
    assert!(
        s.contains("t.toml:7: licenses.default_product: product `app` is not defined"),
        "{s}"
    );
    assert!(
        s.contains("t.toml:8: plugins[0]: every plugin needs a path"),
        "{s}"
    );
}

#[test]
fn syntax_error_has_a_line() {
    let errs = load_str(
        "[server]\nlisten_addr = \n",
        Some(std::path::Path::new("t.toml")),
        no_env(),
    )
    .unwrap_err();
    assert_eq!(errs.errors.len(), 1);
    assert!(
        errs.to_string().starts_with("t.toml:2: invalid TOML"),
        "{errs}"
    );
}

#[test]
fn missing_file_is_an_error() {
    let errs = load_with_env(
        Some(std::path::Path::new("/nonexistent/tessera.toml")),
        no_env(),
    )
    .unwrap_err();
    assert!(errs.to_string().contains("cannot read config file"));
}

#[test]
fn variables_the_cli_reads_itself_are_not_settings() {
    // `tessera plugin record` reads TESSERA_ADMIN_KEY; `tessera serve` in the same shell
    // must not refuse it as an unknown setting.
    let c = load_with_env(
        None,
        env(&[("TESSERA_ADMIN_KEY", "tsa_x"), ("TESSERA_CONFIG", "x.toml")]),
    )
    .unwrap();
    assert_eq!(c, load_with_env(None, no_env()).unwrap());
}
