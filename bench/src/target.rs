//! Which server a run talks to: one already running (`--addr`), or one this process starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::http::Target;
use crate::procs::{
    Backend, ExitedEarly, RedisServer, TesseraOpts, TesseraServer, default_tessera_bin,
    start_redis, start_tessera,
};

/// Store backend of a self-started server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendArg {
    /// The embedded redb store.
    Embedded,
    /// A private `redis-server` started for the run.
    Redis,
}

/// Server selection, shared by `fleet`, `smoke` and `memory`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Address of a running Tessera. Without it, one is started (see --backend).
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// System API key of the running server (`X-API-Key`).
    #[arg(long, env = "TESSERA_BENCH_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// File holding the system API key (what `auth.api_key_file` wrote).
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// Admin key of the running server (`tessera admin-key create --scopes licenses:write`),
    /// for issuing licenses.
    #[arg(long, env = "TESSERA_BENCH_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Pid of the running server, to sample its RSS and CPU (optional).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// The `tessera` binary for a self-started server [default: next to this executable].
    #[arg(long)]
    pub tessera_bin: Option<PathBuf>,
    /// Store of a self-started server.
    #[arg(long, value_enum, default_value_t = BackendArg::Embedded)]
    pub backend: BackendArg,
    /// Pin a self-started server (and its redis-server) to these CPUs (`taskset -c`).
    #[arg(long)]
    pub server_cpus: Option<String>,
    /// Directory for a self-started server's data [default: a fresh temp dir].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// A server ready to take requests.
#[derive(Debug)]
pub struct Running {
    /// Where to send requests.
    pub target: Arc<Target>,
    /// Its pid, when known.
    pub pid: Option<u32>,
    /// What it runs on (for reports).
    pub label: String,
    /// The private redis-server, when there is one.
    pub redis: Option<RedisServer>,
    /// The self-started server (kept alive until dropped).
    pub server: Option<TesseraServer>,
}

/// Why a self-started server could not run.
#[derive(Debug)]
pub enum StartFailure {
    /// The build says this backend is not available (not wired yet).
    BackendUnavailable(String),
    /// Anything else.
    Other(anyhow::Error),
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartFailure::BackendUnavailable(why) => write!(f, "backend not available: {why}"),
            StartFailure::Other(e) => write!(f, "{e:#}"),
        }
    }
}

/// Starts Tessera on `backend` (and its redis-server), classifying a "backend not
/// available" exit so callers can skip instead of failing.
pub async fn start_server(
    backend: BackendArg,
    bin: Option<PathBuf>,
    cpus: Option<String>,
    dir: Option<PathBuf>,
    env: Vec<(String, String)>,
) -> Result<Running, StartFailure> {
    let redis = match backend {
        BackendArg::Redis => {
            let found = std::process::Command::new("redis-server")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            if !found {
                return Err(StartFailure::BackendUnavailable(
                    "redis-server is not installed (not on PATH)".into(),
                ));
            }
            Some(
                start_redis(cpus.as_deref())
                    .await
                    .map_err(StartFailure::Other)?,
            )
        }
        BackendArg::Embedded => None,
    };
    // The server runs in its own directory: resolve a relative path now.
    let bin = bin.unwrap_or_else(default_tessera_bin);
    let bin = std::fs::canonicalize(&bin).unwrap_or(bin);
    let opts = TesseraOpts {
        bin,
        backend: match &redis {
            Some(r) => Backend::Redis(r.url()),
            None => Backend::Embedded,
        },
        cpus,
        dir,
        env,
    };
    if !opts.bin.exists() {
        return Err(StartFailure::Other(anyhow::anyhow!(
            "{} does not exist: run `cargo build --release -p tessera` or pass --tessera-bin",
            opts.bin.display()
        )));
    }
    match start_tessera(&opts).await {
        Ok(server) => Ok(Running {
            target: Target::with_admin_key(
                server.addr,
                server.api_key.clone(),
                server.admin_key.clone(),
            ),
            pid: Some(server.proc.pid),
            label: format!("{backend:?}").to_lowercase(),
            redis,
            server: Some(server),
        }),
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<ExitedEarly>()
                && exit.log.contains("not available")
            {
                let line = exit
                    .log
                    .lines()
                    .find(|l| l.contains("not available"))
                    .unwrap_or("not available")
                    .trim()
                    .to_owned();
                return Err(StartFailure::BackendUnavailable(line));
            }
            Err(StartFailure::Other(e))
        }
    }
}

impl ServerArgs {
    /// Connects to `--addr`, or starts a server with `env` added to its environment.
    pub async fn open(&self, env: Vec<(String, String)>) -> anyhow::Result<Running> {
        if let Some(addr) = self.addr {
            let key = match (&self.api_key, &self.api_key_file) {
                (Some(k), _) => k.clone(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .with_context(|| format!("read {}", f.display()))?
                    .trim()
                    .to_owned(),
                (None, None) => {
                    bail!("--addr needs --api-key (or TESSERA_BENCH_API_KEY) or --api-key-file")
                }
            };
            let target = match &self.admin_key {
                Some(admin) => Target::with_admin_key(addr, key, admin.clone()),
                None => Target::new(addr, Some(key)),
            };
            return Ok(Running {
                target,
                pid: self.server_pid,
                label: format!("running server at {addr}"),
                redis: None,
                server: None,
            });
        }
        start_server(
            self.backend,
            self.tessera_bin.clone(),
            self.server_cpus.clone(),
            self.data_dir.clone(),
            env,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
    }
}
