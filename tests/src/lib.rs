//! Test harness shared by the workspace integration tests.
//!
//! - [`TestServer`]: the real server (real router, real embedded store in a temp dir) on an
//!   ephemeral port of 127.0.0.1, in-process; stopped on drop.
//! - [`RedisServer`]: a private `redis-server` on a free port in a temp dir, killed on drop.
//!   Tests never touch the machine's 6379.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use tessera_integration_tests::TestServer;
//! let server = TestServer::start().await?;
//! let resp = server.get("/api/version/latest").send().await?; // sends X-API-Key
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod scenario;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;
use tessera::AppState;
use tessera::api::{self, Routes};
use tessera_config::Config;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use tessera;
pub use tessera_config;

/// A config for tests: defaults, the embedded store in `data_dir`, an ephemeral port,
/// warnings-only logs.
pub fn test_config(data_dir: &Path) -> Config {
    let mut c = Config::default();
    c.server.listen_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    c.store.data_dir = data_dir.join("data");
    c.log.level = "warn".to_owned();
    c
}

/// A running in-process server.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A valid system API key (generated at first start).
    pub api_key: String,
    /// An admin key with every scope (`*`), made at each start, for admin routes.
    pub admin_key: String,
    /// The server's state (config, stores, limiters).
    pub state: AppState,
    /// `https` when the config sets `server.tls_cert_file`, else `http`.
    scheme: &'static str,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    dir: Arc<TempDir>,
}

/// A stopped [`TestServer`] whose data directory is kept, to start again.
pub struct StoppedServer {
    /// The config it ran with.
    pub config: Config,
    /// The API key it last knew to be valid; set it if you regenerated offline.
    pub api_key: String,
    client: reqwest::Client,
    dir: Arc<TempDir>,
}

impl TestServer {
    /// Starts a server with [`test_config`].
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// Starts a server with [`test_config`] adjusted by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        Self::start_with_routes(configure, |_| {}).await
    }

    /// Starts a second server on a store another one already set up (a shared Redis),
    /// knowing its system API key.
    pub async fn start_joining(
        api_key: &str,
        configure: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Self> {
        let dir = Arc::new(tempfile::tempdir().context("temp dir")?);
        let mut config = test_config(dir.path());
        configure(&mut config);
        Self::launch(
            config,
            Some(api_key.to_owned()),
            dir,
            |_| {},
            reqwest::Client::new(),
        )
        .await
    }

    /// Starts a server with [`test_config`] adjusted by `configure`, reached through
    /// `client`: for a server with `server.tls_cert_file` set, a client that trusts its CA
    /// (its URLs are then `https://127.0.0.1:PORT`).
    pub async fn start_with_client(
        configure: impl FnOnce(&mut Config),
        client: reqwest::Client,
    ) -> anyhow::Result<Self> {
        let dir = Arc::new(tempfile::tempdir().context("temp dir")?);
        let mut config = test_config(dir.path());
        configure(&mut config);
        Self::launch(config, None, dir, |_| {}, client).await
    }

    /// Starts a server whose route groups are the standard ones plus whatever `routes` adds
    /// (e.g. a test handler in the authenticated `api` group).
    pub async fn start_with_routes(
        configure: impl FnOnce(&mut Config),
        routes: impl FnOnce(&mut Routes),
    ) -> anyhow::Result<Self> {
        let dir = Arc::new(tempfile::tempdir().context("temp dir")?);
        let mut config = test_config(dir.path());
        configure(&mut config);
        Self::launch(config, None, dir, routes, reqwest::Client::new()).await
    }

    async fn launch(
        config: Config,
        known_key: Option<String>,
        dir: Arc<TempDir>,
        routes: impl FnOnce(&mut Routes),
        client: reqwest::Client,
    ) -> anyhow::Result<Self> {
        let scheme = if config.server.tls_files().is_some() {
            "https"
        } else {
            "http"
        };
        let _ = tessera::telemetry::init(&config.log);
        let listen = config.server.listen_addr;
        let opened = AppState::open(config).await.context("open state")?;
        let api_key = match (opened.new_api_key, known_key) {
            (Some(k), _) | (None, Some(k)) => k,
            (None, None) => bail!("the data dir already had a key and none was given"),
        };
        let state = opened.state;
        static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let admin_name = format!("tests-{}-{n}", std::process::id());
        let (_, admin_key) = tessera::auth::admin_keys::create(
            state.meta.as_ref(),
            &admin_name,
            vec![tessera::auth::scopes::Scope::All],
        )
        .await
        .map_err(|e| anyhow::anyhow!("admin key: {e}"))?;
        let mut groups = Routes::standard();
        routes(&mut groups);
        let router = api::router(state.clone(), groups);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .context("bind")?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(tessera::serve_router(
            listener,
            state.clone(),
            router,
            async move {
                let _ = rx.await;
            },
        ));
        let server = Self {
            addr,
            api_key,
            admin_key,
            state,
            scheme,
            client,
            shutdown: Some(tx),
            task: Some(task),
            dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// Polls `/health` until it answers (the serve task has then set up everything,
    /// including the control socket).
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.client.get(self.url("/health")).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(r) => bail!("server not ready: /health answered {}", r.status()),
                Err(e) => bail!("server not ready: {e}"),
            }
        }
    }

    /// `http://127.0.0.1:PORT{path}` (`https://` when the server serves TLS).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// The handshake request of the session WebSocket for a live session (the API key, the
    /// token and the license key in their headers), for `tokio_tungstenite`'s clients.
    pub fn session_ws_request(
        &self,
        license_key: &str,
        token: &str,
    ) -> anyhow::Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = self
            .url("/api/license/session/ws")
            .replacen("http", "ws", 1)
            .into_client_request()?;
        let h = req.headers_mut();
        h.insert("X-API-Key", self.api_key.parse()?);
        h.insert("X-Session-Token", token.parse()?);
        h.insert("X-License-Key", license_key.parse()?);
        Ok(req)
    }

    /// A plain client (no API key).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// GET `path` with the API key.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(self.url(path))
            .header("X-API-Key", &self.api_key)
    }

    /// POST `path` with the API key.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .header("X-API-Key", &self.api_key)
    }

    /// POST `path` with the admin key (`Authorization: Bearer tsa_...`, every scope).
    pub fn admin_post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.admin_key)
    }

    /// GET `path` with the admin key.
    pub fn admin_get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(&self.admin_key)
    }

    /// The data directory (the embedded store and control socket live under it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config the server runs with.
    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// Stops the server (graceful shutdown, store closed) and keeps its data directory.
    pub async fn stop(mut self) -> anyhow::Result<StoppedServer> {
        self.shutdown_and_wait().await?;
        let config = (*self.state.config).clone();
        let api_key = self.api_key.clone();
        let client = self.client.clone();
        let dir = Arc::clone(&self.dir);
        drop(self);
        Ok(StoppedServer {
            config,
            api_key,
            client,
            dir,
        })
    }

    async fn shutdown_and_wait(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.context("server task")?.context("server")?;
        }
        Ok(())
    }
}

impl StoppedServer {
    /// Starts a server again on the same data directory and config.
    pub async fn restart(self) -> anyhow::Result<TestServer> {
        self.restart_with_routes(|_| {}).await
    }

    /// Like [`StoppedServer::restart`], with extra routes as in
    /// [`TestServer::start_with_routes`].
    pub async fn restart_with_routes(
        self,
        routes: impl Fn(&mut Routes),
    ) -> anyhow::Result<TestServer> {
        retry_while_locked(|| {
            TestServer::launch(
                self.config.clone(),
                Some(self.api_key.clone()),
                Arc::clone(&self.dir),
                &routes,
                self.client.clone(),
            )
        })
        .await
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Opens the stopped server's embedded store directly (retrying like a restart).
    pub async fn open_embedded_store(
        &self,
    ) -> anyhow::Result<tessera::store::embedded::EmbeddedStore> {
        let path = self.config.store.embedded_path();
        retry_while_locked(|| async { Ok(tessera::store::embedded::EmbeddedStore::open(&path)?) })
            .await
    }
}

/// Runs `attempt` until it succeeds, for up to 5 s. A stopped server's state may still be
/// referenced by tasks that are finishing; its database file stays locked until the last
/// handle drops, so opening it again right after a stop can fail briefly.
async fn retry_while_locked<T, F>(mut attempt: impl FnMut() -> F) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A private `redis-server` for one test: own port, own temp dir, no persistence.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// `redis://127.0.0.1:PORT` (`rediss://` for [`RedisServer::start_tls`]).
    pub url: String,
    tls: bool,
    child: Child,
    _dir: TempDir,
}

/// The PEM files of a TLS [`RedisServer`].
#[derive(Clone, Debug)]
pub struct RedisTlsFiles {
    /// The server's certificate (for 127.0.0.1).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA that issued it (redis-server requires one even when it does not check clients).
    pub ca: PathBuf,
}

impl RedisServer {
    /// Starts `redis-server` (from `PATH`; `bash tests/run.sh` installs it) and waits until
    /// it answers `PING`.
    pub fn start() -> anyhow::Result<Self> {
        let binary = find_in_path("redis-server").context(
            "redis-server is not installed: run `bash tests/run.sh` (it installs it) \
             or `apt-get install -y redis-server`",
        )?;
        let mut last_err = None;
        // A free port can be taken between our probe and redis's bind: retry.
        for _ in 0..5 {
            match Self::try_start(&binary, None) {
                Ok(s) => return Ok(s),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    /// Starts `redis-server` serving TLS only (`--port 0 --tls-port P`, clients not asked
    /// for a certificate) with `files`, and waits until it is ready. Its `url` is
    /// `rediss://127.0.0.1:P`.
    pub fn start_tls(files: &RedisTlsFiles) -> anyhow::Result<Self> {
        let binary = find_in_path("redis-server").context(
            "redis-server is not installed: run `bash tests/run.sh` (it installs it) \
             or `apt-get install -y redis-server`",
        )?;
        let mut last_err = None;
        for _ in 0..5 {
            match Self::try_start(&binary, Some(files)) {
                Ok(s) => return Ok(s),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    fn try_start(binary: &Path, tls: Option<&RedisTlsFiles>) -> anyhow::Result<Self> {
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let mut cmd = Command::new(binary);
        match tls {
            None => {
                cmd.args(["--port", &port.to_string()]);
            }
            Some(f) => {
                cmd.args(["--port", "0", "--tls-port", &port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(&f.cert)
                    .arg("--tls-key-file")
                    .arg(&f.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&f.ca)
                    .args(["--tls-auth-clients", "no"]);
            }
        }
        let mut child = cmd
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir.path())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--logfile")
            .arg(dir.path().join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn redis-server")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let log_file = dir.path().join("redis.log");
        loop {
            let ready = if tls.is_some() {
                // No TLS client here: ready once it says so and the port takes connections.
                std::fs::read_to_string(&log_file)
                    .is_ok_and(|l| l.contains("Ready to accept connections"))
                    && accepts(port)
            } else {
                ping(port)
            };
            if ready {
                let scheme = if tls.is_some() { "rediss" } else { "redis" };
                return Ok(Self {
                    port,
                    url: format!("{scheme}://127.0.0.1:{port}"),
                    tls: tls.is_some(),
                    child,
                    _dir: dir,
                });
            }
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(dir.path().join("redis.log")).unwrap_or_default();
                bail!("redis-server exited with {status}: {log}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("redis-server on port {port} did not answer PING within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it still answers `PING` (a TLS server: still takes connections).
    pub fn is_alive(&self) -> bool {
        if self.tls {
            accepts(self.port)
        } else {
            ping(self.port)
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    let l = StdListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
