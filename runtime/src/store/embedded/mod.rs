//! The embedded store: one redb file at `data_dir/tessera.redb`, shared by every embedded
//! table (metadata here, license tables in `licenses.rs`, written by `writer.rs`; resource
//! pools in `resources.rs`, the catalog in `catalog.rs`, the event log in `events.rs`;
//! backups and restores in `snapshot.rs`).

pub mod audit;
mod catalog;
mod events;
pub mod licenses;
mod meta;
mod resources;
pub mod snapshot;
mod tables;
mod transfer;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, TableDefinition};

use self::writer::LicenseWriter;
use crate::store::meta::{MetaStore, StoreError, StoreHealth};

/// The metadata table: key → opaque bytes.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// The embedded redb store. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
    /// Commits the license tables' writes in groups (`writer.rs`).
    writer: Arc<LicenseWriter>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish()
    }
}

fn backend(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {}", e.into()))
}

impl EmbeddedStore {
    /// Opens (creating it and its directory if needed) the database at `path` with redb's
    /// default page cache. Fails with [`StoreError::Locked`] while another process has it open.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(path, None)
    }

    /// [`EmbeddedStore::open`] with a page cache of `cache_bytes` (redb's default when `None`).
    pub fn open_with_cache(path: &Path, cache_bytes: Option<usize>) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            // License data and the control socket live here: owner only.
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let mut builder = redb::Builder::new();
        if let Some(bytes) = cache_bytes {
            builder.set_cache_size(bytes);
        }
        let db = builder.create(path).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.to_owned()),
            other => StoreError::Unavailable(format!("cannot open {}: {other}", path.display())),
        })?;
        // Create the table up front so readers never see "table does not exist".
        let tx = db.begin_write().map_err(backend)?;
        tx.open_table(META).map_err(backend)?;
        tables::WriteTables::open(&tx)?.rebuild_license_ids()?;
        tx.commit().map_err(backend)?;
        let db = Arc::new(db);
        let writer = LicenseWriter::start(Arc::clone(&db))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store writer: {e}")))?;
        Ok(Self {
            db,
            path: path.to_owned(),
            writer: Arc::new(writer),
        })
    }

    /// The writer that commits license writes in groups.
    fn writer(&self) -> &LicenseWriter {
        &self.writer
    }

    /// The shared database, for adapters that keep their own tables in the same file.
    /// Every access is blocking: run it in `spawn_blocking`.
    pub fn database(&self) -> Arc<Database> {
        Arc::clone(&self.db)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_roundtrip_and_second_open_is_locked() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let path = dir.path().join("sub/tessera.redb");
        let store = EmbeddedStore::open(&path)?;
        assert_eq!(store.get("k").await?, None);
        store.put("k", b"v1").await?;
        store.put("k", b"v2").await?;
        assert_eq!(store.get("k").await?, Some(b"v2".to_vec()));
        assert_eq!(store.health().await, StoreHealth::Ok);
        assert!(matches!(
            EmbeddedStore::open(&path),
            Err(StoreError::Locked(_))
        ));
        drop(store);
        let reopened = EmbeddedStore::open(&path)?;
        assert_eq!(reopened.get("k").await?, Some(b"v2".to_vec()));
        Ok(())
    }
}
