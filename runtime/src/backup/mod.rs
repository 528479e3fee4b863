//! Backups and restores of the embedded store (`tessera backup`, `tessera restore`).
//!
//! A backup is a snapshot (`store::embedded::snapshot`): one read transaction of the live
//! store copied table by table into a new redb file, written beside its destination under a
//! temporary name (mode 0600) and renamed into place. A running server writes it itself,
//! asked over its control socket, because it holds the database's lock; a stopped one is
//! opened by the command. A restore (`restore.rs`) checks a snapshot and copies it into a
//! stopped server's data directory. Redis is backed up with Redis' own RDB and AOF files;
//! both commands say so and fail.

pub(crate) mod file;
pub mod restore;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use self::file::Staged;
use crate::store::EmbeddedStore;
use crate::store::StoreError;

/// What `tessera backup` and `tessera restore` print for Redis.
pub const REDIS_NOTE: &str = "the store is Redis: tessera backup and restore cover the embedded \
store only. Back Redis up with its own persistence: copy the RDB snapshot (BGSAVE, then \
dump.rdb) or the AOF directory, or keep a replica (see docs/deployment.md, \
\"Backup and restore\")";

/// What a backup wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupReport {
    /// The snapshot file.
    pub path: PathBuf,
    /// The instant it holds: everything committed to the store before then.
    pub created_at: DateTime<Utc>,
    /// Rows per table.
    pub tables: BTreeMap<String, u64>,
    /// Size of the file.
    pub bytes: u64,
}

/// Why a backup failed; nothing was left at the destination.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The destination is unusable.
    #[error("{0}")]
    Destination(String),
    /// Writing the file failed.
    #[error("cannot write the snapshot: {0}")]
    Io(#[from] std::io::Error),
    /// Reading the store or writing the snapshot failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes a snapshot of `store` to `to` (absolute; replaced if it exists).
pub async fn write_backup(store: &EmbeddedStore, to: &Path) -> Result<BackupReport, BackupError> {
    check_destination(store.path(), to)?;
    let store = store.clone();
    let to = to.to_owned();
    tokio::task::spawn_blocking(move || {
        let (staged, file) = Staged::beside(&to)?;
        let manifest = store.write_snapshot(file)?;
        staged.place()?;
        let bytes = std::fs::metadata(&to)?.len();
        Ok(BackupReport {
            path: to,
            created_at: manifest.created_at,
            tables: manifest.tables,
            bytes,
        })
    })
    .await
    .map_err(|e| BackupError::Destination(format!("backup task failed: {e}")))?
}

/// Refuses a relative path (the server's working directory is not the caller's), a
/// directory, a missing directory and the live database itself.
fn check_destination(live: &Path, to: &Path) -> Result<(), BackupError> {
    if !to.is_absolute() {
        return Err(BackupError::Destination(format!(
            "{} is not an absolute path",
            to.display()
        )));
    }
    if to.is_dir() {
        return Err(BackupError::Destination(format!(
            "{} is a directory; name the snapshot file",
            to.display()
        )));
    }
    let dir = file::parent_of(to);
    let dir = dir.canonicalize().map_err(|e| {
        BackupError::Destination(format!("cannot use the directory {}: {e}", dir.display()))
    })?;
    let same = match (live.canonicalize(), to.file_name()) {
        (Ok(live), Some(name)) => live == dir.join(name),
        _ => false,
    };
    if same {
        return Err(BackupError::Destination(
            "the destination is the live database itself".into(),
        ));
    }
    Ok(())
}
