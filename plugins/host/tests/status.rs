//! `PluginHost::status`: each configured plugin with its file, its counts since it was
//! loaded and its last reload error.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tessera_plugins::abi::HeartbeatEvent;
use tessera_plugins::{Event, FailMode, Hook, HostSettings, MemoryKv, PluginHost, PluginSpec};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn spec(name: &str, path: impl Into<PathBuf>) -> PluginSpec {
    PluginSpec::new(name, path).with_timeout(Duration::from_secs(5))
}

fn heartbeat() -> Event {
    Event::Heartbeat(HeartbeatEvent {
        ts_ms: 1,
        ..HeartbeatEvent::default()
    })
}

fn host(specs: Vec<PluginSpec>) -> PluginHost {
    let settings = HostSettings {
        max_instances: 8,
        ..HostSettings::default()
    };
    PluginHost::new(settings, specs, Arc::new(MemoryKv::new())).unwrap()
}

#[test]
fn status_counts_calls_by_result_and_failures_by_kind_per_plugin() {
    let host = host(vec![
        spec("noop", fixture("noop.wat")),
        spec("trap", fixture("trap.wat")).with_fail_mode(FailMode::Closed),
    ]);
    let before = host.status();
    assert_eq!(before.len(), 2);
    assert!(
        before
            .iter()
            .all(|s| s.loaded.as_ref().unwrap().stats.p99.is_none())
    );
    for _ in 0..3 {
        let _ = host.call(&heartbeat());
    }
    let status = host.status();
    let noop = status[0].loaded.as_ref().unwrap();
    assert_eq!(status[0].spec.name, "noop");
    assert_eq!(noop.hooks, [Hook::Request, Hook::Heartbeat]);
    assert_eq!(noop.stats.calls.allow, 3);
    assert!(noop.stats.p99.is_some());
    let bytes = std::fs::read(fixture("noop.wat")).unwrap();
    assert_eq!(noop.file.size_bytes, bytes.len() as u64);
    assert_eq!(noop.file.sha256.len(), 64);
    assert!(noop.file.modified_ms.is_some());
    let trap = status[1].loaded.as_ref().unwrap();
    assert_eq!(trap.stats.calls.failure, 3);
    assert_eq!(trap.stats.failures.trap, 3);
    assert_eq!(trap.stats.calls.allow, 0);
}

#[test]
fn a_failed_reload_is_shown_until_a_reload_loads_the_plugin_again() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.wat");
    std::fs::copy(fixture("noop.wat"), &file).unwrap();
    let host = host(vec![spec("p", &file)]);
    let _ = host.call(&heartbeat());
    let loaded_ms = host.status()[0].loaded.as_ref().unwrap().loaded_ms;

    std::fs::write(&file, "(module").unwrap();
    assert!(!host.reload_files().is_ok());
    let status = host.status();
    let error = status[0].last_reload_error.as_ref().unwrap();
    assert!(error.kept_previous);
    assert!(error.message.contains("invalid WebAssembly"), "{error:?}");
    let serving = status[0].loaded.as_ref().unwrap();
    assert_eq!(serving.loaded_ms, loaded_ms, "the previous version serves");
    assert_eq!(serving.stats.calls.allow, 1, "with its counts");

    // A new plugin whose first load fails is listed, not loaded, with its error.
    let report = host.reload(vec![
        spec("p", &file),
        spec("missing", dir.path().join("no.wat")),
    ]);
    assert_eq!(report.failures().count(), 2);
    let status = host.status();
    assert_eq!(status.len(), 2);
    assert!(status[1].loaded.is_none());
    assert!(!status[1].last_reload_error.as_ref().unwrap().kept_previous);

    std::fs::copy(fixture("flag_v1.wat"), &file).unwrap();
    assert!(host.reload(vec![spec("p", &file)]).is_ok());
    let status = host.status();
    assert_eq!(status.len(), 1);
    assert!(status[0].last_reload_error.is_none());
    let updated = status[0].loaded.as_ref().unwrap();
    assert_eq!(
        updated.stats.calls.allow, 0,
        "a new version counts from zero"
    );
    assert!(updated.loaded_ms >= loaded_ms);
}
