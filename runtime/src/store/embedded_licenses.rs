//! Licenses, activations and sessions in the embedded redb file: the [`Store`] port for
//! `store.backend = "embedded"`.
//!
//! Each operation runs inside a redb write transaction: it loads the license's stored state,
//! applies [`apply_to_snapshot`] (the reference semantics every adapter shares) and writes
//! back what changed, so limits are re-checked and written atomically. Operations queued
//! while a commit runs share the next transaction (`embedded_writer.rs`); commits are
//! durable (`Durability::Immediate`) before any of their calls return.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, TableError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_actors::memory_store::{apply_heartbeat, apply_to_snapshot};
use tessera_actors::{
    Activation, HeartbeatWrite, LicenseKey, LicenseRecord, LicenseSnapshot, SessionRecord, Store,
    StoreError, StoreHealth, StoreOp, StoreOutcome, TokenHash,
};

use super::embedded::EmbeddedStore;

/// License key → license record (JSON).
const LICENSES: TableDefinition<&str, &[u8]> = TableDefinition::new("licenses");
/// `KEY\0hardware_hash` → activation (JSON).
const ACTIVATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("activations");
/// `KEY\0token_hex` → live session (JSON).
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// Token hash → license key, for seed 000's session end (token only).
const SESSION_INDEX: TableDefinition<&[u8], &str> = TableDefinition::new("session_index");
/// (deadline in unix ms, token hash) → license key: the recovery sweep's index.
const DEADLINES: TableDefinition<(i64, &[u8]), &str> = TableDefinition::new("session_deadlines");
/// Id counters.
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// A backend failure as the port's error.
pub(super) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {e}"))
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn child_key(key: &LicenseKey, child: &str) -> String {
    format!("{}\0{child}", key.as_str())
}

/// Range bounds covering every child of `key` (`\0` < any child byte < `\u{1}` never occurs
/// in a license key, which holds only `[A-Z0-9_-]`).
fn children(key: &LicenseKey) -> (String, String) {
    (
        format!("{}\0", key.as_str()),
        format!("{}\u{1}", key.as_str()),
    )
}

fn read_snapshot<L, A, S>(
    licenses: &L,
    activations: &A,
    sessions: &S,
    key: &LicenseKey,
) -> Result<Option<LicenseSnapshot>, StoreError>
where
    L: ReadableTable<&'static str, &'static [u8]>,
    A: ReadableTable<&'static str, &'static [u8]>,
    S: ReadableTable<&'static str, &'static [u8]>,
{
    let Some(record) = licenses.get(key.as_str()).map_err(unavailable)? else {
        return Ok(None);
    };
    let record: LicenseRecord = decode(record.value())?;
    let (lo, hi) = children(key);
    let mut acts = Vec::new();
    for row in activations
        .range(lo.as_str()..hi.as_str())
        .map_err(unavailable)?
    {
        let (_, v) = row.map_err(unavailable)?;
        acts.push(decode::<Activation>(v.value())?);
    }
    acts.sort_by_key(|a| a.id);
    let mut live = Vec::new();
    for row in sessions
        .range(lo.as_str()..hi.as_str())
        .map_err(unavailable)?
    {
        let (_, v) = row.map_err(unavailable)?;
        live.push(decode::<SessionRecord>(v.value())?);
    }
    live.sort_by_key(|s| (s.started_at, s.token_hash));
    Ok(Some(LicenseSnapshot {
        record,
        activations: acts,
        sessions: live,
    }))
}

/// The license tables, open in one write transaction.
pub(super) struct WriteTables<'t> {
    licenses: Table<'t, &'static str, &'static [u8]>,
    activations: Table<'t, &'static str, &'static [u8]>,
    sessions: Table<'t, &'static str, &'static [u8]>,
    index: Table<'t, &'static [u8], &'static str>,
    deadlines: Table<'t, (i64, &'static [u8]), &'static str>,
    counters: Table<'t, &'static str, u64>,
}

impl<'t> WriteTables<'t> {
    /// Opens every license table in `tx`.
    pub(super) fn open(tx: &'t redb::WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            licenses: tx.open_table(LICENSES).map_err(unavailable)?,
            activations: tx.open_table(ACTIVATIONS).map_err(unavailable)?,
            sessions: tx.open_table(SESSIONS).map_err(unavailable)?,
            index: tx.open_table(SESSION_INDEX).map_err(unavailable)?,
            deadlines: tx.open_table(DEADLINES).map_err(unavailable)?,
            counters: tx.open_table(COUNTERS).map_err(unavailable)?,
        })
    }

    fn snapshot(&self, key: &LicenseKey) -> Result<Option<LicenseSnapshot>, StoreError> {
        read_snapshot(&self.licenses, &self.activations, &self.sessions, key)
    }

    fn next_id(&mut self, counter: &str) -> Result<u64, StoreError> {
        let next = self
            .counters
            .get(counter)
            .map_err(unavailable)?
            .map_or(0, |v| v.value())
            + 1;
        self.counters.insert(counter, next).map_err(unavailable)?;
        Ok(next)
    }

    fn put_session(&mut self, key: &LicenseKey, s: &SessionRecord) -> Result<(), StoreError> {
        let token = s.token_hash.as_bytes().as_slice();
        self.sessions
            .insert(
                child_key(key, &s.token_hash.to_hex()).as_str(),
                encode(s)?.as_slice(),
            )
            .map_err(unavailable)?;
        self.index
            .insert(token, key.as_str())
            .map_err(unavailable)?;
        self.deadlines
            .insert((s.deadline.timestamp_millis(), token), key.as_str())
            .map_err(unavailable)?;
        Ok(())
    }

    fn remove_session(&mut self, key: &LicenseKey, s: &SessionRecord) -> Result<(), StoreError> {
        let token = s.token_hash.as_bytes().as_slice();
        self.sessions
            .remove(child_key(key, &s.token_hash.to_hex()).as_str())
            .map_err(unavailable)?;
        self.index.remove(token).map_err(unavailable)?;
        self.deadlines
            .remove((s.deadline.timestamp_millis(), token))
            .map_err(unavailable)?;
        Ok(())
    }

    /// Writes the difference between `before` and `after` of one license.
    fn write_diff(
        &mut self,
        before: &LicenseSnapshot,
        after: &LicenseSnapshot,
    ) -> Result<(), StoreError> {
        let key = &after.record.key;
        if before.record != after.record {
            self.licenses
                .insert(key.as_str(), encode(&after.record)?.as_slice())
                .map_err(unavailable)?;
        }
        let old_acts: HashMap<&str, &Activation> = before
            .activations
            .iter()
            .map(|a| (a.hardware_hash.as_str(), a))
            .collect();
        for a in &after.activations {
            if old_acts.get(a.hardware_hash.as_str()) != Some(&a) {
                self.activations
                    .insert(
                        child_key(key, &a.hardware_hash).as_str(),
                        encode(a)?.as_slice(),
                    )
                    .map_err(unavailable)?;
            }
        }
        for a in &before.activations {
            if !after
                .activations
                .iter()
                .any(|n| n.hardware_hash == a.hardware_hash)
            {
                self.activations
                    .remove(child_key(key, &a.hardware_hash).as_str())
                    .map_err(unavailable)?;
            }
        }
        let old_sessions: HashMap<TokenHash, &SessionRecord> =
            before.sessions.iter().map(|s| (s.token_hash, s)).collect();
        let new_sessions: HashMap<TokenHash, &SessionRecord> =
            after.sessions.iter().map(|s| (s.token_hash, s)).collect();
        for (t, s) in &old_sessions {
            match new_sessions.get(t) {
                None => self.remove_session(key, s)?,
                Some(n) if n != s => {
                    self.remove_session(key, s)?;
                    self.put_session(key, n)?;
                }
                Some(_) => {}
            }
        }
        for (t, s) in &new_sessions {
            if !old_sessions.contains_key(t) {
                self.put_session(key, s)?;
            }
        }
        Ok(())
    }
}

/// Opens a read-only table, treating "never created" as empty.
fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    tx: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, StoreError> {
    match tx.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}

impl EmbeddedStore {
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db: Arc<Database> = self.database();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }

    /// Applies `f` in the writer's next group commit (see `embedded_writer.rs`); `f` may
    /// run twice, so it must not consume what it captures.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnMut(&mut WriteTables<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer().write(f).await
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn load(&self, key: &LicenseKey) -> Result<Option<LicenseSnapshot>, StoreError> {
        let key = key.clone();
        self.run(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let (Some(l), Some(a), Some(s)) = (
                read_table(&tx, LICENSES)?,
                read_table(&tx, ACTIVATIONS)?,
                read_table(&tx, SESSIONS)?,
            ) else {
                return Ok(None);
            };
            read_snapshot(&l, &a, &s, &key)
        })
        .await
    }

    async fn create_license(&self, record: LicenseRecord) -> Result<LicenseRecord, StoreError> {
        self.write(move |t| {
            let mut record = record.clone();
            if t.licenses
                .get(record.key.as_str())
                .map_err(unavailable)?
                .is_some()
            {
                return Err(StoreError::AlreadyExists);
            }
            record.id = t.next_id("license_id")?;
            t.licenses
                .insert(record.key.as_str(), encode(&record)?.as_slice())
                .map_err(unavailable)?;
            Ok(record)
        })
        .await
    }

    async fn apply(&self, op: StoreOp) -> Result<StoreOutcome, StoreError> {
        self.write(move |t| {
            let key = op.key().clone();
            let before = t.snapshot(&key)?.ok_or(StoreError::LicenseNotFound)?;
            let mut after = before.clone();
            let mut next = t
                .counters
                .get("activation_id")
                .map_err(unavailable)?
                .map_or(0, |v| v.value());
            let first = next;
            let applied = apply_to_snapshot(&mut after, op.clone(), &mut || {
                next += 1;
                next
            })?;
            if next != first {
                t.counters
                    .insert("activation_id", next)
                    .map_err(unavailable)?;
            }
            t.write_diff(&before, &after)?;
            Ok(applied.outcome)
        })
        .await
    }

    async fn flush_heartbeats(&self, batch: &[HeartbeatWrite]) -> Result<(), StoreError> {
        let batch = batch.to_vec();
        self.write(move |t| {
            let mut by_license: HashMap<&LicenseKey, Vec<&HeartbeatWrite>> = HashMap::new();
            for hb in &batch {
                by_license.entry(&hb.key).or_default().push(hb);
            }
            for (key, hbs) in by_license {
                let Some(before) = t.snapshot(key)? else {
                    continue;
                };
                let mut after = before.clone();
                for hb in hbs {
                    apply_heartbeat(&mut after, hb);
                }
                t.write_diff(&before, &after)?;
            }
            Ok(())
        })
        .await
    }

    async fn find_session(&self, token: &TokenHash) -> Result<Option<LicenseKey>, StoreError> {
        let token = *token;
        self.run(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let Some(index) = read_table(&tx, SESSION_INDEX)? else {
                return Ok(None);
            };
            let Some(key) = index
                .get(token.as_bytes().as_slice())
                .map_err(unavailable)?
            else {
                return Ok(None);
            };
            LicenseKey::parse(key.value())
                .map(Some)
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .await
    }

    async fn overdue_sessions(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(LicenseKey, TokenHash)>, StoreError> {
        self.run(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let Some(deadlines) = read_table(&tx, DEADLINES)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            let end: (i64, &[u8]) = (before.timestamp_millis(), &[]);
            for row in deadlines.range(..end).map_err(unavailable)?.take(limit) {
                let (k, v) = row.map_err(unavailable)?;
                let (_, token) = k.value();
                let token: [u8; 32] = token
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("token hash length".into()))?;
                let key =
                    LicenseKey::parse(v.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push((key, TokenHash::from_bytes(token)));
            }
            Ok(out)
        })
        .await
    }

    async fn list_licenses(
        &self,
        after: Option<&LicenseKey>,
        limit: usize,
    ) -> Result<Vec<LicenseKey>, StoreError> {
        let after = after.cloned();
        self.run(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let Some(licenses) = read_table(&tx, LICENSES)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            let rows = match &after {
                Some(a) => licenses.range::<&str>((
                    std::ops::Bound::Excluded(a.as_str()),
                    std::ops::Bound::Unbounded,
                )),
                None => licenses.range::<&str>(..),
            }
            .map_err(unavailable)?;
            for row in rows.take(limit) {
                let (k, _) = row.map_err(unavailable)?;
                out.push(
                    LicenseKey::parse(k.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                );
            }
            Ok(out)
        })
        .await
    }

    fn health(&self) -> StoreHealth {
        StoreHealth::Ok
    }
}
