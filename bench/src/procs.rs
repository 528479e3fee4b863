//! Starting and observing the processes a run needs: Tessera, a private `redis-server`,
//! the baseline. Every process is started here, pinned with `taskset` when asked, killed by
//! its own pid on drop, and observed through `/proc/<pid>`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hyper::Method;
use tempfile::TempDir;

use crate::http::{CallResult, Conn, Target};

/// A child process, killed (SIGKILL, by pid) and reaped on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    /// Its pid (the server itself: `taskset` execs it).
    pub pid: u32,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with output to `log`, optionally under `taskset -c cpus`.
    pub fn spawn(
        program: &Path,
        args: &[String],
        cpus: Option<&str>,
        env: &[(String, String)],
        cwd: &Path,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let out =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = match cpus {
            Some(c) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(c).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", program.display()))?;
        Ok(Self {
            pid: child.id(),
            child,
            log,
        })
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `n` bytes of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = s.len().saturating_sub(n);
        let start = (start..s.len())
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(s.len());
        s[start..].to_owned()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; a tiny race is accepted).
pub fn free_port() -> anyhow::Result<u16> {
    let l = StdListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Memory and CPU of a process, from `/proc/<pid>`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ProcSample {
    /// Resident set size (KiB), `VmRSS`.
    pub rss_kib: u64,
    /// Peak resident set size (KiB), `VmHWM`.
    pub hwm_kib: u64,
    /// User + system CPU time consumed so far (seconds).
    pub cpu_secs: f64,
    /// Threads.
    pub threads: u64,
}

fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Samples `/proc/<pid>/status` and `/proc/<pid>/stat` (`pid` 0 = this process).
pub fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let dir = if pid == 0 {
        "/proc/self".to_owned()
    } else {
        format!("/proc/{pid}")
    };
    let status = std::fs::read_to_string(format!("{dir}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat"))?;
    // Fields after the parenthesised command name: state is field 3; utime 14, stime 15.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(ProcSample {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        cpu_secs: (ticks(14) + ticks(15)) as f64 / clk_tck(),
        threads: field("Threads:"),
    })
}

/// CPU time of this process's waited-for children (`cutime + cstime` of
/// `/proc/self/stat`, seconds): a child such as `wrk` counts once it has been reaped.
pub fn children_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 16 (cutime) and 17 (cstime); `f[0]` is field 3.
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(16) + ticks(17)) as f64 / clk_tck()
}

/// CPUs this process may run on (`Cpus_allowed_list`), e.g. `"0-1"`.
pub fn allowed_cpus() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default()
}

/// Pins this process (all of its threads existing now, and every thread created later) to
/// `cpus` with `taskset`. Call it before starting the async runtime.
pub fn pin_self(cpus: &str) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .context("run taskset")?;
    if !status.success() {
        bail!("taskset -c {cpus} failed: {status}");
    }
    Ok(())
}

/// Polls `GET /health` until it answers 200 or `timeout` passes; fails early if `proc`
/// exits, with its log tail.
pub async fn wait_healthy(
    addr: SocketAddr,
    proc: &mut Proc,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let target = Target::new(addr, None);
    loop {
        if let Some(status) = proc.exited() {
            bail!(ExitedEarly {
                status: status.to_string(),
                log: proc.log_tail(2000),
            });
        }
        let mut conn = Conn::new(Arc::clone(&target));
        if let CallResult::Http { status: 200, .. } =
            conn.call(Method::GET, "/health", bytes::Bytes::new()).await
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{addr} not healthy after {timeout:?}; log:\n{}",
                proc.log_tail(2000)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server process that exited during start-up.
#[derive(Debug)]
pub struct ExitedEarly {
    /// Exit status.
    pub status: String,
    /// Its last output.
    pub log: String,
}

impl std::error::Error for ExitedEarly {}

impl std::fmt::Display for ExitedEarly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exited during start-up ({}):\n{}", self.status, self.log)
    }
}

/// Which store a Tessera server runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The embedded redb file in the server's data dir.
    Embedded,
    /// Redis at this URL.
    Redis(String),
}

/// How to start Tessera.
#[derive(Debug, Clone)]
pub struct TesseraOpts {
    /// The `tessera` binary.
    pub bin: PathBuf,
    /// Store backend.
    pub backend: Backend,
    /// CPUs to pin to (`taskset -c`), if any.
    pub cpus: Option<String>,
    /// Directory for the data dir, key file and log; a temp dir under the system temp
    /// dir when `None`.
    pub dir: Option<PathBuf>,
    /// Extra `TESSERA_*` variables.
    pub env: Vec<(String, String)>,
}

/// A running Tessera server.
#[derive(Debug)]
pub struct TesseraServer {
    /// The process.
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The system API key it generated.
    pub api_key: String,
    /// An admin key made with `tessera admin-key create` before start: `licenses:write`
    /// from [`start_tessera`], the scopes asked for from [`start_tessera_with_scopes`].
    pub admin_key: String,
    _dir: Option<TempDir>,
}

/// Starts Tessera with rate limits off and warnings-only logs, waits for `/health` and
/// reads the generated API key. Its admin key has `licenses:write`.
pub async fn start_tessera(opts: &TesseraOpts) -> anyhow::Result<TesseraServer> {
    start_tessera_with_scopes(opts, "licenses:write").await
}

/// [`start_tessera`], with an admin key of `scopes` (comma-separated, as
/// `tessera admin-key create --scopes` takes them, e.g. `licenses:write,webhooks:write`).
pub async fn start_tessera_with_scopes(
    opts: &TesseraOpts,
    scopes: &str,
) -> anyhow::Result<TesseraServer> {
    start_inner(opts, Keys::Generate { scopes }).await
}

/// Starts another Tessera on a shared store (Redis) that already holds `api_key`, the
/// system API key a first server generated (a server writes its key file only when it
/// generates the key). `admin_key` is one made for that store, e.g. the first server's.
pub async fn join_tessera(
    opts: &TesseraOpts,
    api_key: &str,
    admin_key: &str,
) -> anyhow::Result<TesseraServer> {
    start_inner(opts, Keys::Existing { api_key, admin_key }).await
}

/// Where a started server's keys come from.
enum Keys<'a> {
    /// A new admin key of these scopes; the server generates the API key.
    Generate { scopes: &'a str },
    /// The store already holds both.
    Existing {
        api_key: &'a str,
        admin_key: &'a str,
    },
}

async fn start_inner(opts: &TesseraOpts, keys: Keys<'_>) -> anyhow::Result<TesseraServer> {
    let (tmp, dir) = match &opts.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            (None, d.clone())
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("tessera-bench-")
                .tempdir()?;
            let p = t.path().to_owned();
            (Some(t), p)
        }
    };
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let key_file = dir.join("api_key");
    let _ = std::fs::remove_file(&key_file);
    let mut env: Vec<(String, String)> = vec![
        ("TESSERA_SERVER_LISTEN_ADDR".into(), addr.to_string()),
        (
            "TESSERA_STORE_DATA_DIR".into(),
            dir.join("data").display().to_string(),
        ),
        (
            "TESSERA_AUTH_API_KEY_FILE".into(),
            key_file.display().to_string(),
        ),
        ("TESSERA_RATE_LIMIT_ENABLED".into(), "false".into()),
        ("TESSERA_LOG_LEVEL".into(), "warn".into()),
    ];
    if let Backend::Redis(url) = &opts.backend {
        env.push(("TESSERA_STORE_BACKEND".into(), "redis".into()));
        env.push(("TESSERA_STORE_REDIS_URL".into(), url.clone()));
    }
    env.extend(opts.env.iter().cloned());
    let admin_key = match keys {
        Keys::Generate { scopes } => create_admin_key(&opts.bin, &env, &dir, scopes)?,
        Keys::Existing { admin_key, .. } => admin_key.to_owned(),
    };
    let mut proc = Proc::spawn(
        &opts.bin,
        &["serve".to_owned()],
        opts.cpus.as_deref(),
        &env,
        &dir,
        dir.join("tessera.log"),
    )?;
    wait_healthy(addr, &mut proc, Duration::from_secs(60)).await?;
    if let Keys::Existing { api_key, .. } = keys {
        return Ok(TesseraServer {
            proc,
            addr,
            api_key: api_key.to_owned(),
            admin_key,
            _dir: tmp,
        });
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let api_key = loop {
        if let Ok(k) = std::fs::read_to_string(&key_file)
            && !k.trim().is_empty()
        {
            break k.trim().to_owned();
        }
        if Instant::now() > deadline {
            bail!(
                "{} was not written; log:\n{}",
                key_file.display(),
                proc.log_tail(2000)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    Ok(TesseraServer {
        proc,
        addr,
        api_key,
        admin_key,
        _dir: tmp,
    })
}

/// `tessera admin-key create` on the not yet running server's store: the key the bench
/// issues licenses with (the system API key reaches the client API only).
fn create_admin_key(
    bin: &Path,
    env: &[(String, String)],
    dir: &Path,
    scopes: &str,
) -> anyhow::Result<String> {
    let out = std::process::Command::new(bin)
        .args([
            "admin-key",
            "create",
            "--name",
            "tessera-bench",
            "--scopes",
            scopes,
        ])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(dir)
        .output()
        .with_context(|| format!("run {} admin-key create", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout
        .split_whitespace()
        .find(|w| w.starts_with("tsa_"))
        .map(str::to_owned);
    match key {
        Some(k) if out.status.success() => Ok(k),
        _ => bail!(
            "tessera admin-key create failed: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// A private `redis-server` (no persistence) on a free port.
#[derive(Debug)]
pub struct RedisServer {
    /// The process.
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
    _dir: TempDir,
}

impl RedisServer {
    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }
}

/// Starts `redis-server --port P --save "" --appendonly no --dir TMP`.
pub async fn start_redis(cpus: Option<&str>) -> anyhow::Result<RedisServer> {
    start_redis_with(cpus, &[]).await
}

/// [`start_redis`] with `extra` arguments after the defaults (later ones win), e.g.
/// `--replicaof 127.0.0.1 PORT` or `--cluster-enabled yes`.
pub async fn start_redis_with(cpus: Option<&str>, extra: &[&str]) -> anyhow::Result<RedisServer> {
    let dir = tempfile::Builder::new()
        .prefix("tessera-bench-redis-")
        .tempdir()?;
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir.path().display().to_string(),
    ]
    .iter()
    .chain(extra)
    .map(|s| (*s).to_owned())
    .collect();
    let mut proc = Proc::spawn(
        Path::new("redis-server"),
        &args,
        cpus,
        &[],
        dir.path(),
        dir.path().join("redis.log"),
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = proc.exited() {
            bail!("redis-server exited ({s}): {}", proc.log_tail(1000));
        }
        if resp(addr, &["PING"]).is_ok_and(|r| r.contains("PONG")) {
            break;
        }
        if Instant::now() > deadline {
            bail!("redis-server on {addr} did not answer PING");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(RedisServer {
        proc,
        addr,
        _dir: dir,
    })
}

/// A Redis Cluster of private `redis-server`s (primaries only, no persistence), made with
/// `redis-cli --cluster create` as the integration tests make theirs.
#[derive(Debug)]
pub struct RedisCluster {
    /// Its nodes, each a primary with a share of the slots.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// `redis+cluster://HOST:PORT,...`, the URL Tessera takes.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self.nodes.iter().map(|n| n.addr.to_string()).collect();
        format!("redis+cluster://{}", addrs.join(","))
    }
}

/// Starts `primaries` cluster-enabled servers, assigns the slots and waits until every
/// node reports `cluster_state:ok`.
pub async fn start_redis_cluster(
    cpus: Option<&str>,
    primaries: usize,
) -> anyhow::Result<RedisCluster> {
    let mut nodes = Vec::new();
    for _ in 0..primaries.max(3) {
        nodes.push(
            start_redis_with(
                cpus,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "5000",
                    "--cluster-config-file",
                    "nodes.conf",
                ],
            )
            .await?,
        );
    }
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
    let out = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .context("run redis-cli --cluster create")?;
    if !out.status.success() {
        bail!(
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = nodes.iter().all(|n| {
            resp(n.addr, &["CLUSTER", "INFO"]).is_ok_and(|i| i.contains("cluster_state:ok"))
        });
        if ok {
            return Ok(RedisCluster { nodes });
        }
        if Instant::now() > deadline {
            bail!("the Redis Cluster did not become ok");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The series of a Prometheus scrape of `GET /metrics` on `addr`: each sample line's series
/// (name and labels, as written) and its value.
pub async fn scrape_metrics(addr: SocketAddr) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut conn = Conn::new(Target::new(addr, None));
    let body = match conn
        .call(Method::GET, "/metrics", bytes::Bytes::new())
        .await
    {
        CallResult::Http { status: 200, body } => body,
        other => bail!("GET /metrics on {addr}: {}", other.label()),
    };
    Ok(String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.trim().parse().ok()?))
        })
        .collect())
}

/// Sends one command over RESP and returns the raw reply (enough for PING and INFO).
pub fn resp(addr: SocketAddr, args: &[&str]) -> anyhow::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(cmd.as_bytes())?;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if reply_complete(&out) {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn reply_complete(b: &[u8]) -> bool {
    match b.first() {
        Some(b'$') => {
            let Some(pos) = b.windows(2).position(|w| w == b"\r\n") else {
                return false;
            };
            let len: i64 = std::str::from_utf8(&b[1..pos])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(-1);
            len < 0 || b.len() >= pos + 2 + len as usize + 2
        }
        Some(_) => b.ends_with(b"\r\n"),
        None => false,
    }
}

/// `INFO commandstats` as command → calls.
pub fn command_calls(addr: SocketAddr) -> anyhow::Result<BTreeMap<String, u64>> {
    let info = resp(addr, &["INFO", "commandstats"])?;
    let mut out = BTreeMap::new();
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, fields)) = rest.split_once(':') else {
            continue;
        };
        let calls = fields
            .split(',')
            .find_map(|f| f.strip_prefix("calls="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        out.insert(name.to_owned(), calls);
    }
    Ok(out)
}

/// A running baseline server (this binary's `baseline` subcommand).
#[derive(Debug)]
pub struct BaselineServer {
    /// The process.
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
    _dir: TempDir,
}

/// Starts `tessera-bench baseline` (this executable) on a free port.
pub async fn start_baseline(cpus: Option<&str>) -> anyhow::Result<BaselineServer> {
    let dir = tempfile::Builder::new()
        .prefix("tessera-bench-baseline-")
        .tempdir()?;
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let exe = std::env::current_exe()?;
    let mut proc = Proc::spawn(
        &exe,
        &[
            "baseline".to_owned(),
            "--listen".to_owned(),
            addr.to_string(),
        ],
        cpus,
        &[],
        dir.path(),
        dir.path().join("baseline.log"),
    )?;
    wait_healthy(addr, &mut proc, Duration::from_secs(10)).await?;
    Ok(BaselineServer {
        proc,
        addr,
        _dir: dir,
    })
}

/// The `tessera` binary next to this executable (both built into `target/release`).
pub fn default_tessera_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("tessera")))
        .unwrap_or_else(|| PathBuf::from("target/release/tessera"))
}

/// Whole-machine CPU counters (`/proc/stat`, in clock ticks).
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    busy: u64,
    total: u64,
}

/// Reads the machine's CPU counters.
pub fn machine_cpu() -> MachineCpu {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait are not busy.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    MachineCpu {
        busy: total.saturating_sub(idle),
        total,
    }
}

/// Cores busy between two readings (all processes).
pub fn busy_cores(a: MachineCpu, b: MachineCpu) -> f64 {
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ncpu = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(ncpu)
        .max(1);
    let dt = b.total.saturating_sub(a.total);
    if dt == 0 {
        return 0.0;
    }
    b.busy.saturating_sub(a.busy) as f64 / dt as f64 * ncpu as f64
}

/// Waits (at most `max`) until the machine is quiet: two consecutive one-second windows
/// with less than `threshold` cores busy. Returns the busy cores of the last window.
pub async fn wait_quiet(max: Duration, threshold: f64) -> f64 {
    let deadline = Instant::now() + max;
    let mut quiet_windows = 0;
    let mut announced = false;
    loop {
        let a = machine_cpu();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let busy = busy_cores(a, machine_cpu());
        if busy < threshold {
            quiet_windows += 1;
            if quiet_windows >= 2 {
                return busy;
            }
        } else {
            quiet_windows = 0;
            if !announced {
                eprintln!(
                    "   waiting for the machine to be quiet ({busy:.2} cores busy by others)"
                );
                announced = true;
            }
        }
        if Instant::now() >= deadline {
            eprintln!("   machine still busy ({busy:.2} cores) after {max:?}: measuring anyway");
            return busy;
        }
    }
}
