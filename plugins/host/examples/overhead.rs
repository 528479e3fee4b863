//! Per-call overhead of plugins on the heartbeat hook (not a test; speed lives in bench/).
//!
//! ```sh
//! plugins/examples/build.sh          # for the example plugin rows
//! cargo run --release -p tessera-plugins --example overhead [CALLS]
//! ```
//!
//! Prints p50/p90/p99/p99.9 of `PluginHost::call` for a heartbeat event, timed one call at
//! a time on one thread, after a warm-up (instances created, code paged in).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
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

fn measure(label: &str, host: &PluginHost, calls: u64) {
    for i in 0..20_000 {
        std::hint::black_box(host.call(&heartbeat(i)));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
    let events: Vec<Event> = (0..1024).map(heartbeat).collect();
    let started = Instant::now();
    for i in 0..calls {
        let ev = &events[(i % 1024) as usize];
        let t = Instant::now();
        let out = host.call(ev);
        let ns = t.elapsed().as_nanos() as u64;
        std::hint::black_box(out);
        hist.record(ns.max(1)).unwrap();
    }
    let total = started.elapsed();
    println!(
        "{label:<44} p50 {:>6} ns  p90 {:>6} ns  p99 {:>6} ns  p99.9 {:>7} ns  ({:.0} calls/s incl. timing)",
        hist.value_at_quantile(0.50),
        hist.value_at_quantile(0.90),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        calls as f64 / total.as_secs_f64()
    );
}

fn host(specs: Vec<PluginSpec>) -> PluginHost {
    PluginHost::new(HostSettings::default(), specs, Arc::new(MemoryKv::new())).unwrap()
}

fn main() {
    let calls: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let noop = dir.join("tests/fixtures/noop.wat");
    let dist = dir.join("../examples/dist");
    let ip: PathBuf = dist.join("ip-reputation.wasm");
    let ban: PathBuf = dist.join("ban-threshold.wasm");

    let empty = host(Vec::new());
    assert!(!empty.has_hook(Hook::Heartbeat));
    measure("no plugin (has_hook false)", &empty, calls);
    measure(
        "noop.wat (WAT, returns 0)",
        &host(vec![PluginSpec::new("noop", &noop)]),
        calls,
    );
    if ip.exists() && ban.exists() {
        let ip_spec = |mode: &str| {
            PluginSpec::new("ip-reputation", &ip)
                .with_config(json!({"mode": mode, "deny": ["203.0.113.0/24"]}))
        };
        measure(
            "ip-reputation standard (SDK decode, allow)",
            &host(vec![ip_spec("standard")]),
            calls,
        );
        measure(
            "ip-reputation strict (decode, CIDR, kv_get)",
            &host(vec![ip_spec("strict")]),
            calls,
        );
        measure(
            "noop.wat + ip-reputation strict + ban-threshold",
            &host(vec![
                PluginSpec::new("noop", &noop),
                ip_spec("strict"),
                PluginSpec::new("ban-threshold", &ban),
            ]),
            calls,
        );
    } else {
        println!("(example plugins not built: run plugins/examples/build.sh for their rows)");
    }
}
