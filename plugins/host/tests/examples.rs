//! The example plugins (built to wasm32 by plugins/examples/build.sh) in the real host.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use serde_json::json;
use tessera_plugins::abi::{
    ActivateEvent, AttemptOutcome, CredentialKind, HeartbeatEvent, LoginFailureEvent, RequestEvent,
    WarningEvent,
};
use tessera_plugins::{
    Decision, Event, Hook, HostSettings, MemoryKv, PluginHost, PluginSpec, RunOptions,
    check_module, run_events, run_once,
};

use common::example_wasm;

const T0: i64 = 1_700_000_000_000;

/// A spec with a generous timeout: the machine running the tests may be busy, and only
/// the timeout tests should ever time out.
fn spec(name: &str, path: impl Into<std::path::PathBuf>) -> PluginSpec {
    PluginSpec::new(name, path).with_timeout(std::time::Duration::from_secs(5))
}

fn settings() -> HostSettings {
    HostSettings {
        max_instances: 32,
        memory_limit_bytes: 16 * 1024 * 1024,
        ..HostSettings::default()
    }
}

fn ban_spec() -> PluginSpec {
    spec("ban-threshold", example_wasm("ban-threshold")).with_config(json!({
        "warnings": 3,
        "window_secs": 3600,
        "ban_secs": 0,
        "plans": { "trial": { "warnings": 1, "ban_secs": 60 } }
    }))
}

fn ip_spec(mode: &str) -> PluginSpec {
    spec("ip-reputation", example_wasm("ip-reputation")).with_config(json!({
        "mode": mode,
        "allow": ["10.0.0.0/8"],
        "deny": ["203.0.113.0/24"],
    }))
}

fn warning(plan: &str, ts_ms: i64) -> Event {
    Event::Warning(WarningEvent {
        ts_ms,
        license_key: "ABCD-EFGH-JKMN-PQRS".into(),
        plan: Some(plan.into()),
        note: "license sharing violation".into(),
        ..WarningEvent::default()
    })
}

fn login_failure(ip: &str, ts_ms: i64) -> Event {
    Event::LoginFailure(LoginFailureEvent {
        ts_ms,
        ip: Some(ip.into()),
        kind: CredentialKind::LicenseKey,
        error_code: "INVALID_LICENSE".into(),
        ..LoginFailureEvent::default()
    })
}

fn request(ip: &str, ts_ms: i64) -> Event {
    Event::Request(RequestEvent {
        ts_ms,
        ip: ip.into(),
        method: "POST".into(),
        route: Some("/api/v1/license/verify".into()),
        ..RequestEvent::default()
    })
}

fn denied_with(d: &Decision, want: &str) -> bool {
    matches!(d, Decision::Deny { code, .. } if code == want)
}

#[test]
fn example_modules_pass_the_abi_check() {
    let ban = check_module(&std::fs::read(example_wasm("ban-threshold")).unwrap()).unwrap();
    assert_eq!(ban.hooks, vec![Hook::Warning]);
    let ip = check_module(&std::fs::read(example_wasm("ip-reputation")).unwrap()).unwrap();
    assert_eq!(
        ip.hooks,
        vec![
            Hook::Request,
            Hook::Activate,
            Hook::SessionStart,
            Hook::Heartbeat,
            Hook::LoginFailure
        ]
    );
}

#[test]
fn ban_threshold_bans_on_the_third_warning_even_across_a_restart() {
    let kv = Arc::new(MemoryKv::new());
    let host = PluginHost::new(settings(), vec![ban_spec()], kv.clone()).unwrap();
    assert!(host.has_hook(Hook::Warning));
    assert!(!host.has_hook(Hook::Heartbeat));
    assert!(host.call(&warning("pro", T0)).is_allow());
    assert!(host.call(&warning("pro", T0 + 60_000)).is_allow());
    drop(host);

    // The history is durable: a restarted server remembers the two warnings.
    let host = PluginHost::new(settings(), vec![ban_spec()], kv).unwrap();
    let out = host.call(&warning("pro", T0 + 120_000));
    assert!(
        matches!(
            &out.decision,
            Decision::Ban {
                duration_secs: None,
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(out.decided_by.as_deref(), Some("ban-threshold"));
}

#[test]
fn ban_threshold_forgets_warnings_outside_the_window_and_uses_plan_rules() {
    let host = PluginHost::new(settings(), vec![ban_spec()], Arc::new(MemoryKv::new())).unwrap();
    assert!(host.call(&warning("pro", T0)).is_allow());
    assert!(host.call(&warning("pro", T0 + 1000)).is_allow());
    // an hour later both have left the window
    assert!(host.call(&warning("pro", T0 + 3_601_001)).is_allow());
    let trial = host.call(&warning("trial", T0));
    assert!(
        matches!(
            trial.decision,
            Decision::Ban {
                duration_secs: Some(60),
                ..
            }
        ),
        "{trial:?}"
    );
}

#[test]
fn ip_reputation_blocks_an_address_after_repeated_failures() {
    let host = PluginHost::new(
        settings(),
        vec![ip_spec("strict")],
        Arc::new(MemoryKv::new()),
    )
    .unwrap();
    for i in 0..4 {
        assert!(host.call(&login_failure("198.51.100.7", T0 + i)).is_allow());
    }
    assert!(denied_with(
        &host.call(&login_failure("198.51.100.7", T0 + 5)).decision,
        "IP_BLOCKED"
    ));
    let out = host.call(&request("198.51.100.7", T0 + 10));
    assert!(denied_with(&out.decision, "IP_BLOCKED"), "{out:?}");
    assert_eq!(out.decision.http_status(), Some(403));
    assert!(host.call(&request("198.51.100.8", T0 + 10)).is_allow());
    assert!(denied_with(
        &host.call(&request("203.0.113.9", T0)).decision,
        "IP_DENIED"
    ));
    assert!(host.call(&request("10.9.9.9", T0)).is_allow());

    let failed = Event::Activate(ActivateEvent {
        ts_ms: T0,
        license_key: "NOPE".into(),
        device_hash: "d".into(),
        ip: Some("198.51.100.7".into()),
        outcome: AttemptOutcome::Failed,
        error_code: Some("INVALID_LICENSE".into()),
        ..ActivateEvent::default()
    });
    assert!(denied_with(&host.call(&failed).decision, "IP_BLOCKED"));
}

#[test]
fn ip_reputation_checks_heartbeats_only_in_strict_mode() {
    let hb = Event::Heartbeat(HeartbeatEvent {
        ts_ms: T0,
        license_key: "K".into(),
        device_hash: "d".into(),
        session_hash: "s".into(),
        ip: Some("203.0.113.5".into()),
        ..HeartbeatEvent::default()
    });
    let strict = PluginHost::new(
        settings(),
        vec![ip_spec("strict")],
        Arc::new(MemoryKv::new()),
    )
    .unwrap();
    assert!(denied_with(&strict.call(&hb).decision, "IP_DENIED"));
    let standard = PluginHost::new(
        settings(),
        vec![ip_spec("standard")],
        Arc::new(MemoryKv::new()),
    )
    .unwrap();
    assert!(standard.call(&hb).is_allow());
}

#[test]
fn a_bad_plugin_config_is_refused_at_load() {
    let bad_cidr =
        spec("ip-reputation", example_wasm("ip-reputation")).with_config(json!({"deny": ["nope"]}));
    let err = PluginHost::new(settings(), vec![bad_cidr], Arc::new(MemoryKv::new())).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("init returned"), "{msg}");
    assert!(
        msg.contains("deny: `nope` is not a CIDR network"),
        "the plugin's own reason is quoted: {msg}"
    );
    let typo =
        spec("ban-threshold", example_wasm("ban-threshold")).with_config(json!({"warnigns": 3}));
    assert!(PluginHost::new(settings(), vec![typo], Arc::new(MemoryKv::new())).is_err());
}

#[test]
fn both_examples_in_one_chain_answer_their_own_hooks() {
    let host = PluginHost::new(
        settings(),
        vec![ban_spec(), ip_spec("standard")],
        Arc::new(MemoryKv::new()),
    )
    .unwrap();
    assert!(host.has_hook(Hook::Warning) && host.has_hook(Hook::Request));
    assert!(!host.has_hook(Hook::SessionEnd) && !host.has_hook(Hook::Tick));
    let out = host.call(&warning("trial", T0));
    assert_eq!(out.reports.len(), 1);
    assert_eq!(&*out.reports[0].plugin, "ban-threshold");
}

#[test]
fn run_once_runs_an_example_from_json() {
    let wasm = std::fs::read(example_wasm("ban-threshold")).unwrap();
    let event = r#"{"license_key": "ABCD-EFGH-JKMN-PQRS", "plan": "trial", "note": "x", "warning_count": 1}"#;
    let config = json!({"plans": {"trial": {"warnings": 1}}});
    let d = run_once(&wasm, Hook::Warning, event, &config).unwrap();
    assert!(
        matches!(
            d,
            Decision::Ban {
                duration_secs: None,
                ..
            }
        ),
        "{d:?}"
    );
}

/// The plugin's own test files: `tests/config.toml`, `tests/events.jsonl` and the decisions
/// `tessera plugin run --events` must print, `tests/expected.jsonl`.
fn golden(name: &str) -> (serde_json::Value, String, Vec<String>) {
    let dir = common::examples_dir().join(name).join("tests");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let config: toml::Table = toml::from_str(&read("config.toml")).unwrap();
    let expected = read("expected.jsonl").lines().map(str::to_owned).collect();
    (
        serde_json::to_value(config).unwrap(),
        read("events.jsonl"),
        expected,
    )
}

fn assert_golden(name: &str) {
    let wasm = std::fs::read(example_wasm(name)).unwrap();
    let (config, events, expected) = golden(name);
    let lines: Vec<String> = run_events(&wasm, &events, &config, &RunOptions::default())
        .unwrap()
        .iter()
        .map(|l| l.to_json_line())
        .collect();
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (got, want) in lines.iter().zip(&expected) {
        assert_eq!(got, want);
    }
}

#[test]
fn activation_guard_in_assemblyscript_decides_its_recorded_events() {
    assert_golden("activation-guard-as");
}

#[test]
fn activation_guard_in_c_decides_its_recorded_events() {
    assert_golden("activation-guard-c");
}

#[test]
fn activation_guards_refuse_bad_configs_with_a_reason() {
    for name in ["activation-guard-as", "activation-guard-c"] {
        for (config, reason) in [
            (
                json!({"allow": ["10.0.0.0/33"]}),
                "`10.0.0.0/33` is not a CIDR network",
            ),
            (
                json!({"allow": ["10.0.0.300/8"]}),
                "`10.0.0.300/8` is not a CIDR network",
            ),
            (
                json!({"allow": ["2001:db8::1::/64"]}),
                "is not a CIDR network",
            ),
            (
                json!({"max_addresses": 0}),
                "max_addresses: must be an integer >= 1",
            ),
            (json!({"max_adresses": 2}), "unknown key `max_adresses`"),
        ] {
            let spec = spec(name, example_wasm(name)).with_config(config);
            let err = PluginHost::new(settings(), vec![spec], Arc::new(MemoryKv::new()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(reason), "{name}: {err}");
        }
    }
}

#[test]
fn activation_guard_velocity_counts_survive_a_restart() {
    for name in ["activation-guard-as", "activation-guard-c"] {
        let kv = Arc::new(MemoryKv::new());
        let spec = || {
            spec(name, example_wasm(name))
                .with_config(json!({"max_addresses": 1, "window_secs": 60}))
        };
        let activate = |ip: &str, ts_ms: i64| {
            Event::Activate(ActivateEvent {
                ts_ms,
                license_key: "ABCD-EFGH-JKMN-PQRS".into(),
                device_hash: "d".into(),
                ip: Some(ip.into()),
                ..ActivateEvent::default()
            })
        };
        let host = PluginHost::new(settings(), vec![spec()], kv.clone()).unwrap();
        assert!(host.call(&activate("198.51.100.1", T0)).is_allow());
        drop(host);
        let host = PluginHost::new(settings(), vec![spec()], kv).unwrap();
        let out = host.call(&activate("198.51.100.2", T0 + 1000));
        assert!(
            denied_with(&out.decision, "ACTIVATION_VELOCITY"),
            "{name}: {out:?}"
        );
        assert_eq!(out.decision.http_status(), Some(429));
        assert!(host.call(&activate("198.51.100.1", T0 + 2000)).is_allow());
        assert!(
            host.call(&activate("198.51.100.2", T0 + 61_000)).is_allow(),
            "{name}: a new window"
        );
    }
}
