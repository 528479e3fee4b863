//! `smoke`: a few seconds of a small fleet (every operation and both failure mixes) against
//! a running or self-started server. Exits non-zero on any 5xx or transport error, or if
//! no heartbeat succeeded. CI runs it.

use std::time::Duration;

use crate::fleet::{self, FleetPlan};
use crate::stats::Op;
use crate::target::ServerArgs;

/// `tessera-bench smoke` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SmokeArgs {
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Length of the measured window (s).
    #[arg(long, default_value_t = 5)]
    pub duration_secs: u64,
    /// Simulated clients.
    #[arg(long, default_value_t = 60)]
    pub clients: usize,
    /// Also fail on any other unexpected answer (e.g. a 410 on a live session's heartbeat).
    #[arg(long)]
    pub strict: bool,
}

/// `tessera-bench smoke`: `Ok(true)` when the run passed.
pub async fn command(args: SmokeArgs) -> anyhow::Result<bool> {
    let running = args.server.open(Vec::new()).await?;
    eprintln!("smoke against {} ({})", running.target.addr, running.label);
    let plan = FleetPlan {
        clients: args.clients.max(10),
        interval: Duration::from_millis(250),
        duration: Duration::from_secs(args.duration_secs.max(1)),
        warmup: Duration::ZERO,
        ramp_rate: 200.0,
        session_heartbeats: 6.0,
        wrong_key_ratio: 0.1,
        limit_hit_ratio: 0.1,
        conns: 8,
        tick: Duration::from_micros(200),
        progress: true,
        seed: 7,
        include_ramp: true,
    };
    let result = fleet::run(&running.target, running.pid, &plan).await?;
    println!("{}", result.report.table());
    let bad = result.report.server_or_transport_errors();
    let unexpected = result.report.unexpected_total();
    let heartbeats = result.report.op(Op::Heartbeat).map_or(0, |o| o.expected);
    let mut ok = true;
    if bad > 0 {
        eprintln!("FAIL: {bad} 5xx or transport errors");
        ok = false;
    }
    if heartbeats == 0 {
        eprintln!("FAIL: no successful heartbeat");
        ok = false;
    }
    if args.strict && unexpected > 0 {
        eprintln!("FAIL (--strict): {unexpected} unexpected answers");
        ok = false;
    }
    if ok {
        eprintln!(
            "smoke OK: {heartbeats} heartbeats, {} sessions started, {unexpected} unexpected answers",
            result.summary.sessions_started
        );
    }
    Ok(ok)
}
