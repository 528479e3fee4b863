//! Host behaviour against hand-written WAT fixtures (tests/fixtures/*.wat).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tessera_plugins::abi::{HeartbeatEvent, TickEvent};
use tessera_plugins::{
    Decision, Event, FailMode, FailureKind, Hook, HostSettings, MemoryKv, PLUGIN_FAILURE_CODE,
    PluginError, PluginHost, PluginSpec, RISK_THRESHOLD_CODE, ReloadStatus, check_module, run_once,
};

/// A spec with a generous timeout: the machine running the tests may be busy, and only
/// the timeout tests should ever time out.
fn spec(name: &str, path: impl Into<std::path::PathBuf>) -> PluginSpec {
    PluginSpec::new(name, path).with_timeout(std::time::Duration::from_secs(5))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn settings() -> HostSettings {
    HostSettings {
        max_instances: 32,
        memory_limit_bytes: 2 * 1024 * 1024,
        ..HostSettings::default()
    }
}

fn host(specs: Vec<PluginSpec>) -> PluginHost {
    PluginHost::new(settings(), specs, Arc::new(MemoryKv::new())).unwrap()
}

fn heartbeat() -> Event {
    Event::Heartbeat(HeartbeatEvent {
        ts_ms: 1_700_000_000_000,
        license_key: "ABCD-EFGH-JKMN-PQRS".into(),
        plan: Some("pro".into()),
        device_hash: "d1".into(),
        session_hash: "s1".into(),
        started_ms: 1_699_999_000_000,
        last_seen_ms: 1_699_999_990_000,
        ..HeartbeatEvent::default()
    })
}

fn tick() -> Event {
    Event::Tick(TickEvent {
        ts_ms: 1_700_000_000_000,
        interval_ms: 1000,
    })
}

fn failure_kind(host: &PluginHost, ev: &Event) -> Option<FailureKind> {
    host.call(ev).failures().next().map(|(_, f)| f.kind)
}

#[test]
fn noop_plugin_allows_and_only_its_exported_hooks_are_listened_to() {
    let h = host(vec![spec("noop", fixture("noop.wat"))]);
    assert!(h.has_hook(Hook::Heartbeat));
    assert!(h.has_hook(Hook::Request));
    assert!(!h.has_hook(Hook::Warning));
    let out = h.call(&heartbeat());
    assert!(out.is_allow());
    assert!(out.reports.is_empty());
    assert_eq!(h.plugins()[0].hooks, vec![Hook::Request, Hook::Heartbeat]);
}

#[test]
fn infinite_loop_times_out_and_the_host_keeps_serving() {
    let spin = spec("spin", fixture("infinite_loop.wat")).with_timeout(Duration::from_millis(50));
    let h = host(vec![spin, spec("noop", fixture("noop.wat"))]);
    let started = Instant::now();
    let out = h.call(&heartbeat());
    let (plugin, failure) = out.failures().next().unwrap();
    assert_eq!(plugin, "spin");
    assert_eq!(failure.kind, FailureKind::Timeout);
    assert!(out.is_allow(), "fail open");
    // Bounded, not hung (generous: the machine is shared).
    assert!(started.elapsed() < Duration::from_secs(10));
    // The discarded instance is replaced: other hooks and the next call work.
    assert!(h.call(&tick()).reports.is_empty());
    assert_eq!(failure_kind(&h, &heartbeat()), Some(FailureKind::Timeout));
}

#[test]
fn memory_bomb_is_stopped_by_the_memory_limit() {
    let h = host(vec![
        spec("bomb", fixture("memory_bomb.wat")).with_fail_mode(FailMode::Closed),
    ]);
    let out = h.call(&heartbeat());
    let (_, failure) = out.failures().next().unwrap();
    assert_eq!(
        failure.kind,
        FailureKind::MemoryLimit,
        "{}",
        failure.message
    );
    assert!(matches!(&out.decision, Decision::Deny { code, .. } if code == PLUGIN_FAILURE_CODE));
    assert!(h.call(&tick()).reports.is_empty());
}

#[test]
fn abi_mismatch_is_rejected_at_load_with_a_clear_message() {
    let err = PluginHost::new(
        settings(),
        vec![spec("future", fixture("abi_v2.wat"))],
        Arc::new(MemoryKv::new()),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("plugin `future`"), "{msg}");
    assert!(
        msg.contains("ABI v2") && msg.contains("supports ABI v1"),
        "{msg}"
    );

    let bytes = std::fs::read(fixture("no_marker.wat")).unwrap();
    let msg = check_module(&bytes).unwrap_err().to_string();
    assert!(msg.contains("not a Tessera policy plugin"), "{msg}");

    let bytes = std::fs::read(fixture("wasi_import.wat")).unwrap();
    let msg = check_module(&bytes).unwrap_err().to_string();
    assert!(msg.contains("WASI is not available"), "{msg}");

    let msg = check_module(b"\0asm garbage").unwrap_err().to_string();
    assert!(msg.contains("invalid WebAssembly"), "{msg}");
}

#[test]
fn check_module_lists_hooks_and_imports() {
    let info = check_module(&std::fs::read(fixture("kv_counter.wat")).unwrap()).unwrap();
    assert_eq!(info.abi_version, 1);
    assert_eq!(info.hooks, vec![Hook::Heartbeat]);
    assert_eq!(info.imports, vec!["kv_incr".to_owned(), "log".to_owned()]);
}

#[test]
fn trap_honours_fail_open() {
    let h = host(vec![
        spec("trap", fixture("trap.wat")).with_fail_mode(FailMode::Open),
    ]);
    let out = h.call(&heartbeat());
    assert!(out.is_allow());
    let (_, f) = out.failures().next().unwrap();
    assert_eq!(f.kind, FailureKind::Trap);
    assert_eq!(f.fail_mode, FailMode::Open);
    assert!(f.message.contains("unreachable"), "{}", f.message);
}

#[test]
fn trap_honours_fail_closed() {
    let h = host(vec![
        spec("trap", fixture("trap.wat")).with_fail_mode(FailMode::Closed),
    ]);
    let out = h.call(&heartbeat());
    assert_eq!(out.decision.http_status(), Some(503));
    assert!(matches!(&out.decision, Decision::Deny { code, .. } if code == PLUGIN_FAILURE_CODE));
    assert_eq!(out.decided_by.as_deref(), Some("trap"));
    assert!(h.call(&tick()).is_allow());
}

#[test]
fn bad_decisions_are_contained() {
    let h = host(vec![spec("bad", fixture("bad_decision.wat"))]);
    assert_eq!(
        failure_kind(&h, &heartbeat()),
        Some(FailureKind::BadDecision)
    );
    assert_eq!(failure_kind(&h, &tick()), Some(FailureKind::BadDecision));
}

#[test]
fn out_of_bounds_pointer_to_a_host_function_traps_the_call() {
    let h = host(vec![spec("evil", fixture("evil_pointer.wat"))]);
    let out = h.call(&heartbeat());
    let (_, f) = out.failures().next().unwrap();
    assert_eq!(f.kind, FailureKind::Trap);
    assert!(f.message.contains("out of bounds"), "{}", f.message);
}

#[test]
fn init_rejecting_its_config_fails_the_load() {
    let err = PluginHost::new(
        settings(),
        vec![spec("picky", fixture("init_rejects.wat"))],
        Arc::new(MemoryKv::new()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("init returned 1"), "{err}");
}

fn echo(name: &str, order: i32, decision: serde_json::Value) -> PluginSpec {
    spec(name, fixture("echo_config.wat"))
        .with_order(order)
        .with_config(decision)
}

#[test]
fn most_severe_decision_wins_and_reports_keep_chain_order() {
    let h = host(vec![
        echo(
            "deny",
            1,
            json!({"decision": "deny", "code": "NOPE", "message": "no", "status": 429}),
        ),
        echo(
            "ban",
            2,
            json!({"decision": "ban", "reason": "abuse", "duration_secs": 60}),
        ),
        echo("flag", 0, json!({"decision": "flag", "tag": "odd"})),
        echo("allow", 3, json!({})),
    ]);
    let out = h.call(&heartbeat());
    assert_eq!(out.decision, Decision::ban("abuse", Some(60)));
    assert_eq!(out.decided_by.as_deref(), Some("ban"));
    let order: Vec<&str> = out.reports.iter().map(|r| &*r.plugin).collect();
    assert_eq!(order, vec!["flag", "deny", "ban"]);
    assert_eq!(out.flags().collect::<Vec<_>>(), vec!["odd"]);
}

#[test]
fn risk_deltas_add_up_to_a_deny_past_the_threshold() {
    let h = PluginHost::new(
        HostSettings {
            risk_threshold: 100,
            ..settings()
        },
        vec![
            echo("r1", 0, json!({"decision": "risk", "delta": 60})),
            echo("r2", 1, json!({"decision": "risk", "delta": 40})),
        ],
        Arc::new(MemoryKv::new()),
    )
    .unwrap();
    let out = h.call(&heartbeat());
    assert_eq!(out.risk, 100);
    assert!(matches!(&out.decision, Decision::Deny { code, .. } if code == RISK_THRESHOLD_CODE));
}

#[test]
fn durable_kv_counter_survives_a_restart() {
    let kv = Arc::new(MemoryKv::new());
    let spec = spec("counter", fixture("kv_counter.wat"));
    let h = PluginHost::new(settings(), vec![spec.clone()], kv.clone()).unwrap();
    assert!(h.call(&heartbeat()).is_allow());
    assert!(h.call(&heartbeat()).is_allow());
    assert_eq!(h.call(&heartbeat()).decision, Decision::deny("X", ""));
    drop(h);
    assert_eq!(
        kv.record("counter", b"hits").unwrap().value,
        3i64.to_le_bytes()
    );
    // A new host over the same store (a restart) continues the count.
    let h = PluginHost::new(settings(), vec![spec], kv.clone()).unwrap();
    assert_eq!(h.call(&heartbeat()).decision, Decision::deny("X", ""));
    assert_eq!(
        kv.record("counter", b"hits").unwrap().value,
        4i64.to_le_bytes()
    );
}

#[test]
fn the_wat_example_of_the_abi_doc_counts_heartbeats() {
    let kv = Arc::new(MemoryKv::new());
    let h = PluginHost::new(
        settings(),
        vec![spec("count", fixture("count_heartbeats.wat"))],
        kv.clone(),
    )
    .unwrap();
    for _ in 0..3 {
        assert!(h.call(&heartbeat()).reports.is_empty());
    }
    assert_eq!(
        kv.record("count", b"heartbeats").unwrap().value,
        3i64.to_le_bytes()
    );
}

#[test]
fn kv_is_shared_by_instances_on_all_threads() {
    let kv = Arc::new(MemoryKv::new());
    let h = PluginHost::new(
        settings(),
        vec![spec("counter", fixture("kv_counter.wat"))],
        kv.clone(),
    )
    .unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let h = h.clone();
            s.spawn(move || {
                for _ in 0..25 {
                    let _ = h.call(&heartbeat());
                }
            });
        }
    });
    assert_eq!(
        kv.record("counter", b"hits").unwrap().value,
        100i64.to_le_bytes()
    );
}

fn flag_tag(out: &tessera_plugins::Outcome) -> Option<String> {
    match out.reports.as_slice() {
        [r] if r.failure.is_none() => match &r.decision {
            Decision::Flag { tag } => Some(tag.clone()),
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn hot_reload_under_concurrent_calls_loses_no_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plugin.wat");
    std::fs::copy(fixture("flag_v1.wat"), &path).unwrap();
    let h = host(vec![spec("versioned", &path)]);
    let stop = AtomicBool::new(false);
    let calls = AtomicU64::new(0);
    let seen_v2 = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let out = h.call(&heartbeat());
                    let tag = flag_tag(&out).unwrap_or_else(|| panic!("lost a call: {out:?}"));
                    assert!(tag == "v1" || tag == "v2");
                    if tag == "v2" {
                        seen_v2.fetch_add(1, Ordering::Relaxed);
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for i in 0..10 {
            let src = if i % 2 == 0 {
                "flag_v2.wat"
            } else {
                "flag_v1.wat"
            };
            std::fs::copy(fixture(src), &path).unwrap();
            let report = h.reload_files();
            assert!(report.is_ok(), "{report}");
            assert!(matches!(report.entries[0].status, ReloadStatus::Updated));
            // Let the callers run on this version for a moment.
            let deadline = Instant::now() + Duration::from_secs(5);
            let before = calls.load(Ordering::Relaxed);
            while calls.load(Ordering::Relaxed) < before + 20 && Instant::now() < deadline {
                std::thread::yield_now();
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(calls.load(Ordering::Relaxed) > 0);
    assert!(
        seen_v2.load(Ordering::Relaxed) > 0,
        "the new version served"
    );
}

#[test]
fn broken_reload_keeps_the_old_version_serving() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plugin.wat");
    std::fs::copy(fixture("flag_v1.wat"), &path).unwrap();
    let spec = spec("versioned", &path);
    let h = host(vec![spec.clone()]);

    std::fs::write(&path, b"(module (this is not wat").unwrap();
    let report = h.reload(vec![spec.clone()]);
    let (name, err, kept) = report.failures().next().unwrap();
    assert_eq!(name, "versioned");
    assert!(kept);
    assert!(matches!(err, PluginError::Compile(_)), "{err}");
    assert!(
        report
            .to_string()
            .contains("previous version keeps serving"),
        "{report}"
    );
    assert_eq!(flag_tag(&h.call(&heartbeat())).as_deref(), Some("v1"));

    std::fs::copy(fixture("abi_v2.wat"), &path).unwrap();
    let report = h.reload(vec![spec.clone()]);
    assert!(matches!(
        report.failures().next(),
        Some((_, PluginError::Abi(_), true))
    ));
    assert_eq!(flag_tag(&h.call(&heartbeat())).as_deref(), Some("v1"));

    std::fs::copy(fixture("flag_v1.wat"), &path).unwrap();
    let report = h.reload(vec![spec.clone()]);
    assert!(
        matches!(report.entries[0].status, ReloadStatus::Unchanged),
        "{report}"
    );

    let report = h.reload(vec![PluginSpec {
        enabled: false,
        ..spec
    }]);
    assert_eq!(report.removed, vec!["versioned".to_owned()]);
    assert!(!h.has_hook(Hook::Heartbeat));
    assert!(h.call(&heartbeat()).reports.is_empty());
}

#[test]
fn config_change_reconfigures_without_recompiling() {
    let h = host(vec![echo("e", 0, json!({"decision": "flag", "tag": "a"}))]);
    assert_eq!(flag_tag(&h.call(&heartbeat())).as_deref(), Some("a"));
    let report = h.reload(vec![echo("e", 0, json!({"decision": "flag", "tag": "b"}))]);
    assert!(
        matches!(report.entries[0].status, ReloadStatus::Reconfigured),
        "{report}"
    );
    assert_eq!(flag_tag(&h.call(&heartbeat())).as_deref(), Some("b"));
}

#[test]
fn file_watcher_reloads_a_changed_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plugin.wat");
    std::fs::copy(fixture("flag_v1.wat"), &path).unwrap();
    let h = host(vec![spec("watched", &path)]);
    let reloads = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&reloads);
    let _watcher = h
        .watch(Duration::from_millis(50), move |report| {
            assert!(report.is_ok(), "{report}");
            counter.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    std::fs::copy(fixture("flag_v2.wat"), &path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if flag_tag(&h.call(&heartbeat())).as_deref() == Some("v2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the watcher did not reload the plugin"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn run_once_runs_one_hook_and_explains_mistakes() {
    let wasm = std::fs::read(fixture("echo_config.wat")).unwrap();
    let event = r#"{"license_key": "K", "device_hash": "d", "session_hash": "s", "started_ms": 1, "last_seen_ms": 2}"#;
    let d = run_once(
        &wasm,
        Hook::Heartbeat,
        event,
        &json!({"decision": "flag", "tag": "t"}),
    )
    .unwrap();
    assert_eq!(d, Decision::flag("t"));

    let err = run_once(&wasm, Hook::Tick, r#"{"interval_ms": 5}"#, &json!({})).unwrap_err();
    assert!(
        matches!(err, PluginError::HookNotExported(Hook::Tick)),
        "{err}"
    );

    let err = run_once(
        &wasm,
        Hook::Heartbeat,
        r#"{"license_key": "K"}"#,
        &json!({}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("device_hash"), "{err}");

    let spin = std::fs::read(fixture("infinite_loop.wat")).unwrap();
    let err = run_once(&spin, Hook::Heartbeat, event, &json!({})).unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::Call {
                kind: FailureKind::Timeout,
                ..
            }
        ),
        "{err}"
    );
}
