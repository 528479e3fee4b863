//! The plugin call path on the heartbeat hook: `PluginHost::call` with no plugin (the
//! `has_hook` fast path), with the no-op WAT fixture, and with the example plugins when
//! they are built (`plugins/examples/build.sh` puts them in `plugins/examples/dist`).
//!
//! `cargo bench -p tessera-bench --bench plugin`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tessera_plugins::abi::HeartbeatEvent;
use tessera_plugins::{Event, Hook, HostSettings, MemoryKv, PluginHost, PluginSpec};

fn heartbeat(i: i64) -> Event {
    Event::Heartbeat(HeartbeatEvent {
        ts_ms: 1_700_000_000_000 + i,
        license_key: "ABCD-EFGH-JKMN-PQRS".into(),
        product: Some("default".into()),
        plan: Some("pro".into()),
        device_hash: "9f2c4e1a7b3d5f6e8a0c2e4f6a8b0d2f4e6a8c0e2f4a6b8d0f2e4a6c8e0a2b4d".into(),
        session_hash: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8".into(),
        ip: Some("198.51.100.23".into()),
        started_ms: 1_699_999_000_000,
        last_seen_ms: 1_700_000_000_000 + i - 30_000,
        ..HeartbeatEvent::default()
    })
}

fn host(specs: Vec<PluginSpec>) -> PluginHost {
    PluginHost::new(HostSettings::default(), specs, Arc::new(MemoryKv::new())).unwrap()
}

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let noop = root.join("plugins/host/tests/fixtures/noop.wat");
    let dist = root.join("plugins/examples/dist");
    let events: Vec<Event> = (0..1024).map(heartbeat).collect();
    let mut g = c.benchmark_group("plugin/on_heartbeat");

    let mut run = |name: &str, h: &PluginHost| {
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % events.len();
                let ev = &events[i];
                // What the server does: skip building nothing when no plugin has the hook.
                if h.has_hook(Hook::Heartbeat) {
                    black_box(h.call(ev));
                }
            });
        });
    };

    run("no_plugin", &host(Vec::new()));
    run("noop_wat", &host(vec![PluginSpec::new("noop", &noop)]));
    let ip = dist.join("ip-reputation.wasm");
    let ban = dist.join("ban-threshold.wasm");
    if ip.exists() && ban.exists() {
        let ip_spec = PluginSpec::new("ip-reputation", &ip)
            .with_config(json!({"mode": "strict", "deny": ["203.0.113.0/24"]}));
        let ban_spec = PluginSpec::new("ban-threshold", &ban);
        run("ip_reputation_strict", &host(vec![ip_spec.clone()]));
        run(
            "ip_reputation_strict+ban_threshold",
            &host(vec![ip_spec, ban_spec]),
        );
    } else {
        eprintln!(
            "example plugins not built ({}): run plugins/examples/build.sh for those rows",
            dist.display()
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
