//! Heartbeats over HTTP vs over the session WebSocket against the real server, in one run:
//! heartbeats per second and server CPU per heartbeat with the same sessions and the same
//! number of connections (one heartbeat in flight per connection on both), then the server
//! memory each connected WebSocket session adds.
//!
//!     cargo build --release -p tessera -p tessera-bench
//!     target/release/ws_heartbeats --tessera-bin target/release/tessera --json bench/results/ws.json
//!
//! The server is pinned to CPU 1 and this generator to CPU 0 when `taskset` exists.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Parser, Debug)]
struct Args {
    /// The `tessera` binary (a release build).
    #[arg(long, default_value = "target/release/tessera")]
    tessera_bin: PathBuf,
    /// Live sessions heartbeating in the throughput phases.
    #[arg(long, default_value_t = 2000)]
    sessions: usize,
    /// Connections (HTTP keep-alive or WebSocket) in the throughput phases.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds per throughput phase.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// WebSocket connections (one session each) for the memory phase.
    #[arg(long, default_value_t = 10000)]
    memory_connections: usize,
    /// Write the numbers here.
    #[arg(long)]
    json: Option<PathBuf>,
}

struct Server {
    child: Child,
    url: String,
    api_key: String,
    config: PathBuf,
    bin: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pinned(cpu: &str, program: &std::path::Path) -> Command {
    if which("taskset") {
        let mut c = Command::new("taskset");
        c.args(["-c", cpu]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn which(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// utime + stime of `pid`, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn start_server(bin: PathBuf) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.path().join("tessera.toml");
    let d = dir.path().display();
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen_addr = "127.0.0.1:{port}"
[log]
level = "error"
[auth]
api_key_file = "{d}/api-key"
[store]
data_dir = "{d}/data"
[rate_limit]
enabled = false
[licenses]
max_devices = 100000
max_sessions = 100000
max_activations = 0
"#
        ),
    )?;
    let child = pinned("1", &bin)
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{url}/health")).send().await
            && r.status().is_success()
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the server did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let api_key = std::fs::read_to_string(dir.path().join("api-key"))?
        .trim()
        .to_owned();
    Ok(Server {
        child,
        url,
        api_key,
        config,
        bin,
        _dir: dir,
    })
}

impl Server {
    fn license(&self) -> anyhow::Result<String> {
        let out = Command::new(&self.bin)
            .args(["license", "create", "--config"])
            .arg(&self.config)
            .output()?;
        if !out.status.success() {
            bail!("license create: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

#[derive(Clone)]
struct Sess {
    token: String,
    key: String,
}

/// `n` live sessions spread over 64 licenses.
async fn sessions(s: &Server, n: usize, first_device: usize) -> anyhow::Result<Vec<Sess>> {
    let keys: Vec<String> = (0..64).map(|_| s.license()).collect::<Result<_, _>>()?;
    let http = reqwest::Client::new();
    let out = Arc::new(tokio::sync::Mutex::new(Vec::with_capacity(n)));
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (http, keys, out, next) = (
            http.clone(),
            keys.clone(),
            Arc::clone(&out),
            Arc::clone(&next),
        );
        let (url, api_key) = (s.url.clone(), s.api_key.clone());
        tasks.push(tokio::spawn(async move {
            let srv = Srv { url, api_key };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                let key = keys[i % keys.len()].clone();
                let device = format!("bench-device-{}", first_device + i);
                srv.post(
                    &http,
                    "/api/license/activate",
                    json!({"license_key": key, "hardware_hash": device}),
                )
                .await?;
                let v = srv
                    .post(
                        &http,
                        "/api/license/session/start",
                        json!({"license_key": key, "hardware_hash": device}),
                    )
                    .await?;
                let token = v["session_token"].as_str().context("token")?.to_owned();
                out.lock().await.push(Sess { token, key });
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(Arc::try_unwrap(out)
        .map_err(|_| anyhow::anyhow!("still shared"))?
        .into_inner())
}

struct Srv {
    url: String,
    api_key: String,
}

impl Srv {
    async fn post(&self, http: &reqwest::Client, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = http
            .post(format!("{}{path}", self.url))
            .header("X-API-Key", &self.api_key)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            bail!("{path}: {status} {v}");
        }
        Ok(v)
    }
}

/// Waits for a phase's connections and reads what it did: heartbeats counted, time, and
/// the server's CPU since `cpu0`.
async fn finish(
    s: &Server,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    count: &AtomicU64,
    t0: Instant,
    cpu0: f64,
) -> anyhow::Result<Phase> {
    for t in tasks {
        t.await??;
    }
    Ok(Phase {
        heartbeats: count.load(Ordering::Relaxed),
        secs: t0.elapsed().as_secs_f64(),
        server_cpu_secs: cpu_secs(s.pid()) - cpu0,
    })
}

struct Phase {
    heartbeats: u64,
    secs: f64,
    server_cpu_secs: f64,
}

impl Phase {
    fn per_sec(&self) -> f64 {
        self.heartbeats as f64 / self.secs
    }
    fn cpu_us_per_hb(&self) -> f64 {
        self.server_cpu_secs * 1e6 / self.heartbeats.max(1) as f64
    }
}

async fn http_phase(s: &Server, all: &[Sess], conns: usize, secs: u64) -> anyhow::Result<Phase> {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(secs);
    let cpu0 = cpu_secs(s.pid());
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let mine: Vec<Sess> = all.iter().skip(c).step_by(conns).cloned().collect();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()?;
        let (url, key, count) = (s.url.clone(), s.api_key.clone(), Arc::clone(&count));
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < stop {
                let sess = &mine[i % mine.len()];
                i += 1;
                let r = http
                    .post(format!("{url}/api/license/session/heartbeat"))
                    .header("X-API-Key", &key)
                    .json(&json!({"session_token": sess.token, "license_key": sess.key}))
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("heartbeat: {}", r.status());
                }
                let _ = r.bytes().await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    finish(s, tasks, &count, t0, cpu0).await
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A WebSocket from source address `src`, handshaking with `sess`.
async fn open_ws(s: &Server, sess: &Sess, src: Ipv4Addr) -> anyhow::Result<Ws> {
    let addr: SocketAddr = s.url.trim_start_matches("http://").parse()?;
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(SocketAddr::from((src, 0)))?;
    let stream = sock.connect(addr).await?;
    let mut req = format!("ws://{addr}/api/license/session/ws").into_client_request()?;
    let h = req.headers_mut();
    h.insert("X-API-Key", s.api_key.parse()?);
    h.insert("X-Session-Token", sess.token.parse()?);
    h.insert("X-License-Key", sess.key.parse()?);
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await?;
    // The handshake's heartbeat_ok.
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.contains("heartbeat_ok") => Ok(ws),
        other => bail!("unexpected first frame: {other:?}"),
    }
}

/// `conns` WebSockets, each with its share of `all` (handshaking with the first).
async fn open_conns(
    s: &Server,
    all: &[Sess],
    conns: usize,
) -> anyhow::Result<Vec<(Ws, Vec<Sess>)>> {
    let mut sockets = Vec::new();
    for c in 0..conns {
        let mine: Vec<Sess> = all.iter().skip(c).step_by(conns).cloned().collect();
        anyhow::ensure!(mine.len() <= 64, "at most 64 sessions per connection");
        let ws = open_ws(s, &mine[0], Ipv4Addr::LOCALHOST).await?;
        sockets.push((ws, mine));
    }
    Ok(sockets)
}

async fn ws_phase(s: &Server, all: &[Sess], conns: usize, secs: u64) -> anyhow::Result<Phase> {
    let sockets = open_conns(s, all, conns).await?;
    let count = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(secs);
    let cpu0 = cpu_secs(s.pid());
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (mut ws, mine) in sockets {
        let count = Arc::clone(&count);
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < stop {
                let sess = &mine[i as usize % mine.len()];
                i += 1;
                let frame = json!({"type": "heartbeat", "session_token": sess.token, "license_key": sess.key, "id": i});
                ws.send(Message::text(frame.to_string())).await?;
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) if t.contains("heartbeat_ok") => break,
                        Some(Ok(Message::Text(t))) => bail!("unexpected frame {t}"),
                        Some(Ok(_)) => {}
                        other => bail!("connection lost: {other:?}"),
                    }
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
            let _ = ws.close(None).await;
            Ok::<(), anyhow::Error>(())
        }));
    }
    finish(s, tasks, &count, t0, cpu0).await
}

/// Like [`ws_phase`], but each connection sends all of its sessions' heartbeats in one
/// `heartbeats` frame (one frame in flight per connection) and counts every entry answered
/// `heartbeat_ok`.
async fn ws_batch_phase(
    s: &Server,
    all: &[Sess],
    conns: usize,
    secs: u64,
) -> anyhow::Result<Phase> {
    let sockets = open_conns(s, all, conns).await?;
    let count = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(secs);
    let cpu0 = cpu_secs(s.pid());
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (mut ws, mine) in sockets {
        let count = Arc::clone(&count);
        let entries: Vec<Value> = mine
            .iter()
            .map(|s| json!({"session_token": s.token, "license_key": s.key}))
            .collect();
        let frame = json!({"type": "heartbeats", "heartbeats": entries}).to_string();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop {
                ws.send(Message::text(frame.clone())).await?;
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) if t.contains("heartbeat_results") => {
                            let v: Value = serde_json::from_str(&t)?;
                            let results = v["results"].as_array().context("results")?;
                            let ok = results
                                .iter()
                                .filter(|r| r["type"] == "heartbeat_ok")
                                .count();
                            if ok != results.len() {
                                bail!("a heartbeat in the batch failed: {t}");
                            }
                            count.fetch_add(ok as u64, Ordering::Relaxed);
                            break;
                        }
                        Some(Ok(Message::Text(t))) if t.contains("update_available") => {}
                        Some(Ok(Message::Text(t))) => bail!("unexpected frame {t}"),
                        Some(Ok(_)) => {}
                        other => bail!("connection lost: {other:?}"),
                    }
                }
            }
            let _ = ws.close(None).await;
            Ok::<(), anyhow::Error>(())
        }));
    }
    finish(s, tasks, &count, t0, cpu0).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = std::fs::canonicalize(&args.tessera_bin)
        .with_context(|| format!("{} not found", args.tessera_bin.display()))?;
    let server = start_server(bin).await?;
    println!("creating {} sessions", args.sessions);
    let live = sessions(&server, args.sessions, 0).await?;

    // Warm up both paths, then measure HTTP and WebSocket back to back.
    http_phase(&server, &live, args.connections, 2).await?;
    ws_phase(&server, &live, args.connections, 2).await?;
    ws_batch_phase(&server, &live, args.connections, 2).await?;
    let http = http_phase(&server, &live, args.connections, args.secs).await?;
    let ws = ws_phase(&server, &live, args.connections, args.secs).await?;
    let batch = ws_batch_phase(&server, &live, args.connections, args.secs).await?;
    let per_frame = args.sessions.div_ceil(args.connections);
    println!("| transport | heartbeats/s | server CPU µs/heartbeat |");
    println!("|---|---:|---:|");
    println!(
        "| HTTP (keep-alive) | {:.0} | {:.1} |",
        http.per_sec(),
        http.cpu_us_per_hb()
    );
    println!(
        "| WebSocket | {:.0} | {:.1} |",
        ws.per_sec(),
        ws.cpu_us_per_hb()
    );
    println!(
        "| WebSocket, `heartbeats` frames of ~{per_frame} | {:.0} | {:.1} |",
        batch.per_sec(),
        batch.cpu_us_per_hb()
    );
    let ratio = ws.cpu_us_per_hb() / http.cpu_us_per_hb();
    let batch_ratio = batch.cpu_us_per_hb() / http.cpu_us_per_hb();
    println!(
        "WebSocket / HTTP server CPU per heartbeat: {ratio:.2} one per frame, {batch_ratio:.2} batched (target ≤ 0.33)"
    );

    // Memory: sessions first, then connections, one session each, from several source
    // addresses (one address has ~28k ephemeral ports).
    let m = args.memory_connections;
    println!("creating {m} sessions for the memory phase");
    let extra = sessions(&server, m, args.sessions).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_kib(server.pid());
    let mut open = Vec::with_capacity(m);
    for (i, sess) in extra.iter().enumerate() {
        let src = Ipv4Addr::new(127, 0, 1 + (i / 20000) as u8, 1 + (i % 200) as u8);
        open.push(open_ws(&server, sess, src).await?);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(server.pid());
    let per = (after.saturating_sub(before) as f64 * 1024.0) / m as f64;
    println!(
        "memory: {m} connected WebSocket sessions: server RSS {before} KiB -> {after} KiB, {per:.0} B per connection (target ≤ 2048)"
    );
    if let Some(path) = args.json {
        let v = json!({
            "sessions": args.sessions,
            "connections": args.connections,
            "secs": args.secs,
            "http": {"heartbeats": http.heartbeats, "secs": http.secs, "server_cpu_secs": http.server_cpu_secs,
                     "per_sec": http.per_sec(), "cpu_us_per_heartbeat": http.cpu_us_per_hb()},
            "websocket": {"heartbeats": ws.heartbeats, "secs": ws.secs, "server_cpu_secs": ws.server_cpu_secs,
                          "per_sec": ws.per_sec(), "cpu_us_per_heartbeat": ws.cpu_us_per_hb()},
            "websocket_batched": {"heartbeats_per_frame": per_frame, "heartbeats": batch.heartbeats, "secs": batch.secs,
                                  "server_cpu_secs": batch.server_cpu_secs, "per_sec": batch.per_sec(),
                                  "cpu_us_per_heartbeat": batch.cpu_us_per_hb()},
            "ws_over_http_cpu_per_heartbeat": ratio,
            "ws_batched_over_http_cpu_per_heartbeat": batch_ratio,
            "memory": {"connections": m, "rss_before_kib": before, "rss_after_kib": after, "bytes_per_connection": per},
        });
        std::fs::write(path, serde_json::to_string_pretty(&v)?)?;
    }
    drop(open);
    Ok(())
}
