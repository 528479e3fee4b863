//! `fleet`: N simulated clients living the real lifecycle, open loop.
//!
//! Each normal client activates its device, starts a session, heartbeats every interval,
//! ends the session after a random number of heartbeats (geometric, mean
//! `--session-heartbeats`) and starts again one interval later. Mixed in:
//! - **wrong-key clients** (`--wrong-key-ratio`): misconfigured installs that try to
//!   activate a license key that does not exist, once per interval (expect 404);
//! - **second-seat clients** (`--limit-hit-ratio`): a second machine on a single-session
//!   license whose seat a (non-churning) primary holds; it activates (the license allows two
//!   devices) and tries to start a session once per interval (expect 409).
//!
//! Every action has an intended time fixed by the client's schedule (heartbeat k of a
//! session is due at `start + k × interval`, whether or not heartbeat k-1 was answered);
//! latency is measured from it. Actions that depend on an answer (start after activate,
//! heartbeats after start) are scheduled from that answer's arrival.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::api::{self, LicenseLimits};
use crate::engine::{Job, JobSpec, Pool, run_batch};
use crate::http::{CallResult, Target};
use crate::procs::{ProcSample, sample};
use crate::stats::{Op, Recorder, Report};
use crate::target::ServerArgs;

/// `tessera-bench fleet` options.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Simulated clients.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Heartbeat interval of every client (ms).
    #[arg(long, default_value_t = 1000)]
    pub heartbeat_interval_ms: u64,
    /// Target heartbeat rate (per second) of the whole fleet; sets the interval to
    /// clients / rate (overrides --heartbeat-interval-ms).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Length of the measured window (s).
    #[arg(long, default_value_t = 30)]
    pub duration_secs: u64,
    /// Time after the ramp before the window starts (s).
    #[arg(long, default_value_t = 3)]
    pub warmup_secs: u64,
    /// Clients coming online per second at the start.
    #[arg(long, default_value_t = 500.0)]
    pub ramp_rate: f64,
    /// Mean heartbeats per session before the client ends it (0 = never end).
    #[arg(long, default_value_t = 20.0)]
    pub session_heartbeats: f64,
    /// Fraction of clients with a license key that does not exist.
    #[arg(long, default_value_t = 0.02)]
    pub wrong_key_ratio: f64,
    /// Fraction of clients that are a second machine on a single-session license.
    #[arg(long, default_value_t = 0.02)]
    pub limit_hit_ratio: f64,
    /// Keep-alive connections shared by the fleet.
    #[arg(long, default_value_t = 64)]
    pub conns: usize,
    /// Scheduler wake-up period (µs).
    #[arg(long, default_value_t = 100)]
    pub tick_us: u64,
    /// Write the JSON report here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Random seed (runs with the same seed make the same choices).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal { churn: bool },
    WrongKey,
    Second { primary: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Activate,
    Start,
    Live,
    Ending,
}

#[derive(Debug)]
struct Client {
    kind: Kind,
    key: String,
    hw: String,
    phase: Phase,
    epoch: u32,
    in_flight: u32,
    token: String,
    hb_body: Bytes,
    hb_left: u64,
}

/// What the fleet did, besides the per-operation report.
#[derive(Debug, Clone, Serialize)]
pub struct FleetSummary {
    /// Clients by kind: normal, wrong key, second seat.
    pub clients: [usize; 3],
    /// Heartbeat interval (ms).
    pub heartbeat_interval_ms: f64,
    /// Heartbeats per second the fleet schedules when every normal client is live.
    pub nominal_heartbeat_rate: f64,
    /// Sessions started / ended during the whole run.
    pub sessions_started: u64,
    /// Sessions ended by the clients.
    pub sessions_ended: u64,
    /// Sessions live at the end.
    pub live_at_end: usize,
    /// Server process samples before and after, when its pid is known.
    pub server_before: Option<ProcSample>,
    /// After.
    pub server_after: Option<ProcSample>,
}

/// A fleet run's full output.
#[derive(Debug, Clone, Serialize)]
pub struct FleetResult {
    /// Summary.
    pub summary: FleetSummary,
    /// Per-operation report of the measured window.
    pub report: Report,
}

/// Parameters the fleet driver needs (resolved from [`FleetArgs`]).
#[derive(Debug, Clone)]
pub struct FleetPlan {
    /// Clients.
    pub clients: usize,
    /// Heartbeat interval.
    pub interval: Duration,
    /// Window.
    pub duration: Duration,
    /// Warm-up after the ramp.
    pub warmup: Duration,
    /// Ramp rate.
    pub ramp_rate: f64,
    /// Mean heartbeats per session (0 = never end).
    pub session_heartbeats: f64,
    /// Wrong-key fraction.
    pub wrong_key_ratio: f64,
    /// Second-seat fraction.
    pub limit_hit_ratio: f64,
    /// Connections.
    pub conns: usize,
    /// Scheduler tick.
    pub tick: Duration,
    /// Progress lines.
    pub progress: bool,
    /// Seed.
    pub seed: u64,
    /// Measure from the first request (the ramp included) instead of after ramp + warm-up.
    pub include_ramp: bool,
}

impl FleetArgs {
    /// The plan these options describe.
    pub fn plan(&self) -> FleetPlan {
        let interval = match self.rate {
            Some(r) if r > 0.0 => Duration::from_secs_f64(self.clients as f64 / r),
            _ => Duration::from_millis(self.heartbeat_interval_ms.max(1)),
        };
        FleetPlan {
            clients: self.clients.max(1),
            interval,
            duration: Duration::from_secs(self.duration_secs),
            warmup: Duration::from_secs(self.warmup_secs),
            ramp_rate: self.ramp_rate.max(1.0),
            session_heartbeats: self.session_heartbeats.max(0.0),
            wrong_key_ratio: self.wrong_key_ratio.clamp(0.0, 0.5),
            limit_hit_ratio: self.limit_hit_ratio.clamp(0.0, 0.5),
            conns: self.conns,
            tick: Duration::from_micros(self.tick_us.max(10)),
            progress: !self.quiet,
            seed: self.seed,
            include_ramp: false,
        }
    }
}

/// `tessera-bench fleet`.
pub async fn command(args: FleetArgs) -> anyhow::Result<()> {
    let running = args.server.open(Vec::new()).await?;
    eprintln!("fleet against {} ({})", running.target.addr, running.label);
    let result = run(&running.target, running.pid, &args.plan()).await?;
    println!("{}", result.report.table());
    println!(
        "sessions started {} ended {} live at end {}; nominal heartbeat rate {:.0}/s (interval {:.0} ms)",
        result.summary.sessions_started,
        result.summary.sessions_ended,
        result.summary.live_at_end,
        result.summary.nominal_heartbeat_rate,
        result.summary.heartbeat_interval_ms
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&result)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

fn session_length(rng: &mut SmallRng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return u64::MAX;
    }
    if mean <= 1.0 {
        return 1;
    }
    // Geometric with the given mean: P(end after each heartbeat) = 1 / mean.
    let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    (u.ln() / (1.0 - 1.0 / mean).ln()).floor() as u64 + 1
}

/// Issues the fleet's licenses and runs it.
pub async fn run(
    target: &Arc<Target>,
    pid: Option<u32>,
    plan: &FleetPlan,
) -> anyhow::Result<FleetResult> {
    let n = plan.clients;
    let wrong = ((n as f64) * plan.wrong_key_ratio).round() as usize;
    let seconds = (((n as f64) * plan.limit_hit_ratio).round() as usize).min((n - wrong) / 2);
    let normal = n - wrong - seconds;
    // Normal clients 0..normal; the first `seconds` of them are primaries of a pair.
    let single = LicenseLimits {
        max_devices: 1,
        max_sessions: 1,
        max_activations: 0,
    };
    let double = LicenseLimits {
        max_devices: 2,
        ..single
    };
    eprintln!("issuing {normal} licenses ({seconds} of them with a second seat)");
    let (mut keys, _) = api::issue_licenses(target, seconds, double, 4, false).await?;
    let (rest, _) = api::issue_licenses(target, normal - seconds, single, 4, false).await?;
    keys.extend(rest);
    let mut rng = SmallRng::seed_from_u64(plan.seed);
    let mut clients: Vec<Client> = Vec::with_capacity(n);
    for (i, key) in keys.iter().enumerate() {
        clients.push(Client {
            kind: Kind::Normal {
                churn: i >= seconds,
            },
            key: key.clone(),
            hw: api::hw(i),
            phase: Phase::Activate,
            epoch: 0,
            in_flight: 0,
            token: String::new(),
            hb_body: Bytes::new(),
            hb_left: 0,
        });
    }
    for (p, key) in keys.iter().enumerate().take(seconds) {
        clients.push(Client {
            kind: Kind::Second { primary: p },
            key: key.clone(),
            hw: api::hw(n + p),
            phase: Phase::Activate,
            epoch: 0,
            in_flight: 0,
            token: String::new(),
            hb_body: Bytes::new(),
            hb_left: 0,
        });
    }
    for _ in 0..wrong {
        clients.push(Client {
            kind: Kind::WrongKey,
            key: String::new(),
            hw: api::hw(clients.len()),
            phase: Phase::Activate,
            epoch: 0,
            in_flight: 0,
            token: String::new(),
            hb_body: Bytes::new(),
            hb_left: 0,
        });
    }
    let mut order: Vec<usize> = (0..clients.len()).collect();
    order.shuffle(&mut rng);

    let server_before = pid.and_then(|p| sample(p).ok());
    let mut pool = Pool::start(target, plan.conns);
    let plan = plan.clone();
    let mut done_rx = std::mem::replace(&mut pool.done, tokio::sync::mpsc::unbounded_channel().1);
    let submitter = pool.submitter();
    let counters = Arc::clone(&pool.counters);
    let driver = tokio::task::spawn_blocking(move || {
        let t0 = Instant::now() + Duration::from_millis(20);
        let ramp = Duration::from_secs_f64(clients.len() as f64 / plan.ramp_rate);
        let window_start = if plan.include_ramp {
            t0
        } else {
            t0 + ramp + plan.warmup
        };
        let end = t0 + ramp + plan.warmup + plan.duration;
        let mut rec = Recorder::new(window_start);
        rec.set_window_end(end);
        let mut heap: BinaryHeap<Reverse<(Instant, usize, u32)>> = BinaryHeap::new();
        for (rank, &c) in order.iter().enumerate() {
            let at = t0 + Duration::from_secs_f64(rank as f64 / plan.ramp_rate);
            heap.push(Reverse((at, c, 0)));
        }
        let (mut started, mut ended) = (0u64, 0u64);
        let tag = |c: usize, epoch: u32| ((c as u64) << 32) | u64::from(epoch);
        let interval = plan.interval;
        let mut draining_since: Option<Instant> = None;
        loop {
            let now = Instant::now();
            // Completions first: they may schedule work that is due now.
            while let Ok(d) = done_rx.try_recv() {
                rec.record(d.op, d.intended, d.sent, d.done, &d.result);
                let c = (d.tag >> 32) as usize;
                let epoch = (d.tag & 0xffff_ffff) as u32;
                let Some(cl) = clients.get_mut(c) else {
                    continue;
                };
                cl.in_flight = cl.in_flight.saturating_sub(1);
                if epoch != cl.epoch {
                    continue;
                }
                let ok = d.result.is_success();
                match d.op {
                    Op::Activate if ok => {
                        cl.phase = Phase::Start;
                        cl.epoch += 1;
                        heap.push(Reverse((d.done, c, cl.epoch)));
                    }
                    Op::Activate => heap.push(Reverse((d.done + interval, c, cl.epoch))),
                    Op::Start => {
                        let token = match &d.result {
                            CallResult::Http { status: 200, body } => {
                                api::json_str(body, "session_token")
                            }
                            _ => None,
                        };
                        cl.epoch += 1;
                        if let Some(token) = token {
                            started += 1;
                            cl.hb_body = api::heartbeat_body(&token, &cl.key);
                            cl.token = token;
                            cl.phase = Phase::Live;
                            cl.hb_left = match cl.kind {
                                Kind::Normal { churn: true } => {
                                    session_length(&mut rng, plan.session_heartbeats)
                                }
                                _ => u64::MAX,
                            };
                        }
                        heap.push(Reverse((d.done + interval, c, cl.epoch)));
                    }
                    Op::Heartbeat => {
                        if let CallResult::Http {
                            status: 404 | 410, ..
                        } = d.result
                        {
                            // The session is gone: start a new one.
                            cl.phase = Phase::Start;
                            cl.epoch += 1;
                            heap.push(Reverse((d.done, c, cl.epoch)));
                        }
                    }
                    Op::End => {
                        ended += 1;
                        cl.phase = Phase::Start;
                        cl.epoch += 1;
                        heap.push(Reverse((d.done + interval, c, cl.epoch)));
                    }
                    _ => {}
                }
            }
            if now >= end {
                // Stop scheduling; wait for what is in flight (bounded).
                let since = *draining_since.get_or_insert(now);
                let c = &counters;
                let outstanding = c.submitted.load(std::sync::atomic::Ordering::Relaxed)
                    - c.completed.load(std::sync::atomic::Ordering::Relaxed);
                if outstanding == 0 || now.duration_since(since) > Duration::from_secs(15) {
                    rec.abandoned = outstanding;
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            while let Some(&Reverse((at, c, epoch))) = heap.peek() {
                if at > now {
                    break;
                }
                heap.pop();
                let Some(cl) = clients.get_mut(c) else {
                    continue;
                };
                if epoch != cl.epoch {
                    continue;
                }
                let (op, body, next) = match (cl.kind, cl.phase) {
                    (Kind::WrongKey, _) => {
                        let key = api::random_key(&mut rng);
                        (
                            Op::WrongKey,
                            (api::ACTIVATE, api::activate_body(&key, &cl.hw)),
                            Some(at + interval),
                        )
                    }
                    (_, Phase::Activate) => (
                        Op::Activate,
                        (api::ACTIVATE, api::activate_body(&cl.key, &cl.hw)),
                        None,
                    ),
                    (Kind::Second { primary }, Phase::Start) => {
                        let primary_live =
                            clients.get(primary).is_some_and(|p| p.phase == Phase::Live);
                        let Some(cl) = clients.get_mut(c) else {
                            continue;
                        };
                        if !primary_live {
                            heap.push(Reverse((at + interval, c, cl.epoch)));
                            continue;
                        }
                        (
                            Op::LimitHit,
                            (api::START, api::start_body(&cl.key, &cl.hw)),
                            Some(at + interval),
                        )
                    }
                    (_, Phase::Start) => (
                        Op::Start,
                        (api::START, api::start_body(&cl.key, &cl.hw)),
                        None,
                    ),
                    (_, Phase::Live) if cl.hb_left == 0 => {
                        if cl.in_flight > 0 {
                            // Let the last heartbeat land before ending (as a client would).
                            heap.push(Reverse((at + Duration::from_millis(1), c, cl.epoch)));
                            continue;
                        }
                        cl.phase = Phase::Ending;
                        (Op::End, (api::END, api::end_body(&cl.token)), None)
                    }
                    (_, Phase::Live) => {
                        cl.hb_left -= 1;
                        (
                            Op::Heartbeat,
                            (api::HEARTBEAT, cl.hb_body.clone()),
                            Some(at + interval),
                        )
                    }
                    (_, Phase::Ending) => continue,
                };
                let Some(cl) = clients.get_mut(c) else {
                    continue;
                };
                cl.in_flight += 1;
                if let Some(next) = next {
                    heap.push(Reverse((next, c, cl.epoch)));
                }
                let job = Job {
                    spec: JobSpec::post(op, body.0, body.1),
                    intended: at,
                    tag: tag(c, cl.epoch),
                };
                if !submitter.submit(job) {
                    break;
                }
            }
            if plan.progress {
                let live = clients.iter().filter(|c| c.phase == Phase::Live).count();
                let extra = format!(
                    " | live {live} in flight {} backlog {}",
                    counters.in_flight(),
                    counters.backlog()
                );
                if let Some(line) = rec.progress(&extra) {
                    eprintln!("{line}");
                }
            }
            let next = heap
                .peek()
                .map(|Reverse((at, _, _))| *at)
                .unwrap_or(now + plan.tick);
            let wait = next
                .saturating_duration_since(Instant::now())
                .max(plan.tick)
                .min(Duration::from_millis(5));
            std::thread::sleep(wait);
        }
        let live: Vec<String> = clients
            .iter()
            .filter(|c| c.phase == Phase::Live && matches!(c.kind, Kind::Normal { .. }))
            .map(|c| c.token.clone())
            .collect();
        let summary = FleetSummary {
            clients: [normal, wrong, seconds],
            heartbeat_interval_ms: interval.as_secs_f64() * 1e3,
            nominal_heartbeat_rate: normal as f64 / interval.as_secs_f64(),
            sessions_started: started,
            sessions_ended: ended,
            live_at_end: live.len(),
            server_before: None,
            server_after: None,
        };
        (rec.report(), summary, live)
    });
    let (report, mut summary, live) = driver.await.context("fleet driver")?;
    pool.stop().await;
    summary.server_before = server_before;
    summary.server_after = pid.and_then(|p| sample(p).ok());
    // Leave the server as we found it: end the sessions still live (not measured).
    let ends: Vec<JobSpec> = live
        .iter()
        .map(|t| JobSpec::post(Op::End, api::END, api::end_body(t)))
        .collect();
    let _ = run_batch(target, 16, ends, false).await;
    Ok(FleetResult { summary, report })
}
