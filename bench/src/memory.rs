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
use crate::engine::{JobSpec, run_closed};
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
    let k = Arc::clone(&keys);
    let starts = run_closed(
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
    if starts.unexpected_total() > 0 {
        bail!("session starts failed:\n{}", starts.table());
    }
    let sessions_ready = settled(pid).await?;
    let live = sessions_live(target).await;
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
    })
}
