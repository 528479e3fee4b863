//! `heartbeat`: heartbeats only, on a set of live sessions, open loop at `--rate` or closed
//! loop (saturation) without it. The building block of the suite, runnable alone for
//! profiling (`perf record -p <server pid>` while it runs).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::api::{self, LicenseLimits};
use crate::engine::{JobSpec, RateRun, run_closed, run_rate};
use crate::http::Target;
use crate::stats::{Op, Report};
use crate::target::ServerArgs;
use crate::wrk::{self, WrkPlan, WrkScript};

/// `tessera-bench heartbeat` options.
#[derive(Debug, Clone, clap::Args)]
pub struct HeartbeatArgs {
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Send to a baseline server at this address instead (synthetic sessions).
    #[arg(long, conflicts_with = "addr")]
    pub baseline: Option<SocketAddr>,
    /// Live sessions to cycle through.
    #[arg(long, default_value_t = 2000)]
    pub sessions: usize,
    /// Sessions per license.
    #[arg(long, default_value_t = 4)]
    pub sessions_per_license: usize,
    /// Heartbeats per second, open loop. Without it: closed loop (saturation).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Connections.
    #[arg(long, default_value_t = 64)]
    pub conns: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 20)]
    pub duration_secs: u64,
    /// Warm-up seconds.
    #[arg(long, default_value_t = 3)]
    pub warmup_secs: u64,
    /// Open-loop pacer tick (µs).
    #[arg(long, default_value_t = 50)]
    pub tick_us: u64,
    /// Write the JSON report here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Saturate with `wrk` (closed loop; `--conns` connections, `--wrk-threads` threads)
    /// instead of this generator. Not with --rate.
    #[arg(long, conflicts_with = "rate")]
    pub wrk: bool,
    /// wrk threads.
    #[arg(long, default_value_t = 1)]
    pub wrk_threads: usize,
    /// Start the server as the suite does: default configuration with rate limits on.
    #[arg(long)]
    pub suite_config: bool,
}

/// Bodies of `n` heartbeats with random tokens and keys (for the baseline).
pub fn synthetic_bodies(n: usize, seed: u64) -> Vec<Bytes> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n.max(1))
        .map(|_| api::heartbeat_body(&api::random_token(&mut rng), &api::random_key(&mut rng)))
        .collect()
}

/// Issues licenses, activates a device on each and starts `sessions` sessions; returns
/// their heartbeat bodies.
pub async fn live_sessions(
    target: &Arc<Target>,
    sessions: usize,
    per_license: usize,
) -> anyhow::Result<Vec<Bytes>> {
    let per = per_license.max(1);
    let nlic = sessions.div_ceil(per);
    let limits = LicenseLimits {
        max_devices: 1,
        max_sessions: u32::try_from(per)?,
        max_activations: 0,
    };
    let (keys, _) = api::issue_licenses(target, nlic, limits, 4, false).await?;
    let pairs: Vec<(String, String)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), api::hw(i)))
        .collect();
    api::activate_all(target, &pairs, 32, false).await?;
    let starts: Vec<(String, String)> = (0..sessions).map(|i| pairs[i / per].clone()).collect();
    let (live, _) = api::start_all(target, &starts, 32, false).await?;
    Ok(live
        .iter()
        .map(|s| api::heartbeat_body(&s.token, &s.key))
        .collect())
}

/// A job maker cycling through `bodies`.
pub fn maker(bodies: Vec<Bytes>) -> Arc<dyn Fn(u64) -> JobSpec + Send + Sync> {
    let bodies = Arc::new(bodies);
    Arc::new(move |i| {
        let b = bodies[(i as usize) % bodies.len()].clone();
        JobSpec::post(Op::Heartbeat, api::HEARTBEAT, b)
    })
}

/// Runs heartbeats open loop at `rate`, or closed loop when `rate` is `None`.
pub async fn run(
    target: &Arc<Target>,
    bodies: Vec<Bytes>,
    rate: Option<f64>,
    conns: usize,
    warmup: Duration,
    duration: Duration,
    tick: Duration,
) -> Report {
    let make = maker(bodies);
    match rate {
        Some(rate) => {
            let run = RateRun {
                rate,
                warmup,
                duration,
                conns,
                tick,
                drain: Duration::from_secs(15),
                progress: true,
            };
            run_rate(target, &run, make).await
        }
        None => run_closed(target, conns, warmup, duration, None, true, make).await,
    }
}

/// `tessera-bench heartbeat`.
pub async fn command(args: HeartbeatArgs) -> anyhow::Result<()> {
    let mut _running = None;
    let (target, bodies) = match args.baseline {
        Some(addr) => (Target::new(addr, None), synthetic_bodies(args.sessions, 42)),
        None => {
            let env = if args.suite_config {
                crate::suite::suite_env(
                    &args
                        .server
                        .tessera_bin
                        .clone()
                        .unwrap_or_else(crate::procs::default_tessera_bin),
                )
            } else {
                Vec::new()
            };
            let running = args.server.open(env).await?;
            let target = Arc::clone(&running.target);
            if let Some(pid) = running.pid {
                eprintln!("server pid {pid}");
            }
            _running = Some(running);
            eprintln!("starting {} sessions", args.sessions);
            let bodies = live_sessions(&target, args.sessions, args.sessions_per_license).await?;
            (target, bodies)
        }
    };
    if args.wrk {
        let script = WrkScript::new(Op::Heartbeat, api::HEARTBEAT, &bodies, args.wrk_threads)?;
        let plan = |secs: u64| WrkPlan {
            threads: args.wrk_threads,
            conns: args.conns,
            duration: Duration::from_secs(secs),
            timeout: Duration::from_secs(10),
        };
        let key = target.api_key.as_deref();
        if args.warmup_secs > 0 {
            wrk::run(&script, target.addr, key, &plan(args.warmup_secs)).await?;
        }
        eprintln!(
            "{}",
            wrk::command_line(&script, target.addr, &plan(args.duration_secs))
        );
        let report = wrk::run(&script, target.addr, key, &plan(args.duration_secs)).await?;
        println!("{}", report.table());
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
        }
        return Ok(());
    }
    let report = run(
        &target,
        bodies,
        args.rate,
        args.conns,
        Duration::from_secs(args.warmup_secs),
        Duration::from_secs(args.duration_secs),
        Duration::from_micros(args.tick_us.max(10)),
    )
    .await;
    println!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}
