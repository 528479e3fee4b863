//! A `redis-server` that fault tests can kill -9 and restart on the same port and data
//! directory. (The shared [`tessera_integration_tests::RedisServer`] only starts and stops.)
//!
//! `durable` servers run with `appendonly yes` and `appendfsync always`: what Redis
//! acknowledged survives a kill -9, which is the deployment the "no acknowledged write is
//! lost" tests assume.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use serde_json::{Value, json};
use tempfile::TempDir;
use tessera::store::redis::RedisStore;
use tessera_actors::{LicenseKey, LicenseRecord, LimitOverrides, Store};

/// A private redis-server on 127.0.0.1.
pub struct Redis {
    /// Its port.
    pub port: u16,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    durable: bool,
    cluster: bool,
    /// The client port a cluster node announces when it is not its own (a forwarder's).
    announce: Option<u16>,
    dir: TempDir,
    child: Option<Child>,
}

impl Redis {
    /// A server without persistence.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(false)
    }

    /// A server whose acknowledged writes survive kill -9 (AOF, fsync always).
    pub fn start_durable() -> anyhow::Result<Self> {
        Self::start_with(true)
    }

    /// A node of a Redis Cluster (not yet joined to one).
    fn start_cluster_node(announce: Option<u16>) -> anyhow::Result<Self> {
        Self::start_inner(false, true, announce)
    }

    fn start_with(durable: bool) -> anyhow::Result<Self> {
        Self::start_inner(durable, false, None)
    }

    fn start_inner(durable: bool, cluster: bool, announce: Option<u16>) -> anyhow::Result<Self> {
        let mut last = None;
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let mut r = Self {
                port,
                url: format!("redis://127.0.0.1:{port}"),
                durable,
                cluster,
                announce,
                dir: tempfile::tempdir()?,
                child: None,
            };
            match r.spawn() {
                Ok(()) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--save",
                "",
                "--daemonize",
                "no",
                "--enable-debug-command",
                "yes",
            ])
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"));
        if self.cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"])
                .arg("--cluster-config-file")
                .arg(self.dir.path().join("nodes.conf"));
            if let Some(port) = self.announce {
                // Clients are sent to `port`; the cluster bus stays on the real one.
                cmd.args([
                    "--cluster-announce-port",
                    &port.to_string(),
                    "--cluster-announce-bus-port",
                    &(u32::from(self.port) + 10000).to_string(),
                ]);
            }
        }
        if self.durable {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn redis-server (is it installed?)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ping(self.port) {
                self.child = Some(child);
                return Ok(());
            }
            if let Some(status) = child.try_wait()? {
                let log =
                    std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
                bail!("redis-server exited with {status}: {log}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("redis-server on port {} did not answer PING", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, no shutdown: what a crash looks like to clients.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port and data directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                // The port can take a moment to be bindable again.
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Runs `redis-cli` against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .context("run redis-cli")?;
        if !out.status.success() {
            bail!(
                "redis-cli {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `INFO commandstats` as (command, calls) pairs.
    pub fn command_calls(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let info = self.cli(&["INFO", "commandstats"])?;
        let mut out = Vec::new();
        for line in info.lines() {
            let Some(rest) = line.strip_prefix("cmdstat_") else {
                continue;
            };
            let Some((name, stats)) = rest.split_once(':') else {
                continue;
            };
            let calls = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            out.push((name.to_owned(), calls));
        }
        Ok(out)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One Redis primary with a replica, watched by three Redis Sentinels (quorum two), all on
/// 127.0.0.1; the primary is monitored under the name `tessera`.
pub struct SentinelSetup {
    /// The first primary.
    pub primary: Redis,
    /// Its replica, the one the sentinels promote when the primary dies.
    pub replica: Redis,
    /// The sentinels' ports.
    pub sentinels: Vec<u16>,
    /// `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/tessera`.
    pub url: String,
    dir: TempDir,
    children: Vec<Child>,
}

impl SentinelSetup {
    /// Starts the primary, its replica (synced before this returns) and three sentinels
    /// that know both servers and each other; a primary unreachable for a second is down.
    pub fn start() -> anyhow::Result<Self> {
        let primary = Redis::start()?;
        let replica = Redis::start()?;
        replica.cli(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()])?;
        wait_for("the replica to sync", || {
            replica
                .cli(&["INFO", "replication"])
                .is_ok_and(|i| i.contains("master_link_status:up"))
        })?;
        let dir = tempfile::tempdir()?;
        let mut setup = Self {
            url: String::new(),
            primary,
            replica,
            sentinels: Vec::new(),
            dir,
            children: Vec::new(),
        };
        for i in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let conf = setup.dir.path().join(format!("sentinel-{i}.conf"));
            // Sentinel rewrites its file as it learns: it must be its own and writable.
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nlogfile {dir}/sentinel-{i}.log\n\
                     sentinel monitor tessera 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds tessera 1000\n\
                     sentinel failover-timeout tessera 10000\n\
                     sentinel parallel-syncs tessera 1\n",
                    dir = setup.dir.path().display(),
                    primary = setup.primary.port,
                ),
            )?;
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("spawn redis-server --sentinel")?;
            setup.children.push(child);
            setup.sentinels.push(port);
        }
        for &port in &setup.sentinels {
            wait_for(
                "every sentinel to see the replica and the other sentinels",
                || {
                    sentinel_cli(port, &["SENTINEL", "MASTER", "tessera"]).is_ok_and(|m| {
                        let field = |name: &str| {
                            let lines: Vec<&str> = m.lines().collect();
                            lines
                                .iter()
                                .position(|l| *l == name)
                                .and_then(|i| lines.get(i + 1))
                                .map(|v| v.to_string())
                        };
                        field("num-slaves").as_deref() == Some("1")
                            && field("num-other-sentinels").as_deref() == Some("2")
                    })
                },
            )?;
        }
        setup.url = format!(
            "redis+sentinel://{}/tessera",
            setup
                .sentinels
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        Ok(setup)
    }

    /// The port of the server the first sentinel names as the primary now.
    pub fn primary_port(&self) -> Option<u16> {
        let out = sentinel_cli(
            self.sentinels[0],
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "tessera"],
        )
        .ok()?;
        out.lines().nth(1)?.trim().parse().ok()
    }
}

impl Drop for SentinelSetup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn sentinel_cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .context("run redis-cli")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls `ready` for up to 30 s.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// Polls `cond` every 20 ms until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Redis Cluster of three primaries on 127.0.0.1 (no replicas).
pub struct RedisCluster {
    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub url: String,
    nodes: Vec<Redis>,
}

impl RedisCluster {
    /// Starts three nodes, assigns the slots and waits until every node reports the
    /// cluster ok.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with_replicas(0)
    }

    /// Three primaries with `replicas` replicas each (`nodes()`: the primaries first, as
    /// `redis-cli --cluster create` assigns them). The nodes time out in 5 s, after which a
    /// replica of a dead primary takes over.
    pub fn start_with_replicas(replicas: usize) -> anyhow::Result<Self> {
        Self::start_announcing(replicas, &[], |_| {})
    }

    /// As [`Self::start_with_replicas`], node `i` announcing client port `announce[i]` (a
    /// forwarder in front of it) instead of its own, so every client, replication included,
    /// reaches it through that port. `wire` gets the nodes' own ports, in the same order,
    /// before they are joined (to start the forwarders). The URL names the announced ports.
    pub fn start_announcing(
        replicas: usize,
        announce: &[u16],
        wire: impl FnOnce(&[u16]),
    ) -> anyhow::Result<Self> {
        let count = 3 * (1 + replicas);
        if !announce.is_empty() && announce.len() != count {
            bail!("{count} nodes, {} announced ports", announce.len());
        }
        let nodes = (0..count)
            .map(|i| Redis::start_cluster_node(announce.get(i).copied()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        wire(&nodes.iter().map(|n| n.port).collect::<Vec<_>>());
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
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
                n.cli(&["CLUSTER", "INFO"])
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            });
            if ok {
                break;
            }
            if Instant::now() > deadline {
                bail!("the cluster did not become ok");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // A replica that has not finished its first sync cannot take over; wait for every
        // replica's link to its primary.
        loop {
            let synced = nodes.iter().all(|n| {
                n.cli(&["INFO", "replication"]).is_ok_and(|info| {
                    info.contains("role:master") || info.contains("master_link_status:up")
                })
            });
            if synced {
                break;
            }
            if Instant::now() > deadline + Duration::from_secs(40) {
                bail!("the replicas did not finish syncing");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let seen: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.announce.unwrap_or(n.port)))
            .collect();
        Ok(Self {
            url: format!("redis+cluster://{}", seen.join(",")),
            nodes,
        })
    }

    /// Its nodes.
    pub fn nodes(&self) -> &[Redis] {
        &self.nodes
    }

    /// Its nodes, to kill one.
    pub fn nodes_mut(&mut self) -> &mut [Redis] {
        &mut self.nodes
    }
}

/// A real `tessera serve` process on Redis, to be killed with SIGKILL and restarted.
pub struct Tessera {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A valid system API key.
    pub api_key: String,
    config: std::path::PathBuf,
    dir: TempDir,
    child: std::sync::Mutex<Option<Child>>,
    client: reqwest::Client,
}

/// The `tessera` binary, built once per test process (a no-op when `cargo test --workspace`
/// already built it).
pub fn tessera_binary() -> anyhow::Result<std::path::PathBuf> {
    static BUILT: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "tessera", "--bin", "tessera"])
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
                .status()
                .map_err(|e| format!("cargo build: {e}"))?;
            if !status.success() {
                return Err(format!("cargo build of tessera failed: {status}"));
            }
            // target/debug/deps/<this test> -> target/debug/tessera
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let bin = exe
                .parent()
                .and_then(|deps| deps.parent())
                .map(|debug| debug.join("tessera"))
                .ok_or("no target dir")?;
            Ok(bin)
        })
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

impl Tessera {
    /// Starts a server on `redis_url`. Without `api_key` the server generates one (the
    /// store must be new); with it, the store must already hold that key.
    pub async fn start(redis_url: &str, api_key: Option<&str>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = dir.path().join("tessera.toml");
        let key_file = dir.path().join("api_key");
        std::fs::write(
            &config,
            format!(
                r#"
[server]
listen_addr = "127.0.0.1:{port}"
shutdown_grace_ms = 1000
[log]
level = "warn"
[auth]
api_key_file = "{key_file}"
[rate_limit]
enabled = false
[store]
backend = "redis"
redis_url = "{redis_url}"
data_dir = "{data}"
op_timeout_ms = 500
flush_interval_ms = 200
[sessions]
heartbeat_timeout_secs = 600
"#,
                key_file = key_file.display(),
                data = dir.path().join("data").display(),
            ),
        )?;
        let mut t = Self {
            base: format!("http://127.0.0.1:{port}"),
            api_key: api_key.unwrap_or_default().to_owned(),
            config,
            dir,
            child: std::sync::Mutex::new(None),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        };
        t.spawn().await?;
        if api_key.is_none() {
            t.api_key = std::fs::read_to_string(&key_file)
                .context("the first server writes its new API key")?
                .trim()
                .to_owned();
        }
        Ok(t)
    }

    async fn spawn(&self) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.dir.path().join("tessera.log"))?;
        let child = Command::new(tessera_binary()?)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn tessera")?;
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.client.get(self.url("/health")).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            let exited = match self.child.lock().unwrap().as_mut() {
                Some(child) => child.try_wait()?,
                None => None,
            };
            if let Some(status) = exited {
                bail!("tessera exited with {status}: {}", self.log());
            }
            if Instant::now() > deadline {
                bail!("tessera did not answer /health: {}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tessera.log")).unwrap_or_default()
    }

    /// SIGKILL: no graceful shutdown, no final heartbeat flush.
    pub fn kill9(&self) {
        let child = self.child.lock().unwrap().take();
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap().as_ref().map(Child::id)
    }

    /// Starts again with the same config (same port, same Redis).
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.kill9();
        self.spawn().await
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs JSON with the API key; returns status and body (`Null` when not JSON).
    pub async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let resp = self
            .client
            .post(self.url(path))
            .header("X-API-Key", &self.api_key)
            .json(&body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(serde_json::Value::Null)))
    }

    /// GETs without credentials; returns status and body.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
        let resp = self.client.get(self.url(path)).send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(serde_json::Value::Null)))
    }
}

impl Drop for Tessera {
    fn drop(&mut self) {
        self.kill9();
    }
}

// Seed 000 client calls and license setup, shared by the tests on real servers.

/// A store client of `redis`, as the CLI or a test inspecting Redis would open it.
pub async fn store(redis: &Redis) -> RedisStore {
    RedisStore::connect(&redis.url, Duration::from_secs(5))
        .await
        .unwrap()
}

/// Creates license `name` with `devices` devices and `sessions` sessions, unlimited activations.
pub async fn issue(store: &RedisStore, name: &str, devices: u32, sessions: u32) -> String {
    let mut record = LicenseRecord::new(
        LicenseKey::parse(name).unwrap(),
        "default",
        "default",
        Utc::now(),
    );
    record.overrides = LimitOverrides {
        max_devices: Some(devices),
        max_activations: Some(0),
        max_sessions: Some(sessions),
        on_session_limit: None,
    };
    store.create_license(record).await.unwrap().key.to_string()
}

/// Seed 000 activate through `node`.
pub async fn activate(node: &Tessera, key: &str, hw: &str) -> (u16, Value) {
    node.post(
        "/api/license/activate",
        json!({"license_key": key, "hardware_hash": hw, "machine_name": "M", "app_version": "1.0.0"}),
    )
    .await
    .unwrap_or((0, Value::Null))
}

/// Seed 000 session start through `node`.
pub async fn start(node: &Tessera, key: &str, hw: &str) -> (u16, Value) {
    node.post(
        "/api/license/session/start",
        json!({"license_key": key, "machine_id": "M", "hardware_hash": hw, "version": "1.0.0"}),
    )
    .await
    .unwrap_or((0, Value::Null))
}

/// Seed 000 heartbeat through `node`.
/// A client's end of a session; the answer's `end_reason` says how it ended.
pub async fn end(node: &Tessera, key: &str, token: &str) -> (u16, Value) {
    node.post(
        "/api/license/session/end",
        json!({"license_key": key, "session_token": token}),
    )
    .await
    .unwrap_or((0, Value::Null))
}

pub async fn heartbeat(node: &Tessera, key: &str, token: &str) -> (u16, Value) {
    node.post(
        "/api/license/session/heartbeat",
        json!({"license_key": key, "session_token": token}),
    )
    .await
    .unwrap_or((0, Value::Null))
}

/// The error code of an answer.
pub fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

/// Suspends `key` through `node`'s admin API, with an admin key made in `direct`.
pub async fn suspend(node: &Tessera, direct: &RedisStore, key: &str) {
    let (_, admin_key) = tessera::auth::admin_keys::create(
        direct,
        "suspender",
        vec![tessera::auth::scopes::Scope::All],
    )
    .await
    .unwrap();
    let resp = reqwest::Client::new()
        .post(node.url(&format!("/api/admin/licenses/{key}/status")))
        .bearer_auth(&admin_key)
        .json(&json!({"status": "suspended", "reason": "chargeback"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}
