//! Snapshots of the embedded store: every table copied, row by row, into a new redb file.
//!
//! A backup is not a file copy of the live database: it is one redb read transaction (an
//! MVCC snapshot, which never blocks the writers) whose tables are streamed into a fresh
//! database in chunks, so a large store is never held in memory. The copy carries a
//! manifest table (`tessera_snapshot`: format, version, time, rows per table) that a restore
//! checks before it copies the tables back, without the manifest, into a new store file.
//!
//! The list of tables is [`copy_every_table`]: a table this code does not know makes a
//! backup fail rather than silently leave it out (add it there when you add a table).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use chrono::{DateTime, Utc};
use redb::{
    Database, Durability, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, TableDefinition,
    TableHandle,
};
use serde::{Deserialize, Serialize};
use tessera_actors::StoreError;

use super::tables::{self, read_table, unavailable};
use super::{EmbeddedStore, META, audit, catalog, events, resources};

/// The manifest table of a snapshot file; never part of a live store.
const MANIFEST: TableDefinition<&str, &[u8]> = TableDefinition::new("tessera_snapshot");
/// The manifest's one key.
const MANIFEST_KEY: &str = "manifest";
/// What [`Manifest::format`] says in every Tessera snapshot.
pub const FORMAT: &str = "tessera-embedded-snapshot";
/// The snapshot layout this build writes and reads.
pub const VERSION: u32 = 1;
/// Rows copied per intermediate commit: bounds the memory a copy holds.
const CHUNK: usize = 10_000;

/// What a snapshot file says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The snapshot layout ([`VERSION`]).
    pub version: u32,
    /// When the read transaction it copies began.
    pub created_at: DateTime<Utc>,
    /// Rows per table.
    pub tables: BTreeMap<String, u64>,
}

impl Manifest {
    /// Rows in `table` (0 when it has none).
    pub fn rows(&self, table: &str) -> u64 {
        self.tables.get(table).copied().unwrap_or(0)
    }
}

fn db_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("snapshot: {e}"))
}

/// Copies one table of `src` into `dest`, `CHUNK` rows per commit; returns the rows copied.
/// A table `src` never created is created empty, so every snapshot has every table.
fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    src: &ReadTransaction,
    dest: &Database,
    def: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    let table = read_table(src, def)?;
    let mut rows = match &table {
        Some(t) => Some(redb::ReadableTable::iter(t).map_err(unavailable)?),
        None => None,
    };
    let mut copied = 0u64;
    loop {
        let mut tx = dest.begin_write().map_err(db_error)?;
        // The last commit of the copy is durable; these only bound the memory in use.
        tx.set_durability(Durability::None).map_err(db_error)?;
        let mut in_chunk = 0;
        {
            let mut out = tx.open_table(def).map_err(db_error)?;
            if let Some(rows) = rows.as_mut() {
                while in_chunk < CHUNK {
                    let Some(row) = rows.next() else {
                        break;
                    };
                    let (k, v) = row.map_err(unavailable)?;
                    out.insert(k.value(), v.value()).map_err(db_error)?;
                    in_chunk += 1;
                }
            }
        }
        tx.commit().map_err(db_error)?;
        copied += in_chunk as u64;
        if in_chunk < CHUNK {
            return Ok(copied);
        }
    }
}

/// Copies every table of the store from `src` into `dest`; rows per table.
fn copy_every_table(
    src: &ReadTransaction,
    dest: &Database,
) -> Result<BTreeMap<String, u64>, StoreError> {
    let mut n = BTreeMap::new();
    macro_rules! copy {
        ($($def:expr),* $(,)?) => {
            $( n.insert($def.name().to_owned(), copy_table(src, dest, $def)?); )*
        };
    }
    copy!(
        META,
        tables::LICENSES,
        tables::ACTIVATIONS,
        tables::SESSIONS,
        tables::SESSION_INDEX,
        tables::DEADLINES,
        tables::LICENSE_IDS,
        tables::COUNTERS,
        catalog::RECORDS,
        catalog::INDEX,
        catalog::TERMS,
        catalog::SEQ,
        resources::RESOURCES,
        resources::NAMES,
        resources::BY_TYPE,
        resources::FREE,
        resources::HELD,
        resources::COUNTS,
        resources::SEQ,
        events::EVENTS,
        audit::AUDIT,
    );
    Ok(n)
}

/// Fails when `src` holds a table [`copy_every_table`] does not copy (besides `allowed`).
fn refuse_unknown_tables(
    src: &ReadTransaction,
    known: &BTreeMap<String, u64>,
    allowed: &str,
) -> Result<(), StoreError> {
    for t in src.list_tables().map_err(unavailable)? {
        if t.name() != allowed && !known.contains_key(t.name()) {
            return Err(StoreError::Corrupt(format!(
                "table `{}` is unknown to this version of tessera",
                t.name()
            )));
        }
    }
    if src
        .list_multimap_tables()
        .map_err(unavailable)?
        .next()
        .is_some()
    {
        return Err(StoreError::Corrupt(
            "a multimap table is unknown to this version of tessera".into(),
        ));
    }
    Ok(())
}

/// Makes the final commit of a copy durable.
fn sync(dest: &Database) -> Result<(), StoreError> {
    let tx = dest.begin_write().map_err(db_error)?;
    tx.commit().map_err(db_error)
}

impl EmbeddedStore {
    /// Writes a snapshot of everything committed now into `file` (new and empty), which it
    /// leaves synced. Blocking: run it in `spawn_blocking`. Writers go on meanwhile.
    pub fn write_snapshot(&self, file: File) -> Result<Manifest, StoreError> {
        let src = self.db.begin_read().map_err(unavailable)?;
        let created_at = Utc::now();
        let dest = redb::Builder::new().create_file(file).map_err(db_error)?;
        let tables = copy_every_table(&src, &dest)?;
        refuse_unknown_tables(&src, &tables, "")?;
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            version: VERSION,
            created_at,
            tables,
        };
        let bytes = tables::encode(&manifest)?;
        let tx = dest.begin_write().map_err(db_error)?;
        tx.open_table(MANIFEST)
            .map_err(db_error)?
            .insert(MANIFEST_KEY, bytes.as_slice())
            .map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        Ok(manifest)
    }
}

/// Why a file cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file is not a snapshot this build can restore; nothing was written.
    #[error("{} is not a Tessera snapshot: {reason}", path.display())]
    NotASnapshot {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// Reading or writing failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads and checks the manifest of the snapshot at `path`.
fn open_snapshot(path: &Path) -> Result<(ReadOnlyDatabase, Manifest), SnapshotError> {
    let not = |reason: String| SnapshotError::NotASnapshot {
        path: path.to_owned(),
        reason,
    };
    let db = redb::Builder::new()
        .open_read_only(path)
        .map_err(|e| not(format!("not a redb database ({e})")))?;
    let tx = db.begin_read().map_err(|e| not(e.to_string()))?;
    let manifest: Manifest = match read_table(&tx, MANIFEST)? {
        Some(t) => match redb::ReadableTable::get(&t, MANIFEST_KEY).map_err(unavailable)? {
            Some(v) => tables::decode(v.value()).map_err(|e| not(format!("bad manifest: {e}")))?,
            None => return Err(not("its manifest is empty".into())),
        },
        None => {
            return Err(not(
                "it has no manifest (a live tessera.redb is not one)".into()
            ));
        }
    };
    if manifest.format != FORMAT {
        return Err(not(format!("format `{}`", manifest.format)));
    }
    if manifest.version != VERSION {
        return Err(not(format!(
            "snapshot version {} (this build reads {VERSION})",
            manifest.version
        )));
    }
    drop(tx);
    Ok((db, manifest))
}

/// Checks the snapshot at `path` and copies its tables (not its manifest) into `file` (new
/// and empty), which then holds a store a server can open. Fails, having written nothing
/// that matters (`file` is the caller's to remove), when the file is not a Tessera snapshot
/// or a table's rows differ from its manifest.
pub fn restore_snapshot(path: &Path, file: File) -> Result<Manifest, SnapshotError> {
    let (src_db, manifest) = open_snapshot(path)?;
    let src = src_db.begin_read().map_err(unavailable)?;
    let dest = redb::Builder::new().create_file(file).map_err(db_error)?;
    let copied = copy_every_table(&src, &dest)?;
    let mismatch = |reason: String| SnapshotError::NotASnapshot {
        path: path.to_owned(),
        reason,
    };
    refuse_unknown_tables(&src, &copied, MANIFEST.name()).map_err(|e| mismatch(e.to_string()))?;
    for (table, rows) in &copied {
        if *rows != manifest.rows(table) {
            return Err(mismatch(format!(
                "table `{table}` has {rows} rows, its manifest says {}",
                manifest.rows(table)
            )));
        }
    }
    if let Some(extra) = manifest.tables.keys().find(|t| !copied.contains_key(*t)) {
        return Err(mismatch(format!(
            "its manifest names an unknown table `{extra}`"
        )));
    }
    sync(&dest)?;
    Ok(manifest)
}

/// The manifest of the snapshot at `path`, checked (for `tessera restore` to report).
pub fn read_manifest(path: &Path) -> Result<Manifest, SnapshotError> {
    open_snapshot(path).map(|(_, m)| m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::store::MetaStore;

    fn new_file(path: &Path) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .unwrap()
    }

    #[tokio::test]
    async fn a_snapshot_restores_every_row_and_a_store_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("live/tessera.redb")).unwrap();
        for i in 0..(CHUNK + 5) {
            store.put(&format!("k{i}"), b"v").await.unwrap();
        }
        let snap = dir.path().join("snap.redb");
        let m = store.write_snapshot(new_file(&snap)).unwrap();
        assert_eq!(m.rows("meta"), CHUNK as u64 + 5);
        assert!(m.tables.contains_key("audit"));
        drop(store);

        let restored = dir.path().join("restored/tessera.redb");
        std::fs::create_dir_all(restored.parent().unwrap()).unwrap();
        let r = restore_snapshot(&snap, new_file(&restored)).unwrap();
        assert_eq!(r, m);
        let store = EmbeddedStore::open(&restored).unwrap();
        assert_eq!(store.get("k10004").await.unwrap(), Some(b"v".to_vec()));
        drop(store);

        // A live store file has no manifest; a text file is no database at all.
        let other = dir.path().join("other.redb");
        let err = restore_snapshot(&dir.path().join("live/tessera.redb"), new_file(&other));
        assert!(
            matches!(err, Err(SnapshotError::NotASnapshot { .. })),
            "{err:?}"
        );
        let text = dir.path().join("text");
        std::fs::write(&text, b"hello").unwrap();
        let err = read_manifest(&text);
        assert!(
            matches!(err, Err(SnapshotError::NotASnapshot { .. })),
            "{err:?}"
        );
    }
}
