//! Scale-out (issue 18, items 4 and 5): heartbeat throughput of 1, 2 and 3 Tessera nodes on
//! one Redis and on a Redis Cluster of three primaries, measured in one run; the share of
//! requests that needed a license load from Redis, with license locality (each license
//! always to the same node, as a balancer hashing `X-License-Key` sends it) and without
//! (every node gets every license's requests, as a round-robin balancer sends them); Redis
//! CPU and commands per heartbeat and per session start; and what a replica's
//! acknowledgement costs a write (`min-replicas-to-write` through Tessera, `WAIT 1 0` per
//! write as a measured Redis round trip: Tessera issues no `WAIT`).
//!
//!     bash bench/scale_out.sh          # release build, then this with its defaults
//!
//! Every Redis runs without persistence (`--save "" --appendonly no`): fsync is a question
//! of its own (bench/README.md, "Running Redis for Tessera"); here only CPU, commands and
//! round trips count. The servers (Tessera nodes and redis-servers) are pinned to
//! `--server-cpus`, this generator and its `wrk`s to `--generator-cpus`: on a machine of two
//! CPUs every added node shares the one server CPU, so more nodes can show the overhead of
//! scaling out, never a gain.
//!
//! Phases per topology and node count, each on a flushed Redis and fresh nodes:
//! - setup: `--sessions` licenses (one device, one session each) issued through node 0,
//!   each activated and started on its home node (hash of the key, modulo the nodes);
//! - heartbeats at saturation, one `wrk` per node: with locality each node's `wrk` posts the
//!   heartbeats of the sessions homed there; without, every node's `wrk` posts all of them;
//! - durable session starts (this program's closed-loop generator, one per node) on
//!   `--start-licenses` other licenses, with and without locality.
//!
//! Per topology, once more with the largest node count and the session timing scaled down
//! tenfold (`--paced-interval-secs`, timeout 3× and grace 1× that, the defaults' ratios):
//! an idle window (the nodes' background work in Redis), then every session heartbeating
//! once per interval, open loop. At saturation a session heartbeats many times per half
//! lifetime and the write-behind coalesces them, so only this paced phase gives Redis's
//! cost per heartbeat at a real client's rate.
#![allow(clippy::print_stdout, missing_docs)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use futures::future::try_join_all;
use hdrhistogram::Histogram;
use serde::Serialize;
use tessera_bench::api::{self, LicenseLimits};
use tessera_bench::engine::{JobSpec, RateRun, run_closed, run_rate};
use tessera_bench::heartbeat;
use tessera_bench::http::Target;
use tessera_bench::procs::{
    Backend, RedisCluster, RedisServer, TesseraOpts, TesseraServer, command_calls,
    default_tessera_bin, join_tessera, pin_self, resp, sample, scrape_metrics, start_redis,
    start_redis_cluster, start_redis_with, start_tessera, wait_quiet,
};
use tessera_bench::stats::{Op, Report, fmt_us};
use tessera_bench::suite::{CpuUse, Meter, diff_calls, machine, suite_env};
use tessera_bench::wrk::{self, WrkPlan, WrkScript};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Parser, Debug)]
#[command(about = "Scale-out: 1-3 Tessera nodes on one Redis and on a Redis Cluster")]
struct Args {
    /// The `tessera` binary (a release build).
    #[arg(long, default_value_os_t = default_tessera_bin())]
    tessera_bin: PathBuf,
    /// Topologies to measure, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "single,cluster"
    )]
    topologies: Vec<Topology>,
    /// Node counts to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    nodes: Vec<usize>,
    /// Live sessions (one license and one device each) of the heartbeat phases.
    #[arg(long, default_value_t = 20_000)]
    sessions: usize,
    /// Licenses the session-start phases spread their starts over.
    #[arg(long, default_value_t = 5_000)]
    start_licenses: usize,
    /// Measured seconds of each heartbeat phase.
    #[arg(long, default_value_t = 8)]
    secs: u64,
    /// Warm-up seconds before each heartbeat phase (same load, not measured).
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Measured seconds of each session-start phase (after a 1 s warm-up).
    #[arg(long, default_value_t = 5)]
    start_secs: u64,
    /// Connections of a heartbeat phase, spread over the nodes.
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// Connections of a session-start phase, spread over the nodes.
    #[arg(long, default_value_t = 32)]
    start_conns: usize,
    /// Heartbeat interval of the paced phase (s); the timeout is 3× and the grace 1× it,
    /// the ratios of the defaults (30 / 90 / 30 s). 0 = skip the paced phase.
    #[arg(long, default_value_t = 3)]
    paced_interval_secs: u64,
    /// Measured seconds of the paced phase (after one interval of warm-up).
    #[arg(long, default_value_t = 15)]
    paced_secs: u64,
    /// Seconds of the idle window before the paced phase.
    #[arg(long, default_value_t = 4)]
    idle_secs: u64,
    /// Skip the replica phase (`min-replicas-to-write`, `WAIT`).
    #[arg(long)]
    no_wait: bool,
    /// CPUs of the servers (`taskset -c`); "none" = no pinning.
    #[arg(long, default_value = "1")]
    server_cpus: String,
    /// CPUs of this generator and its `wrk`s; "none" = no pinning.
    #[arg(long, default_value = "0")]
    generator_cpus: String,
    /// Before each measured phase, wait at most this long for the machine to be quiet
    /// (0 = do not wait; other work is recorded either way).
    #[arg(long, default_value_t = 0)]
    wait_quiet_secs: u64,
    /// Projection: live sessions.
    #[arg(long, default_value_t = 10_000_000)]
    project_sessions: u64,
    /// Projection: heartbeat interval (s).
    #[arg(long, default_value_t = 30.0)]
    project_interval_secs: f64,
    /// Projection: how long a session lasts (hours); one start and one end per session.
    #[arg(long, default_value_t = 8.0)]
    project_session_hours: f64,
    /// Projection: CPUs of a Tessera node.
    #[arg(long, default_value_t = 8.0)]
    node_cpus: f64,
    /// Projection: the share of a node's CPUs it may use (headroom for bursts).
    #[arg(long, default_value_t = 0.5)]
    node_utilization: f64,
    /// Projection: the share of its one core a Redis shard may use.
    #[arg(long, default_value_t = 0.5)]
    shard_utilization: f64,
    /// Projection: data a Redis shard may hold (GiB).
    #[arg(long, default_value_t = 12.0)]
    shard_data_gib: f64,
    /// Projection: redis-server RSS per live session, each with its own license and device
    /// (the suite's memory step on Redis, 2026-12-06: 352,900 KiB for 100,000).
    #[arg(long, default_value_t = 3614.0)]
    redis_bytes_per_session: f64,
    /// Projection: Tessera RSS per live session on Redis, all-in (same run: 2,076 B).
    #[arg(long, default_value_t = 2076.0)]
    tessera_bytes_per_session: f64,
    /// Where the JSON goes [default: bench/results/<date>-scale-out.json].
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum Topology {
    /// One redis-server.
    Single,
    /// A Redis Cluster of three primaries.
    Cluster,
}

impl Topology {
    fn name(self) -> &'static str {
        match self {
            Topology::Single => "one Redis",
            Topology::Cluster => "Cluster ×3",
        }
    }
}

fn cpus(s: &str) -> Option<String> {
    (s != "none").then(|| s.to_owned())
}

/// The Redis of a topology.
enum Redis {
    Single(RedisServer),
    Cluster(RedisCluster),
}

type Calls = BTreeMap<String, u64>;

impl Redis {
    async fn start(t: Topology, cpus: Option<&str>) -> anyhow::Result<Self> {
        Ok(match t {
            Topology::Single => Redis::Single(start_redis(cpus).await?),
            Topology::Cluster => Redis::Cluster(start_redis_cluster(cpus, 3).await?),
        })
    }

    fn servers(&self) -> Vec<&RedisServer> {
        match self {
            Redis::Single(s) => vec![s],
            Redis::Cluster(c) => c.nodes.iter().collect(),
        }
    }

    fn url(&self) -> String {
        match self {
            Redis::Single(s) => s.url(),
            Redis::Cluster(c) => c.url(),
        }
    }

    fn pids(&self) -> Vec<u32> {
        self.servers().iter().map(|s| s.proc.pid).collect()
    }

    fn calls(&self) -> anyhow::Result<Vec<Calls>> {
        self.servers()
            .iter()
            .map(|s| command_calls(s.addr))
            .collect()
    }

    /// Empties every primary: the next nodes start on a new store.
    fn flush(&self) -> anyhow::Result<()> {
        for s in self.servers() {
            let r = resp(s.addr, &["FLUSHALL"])?;
            if !r.starts_with("+OK") {
                bail!("FLUSHALL on {}: {r}", s.addr);
            }
        }
        Ok(())
    }
}

/// Commands executed between two snapshots, summed over the servers.
fn commands_between(a: &[Calls], b: &[Calls]) -> Calls {
    let mut out = Calls::new();
    for (x, y) in a.iter().zip(b) {
        for (k, v) in diff_calls(x, y) {
            *out.entry(k).or_default() += v;
        }
    }
    out
}

/// Running Tessera nodes on one store.
struct Nodes {
    servers: Vec<TesseraServer>,
    targets: Vec<Arc<Target>>,
}

/// Starts `n` nodes on `redis_url`: the first generates the API key, the others join.
async fn start_nodes(
    args: &Args,
    redis_url: &str,
    n: usize,
    env: &[(String, String)],
) -> anyhow::Result<Nodes> {
    let opts = TesseraOpts {
        bin: args.tessera_bin.clone(),
        backend: Backend::Redis(redis_url.to_owned()),
        cpus: cpus(&args.server_cpus),
        dir: None,
        env: env.to_vec(),
    };
    let first = start_tessera(&opts).await.context("start tessera node 0")?;
    let (api_key, admin_key) = (first.api_key.clone(), first.admin_key.clone());
    let mut servers = vec![first];
    for i in 1..n.max(1) {
        servers.push(
            join_tessera(&opts, &api_key, &admin_key)
                .await
                .with_context(|| format!("start tessera node {i}"))?,
        );
    }
    let targets = servers
        .iter()
        .map(|s| Target::with_admin_key(s.addr, s.api_key.clone(), s.admin_key.clone()))
        .collect();
    Ok(Nodes { servers, targets })
}

impl Nodes {
    fn len(&self) -> usize {
        self.servers.len()
    }

    fn pids(&self) -> Vec<u32> {
        self.servers.iter().map(|s| s.proc.pid).collect()
    }

    async fn counters(&self) -> anyhow::Result<Vec<LicenseCounters>> {
        let mut out = Vec::new();
        for s in &self.servers {
            let m = scrape_metrics(s.addr).await?;
            let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
            out.push(LicenseCounters {
                hits: get("tessera_license_cache_hits_total"),
                loads: get("tessera_license_loads_total"),
                refreshes: get("tessera_license_refreshes_total"),
            });
        }
        Ok(out)
    }

    fn rss_kib(&self) -> Vec<u64> {
        self.servers
            .iter()
            .map(|s| sample(s.proc.pid).map_or(0, |p| p.rss_kib))
            .collect()
    }
}

/// A node's license counters (`/metrics`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct LicenseCounters {
    /// Requests answered from the license in memory.
    hits: f64,
    /// Licenses read from Redis for a request (or the recovery sweep).
    loads: f64,
    /// Licenses read again from Redis because another node changed them.
    refreshes: f64,
}

impl LicenseCounters {
    /// Summed over nodes, `after - before`.
    fn delta(before: &[Self], after: &[Self]) -> Self {
        let mut d = Self::default();
        for (b, a) in before.iter().zip(after) {
            d.hits += a.hits - b.hits;
            d.loads += a.loads - b.loads;
            d.refreshes += a.refreshes - b.refreshes;
        }
        d
    }

    /// License reads from Redis.
    fn reads(&self) -> f64 {
        self.loads + self.refreshes
    }
}

/// The home node of a license: a hash of its key, as a balancer hashing `X-License-Key`.
fn home(key: &str, n: usize) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % n.max(1) as u64) as usize
}

/// What one measured window saw.
struct Window {
    meter: Meter,
    calls: Vec<Calls>,
    counters: Vec<LicenseCounters>,
}

/// What a closed window measured.
#[derive(Debug, Clone, Serialize)]
struct Measured {
    cpu: CpuUse,
    redis_commands: Calls,
    license: LicenseCounters,
}

impl Measured {
    fn commands(&self) -> u64 {
        self.redis_commands.values().sum()
    }

    fn tessera_cpu_secs(&self) -> f64 {
        self.cpu.server_cores * self.cpu.wall_secs
    }

    fn redis_cpu_secs(&self) -> f64 {
        self.cpu.redis_cores * self.cpu.wall_secs
    }

    /// The generator used more CPU than the servers under test (Tessera + Redis).
    fn generator_bound(&self) -> bool {
        self.cpu.generator_cores > self.cpu.server_cores + self.cpu.redis_cores
    }

    /// Other work on the machine used more than 0.3 cores (the suite's threshold).
    fn noisy(&self) -> bool {
        self.cpu.other_cores > 0.3
    }

    fn cores(&self) -> String {
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2}",
            self.cpu.server_cores,
            self.cpu.redis_cores,
            self.cpu.generator_cores,
            self.cpu.other_cores
        )
    }
}

impl Window {
    async fn open(args: &Args, nodes: &Nodes, redis: &Redis) -> anyhow::Result<Self> {
        let busy = if args.wait_quiet_secs > 0 {
            wait_quiet(Duration::from_secs(args.wait_quiet_secs), 0.25).await
        } else {
            0.0
        };
        let counters = nodes.counters().await?;
        let calls = redis.calls()?;
        let meter = Meter::start_many(&nodes.pids(), &redis.pids(), busy)?;
        Ok(Self {
            meter,
            calls,
            counters,
        })
    }

    async fn close(self, nodes: &Nodes, redis: &Redis) -> anyhow::Result<Measured> {
        let cpu = self.meter.stop()?;
        let calls = redis.calls()?;
        let counters = nodes.counters().await?;
        Ok(Measured {
            cpu,
            redis_commands: commands_between(&self.calls, &calls),
            license: LicenseCounters::delta(&self.counters, &counters),
        })
    }
}

fn merge_unexpected(reports: &[Report]) -> Calls {
    let mut out = Calls::new();
    for r in reports {
        for o in &r.ops {
            for (k, v) in &o.unexpected {
                *out.entry(k.clone()).or_default() += v;
            }
        }
    }
    out
}

fn totals(reports: &[Report], op: Op) -> (u64, f64, u64, u64) {
    let mut count = 0;
    let mut per_sec = 0.0;
    let mut p50 = 0;
    let mut p99 = 0;
    for r in reports {
        if let Some(o) = r.op(op) {
            count += o.count;
            per_sec += o.per_sec;
            p50 = p50.max(o.latency_us.p50);
            p99 = p99.max(o.latency_us.p99);
        }
    }
    (count, per_sec, p50, p99)
}

/// One heartbeat phase at saturation.
#[derive(Debug, Clone, Serialize)]
struct HeartbeatRun {
    topology: Topology,
    nodes: usize,
    locality: bool,
    heartbeats: u64,
    per_sec: f64,
    /// wrk's p50 / p99 (service time), the worst node's.
    p50_us: u64,
    p99_us: u64,
    unexpected: Calls,
    measured: Measured,
    tessera_cpu_us_per_hb: f64,
    redis_cpu_us_per_hb: f64,
    redis_cmds_per_hb: f64,
    /// License reads from Redis (loads + refreshes) during the warm-up before the window.
    warmup_license_reads: f64,
    /// License reads from Redis per heartbeat in the window.
    license_reads_per_hb: f64,
    /// Tessera RSS per node at the end (KiB).
    rss_kib: Vec<u64>,
}

async fn wrk_all(
    nodes: &Nodes,
    scripts: &[WrkScript],
    plan: &WrkPlan,
) -> anyhow::Result<Vec<Report>> {
    try_join_all(
        nodes
            .targets
            .iter()
            .zip(scripts)
            .map(|(t, s)| wrk::run(s, t.addr, t.api_key.as_deref(), plan)),
    )
    .await
}

async fn heartbeat_run(
    args: &Args,
    topology: Topology,
    nodes: &Nodes,
    redis: &Redis,
    bodies: &[Vec<Bytes>],
    locality: bool,
) -> anyhow::Result<HeartbeatRun> {
    let n = nodes.len();
    eprintln!(
        "== {} · {n} node(s) · heartbeats, {}: wrk per node, {} connections each",
        topology.name(),
        if locality { "locality" } else { "no locality" },
        (args.conns / n).max(1)
    );
    let scripts = bodies
        .iter()
        .map(|b| WrkScript::new(Op::Heartbeat, api::HEARTBEAT, b, 1))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let plan = |secs: u64| WrkPlan {
        threads: 1,
        conns: (args.conns / n).max(1),
        duration: Duration::from_secs(secs),
        timeout: Duration::from_secs(10),
    };
    let before_warmup = nodes.counters().await?;
    if args.warmup_secs > 0 {
        wrk_all(nodes, &scripts, &plan(args.warmup_secs)).await?;
    }
    let warmup = LicenseCounters::delta(&before_warmup, &nodes.counters().await?);
    let w = Window::open(args, nodes, redis).await?;
    let reports = wrk_all(nodes, &scripts, &plan(args.secs)).await?;
    let m = w.close(nodes, redis).await?;
    let (count, per_sec, p50_us, p99_us) = totals(&reports, Op::Heartbeat);
    let hb = count.max(1) as f64;
    let run = HeartbeatRun {
        topology,
        nodes: n,
        locality,
        heartbeats: count,
        per_sec,
        p50_us,
        p99_us,
        unexpected: merge_unexpected(&reports),
        tessera_cpu_us_per_hb: m.tessera_cpu_secs() * 1e6 / hb,
        redis_cpu_us_per_hb: m.redis_cpu_secs() * 1e6 / hb,
        redis_cmds_per_hb: m.commands() as f64 / hb,
        warmup_license_reads: warmup.reads(),
        license_reads_per_hb: m.license.reads() / hb,
        rss_kib: nodes.rss_kib(),
        measured: m,
    };
    eprintln!(
        "   {:.0}/s; Tessera {:.1} µs/hb, Redis {:.2} µs/hb, {:.4} cmds/hb; license reads: warm-up {:.0}, window {:.0}; cores T/R/G/O {}{}",
        run.per_sec,
        run.tessera_cpu_us_per_hb,
        run.redis_cpu_us_per_hb,
        run.redis_cmds_per_hb,
        run.warmup_license_reads,
        run.measured.license.reads(),
        run.measured.cores(),
        if run.measured.generator_bound() {
            " INVALID (generator-bound)"
        } else {
            ""
        }
    );
    Ok(run)
}

/// One session-start phase.
#[derive(Debug, Clone, Serialize)]
struct StartRun {
    topology: Topology,
    nodes: usize,
    locality: bool,
    starts: u64,
    per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    unexpected: Calls,
    measured: Measured,
    tessera_cpu_us_per_start: f64,
    redis_cpu_us_per_start: f64,
    redis_cmds_per_start: f64,
    license_reads_per_start: f64,
}

type Maker = Arc<dyn Fn(u64) -> JobSpec + Send + Sync>;

fn start_maker(pairs: &Arc<Vec<(String, String)>>, offset: usize) -> Maker {
    let pairs = Arc::clone(pairs);
    Arc::new(move |i| {
        let (k, h) = &pairs[(i as usize + offset) % pairs.len()];
        JobSpec::post(Op::Start, api::START, api::start_body(k, h))
    })
}

async fn closed_all(nodes: &Nodes, makers: &[Maker], conns: usize, secs: u64) -> Vec<Report> {
    futures::future::join_all(nodes.targets.iter().zip(makers).map(|(t, m)| {
        run_closed(
            t,
            conns,
            Duration::ZERO,
            Duration::from_secs(secs),
            None,
            false,
            Arc::clone(m),
        )
    }))
    .await
}

async fn start_run(
    args: &Args,
    topology: Topology,
    nodes: &Nodes,
    redis: &Redis,
    pairs: &[Arc<Vec<(String, String)>>],
    locality: bool,
) -> anyhow::Result<StartRun> {
    let n = nodes.len();
    let conns = (args.start_conns / n).max(1);
    eprintln!(
        "== {} · {n} node(s) · session starts, {}: {conns} connections per node",
        topology.name(),
        if locality { "locality" } else { "no locality" },
    );
    // Without locality every node cycles through all licenses, each from its own offset.
    let makers: Vec<Maker> = pairs
        .iter()
        .enumerate()
        .map(|(j, p)| start_maker(p, j * p.len() / n))
        .collect();
    closed_all(nodes, &makers, conns, 1).await;
    let w = Window::open(args, nodes, redis).await?;
    let reports = closed_all(nodes, &makers, conns, args.start_secs).await;
    let m = w.close(nodes, redis).await?;
    let (count, per_sec, p50_us, p99_us) = totals(&reports, Op::Start);
    let s = count.max(1) as f64;
    let run = StartRun {
        topology,
        nodes: n,
        locality,
        starts: count,
        per_sec,
        p50_us,
        p99_us,
        unexpected: merge_unexpected(&reports),
        tessera_cpu_us_per_start: m.tessera_cpu_secs() * 1e6 / s,
        redis_cpu_us_per_start: m.redis_cpu_secs() * 1e6 / s,
        redis_cmds_per_start: m.commands() as f64 / s,
        license_reads_per_start: m.license.reads() / s,
        measured: m,
    };
    eprintln!(
        "   {:.0}/s; Tessera {:.1} µs/start, Redis {:.1} µs/start, {:.2} cmds/start, {:.3} license reads/start; unexpected {:?}; cores T/R/G/O {}",
        run.per_sec,
        run.tessera_cpu_us_per_start,
        run.redis_cpu_us_per_start,
        run.redis_cmds_per_start,
        run.license_reads_per_start,
        run.unexpected,
        run.measured.cores()
    );
    Ok(run)
}

/// Live sessions and start licenses, each on its home node.
struct Setup {
    /// Heartbeat bodies of the sessions homed on each node.
    bodies_by_node: Vec<Vec<Bytes>>,
    /// Start licenses (key, device) homed on each node.
    start_pairs_by_node: Vec<Vec<(String, String)>>,
    secs: f64,
}

impl Setup {
    fn all_bodies(&self) -> Vec<Bytes> {
        self.bodies_by_node.iter().flatten().cloned().collect()
    }

    fn all_start_pairs(&self) -> Vec<(String, String)> {
        self.start_pairs_by_node.iter().flatten().cloned().collect()
    }
}

fn by_home(pairs: Vec<(String, String)>, n: usize) -> Vec<Vec<(String, String)>> {
    let mut out = vec![Vec::new(); n];
    for p in pairs {
        out[home(&p.0, n)].push(p);
    }
    out
}

async fn setup(nodes: &Nodes, sessions: usize, start_licenses: usize) -> anyhow::Result<Setup> {
    let t = Instant::now();
    let n = nodes.len();
    let first = &nodes.targets[0];
    let one = LicenseLimits {
        max_devices: 1,
        max_sessions: 1,
        max_activations: 0,
    };
    let (keys, _) = api::issue_licenses(first, sessions, one, 4, false).await?;
    let skeys = if start_licenses > 0 {
        let many = LicenseLimits {
            max_sessions: 1_000_000,
            ..one
        };
        api::issue_licenses(first, start_licenses, many, 4, false)
            .await?
            .0
    } else {
        Vec::new()
    };
    let pairs = by_home(
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), api::hw(i)))
            .collect(),
        n,
    );
    let spairs = by_home(
        skeys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), api::hw(1_000_000 + i)))
            .collect(),
        n,
    );
    let conns = (32 / n).max(4);
    try_join_all(nodes.targets.iter().enumerate().map(|(j, t)| {
        let mut all = pairs[j].clone();
        all.extend(spairs[j].iter().cloned());
        async move { api::activate_all(t, &all, conns, false).await }
    }))
    .await?;
    let started = try_join_all(
        nodes
            .targets
            .iter()
            .zip(&pairs)
            .map(|(t, p)| api::start_all(t, p, conns, false)),
    )
    .await?;
    let bodies_by_node = started
        .iter()
        .map(|(live, _)| {
            live.iter()
                .map(|s| api::heartbeat_body(&s.token, &s.key))
                .collect()
        })
        .collect();
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "   setup: {sessions} sessions and {start_licenses} start licenses on {n} node(s) in {secs:.1} s"
    );
    Ok(Setup {
        bodies_by_node,
        start_pairs_by_node: spairs,
        secs,
    })
}

/// One topology and node count.
#[derive(Debug, Clone, Serialize)]
struct ConfigResult {
    topology: Topology,
    nodes: usize,
    setup_secs: f64,
    heartbeats: Vec<HeartbeatRun>,
    starts: Vec<StartRun>,
}

async fn measure_config(
    args: &Args,
    topology: Topology,
    redis: &Redis,
    n: usize,
    env: &[(String, String)],
) -> anyhow::Result<ConfigResult> {
    redis.flush()?;
    let nodes = start_nodes(args, &redis.url(), n, env).await?;
    eprintln!("== {} · {n} node(s): started", topology.name());
    let s = setup(&nodes, args.sessions, args.start_licenses).await?;
    let mut heartbeats =
        vec![heartbeat_run(args, topology, &nodes, redis, &s.bodies_by_node, true).await?];
    if n > 1 {
        let all = s.all_bodies();
        let spread: Vec<Vec<Bytes>> = (0..n)
            .map(|j| {
                let mut b = all.clone();
                b.rotate_left(j * all.len() / n);
                b
            })
            .collect();
        heartbeats.push(heartbeat_run(args, topology, &nodes, redis, &spread, false).await?);
    }
    let mut starts = Vec::new();
    if args.start_licenses > 0 {
        let local: Vec<Arc<Vec<(String, String)>>> = s
            .start_pairs_by_node
            .iter()
            .map(|p| Arc::new(p.clone()))
            .collect();
        starts.push(start_run(args, topology, &nodes, redis, &local, true).await?);
        if n > 1 {
            let all = Arc::new(s.all_start_pairs());
            let spread = vec![all; n];
            starts.push(start_run(args, topology, &nodes, redis, &spread, false).await?);
        }
    }
    Ok(ConfigResult {
        topology,
        nodes: n,
        setup_secs: s.secs,
        heartbeats,
        starts,
    })
}

/// Every session heartbeating once per interval, after an idle window.
#[derive(Debug, Clone, Serialize)]
struct PacedRun {
    topology: Topology,
    nodes: usize,
    sessions: usize,
    interval_secs: u64,
    /// The nodes idle (no requests): their background work.
    idle: Measured,
    heartbeats: u64,
    per_sec: f64,
    p99_us: u64,
    unexpected: Calls,
    measured: Measured,
    tessera_cpu_us_per_hb: f64,
    /// Net of the idle window's rate.
    tessera_cpu_us_per_hb_net: f64,
    redis_cpu_us_per_hb: f64,
    redis_cpu_us_per_hb_net: f64,
    redis_cmds_per_hb: f64,
    redis_cmds_per_hb_net: f64,
    /// Per node and second while idle.
    idle_redis_cpu_us_per_node_sec: f64,
    idle_redis_cmds_per_node_sec: f64,
}

async fn paced_run(
    args: &Args,
    topology: Topology,
    redis: &Redis,
    n: usize,
    env: &[(String, String)],
) -> anyhow::Result<PacedRun> {
    let p = args.paced_interval_secs;
    redis.flush()?;
    let mut env = env.to_vec();
    for (k, v) in [
        ("TESSERA_SESSIONS_HEARTBEAT_INTERVAL_SECS", p),
        ("TESSERA_SESSIONS_HEARTBEAT_TIMEOUT_SECS", 3 * p),
        ("TESSERA_SESSIONS_GRACE_SECS", p),
    ] {
        env.push((k.to_owned(), v.to_string()));
    }
    let nodes = start_nodes(args, &redis.url(), n, &env).await?;
    eprintln!(
        "== {} · {n} node(s) · paced: idle {} s, then every session once per {p} s",
        topology.name(),
        args.idle_secs
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let w = Window::open(args, &nodes, redis).await?;
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle = w.close(&nodes, redis).await?;
    let s = setup(&nodes, args.sessions, 0).await?;
    let run = |secs: u64, sessions: usize| RateRun {
        rate: sessions as f64 / p as f64,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(secs),
        conns: 8,
        tick: Duration::from_micros(200),
        drain: Duration::from_secs(5),
        progress: false,
    };
    let paced =
        |secs: u64| {
            futures::future::join_all(nodes.targets.iter().zip(&s.bodies_by_node).map(
                move |(t, b)| {
                    let r = run(secs, b.len());
                    let make = heartbeat::maker(b.clone());
                    async move { run_rate(t, &r, make).await }
                },
            ))
        };
    paced(p).await;
    let w = Window::open(args, &nodes, redis).await?;
    let reports = paced(args.paced_secs).await;
    let m = w.close(&nodes, redis).await?;
    let (count, per_sec, _, p99_us) = totals(&reports, Op::Heartbeat);
    let hb = count.max(1) as f64;
    let scale = m.cpu.wall_secs / idle.cpu.wall_secs.max(1e-9);
    let idle_redis = idle.redis_cpu_secs() * scale;
    let idle_tessera = idle.tessera_cpu_secs() * scale;
    let idle_cmds = idle.commands() as f64 * scale;
    let r = PacedRun {
        topology,
        nodes: n,
        sessions: args.sessions,
        interval_secs: p,
        heartbeats: count,
        per_sec,
        p99_us,
        unexpected: merge_unexpected(&reports),
        tessera_cpu_us_per_hb: m.tessera_cpu_secs() * 1e6 / hb,
        tessera_cpu_us_per_hb_net: (m.tessera_cpu_secs() - idle_tessera).max(0.0) * 1e6 / hb,
        redis_cpu_us_per_hb: m.redis_cpu_secs() * 1e6 / hb,
        redis_cpu_us_per_hb_net: (m.redis_cpu_secs() - idle_redis).max(0.0) * 1e6 / hb,
        redis_cmds_per_hb: m.commands() as f64 / hb,
        redis_cmds_per_hb_net: (m.commands() as f64 - idle_cmds).max(0.0) / hb,
        idle_redis_cpu_us_per_node_sec: idle.redis_cpu_secs() * 1e6
            / idle.cpu.wall_secs.max(1e-9)
            / n as f64,
        idle_redis_cmds_per_node_sec: idle.commands() as f64
            / idle.cpu.wall_secs.max(1e-9)
            / n as f64,
        idle,
        measured: m,
    };
    eprintln!(
        "   {:.0} hb/s; Redis {:.2} µs/hb net ({:.2} gross), {:.4} cmds/hb net ({:.4} gross) {:?}; idle per node: {:.0} µs/s, {:.1} cmds/s",
        r.per_sec,
        r.redis_cpu_us_per_hb_net,
        r.redis_cpu_us_per_hb,
        r.redis_cmds_per_hb_net,
        r.redis_cmds_per_hb,
        r.measured.redis_commands,
        r.idle_redis_cpu_us_per_node_sec,
        r.idle_redis_cmds_per_node_sec
    );
    Ok(r)
}

// --- item 4: a replica's acknowledgement -------------------------------------------------

#[derive(Debug, Clone, Serialize)]
struct WaitPhase {
    label: String,
    round: u32,
    starts_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    unexpected: Calls,
    tessera_cpu_us_per_start: f64,
    primary_cpu_us_per_start: f64,
    replica_cpu_us_per_start: f64,
}

#[derive(Debug, Clone, Serialize)]
struct RoundTrips {
    write: String,
    conns: usize,
    ops: u64,
    per_sec: f64,
    p50_us: u64,
    p99_us: u64,
}

#[derive(Debug, Clone, Serialize)]
struct WaitResult {
    conns: usize,
    phases: Vec<WaitPhase>,
    round_trips: Vec<RoundTrips>,
}

fn resp_cmd(args: &[&str]) -> Vec<u8> {
    let mut s = format!("*{}\r\n", args.len());
    for a in args {
        let _ = write!(s, "${}\r\n{a}\r\n", a.len());
    }
    s.into_bytes()
}

/// `conns` connections each sending `SET` (with `wait`: `SET` and `WAIT 1 0` in one
/// write, answered when the replica has acknowledged) back to back for `secs`.
async fn round_trips(
    addr: SocketAddr,
    conns: usize,
    wait: bool,
    secs: u64,
) -> anyhow::Result<RoundTrips> {
    let end = Instant::now() + Duration::from_secs(secs);
    let tasks = (0..conns).map(|c| async move {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let value = "v".repeat(100);
        let mut line = String::new();
        let mut i = 0u64;
        while Instant::now() < end {
            let key = format!("bench:wait:{c}:{}", i % 1000);
            let mut buf = resp_cmd(&["SET", &key, &value]);
            if wait {
                buf.extend(resp_cmd(&["WAIT", "1", "0"]));
            }
            let t = Instant::now();
            w.write_all(&buf).await?;
            for _ in 0..if wait { 2 } else { 1 } {
                line.clear();
                r.read_line(&mut line).await?;
                if line.starts_with('-') || line.is_empty() {
                    bail!("Redis answered {line:?}");
                }
            }
            if wait && line.trim_end() != ":1" {
                bail!("WAIT 1 0 answered {line:?}");
            }
            h.saturating_record((t.elapsed().as_micros() as u64).max(1));
            i += 1;
        }
        Ok::<_, anyhow::Error>(h)
    });
    let hs = try_join_all(tasks).await?;
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for h in &hs {
        all.add(h)?;
    }
    Ok(RoundTrips {
        write: if wait { "SET + WAIT 1 0" } else { "SET" }.to_owned(),
        conns,
        ops: all.len(),
        per_sec: all.len() as f64 / secs as f64,
        p50_us: all.value_at_quantile(0.5),
        p99_us: all.value_at_quantile(0.99),
    })
}

async fn replica_cost(args: &Args, env: &[(String, String)]) -> anyhow::Result<WaitResult> {
    let cpus = cpus(&args.server_cpus);
    let primary = start_redis(cpus.as_deref()).await?;
    let port = primary.addr.port().to_string();
    let replica = start_redis_with(cpus.as_deref(), &["--replicaof", "127.0.0.1", &port]).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !resp(replica.addr, &["INFO", "replication"])?.contains("master_link_status:up") {
        if Instant::now() > deadline {
            bail!("the replica did not sync");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let server = start_tessera(&TesseraOpts {
        bin: args.tessera_bin.clone(),
        backend: Backend::Redis(primary.url()),
        cpus: cpus.clone(),
        dir: None,
        env: env.to_vec(),
    })
    .await?;
    let target = Target::with_admin_key(
        server.addr,
        server.api_key.clone(),
        server.admin_key.clone(),
    );
    let limits = LicenseLimits {
        max_devices: 1,
        max_sessions: 1_000_000,
        max_activations: 0,
    };
    let licenses = args.start_licenses.clamp(1, 2000);
    let (keys, _) = api::issue_licenses(&target, licenses, limits, 4, false).await?;
    let pairs: Vec<(String, String)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), api::hw(i)))
        .collect();
    api::activate_all(&target, &pairs, 16, false).await?;
    let make = start_maker(&Arc::new(pairs), 0);
    let conns = args.start_conns;
    let closed = |secs: u64| {
        run_closed(
            &target,
            conns,
            Duration::ZERO,
            Duration::from_secs(secs),
            None,
            false,
            Arc::clone(&make),
        )
    };
    closed(1).await;
    let mut phases = Vec::new();
    for round in 1..=2 {
        for (label, to_write) in [("as is", "0"), ("min-replicas-to-write 1, max-lag 10", "1")] {
            eprintln!("== replica · session starts, {label} (round {round})");
            resp(
                primary.addr,
                &["CONFIG", "SET", "min-replicas-max-lag", "10"],
            )?;
            resp(
                primary.addr,
                &["CONFIG", "SET", "min-replicas-to-write", to_write],
            )?;
            let replica0 = sample(replica.proc.pid)?.cpu_secs;
            let meter = Meter::start_many(&[server.proc.pid], &[primary.proc.pid], 0.0)?;
            let report = closed(args.start_secs).await;
            let cpu = meter.stop()?;
            let replica_secs = sample(replica.proc.pid)?.cpu_secs - replica0;
            let o = report.op(Op::Start).context("no starts")?;
            let s = o.count.max(1) as f64;
            let ph = WaitPhase {
                label: label.to_owned(),
                round,
                starts_per_sec: o.per_sec,
                p50_us: o.latency_us.p50,
                p99_us: o.latency_us.p99,
                unexpected: o.unexpected.clone(),
                tessera_cpu_us_per_start: cpu.server_cores * cpu.wall_secs * 1e6 / s,
                primary_cpu_us_per_start: cpu.redis_cores * cpu.wall_secs * 1e6 / s,
                replica_cpu_us_per_start: replica_secs * 1e6 / s,
            };
            eprintln!(
                "   {:.0}/s p50 {} p99 {}; unexpected {:?}",
                ph.starts_per_sec,
                fmt_us(ph.p50_us),
                fmt_us(ph.p99_us),
                ph.unexpected
            );
            phases.push(ph);
        }
    }
    resp(
        primary.addr,
        &["CONFIG", "SET", "min-replicas-to-write", "0"],
    )?;
    drop(server);
    let mut rts = Vec::new();
    for c in [1, conns] {
        for wait in [false, true] {
            let r = round_trips(primary.addr, c, wait, 3).await?;
            eprintln!(
                "== replica · {} on {c} connection(s): {:.0}/s p50 {} p99 {}",
                r.write,
                r.per_sec,
                fmt_us(r.p50_us),
                fmt_us(r.p99_us)
            );
            rts.push(r);
        }
    }
    Ok(WaitResult {
        conns,
        phases,
        round_trips: rts,
    })
}

// --- the paper projection ----------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
struct Projection {
    topology: Topology,
    /// The measured inputs.
    tessera_cpu_us_per_hb: f64,
    tessera_cpu_us_per_start: f64,
    redis_cpu_us_per_hb: f64,
    redis_cmds_per_hb: f64,
    redis_cpu_us_per_start: f64,
    redis_cmds_per_start: f64,
    idle_redis_cpu_us_per_node_sec: f64,
    idle_redis_cmds_per_node_sec: f64,
    /// The arithmetic.
    heartbeats_per_sec: f64,
    starts_per_sec: f64,
    tessera_cores: f64,
    nodes_for_cpu: f64,
    nodes: f64,
    tessera_mib_per_node: f64,
    redis_cores: f64,
    redis_cmds_per_sec: f64,
    shards_for_cpu: f64,
    redis_gib: f64,
    shards_for_memory: f64,
    shards: f64,
    lines: Vec<String>,
}

fn project(
    args: &Args,
    topology: Topology,
    configs: &[ConfigResult],
    paced: &[PacedRun],
) -> Option<Projection> {
    let one = configs
        .iter()
        .find(|c| c.topology == topology && c.nodes == 1)
        .or_else(|| configs.iter().find(|c| c.topology == topology))?;
    let hb = one.heartbeats.iter().find(|h| h.locality)?;
    let st = one.starts.iter().find(|s| s.locality)?;
    let pc = paced.iter().find(|p| p.topology == topology)?;
    let s = args.project_sessions as f64;
    let hb_rate = s / args.project_interval_secs;
    let start_rate = s / (args.project_session_hours * 3600.0);
    // One end per start; an end is one script like a start (not measured here).
    let durable = 2.0 * start_rate;
    let t_cores =
        (hb_rate * hb.tessera_cpu_us_per_hb + durable * st.tessera_cpu_us_per_start) / 1e6;
    let per_node = args.node_cpus * args.node_utilization;
    let nodes_cpu = (t_cores / per_node).ceil().max(1.0);
    let nodes = nodes_cpu + 1.0;
    let t_mib = s / nodes_cpu * args.tessera_bytes_per_session / (1 << 20) as f64;
    let r_cores = (hb_rate * pc.redis_cpu_us_per_hb_net
        + durable * st.redis_cpu_us_per_start
        + nodes * pc.idle_redis_cpu_us_per_node_sec)
        / 1e6;
    let r_cmds = hb_rate * pc.redis_cmds_per_hb_net
        + durable * st.redis_cmds_per_start
        + nodes * pc.idle_redis_cmds_per_node_sec;
    let shards_cpu = (r_cores / args.shard_utilization).ceil().max(1.0);
    let r_gib = s * args.redis_bytes_per_session / (1u64 << 30) as f64;
    let shards_mem = (r_gib / args.shard_data_gib).ceil().max(1.0);
    let shards = shards_cpu.max(shards_mem);
    let lines = vec![
        format!(
            "heartbeats: {s:.0} sessions / {} s = {hb_rate:.0}/s; starts: {s:.0} / ({} h × 3600 s) = {start_rate:.0}/s, and as many ends (an end counted as a start: one script each, not measured)",
            args.project_interval_secs, args.project_session_hours
        ),
        format!(
            "Tessera CPU: {hb_rate:.0} × {:.1} µs + {durable:.0} × {:.1} µs = {t_cores:.2} cores → ⌈{t_cores:.2} / ({} CPUs × {})⌉ = {nodes_cpu:.0} nodes, + 1 spare = {nodes:.0}",
            hb.tessera_cpu_us_per_hb,
            st.tessera_cpu_us_per_start,
            args.node_cpus,
            args.node_utilization
        ),
        format!(
            "Tessera memory (locality: each node holds its share): {s:.0} / {nodes_cpu:.0} × {:.0} B = {t_mib:.0} MiB per node",
            args.tessera_bytes_per_session
        ),
        format!(
            "Redis CPU: {hb_rate:.0} × {:.2} µs + {durable:.0} × {:.1} µs + {nodes:.0} nodes × {:.0} µs/s idle = {r_cores:.2} cores → ⌈{r_cores:.2} / {}⌉ = {shards_cpu:.0} shard(s) by CPU",
            pc.redis_cpu_us_per_hb_net,
            st.redis_cpu_us_per_start,
            pc.idle_redis_cpu_us_per_node_sec,
            args.shard_utilization
        ),
        format!(
            "Redis commands: {hb_rate:.0} × {:.4} + {durable:.0} × {:.2} + {nodes:.0} × {:.1} = {r_cmds:.0}/s ({:.0}/s per shard at {shards:.0} shards)",
            pc.redis_cmds_per_hb_net,
            st.redis_cmds_per_start,
            pc.idle_redis_cmds_per_node_sec,
            r_cmds / shards
        ),
        format!(
            "Redis memory: {s:.0} × {:.0} B = {r_gib:.1} GiB → ⌈{r_gib:.1} / {}⌉ = {shards_mem:.0} shard(s) by memory; shards = max = {shards:.0}",
            args.redis_bytes_per_session, args.shard_data_gib
        ),
    ];
    Some(Projection {
        topology,
        tessera_cpu_us_per_hb: hb.tessera_cpu_us_per_hb,
        tessera_cpu_us_per_start: st.tessera_cpu_us_per_start,
        redis_cpu_us_per_hb: pc.redis_cpu_us_per_hb_net,
        redis_cmds_per_hb: pc.redis_cmds_per_hb_net,
        redis_cpu_us_per_start: st.redis_cpu_us_per_start,
        redis_cmds_per_start: st.redis_cmds_per_start,
        idle_redis_cpu_us_per_node_sec: pc.idle_redis_cpu_us_per_node_sec,
        idle_redis_cmds_per_node_sec: pc.idle_redis_cmds_per_node_sec,
        heartbeats_per_sec: hb_rate,
        starts_per_sec: start_rate,
        tessera_cores: t_cores,
        nodes_for_cpu: nodes_cpu,
        nodes,
        tessera_mib_per_node: t_mib,
        redis_cores: r_cores,
        redis_cmds_per_sec: r_cmds,
        shards_for_cpu: shards_cpu,
        redis_gib: r_gib,
        shards_for_memory: shards_mem,
        shards,
        lines,
    })
}

// --- output ------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
struct Output {
    date: String,
    command: String,
    machine: BTreeMap<String, String>,
    pinning: BTreeMap<String, String>,
    params: serde_json::Value,
    configs: Vec<ConfigResult>,
    paced: Vec<PacedRun>,
    replica: Option<WaitResult>,
    projections: Vec<Projection>,
    markdown: String,
}

fn balancing(locality: bool) -> &'static str {
    if locality {
        "hash (locality)"
    } else {
        "spread (none)"
    }
}

fn flags(m: &Measured) -> String {
    let mut f = Vec::new();
    if m.generator_bound() {
        f.push("**invalid**: generator-bound");
    }
    if m.noisy() {
        f.push("noisy");
    }
    if f.is_empty() {
        "valid".to_owned()
    } else {
        f.join(", ")
    }
}

fn unexpected(u: &Calls) -> String {
    if u.is_empty() {
        "0".to_owned()
    } else {
        u.iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn markdown(o: &Output) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| Redis | nodes | balancing | heartbeats/s | × 1 node | Tessera CPU µs/hb | Redis CPU µs/hb | Redis cmds/hb | license reads from Redis: warm-up | per 1,000 hb in the window | p99 (worst node) | cores Tessera / Redis / generator / other | run |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    );
    for c in &o.configs {
        let base = o
            .configs
            .iter()
            .find(|x| x.topology == c.topology && x.nodes == 1)
            .and_then(|x| x.heartbeats.first())
            .map(|h| h.per_sec);
        for h in &c.heartbeats {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {} | {:.1} | {:.2} | {:.4} | {:.0} | {:.3} | {} | {} | {}{} |",
                c.topology.name(),
                c.nodes,
                balancing(h.locality),
                h.per_sec,
                base.map_or("–".to_owned(), |b| format!(
                    "{:.2}",
                    h.per_sec / b.max(1.0)
                )),
                h.tessera_cpu_us_per_hb,
                h.redis_cpu_us_per_hb,
                h.redis_cmds_per_hb,
                h.warmup_license_reads,
                h.license_reads_per_hb * 1000.0,
                fmt_us(h.p99_us),
                h.measured.cores(),
                flags(&h.measured),
                if h.unexpected.is_empty() {
                    String::new()
                } else {
                    format!("; unexpected {}", unexpected(&h.unexpected))
                }
            );
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| Redis | nodes | balancing | durable starts/s | Tessera CPU µs/start | Redis CPU µs/start | Redis cmds/start | license reads from Redis per start | p99 (worst node) | unexpected | cores Tessera / Redis / generator / other | run |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|---|"
    );
    for c in &o.configs {
        for st in &c.starts {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.2} | {:.3} | {} | {} | {} | {} |",
                c.topology.name(),
                c.nodes,
                balancing(st.locality),
                st.per_sec,
                st.tessera_cpu_us_per_start,
                st.redis_cpu_us_per_start,
                st.redis_cmds_per_start,
                st.license_reads_per_start,
                fmt_us(st.p99_us),
                unexpected(&st.unexpected),
                st.measured.cores(),
                flags(&st.measured),
            );
        }
    }
    if !o.paced.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| Redis | nodes | sessions, one heartbeat per | heartbeats/s | Redis CPU µs/hb net (gross) | Redis cmds/hb net (gross) | commands in the window | idle, per node: Redis CPU µs/s, cmds/s | Tessera CPU µs/hb net (gross) | unexpected |"
        );
        let _ = writeln!(s, "|---|---:|---|---:|---:|---:|---|---:|---:|---|");
        for p in &o.paced {
            let cmds = p
                .measured
                .redis_commands
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                s,
                "| {} | {} | {} per {} s | {:.0} | {:.2} ({:.2}) | {:.4} ({:.4}) | {} | {:.0}, {:.1} | {:.1} ({:.1}) | {} |",
                p.topology.name(),
                p.nodes,
                p.sessions,
                p.interval_secs,
                p.per_sec,
                p.redis_cpu_us_per_hb_net,
                p.redis_cpu_us_per_hb,
                p.redis_cmds_per_hb_net,
                p.redis_cmds_per_hb,
                cmds,
                p.idle_redis_cpu_us_per_node_sec,
                p.idle_redis_cmds_per_node_sec,
                p.tessera_cpu_us_per_hb_net,
                p.tessera_cpu_us_per_hb,
                unexpected(&p.unexpected),
            );
        }
    }
    if let Some(w) = &o.replica {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| primary with one replica, {} connections | round | durable starts/s | p50 | p99 | Tessera CPU µs/start | primary CPU µs/start | replica CPU µs/start | unexpected |",
            w.conns
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
        for p in &w.phases {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} | {:.1} | {:.1} | {:.1} | {} |",
                p.label,
                p.round,
                p.starts_per_sec,
                fmt_us(p.p50_us),
                fmt_us(p.p99_us),
                p.tessera_cpu_us_per_start,
                p.primary_cpu_us_per_start,
                p.replica_cpu_us_per_start,
                unexpected(&p.unexpected),
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| Redis round trip | connections | per second | p50 | p99 |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        for r in &w.round_trips {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} |",
                r.write,
                r.conns,
                r.per_sec,
                fmt_us(r.p50_us),
                fmt_us(r.p99_us)
            );
        }
    }
    for p in &o.projections {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Projection from the {} measurements: {:.0} nodes, {:.0} Redis shard(s).",
            p.topology.name(),
            p.nodes,
            p.shards
        );
        for l in &p.lines {
            let _ = writeln!(s, "- {l}");
        }
    }
    s
}

async fn run(args: Args) -> anyhow::Result<()> {
    if !wrk::available() {
        bail!("wrk is not installed: `apt-get install wrk` (bash bench/scale_out.sh does)");
    }
    let started = chrono::Utc::now();
    let mut args = args;
    args.tessera_bin = std::fs::canonicalize(&args.tessera_bin).with_context(|| {
        format!(
            "{} not found: cargo build --release -p tessera",
            args.tessera_bin.display()
        )
    })?;
    // The suite's configuration (rate limits on, the per-address classes raised), and the
    // per-token heartbeat limit raised too: 20,000 sessions at saturation heartbeat several
    // times a second each. Heartbeats still pay every limiter lookup.
    let mut env = suite_env(&args.tessera_bin);
    env.push((
        "TESSERA_RATE_LIMIT_HEARTBEAT_PER_MINUTE".to_owned(),
        "100000000".to_owned(),
    ));
    let max_nodes = args.nodes.iter().copied().max().unwrap_or(1);
    let mut configs = Vec::new();
    let mut paced = Vec::new();
    for &t in &args.topologies {
        eprintln!("== {}: starting Redis", t.name());
        let redis = Redis::start(t, cpus(&args.server_cpus).as_deref()).await?;
        for &n in &args.nodes {
            configs.push(measure_config(&args, t, &redis, n, &env).await?);
        }
        if args.paced_interval_secs > 0 {
            paced.push(paced_run(&args, t, &redis, max_nodes, &env).await?);
        }
    }
    let replica = if args.no_wait {
        None
    } else {
        Some(replica_cost(&args, &env).await?)
    };
    let projections = args
        .topologies
        .iter()
        .filter_map(|t| project(&args, *t, &configs, &paced))
        .collect();
    let mut pinning = BTreeMap::new();
    pinning.insert("servers".to_owned(), args.server_cpus.clone());
    pinning.insert("generator".to_owned(), args.generator_cpus.clone());
    let mut out = Output {
        date: started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: machine(),
        pinning,
        params: serde_json::json!({
            "sessions": args.sessions,
            "start_licenses": args.start_licenses,
            "secs": args.secs,
            "warmup_secs": args.warmup_secs,
            "start_secs": args.start_secs,
            "conns": args.conns,
            "start_conns": args.start_conns,
            "paced_interval_secs": args.paced_interval_secs,
            "paced_secs": args.paced_secs,
            "idle_secs": args.idle_secs,
            "redis_persistence": "none (--save \"\" --appendonly no)",
            "tessera_env": env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        }),
        configs,
        paced,
        replica,
        projections,
        markdown: String::new(),
    };
    out.markdown = markdown(&out);
    println!("{}", out.markdown);
    let path = args.json.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "bench/results/{}-scale-out.json",
            started.format("%Y-%m-%d")
        ))
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&out)?)
        .with_context(|| format!("write {}", path.display()))?;
    eprintln!(
        "wrote {} ({:.0} s in all)",
        path.display(),
        (chrono::Utc::now() - started).num_seconds()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(c) = cpus(&args.generator_cpus) {
        // Before the runtime starts, so every thread (and each wrk it spawns) inherits it.
        pin_self(&c)?;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}
