//! Calls, durations and failures are counted through the `metrics` facade.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tessera_plugins::abi::{HeartbeatEvent, TickEvent};
use tessera_plugins::{Event, FailMode, HostSettings, MemoryKv, PluginHost, PluginSpec};

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

fn labels_of(key: &metrics_util::CompositeKey) -> Vec<(String, String)> {
    let mut l: Vec<(String, String)> = key
        .key()
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    l.sort();
    l
}

#[test]
fn calls_durations_and_failures_are_counted_per_plugin_and_hook() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let host = PluginHost::new(
            HostSettings {
                max_instances: 8,
                ..HostSettings::default()
            },
            vec![spec("trap", fixture("trap.wat")).with_fail_mode(FailMode::Closed)],
            Arc::new(MemoryKv::new()),
        )
        .unwrap();
        let hb = Event::Heartbeat(HeartbeatEvent {
            ts_ms: 1,
            ..HeartbeatEvent::default()
        });
        let _ = host.call(&hb);
        let _ = host.call(&hb);
        let _ = host.call(&Event::Tick(TickEvent {
            ts_ms: 1,
            interval_ms: 1,
        }));
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let find = |name: &str, labels: &[(&str, &str)]| {
        let want: Vec<(String, String)> = {
            let mut w: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            w.sort();
            w
        };
        snapshot
            .iter()
            .find(|(k, _, _, _)| k.key().name() == name && labels_of(k) == want)
            .map(|(_, _, _, v)| v)
    };
    let hb = [("plugin", "trap"), ("hook", "on_heartbeat")];
    assert_eq!(
        find(
            "tessera_plugin_calls_total",
            &[hb[0], hb[1], ("result", "failure")]
        ),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(
        find(
            "tessera_plugin_failures_total",
            &[hb[0], hb[1], ("kind", "trap")]
        ),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(
        find(
            "tessera_plugin_calls_total",
            &[("plugin", "trap"), ("hook", "on_tick"), ("result", "allow")]
        ),
        Some(&DebugValue::Counter(1))
    );
    match find("tessera_plugin_call_duration_seconds", &hb) {
        Some(DebugValue::Histogram(v)) => assert_eq!(v.len(), 2),
        other => panic!("no duration histogram: {other:?}"),
    }
}
