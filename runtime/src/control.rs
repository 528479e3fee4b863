//! Local control socket: lets the CLI act on a running server that holds the embedded store.
//!
//! redb allows one process per database file, so `tessera api-key regenerate` cannot open the
//! store while `tessera serve` runs. The server listens on `data_dir/tessera.sock` (mode 0600:
//! whoever may read the data directory may administer the server) and performs the command
//! itself, which also updates its key cache at once. One JSON line in, one JSON line out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tessera_config::Config;

use crate::admin::command::AdminCommand;
use crate::auth::commands::{CredentialCommand, CredentialReply};
use crate::backup::BackupReport;
use crate::state::AppState;

/// The control socket of the server whose embedded store lives in `config.store.data_dir`.
pub fn socket_path(config: &Config) -> PathBuf {
    config.store.data_dir.join("tessera.sock")
}

/// A request on the control socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum ControlRequest {
    /// Replace the API key; the old one stays valid for `rotation_overlap_secs`.
    RegenerateApiKey {
        /// Overlap of the old key, from the caller's config.
        rotation_overlap_secs: u64,
    },
    /// An admin service command (`tessera license ...`); replies [`ControlReply::Admin`].
    Admin(AdminCommand),
    /// Administer admin keys or operators (`tessera admin-key|operator ...`).
    Credentials(CredentialCommand),
    /// Every setting as the server runs it (`tessera config check --against-running`);
    /// replies [`ControlReply::Settings`].
    RunningConfig,
    /// Write a snapshot of the embedded store to `to` (`tessera backup`): queued heartbeats
    /// are flushed first, then one read transaction is copied (see `crate::backup`).
    Backup {
        /// The snapshot file, an absolute path (the caller runs as this server's user).
        to: PathBuf,
    },
}

/// The reply to a [`ControlRequest`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlReply {
    /// The new API key.
    ApiKey(String),
    /// What went wrong.
    Error(String),
    /// An admin command's answer: the JSON the HTTP API sends for the same operation.
    Admin(serde_json::Value),
    /// What a credential command produced.
    Credentials(CredentialReply),
    /// Every running setting, classified, values shown only as they may be (no secrets).
    Settings(crate::reload::settings::Settings),
    /// The snapshot written.
    Backup(BackupReport),
}

#[cfg(unix)]
async fn handle(state: &AppState, req: ControlRequest) -> ControlReply {
    match req {
        ControlRequest::RegenerateApiKey {
            rotation_overlap_secs,
        } => match state
            .api_keys
            .regenerate(Duration::from_secs(rotation_overlap_secs))
            .await
        {
            Ok(key) => {
                tracing::info!(
                    overlap_secs = rotation_overlap_secs,
                    "API key regenerated via control socket"
                );
                ControlReply::ApiKey(key)
            }
            Err(e) => ControlReply::Error(e.to_string()),
        },
        ControlRequest::Admin(cmd) => match cmd.run(&state.admin.acting_as("cli")).await {
            Ok(v) => ControlReply::Admin(v),
            Err(e) => ControlReply::Error(e.to_string()),
        },
        ControlRequest::RunningConfig => {
            ControlReply::Settings(crate::reload::running_settings(state))
        }
        ControlRequest::Credentials(cmd) => {
            let entry = cmd.audit_entry();
            match crate::auth::commands::run(state.auth.meta().as_ref(), cmd).await {
                Ok(reply) => match entry {
                    Some(e) => match state.admin.audit().record(e).await {
                        Ok(_) => ControlReply::Credentials(reply),
                        Err(e) => ControlReply::Error(format!("done, but not audited: {e}")),
                    },
                    None => ControlReply::Credentials(reply),
                },
                Err(e) => ControlReply::Error(e.to_string()),
            }
        }
        ControlRequest::Backup { to } => backup(state, &to).await,
    }
}

#[cfg(unix)]
async fn backup(state: &AppState, to: &Path) -> ControlReply {
    let Some(store) = &state.embedded else {
        return ControlReply::Error(crate::backup::REDIS_NOTE.to_owned());
    };
    // Heartbeats queued for the write-behind go into the snapshot too; a failed flush keeps
    // them queued, and the snapshot holds what was committed before.
    if let Err(e) = state.licenses.write_behind().flush().await {
        tracing::warn!(error = %e, "backup: heartbeat flush failed; snapshot taken anyway");
    }
    match crate::backup::write_backup(store, to).await {
        Ok(report) => {
            tracing::info!(bytes = report.bytes, "backup written via control socket");
            ControlReply::Backup(report)
        }
        Err(e) => ControlReply::Error(e.to_string()),
    }
}

/// How long a control connection may take to send its request line.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest line a control client may send.
const MAX_REQUEST_BYTES: u64 = 1024 * 1024;

/// Who may talk to the socket and for how long.
#[cfg(unix)]
#[derive(Clone, Copy, Debug)]
struct Admission {
    /// Only peers running as this uid are served (the server's own).
    uid: u32,
    /// A connection that has not sent its request line by then is closed.
    idle_timeout: Duration,
}

/// Serves the control socket at `path` until the returned task is aborted.
#[cfg(unix)]
pub(crate) fn spawn(
    state: AppState,
    path: PathBuf,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use std::os::unix::fs::MetadataExt;

    let listener = bind_private(&path)?;
    // We created the socket, so its owner is the uid we run as (no `unsafe` getuid here).
    let uid = std::fs::symlink_metadata(&path)?.uid();
    Ok(tokio::spawn(serve(
        listener,
        state,
        Admission {
            uid,
            idle_timeout: IDLE_TIMEOUT,
        },
    )))
}

/// Binds a Unix socket at `path` that nobody but its owner can reach at any moment: it is
/// bound inside a fresh directory of mode 0700, set to 0600 there, then renamed into place.
/// A process-wide umask would do the same but is racy with every other thread creating
/// files at that moment and needs `unsafe` (this crate forbids it); the directory is private
/// to this call.
#[cfg(unix)]
fn bind_private(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .unwrap_or(std::ffi::OsStr::new("tessera.sock"));
    let mut nonce = [0u8; 8];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut nonce)
        .map_err(std::io::Error::other)?;
    let private = parent.join(format!(".tessera-sock-{}", hex::encode(nonce)));
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let staged = private.join(name);
    let bound = (|| {
        let listener = tokio::net::UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        // We hold the database lock, so a socket file left at `path` is from a dead server;
        // rename replaces it atomically.
        std::fs::rename(&staged, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    bound
}

/// Delay after a failed `accept` (out of file descriptors, say): doubles from 10 ms to 1 s,
/// back to none after a success, so a persistent error neither spins a core nor floods
/// the log.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    next: Option<Duration>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    pub(crate) fn failed(&mut self) -> Duration {
        let delay = self.next.unwrap_or(Self::FIRST);
        self.next = Some((delay * 2).min(Self::MAX));
        delay
    }

    pub(crate) fn succeeded(&mut self) {
        self.next = None;
    }
}

#[cfg(unix)]
async fn serve(listener: tokio::net::UnixListener, state: AppState, admission: Admission) {
    let mut backoff = AcceptBackoff::default();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff.succeeded();
                stream
            }
            Err(e) => {
                let delay = backoff.failed();
                tracing::warn!(error = %e, retry_ms = delay.as_millis() as u64, "control socket accept failed");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == admission.uid => {}
            Ok(cred) => {
                tracing::warn!(
                    peer_uid = cred.uid(),
                    "control socket connection from another user refused"
                );
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket peer unknown; connection refused");
                continue;
            }
        }
        let state = state.clone();
        tokio::spawn(async move { serve_one(stream, &state, admission.idle_timeout).await });
    }
}

#[cfg(unix)]
async fn serve_one(stream: tokio::net::UnixStream, state: &AppState, idle_timeout: Duration) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    // Bound what a client can make us buffer, and for how long.
    let mut reader = BufReader::new(read.take(MAX_REQUEST_BYTES));
    let Ok(read) = tokio::time::timeout(idle_timeout, reader.read_line(&mut line)).await else {
        return;
    };
    // The command itself is not timed out: issuing many licenses may take a while.
    let reply = match read {
        Ok(_) => match serde_json::from_str::<ControlRequest>(&line) {
            Ok(req) => handle(state, req).await,
            Err(e) => ControlReply::Error(format!("bad request: {e}")),
        },
        Err(e) => ControlReply::Error(format!("read failed: {e}")),
    };
    if let Ok(mut out) = serde_json::to_vec(&reply) {
        out.push(b'\n');
        let _ = write.write_all(&out).await;
    }
}

/// Sends `req` to the server listening at `path` and waits at most 10 s for the answer.
pub async fn request(path: &Path, req: &ControlRequest) -> anyhow::Result<ControlReply> {
    request_within(path, req, Duration::from_secs(10)).await
}

/// [`request`] waiting at most `limit` (a backup of a large store takes a while).
#[cfg(unix)]
pub async fn request_within(
    path: &Path,
    req: &ControlRequest,
    limit: Duration,
) -> anyhow::Result<ControlReply> {
    use anyhow::Context;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let exchange = async {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .with_context(|| {
                format!(
                    "cannot connect to the server's control socket {}",
                    path.display()
                )
            })?;
        let (read, mut write) = stream.into_split();
        let mut out = serde_json::to_vec(req)?;
        out.push(b'\n');
        write.write_all(&out).await?;
        let mut line = String::new();
        BufReader::new(read).read_line(&mut line).await?;
        serde_json::from_str::<ControlReply>(&line).context("bad reply from the server")
    };
    tokio::time::timeout(limit, exchange)
        .await
        .context("the server did not answer on its control socket")?
}

/// Control sockets need Unix; elsewhere the CLI must stop the server first.
#[cfg(not(unix))]
pub async fn request_within(
    _path: &Path,
    _req: &ControlRequest,
    _limit: Duration,
) -> anyhow::Result<ControlReply> {
    anyhow::bail!("the control socket needs a Unix system; stop the server and retry")
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn state(dir: &Path) -> AppState {
        let mut c = Config::default();
        c.store.data_dir = dir.join("data");
        c.log.level = "warn".into();
        match AppState::open(c).await {
            Ok(opened) => opened.state,
            Err(e) => panic!("open state: {e}"),
        }
    }

    /// Sends one request line and reads until the server closes (at most 10 s).
    async fn exchange(path: &Path, line: &[u8]) -> Vec<u8> {
        let mut stream = tokio::net::UnixStream::connect(path)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        stream
            .write_all(line)
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
        let mut out = Vec::new();
        match tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await {
            Ok(_) => out,
            Err(_) => panic!("the server kept the connection open"),
        }
    }

    const SHOW: &[u8] =
        b"{\"command\":\"admin\",\"op\":\"show\",\"license\":\"AAAA-BBBB-CCCC-DDDD\"}\n";

    #[tokio::test]
    async fn the_socket_appears_private_and_replaces_a_stale_one() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("tessera.sock");
        std::fs::write(&path, b"stale").unwrap_or_else(|e| panic!("{e}"));
        let _listener = bind_private(&path).unwrap_or_else(|e| panic!("bind: {e}"));
        let meta = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let entries: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(entries, [std::ffi::OsString::from("tessera.sock")]);
    }

    #[tokio::test]
    async fn a_peer_running_as_another_user_gets_nothing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = state(dir.path()).await;
        let path = dir.path().join("tessera.sock");
        let listener = bind_private(&path).unwrap_or_else(|e| panic!("bind: {e}"));
        let own = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .uid();
        let admission = Admission {
            uid: own,
            idle_timeout: IDLE_TIMEOUT,
        };
        // The server's own user is answered ...
        let task = tokio::spawn(serve(listener, state.clone(), admission));
        assert!(!exchange(&path, SHOW).await.is_empty());
        task.abort();
        // ... a server running as someone else drops the connection unanswered.
        let listener = bind_private(&path).unwrap_or_else(|e| panic!("bind: {e}"));
        let other = Admission {
            uid: own.wrapping_add(1),
            ..admission
        };
        let task = tokio::spawn(serve(listener, state, other));
        assert_eq!(exchange(&path, SHOW).await, b"");
        task.abort();
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = state(dir.path()).await;
        let path = dir.path().join("tessera.sock");
        let listener = bind_private(&path).unwrap_or_else(|e| panic!("bind: {e}"));
        let uid = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .uid();
        let task = tokio::spawn(serve(
            listener,
            state,
            Admission {
                uid,
                idle_timeout: Duration::from_millis(100),
            },
        ));
        // Half a request line, then silence.
        assert_eq!(exchange(&path, b"{\"command\"").await, b"");
        task.abort();
    }

    #[test]
    fn accept_errors_back_off_up_to_a_second_and_reset_on_success() {
        let mut b = AcceptBackoff::default();
        let delays: Vec<u128> = (0..9).map(|_| b.failed().as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(), Duration::from_millis(10));
    }
}
