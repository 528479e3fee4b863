//! Test support: the real `tessera` binary on a free port with a temp data dir, a TCP proxy
//! that can cut the network, and polling helpers (tests never sleep to wait for a
//! condition).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// `target/<profile>` of this test binary.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the `tessera` binary once per test process (`cargo build -p tessera`) and returns
/// its path.
pub fn tessera_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target = target_dir();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", "tessera", "--bin", "tessera"])
            .current_dir(workspace());
        if target.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build -p tessera");
        assert!(status.success(), "cargo build -p tessera failed");
        let bin = target.join("tessera");
        assert!(bin.is_file(), "{} missing", bin.display());
        bin
    })
    .clone()
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 20 ms until it returns `Some`, failing after `within`.
pub async fn eventually<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The short session timing the tests run with: heartbeat every second, the session lives
/// `TIMEOUT + GRACE` = 5 s without one.
pub const INTERVAL_SECS: u64 = 1;
pub const TIMEOUT_SECS: u64 = 3;
pub const GRACE_SECS: u64 = 2;

/// A `tessera serve` child process.
pub struct Server {
    pub port: u16,
    pub url: String,
    pub api_key: String,
    pub config: PathBuf,
    dir: TempDir,
    child: Option<Child>,
}

impl Server {
    /// Starts a server with the test timing plus `extra` TOML (appended).
    pub async fn start(extra: &str) -> anyhow::Result<Self> {
        Self::start_timed((INTERVAL_SECS, TIMEOUT_SECS, GRACE_SECS), extra).await
    }

    /// Starts a server with `(interval, timeout, grace)` seconds plus `extra` TOML.
    pub async fn start_timed(timing: (u64, u64, u64), extra: &str) -> anyhow::Result<Self> {
        let (interval, timeout, grace) = timing;
        let mut dir = tempfile::tempdir()?;
        let mut last = None;
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("tessera.toml");
            let d = dir.path().display();
            std::fs::write(
                &config,
                format!(
                    r#"
[server]
listen_addr = "127.0.0.1:{port}"
shutdown_grace_ms = 2000

[log]
level = "warn"

[auth]
api_key_file = "{d}/api-key"

[store]
data_dir = "{d}/data"
flush_interval_ms = 100
restart_grace_secs = 30

[sessions]
heartbeat_interval_secs = {interval}
heartbeat_timeout_secs = {timeout}
grace_secs = {grace}

[products.default]
latest_version = "2.0.0"
download_url = "https://example.com/app-2.0.0"
release_notes = "Faster."
{extra}
"#
                ),
            )?;
            let mut server = Self {
                port,
                url: format!("http://127.0.0.1:{port}"),
                api_key: String::new(),
                config,
                dir,
                child: None,
            };
            match server.launch().await {
                Ok(()) => {
                    server.api_key = std::fs::read_to_string(server.dir.path().join("api-key"))?
                        .trim()
                        .to_owned();
                    return Ok(server);
                }
                Err(e) => {
                    last = Some(e);
                    server.kill();
                    dir = server.into_dir();
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("server did not start")))
    }

    fn into_dir(mut self) -> TempDir {
        self.kill();
        let placeholder = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, placeholder)
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let child = Command::new(tessera_bin())
            .args(["serve", "--config"])
            .arg(&self.config)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn tessera serve")?;
        self.child = Some(child);
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{}/health", self.url)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("tessera serve exited with {status}");
            }
            if Instant::now() > deadline {
                bail!("tessera serve did not answer /health within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM and wait for the graceful exit (write-behind flushed).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the stopped server again on the same port and data dir.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        // The port was just released; the listener sets SO_REUSEADDR, retry briefly anyway.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.launch().await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => {
                    self.kill();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Runs `tessera ARGS --config CONFIG`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(tessera_bin())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .current_dir(self.dir.path())
            .env("TESSERA_LOG_LEVEL", "error")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `tessera license create ARGS`: a new license key.
    pub fn create_license(&self, args: &[&str]) -> String {
        let mut all = vec!["license", "create"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "license create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Live session count of a license (`tessera license show`).
    pub fn live_sessions(&self, key: &str) -> usize {
        let out = self.cli(&["license", "show", key]);
        assert!(
            out.status.success(),
            "license show: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["sessions"].as_array().map_or(0, Vec::len)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends SIGHUP (the server reloads its config file).
    pub fn reload(&self) {
        if let Some(child) = &self.child {
            Command::new("kill")
                .args(["-HUP", &child.id().to_string()])
                .status()
                .unwrap();
        }
    }

    /// A sample of `/metrics` (`name{labels} value` lines), summed over lines starting with
    /// `prefix`.
    pub async fn metric(&self, prefix: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy to `upstream` that can be taken down (open connections are cut, new ones
/// are accepted and closed at once) and brought back up.
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (up2, conns2) = (Arc::clone(&up), Arc::clone(&conns));
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let h = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                conns2.lock().unwrap().push(h.abort_handle());
            }
        });
        Self {
            port,
            up,
            conns,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for h in self.conns.lock().unwrap().drain(..) {
                h.abort();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}
