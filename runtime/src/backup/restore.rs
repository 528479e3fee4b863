//! `tessera restore`: a snapshot back into a stopped server's data directory.
//!
//! Refused while a server runs on that directory (its control socket answers, or it holds
//! the database's lock), when the file is not a Tessera snapshot, and when a store already
//! exists there without `force`. With `force` the existing store is kept beside the new one
//! as `tessera.redb.bak-<UTC time>`; nothing is ever deleted. The snapshot is copied table by
//! table into a temporary file in the data directory, checked against its manifest, and only
//! then renamed into place, so a failed restore changes nothing.

use std::path::{Path, PathBuf};

use redb::DatabaseError;

use super::file::{Staged, parent_of, sync_dir};
use crate::store::embedded::snapshot::{Manifest, SnapshotError, restore_snapshot};

/// What a restore did.
#[derive(Debug)]
pub struct RestoreReport {
    /// The snapshot's manifest (its time and rows per table).
    pub manifest: Manifest,
    /// The store file written.
    pub into: PathBuf,
    /// Where the store that was there before went, if there was one.
    pub previous: Option<PathBuf>,
}

/// Why a restore was refused or failed; the data directory is as it was.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A server runs on the data directory.
    #[error("a server is running on {0}: stop it first")]
    ServerRunning(PathBuf),
    /// A store exists and `force` was not given.
    #[error(
        "{0} already exists: pass --force to restore over it (it is kept as tessera.redb.bak-<time>)"
    )]
    Exists(PathBuf),
    /// The file is not a snapshot, or reading or writing failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A file operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Restores the snapshot `from` as the store file `db` of the server whose control socket
/// is `socket`.
pub async fn restore(
    from: &Path,
    db: &Path,
    socket: &Path,
    force: bool,
) -> Result<RestoreReport, RestoreError> {
    if socket_answers(socket).await {
        return Err(RestoreError::ServerRunning(parent_of(db).to_owned()));
    }
    let (from, db) = (from.to_owned(), db.to_owned());
    tokio::task::spawn_blocking(move || restore_blocking(&from, &db, force))
        .await
        .map_err(|e| RestoreError::Io(std::io::Error::other(e.to_string())))?
}

#[cfg(unix)]
async fn socket_answers(socket: &Path) -> bool {
    tokio::net::UnixStream::connect(socket).await.is_ok()
}

#[cfg(not(unix))]
async fn socket_answers(_socket: &Path) -> bool {
    false
}

fn restore_blocking(from: &Path, db: &Path, force: bool) -> Result<RestoreReport, RestoreError> {
    // Checked first, so a file that is not a snapshot leaves everything as it was.
    crate::store::embedded::snapshot::read_manifest(from)?;
    let exists = db.exists();
    if exists && !force {
        return Err(RestoreError::Exists(db.to_owned()));
    }
    // Held until the new file is in place: a server starting meanwhile finds it locked.
    let _lock = if exists {
        match redb::Builder::new().open_read_only(db) {
            Ok(held) => Some(held),
            Err(DatabaseError::DatabaseAlreadyOpen) => {
                return Err(RestoreError::ServerRunning(parent_of(db).to_owned()));
            }
            // A damaged store is what a restore replaces: it is kept as the .bak.
            Err(_) => None,
        }
    } else {
        create_private_dir(parent_of(db))?;
        None
    };
    let (staged, file) = Staged::beside(db)?;
    let manifest = restore_snapshot(from, file)?;
    let previous = if exists {
        let bak = db.with_file_name(format!(
            "{}.bak-{}",
            db.file_name()
                .map_or("tessera.redb".into(), |n| n.to_string_lossy()),
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        ));
        std::fs::rename(db, &bak)?;
        Some(bak)
    } else {
        None
    };
    staged.place()?;
    sync_dir(parent_of(db))?;
    Ok(RestoreReport {
        manifest,
        into: db.to_owned(),
        previous,
    })
}

/// The data directory, owner only, as the server creates it.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
