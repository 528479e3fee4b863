//! `memory`: bring up M live sessions and report the server's RSS per live session.
//!
//! Steps: sample the idle server's `VmRSS`; issue ⌈M / K⌉ licenses with `max_sessions = K`
//! and `max_devices = K`, and activate K devices on each (one per session to come, as the
//! seats of a floating license); sample; start one session on every device (closed loop,
//! many connections, as fast as the server takes them); check `tessera_sessions_live` on
//! `/metrics`; sample again. Two per-session figures come out:
//! - **all-in**: (RSS with M sessions − idle RSS) / M — everything the sessions brought
//!   with them, including their licenses, activations and store caches;
//! - **sessions only**: (RSS with M sessions − RSS with licenses activated) / M.
//!
//! With `--heartbeat-rate R`, the sessions then heartbeat open loop at R per second for
//! `--heartbeat-secs` (the sessions in start order, each once when there are enough), and the latency
//! percentiles from each heartbeat's intended start are reported: the latency of a server
//! holding M live sessions.
//!
//! A self-started server gets `heartbeat_timeout_secs = 86400`, so no session expires while
//! the rest are started (nothing heartbeats in this mode), and, unless `--data-dir` says
//! otherwise, its data dir on tmpfs (`/dev/shm`): this disk does ~200 fsync/s, which would
//! make a million durable starts take hours, and RSS is what is measured here. Store file
//! pages on tmpfs are page cache, not process RSS (the server does not mmap them).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hyper::Method;
use serde::Serialize;

use crate::api::{self, LicenseLimits};
use crate::engine::{JobSpec, RateRun, run_closed, run_rate};
use crate::http::{CallResult, Conn, Target};
use crate::procs::{ProcSample, sample};
use crate::stats::{Op, Report};
use crate::target::ServerArgs;

/// `tessera-bench memory` options.
#[derive(Debug, Clone, clap::Args)]
pub struct MemoryArgs {
    /// The server (its pid is needed: self-started, or `--server-pid`).
    #[command(flatten)]
    pub server: ServerArgs,
    /// Live sessions to bring up.
    #[arg(long, default_value_t = 100_000)]
    pub sessions: u64,
    /// Sessions per license, each on its own device (licenses = sessions / this).
    #[arg(long, default_value_t = 1)]
    pub sessions_per_license: u64,
    /// Concurrent connections for setup and session starts.
    #[arg(long, default_value_t = 128)]
    pub conns: usize,
    /// With every session live, heartbeat them open loop at this rate (per second; 0: no
    /// heartbeat phase) and report the latency.
    #[arg(long, default_value_t = 0.0)]
    pub heartbeat_rate: f64,
    /// Seconds of that phase (after 5 s of warm-up at the same rate).
    #[arg(long, default_value_t = 20)]
    pub heartbeat_secs: u64,
    /// Write the JSON result here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

/// What a memory run measured.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryResult {
    /// Live sessions requested.
    pub sessions: u64,
    /// Sessions per license.
    pub sessions_per_license: u64,
    /// Licenses.
    pub licenses: u64,
    /// `tessera_sessions_live` at the end (None if not exported).
    pub sessions_live_metric: Option<f64>,
    /// Idle server.
    pub idle: ProcSample,
    /// After licenses were issued and activated.
    pub licenses_ready: ProcSample,
    /// With every session live.
    pub sessions_ready: ProcSample,
    /// The redis-server with every session live (Redis backend only).
    pub redis_ready: Option<ProcSample>,
    /// All-in bytes of RSS per live session.
    pub bytes_per_session_all_in: f64,
    /// Bytes of RSS per live session beyond the activated licenses.
    pub bytes_per_session_sessions_only: f64,
    /// Session starts per second while bringing them up (closed loop, `conns` connections).
    pub start_rate: f64,
    /// The session-start report.
    pub starts: Report,
    /// Where the store lived.
    pub data_dir: String,
    /// The open-loop heartbeat phase with every session live, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeats: Option<HeartbeatPhase>,
}

/// Heartbeats at a fixed rate while every session is live.
#[derive(Debug, Clone, Serialize)]
pub struct HeartbeatPhase {
    /// Scheduled heartbeats per second.
    pub rate: f64,
    /// Its report (latency from each heartbeat's intended start).
    pub report: Report,
    /// Server CPU (user + system) during the measured window, in cores.
    pub server_cores: f64,
    /// Generator CPU during the measured window, in cores.
    pub generator_cores: f64,
}

/// Environment for a self-started server in memory mode.
pub fn server_env() -> Vec<(String, String)> {
    vec![
        (
            "TESSERA_SESSIONS_HEARTBEAT_TIMEOUT_SECS".into(),
            "86400".into(),
        ),
        (
            "TESSERA_LICENSES_IDLE_PASSIVATE_SECS".into(),
            "86400".into(),
        ),
    ]
}

/// `tmpfs` scratch dir for a server's data, when `/dev/shm` exists.
pub fn tmpfs_dir() -> Option<tempfile::TempDir> {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("tessera-bench-mem-")
            .tempdir_in(shm)
            .ok()
    } else {
        None
    }
}

/// `tessera-bench memory`.
pub async fn command(mut args: MemoryArgs) -> anyhow::Result<()> {
    let shm = if args.server.addr.is_none() && args.server.data_dir.is_none() {
        tmpfs_dir()
    } else {
        None
    };
    if let Some(d) = &shm {
        args.server.data_dir = Some(d.path().to_owned());
    }
    let running = args.server.open(server_env()).await?;
    let Some(pid) = running.pid else {
        bail!("memory mode needs the server's pid: let it start the server or pass --server-pid");
    };
    let data_dir = args
        .server
        .data_dir
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|| "(server's own)".into());
    let r = run(
        &running.target,
        pid,
        running.redis.as_ref().map(|r| r.proc.pid),
        &MemoryPlan {
            sessions: args.sessions,
            per_license: args.sessions_per_license,
            conns: args.conns,
            progress: !args.quiet,
            heartbeat_rate: args.heartbeat_rate,
            heartbeat_secs: args.heartbeat_secs,
        },
        data_dir,
    )
    .await?;
    print_result(&r);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&r)?)?;
    }
    drop(running);
    drop(shm);
    Ok(())
}

/// Prints a memory result for people.
pub fn print_result(r: &MemoryResult) {
    println!(
        "{} live sessions on {} licenses ({} per license); tessera_sessions_live = {}",
        r.sessions,
        r.licenses,
        r.sessions_per_license,
        r.sessions_live_metric
            .map(|v| format!("{v:.0}"))
            .unwrap_or_else(|| "n/a".into())
    );
    println!(
        "RSS idle {} MiB, licenses activated {} MiB, sessions live {} MiB (peak {} MiB)",
        r.idle.rss_kib / 1024,
        r.licenses_ready.rss_kib / 1024,
        r.sessions_ready.rss_kib / 1024,
        r.sessions_ready.hwm_kib / 1024
    );
    println!(
        "RSS per live session: {:.0} B all-in, {:.0} B sessions only; starts {:.0}/s",
        r.bytes_per_session_all_in, r.bytes_per_session_sessions_only, r.start_rate
    );
    if let Some(h) = &r.heartbeats
        && let Some(op) = h.report.op(Op::Heartbeat)
    {
        let ms = |us: u64| us as f64 / 1000.0;
        println!(
            "heartbeats at {:.0}/s scheduled, {:.0}/s done with every session live: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms (server {:.2} cores, generator {:.2})",
            h.rate,
            op.per_sec,
            ms(op.latency_us.p50),
            ms(op.latency_us.p99),
            ms(op.latency_us.p999),
            ms(op.latency_us.max),
            h.server_cores,
            h.generator_cores
        );
    }
}

/// How many sessions to bring up, and how.
#[derive(Debug, Clone, Copy)]
pub struct MemoryPlan {
    /// Live sessions.
    pub sessions: u64,
    /// Sessions per license.
    pub per_license: u64,
    /// Connections.
    pub conns: usize,
    /// Progress lines.
    pub progress: bool,
    /// Heartbeats per second with every session live (0: none).
    pub heartbeat_rate: f64,
    /// Seconds of that phase.
    pub heartbeat_secs: u64,
}

/// `tessera_sessions_live` from `/metrics`.
pub async fn sessions_live(target: &Arc<Target>) -> Option<f64> {
    let mut conn = Conn::new(Arc::clone(target));
    let CallResult::Http { status: 200, body } = conn
        .call(Method::GET, "/metrics", bytes::Bytes::new())
        .await
    else {
        return None;
    };
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|l| l.strip_prefix("tessera_sessions_live "))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until RSS stops moving (allocator settling, write-behind flushed): two samples a
/// second apart within 1 %, at most 10 s.
async fn settled(pid: u32) -> anyhow::Result<ProcSample> {
    let mut last = sample(pid)?;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = sample(pid)?;
        let diff = now.rss_kib.abs_diff(last.rss_kib) as f64;
        last = now;
        if diff <= now.rss_kib as f64 * 0.01 {
            break;
        }
    }
    Ok(last)
}

/// Runs the memory measurement against the server `pid` at `target`.
pub async fn run(
    target: &Arc<Target>,
    pid: u32,
    redis_pid: Option<u32>,
    plan: &MemoryPlan,
    data_dir: String,
) -> anyhow::Result<MemoryResult> {
    let MemoryPlan {
        sessions,
        per_license,
        conns,
        progress,
        heartbeat_rate,
        heartbeat_secs,
    } = *plan;
    let per_license = per_license.max(1);
    let licenses = sessions.div_ceil(per_license);
    let idle = settled(pid).await?;
    let t = Instant::now();
    // Every session runs on its own device, as seats of a floating license do.
    let limits = LicenseLimits {
        max_devices: u32::try_from(per_license).context("--sessions-per-license too large")?,
        max_sessions: u32::try_from(per_license).context("--sessions-per-license too large")?,
        max_activations: 0,
    };
    let (keys, _) = api::issue_licenses(target, licenses as usize, limits, 8, progress).await?;
    eprintln!(
        "issued {} licenses in {:.1} s",
        keys.len(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let keys = Arc::new(keys);
    let k = Arc::clone(&keys);
    let act = run_closed(
        target,
        conns,
        Duration::ZERO,
        Duration::from_secs(86_400),
        Some(sessions),
        progress,
        Arc::new(move |i| {
            let l = (i / per_license) as usize;
            JobSpec::post(
                Op::Activate,
                api::ACTIVATE,
                api::activate_body(&k[l], &api::hw(i as usize)),
            )
        }),
    )
    .await;
    if act.unexpected_total() > 0 {
        bail!("activations failed:\n{}", act.table());
    }
    eprintln!(
        "activated {} devices in {:.1} s",
        sessions,
        t.elapsed().as_secs_f64()
    );
    let licenses_ready = settled(pid).await?;
    // The session tokens are kept for the heartbeat phase (a closed loop that keeps none
    // when there is no such phase).
    let (starts, tokens) = if heartbeat_rate > 0.0 {
        let pairs: Vec<(String, String)> = (0..sessions)
            .map(|i| {
                (
                    keys[(i / per_license) as usize].clone(),
                    api::hw(i as usize),
                )
            })
            .collect();
        let (live, report) = api::start_all(target, &pairs, conns, progress).await?;
        let bodies: Vec<bytes::Bytes> = live
            .iter()
            .map(|s| api::heartbeat_body(&s.token, &s.key))
            .collect();
        (report, bodies)
    } else {
        let k = Arc::clone(&keys);
        let report = run_closed(
            target,
            conns,
            Duration::ZERO,
            Duration::from_secs(86_400),
            Some(sessions),
            progress,
            Arc::new(move |i| {
                let l = (i / per_license) as usize;
                JobSpec::post(
                    Op::Start,
                    api::START,
                    api::start_body(&k[l], &api::hw(i as usize)),
                )
            }),
        )
        .await;
        (report, Vec::new())
    };
    if starts.unexpected_total() > 0 {
        bail!("session starts failed:\n{}", starts.table());
    }
    let sessions_ready = settled(pid).await?;
    let live = sessions_live(target).await;
    let heartbeats = if tokens.is_empty() {
        None
    } else {
        Some(heartbeat_phase(target, pid, tokens, heartbeat_rate, heartbeat_secs, conns).await?)
    };
    let per = |from: &ProcSample| {
        (sessions_ready.rss_kib as f64 - from.rss_kib as f64) * 1024.0 / sessions.max(1) as f64
    };
    Ok(MemoryResult {
        sessions,
        sessions_per_license: per_license,
        licenses,
        sessions_live_metric: live,
        bytes_per_session_all_in: per(&idle),
        bytes_per_session_sessions_only: per(&licenses_ready),
        start_rate: starts.op(Op::Start).map_or(0.0, |o| o.per_sec),
        starts,
        idle,
        licenses_ready,
        sessions_ready,
        redis_ready: redis_pid.and_then(|p| sample(p).ok()),
        data_dir,
        heartbeats,
    })
}

/// Heartbeats of the live sessions (`bodies`, in turn) at `rate` per second, open loop: 5 s
/// of warm-up, then `secs` measured. With enough sessions each heartbeats once.
async fn heartbeat_phase(
    target: &Arc<Target>,
    pid: u32,
    bodies: Vec<bytes::Bytes>,
    rate: f64,
    secs: u64,
    conns: usize,
) -> anyhow::Result<HeartbeatPhase> {
    let needed = (rate * (secs + 5) as f64) as usize;
    if needed > bodies.len() {
        eprintln!(
            "note: {needed} heartbeats over {} sessions: each session heartbeats about {:.1} times",
            bodies.len(),
            needed as f64 / bodies.len().max(1) as f64
        );
    }
    eprintln!("heartbeats open loop at {rate:.0}/s for 5 + {secs} s over the live sessions");
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let make: Arc<dyn Fn(u64) -> JobSpec + Send + Sync> = Arc::new(move |_| {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % bodies.len();
        JobSpec::post(Op::Heartbeat, api::HEARTBEAT, bodies[i].clone())
    });
    let run = |secs: u64, progress: bool| RateRun {
        rate,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(secs),
        conns,
        tick: Duration::from_micros(50),
        drain: Duration::from_secs(15),
        progress,
    };
    let _ = run_rate(target, &run(5, false), Arc::clone(&make)).await;
    let server_before = sample(pid)?;
    let me_before = sample(std::process::id())?;
    let t = Instant::now();
    let report = run_rate(target, &run(secs, true), make).await;
    let wall = t.elapsed().as_secs_f64().max(0.001);
    let server_after = sample(pid)?;
    let me_after = sample(std::process::id())?;
    if report.unexpected_total() > 0 {
        bail!("heartbeats failed:\n{}", report.table());
    }
    Ok(HeartbeatPhase {
        rate,
        report,
        server_cores: (server_after.cpu_secs - server_before.cpu_secs) / wall,
        generator_cores: (me_after.cpu_secs - me_before.cpu_secs) / wall,
    })
}
