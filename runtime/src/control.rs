//! Local control socket: lets the CLI act on a running server that holds the embedded store.
//!
//! redb allows one process per database file, so `tessera api-key regenerate` cannot open the
//! store while `tessera serve` runs. The server listens on `data_dir/tessera.sock` (mode 0600:
//! whoever may read the data directory may administer the server) and performs the command
//! itself, which also updates its key cache at once. One JSON line in, one JSON line out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tessera_actors::LicenseKey;
use tessera_config::Config;

use crate::admin::NewLicense;
use crate::admin::view::AdminLicense;
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
    /// Issue licenses (`tessera license create`); replies [`ControlReply::Issued`].
    IssueLicenses {
        /// What the licenses get.
        new: NewLicense,
        /// How many.
        count: u32,
    },
    /// Show a license (`tessera license show`); replies with the admin view.
    ShowLicense {
        /// The license key.
        license_key: String,
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
    /// The keys of the licenses issued.
    Issued(Vec<String>),
    /// One license as an operator sees it.
    License(Box<AdminLicense>),
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
        ControlRequest::IssueLicenses { new, count } => match state.admin.issue(new, count).await {
            Ok(records) => {
                ControlReply::Issued(records.iter().map(|r| r.key.to_string()).collect())
            }
            Err(e) => ControlReply::Error(e.to_string()),
        },
        ControlRequest::ShowLicense { license_key } => {
            let shown = match LicenseKey::parse(&license_key) {
                Ok(key) => state.admin.show(&key).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match shown {
                Ok(detail) => {
                    ControlReply::License(Box::new(AdminLicense::of(&detail, chrono::Utc::now())))
                }
                Err(e) => ControlReply::Error(e),
            }
        }
    }
}

/// Serves the control socket at `path` until the returned task is aborted.
#[cfg(unix)]
pub(crate) fn spawn(
    state: AppState,
    path: PathBuf,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    // We hold the database lock, so a socket file left here is from a dead server.
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                // Bound what a client can make us buffer.
                let mut reader = BufReader::new(read.take(64 * 1024));
                let reply = match reader.read_line(&mut line).await {
                    Ok(_) => match serde_json::from_str::<ControlRequest>(&line) {
                        Ok(req) => handle(&state, req).await,
                        Err(e) => ControlReply::Error(format!("bad request: {e}")),
                    },
                    Err(e) => ControlReply::Error(format!("read failed: {e}")),
                };
                if let Ok(mut out) = serde_json::to_vec(&reply) {
                    out.push(b'\n');
                    let _ = write.write_all(&out).await;
                }
            });
        }
    }))
}

/// Sends `req` to the server listening at `path`.
#[cfg(unix)]
pub async fn request(path: &Path, req: &ControlRequest) -> anyhow::Result<ControlReply> {
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
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .context("the server did not answer on its control socket")?
}

/// Control sockets need Unix; elsewhere the CLI must stop the server first.
#[cfg(not(unix))]
pub async fn request(_path: &Path, _req: &ControlRequest) -> anyhow::Result<ControlReply> {
    anyhow::bail!("the control socket needs a Unix system; stop the server and retry")
}
