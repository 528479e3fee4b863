//! The embedded store's license tables and the typed access to them inside one redb
//! transaction, shared by the Store port (`licenses.rs`) and the group-commit writer.

use std::collections::HashMap;

use redb::{ReadableTable, ReadableTableMetadata, Table, TableDefinition, TableError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_actors::{
    Activation, LicenseKey, LicenseRecord, LicenseSnapshot, SessionRecord, StoreError, TokenHash,
};

/// License key → license record (JSON).
pub(super) const LICENSES: TableDefinition<&str, &[u8]> = TableDefinition::new("licenses");
/// `KEY\0hardware_hash` → activation (JSON).
pub(super) const ACTIVATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("activations");
/// `KEY\0token_hex` → live session (JSON).
pub(super) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// Token hash → license key, for seed 000's session end (token only).
pub(super) const SESSION_INDEX: TableDefinition<&[u8], &str> =
    TableDefinition::new("session_index");
/// (deadline in unix ms, token hash) → license key: the recovery sweep's index.
pub(super) const DEADLINES: TableDefinition<(i64, &[u8]), &str> =
    TableDefinition::new("session_deadlines");
/// License id → license key, for seed 000's admin paths that name a license by id.
pub(super) const LICENSE_IDS: TableDefinition<u64, &str> = TableDefinition::new("license_ids");
/// Id counters.
pub(super) const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// A backend failure as the port's error.
pub(super) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {e}"))
}

pub(super) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn child_key(key: &LicenseKey, child: &str) -> String {
    format!("{}\0{child}", key.as_str())
}

/// Range bounds covering every child of `key` (`\0` < any child byte < `\u{1}` never occurs
/// in a license key, which holds only `[A-Z0-9_-]`).
pub(super) fn children(key: &LicenseKey) -> (String, String) {
    (
        format!("{}\0", key.as_str()),
        format!("{}\u{1}", key.as_str()),
    )
}

pub(super) fn read_snapshot<L, A, S>(
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
    pub(super) licenses: Table<'t, &'static str, &'static [u8]>,
    pub(super) activations: Table<'t, &'static str, &'static [u8]>,
    pub(super) sessions: Table<'t, &'static str, &'static [u8]>,
    pub(super) index: Table<'t, &'static [u8], &'static str>,
    pub(super) deadlines: Table<'t, (i64, &'static [u8]), &'static str>,
    pub(super) counters: Table<'t, &'static str, u64>,
    pub(super) license_ids: Table<'t, u64, &'static str>,
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
            license_ids: tx.open_table(LICENSE_IDS).map_err(unavailable)?,
        })
    }

    pub(super) fn snapshot(&self, key: &LicenseKey) -> Result<Option<LicenseSnapshot>, StoreError> {
        read_snapshot(&self.licenses, &self.activations, &self.sessions, key)
    }

    pub(super) fn next_id(&mut self, counter: &str) -> Result<u64, StoreError> {
        let next = self
            .counters
            .get(counter)
            .map_err(unavailable)?
            .map_or(0, |v| v.value())
            + 1;
        self.counters.insert(counter, next).map_err(unavailable)?;
        Ok(next)
    }

    pub(super) fn put_session(
        &mut self,
        key: &LicenseKey,
        s: &SessionRecord,
    ) -> Result<(), StoreError> {
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

    pub(super) fn remove_session(
        &mut self,
        key: &LicenseKey,
        s: &SessionRecord,
    ) -> Result<(), StoreError> {
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

    /// Removes a license whose activations and sessions `write_diff` already removed.
    pub(super) fn remove_license(&mut self, record: &LicenseRecord) -> Result<(), StoreError> {
        self.licenses
            .remove(record.key.as_str())
            .map_err(unavailable)?;
        self.license_ids.remove(record.id).map_err(unavailable)?;
        Ok(())
    }

    /// Fills the id index from the license rows when it is empty (a file written before the
    /// index existed).
    pub(super) fn rebuild_license_ids(&mut self) -> Result<(), StoreError> {
        if !self.license_ids.is_empty().map_err(unavailable)? {
            return Ok(());
        }
        let mut pairs = Vec::new();
        for row in self.licenses.iter().map_err(unavailable)? {
            let (k, v) = row.map_err(unavailable)?;
            let record: LicenseRecord = decode(v.value())?;
            pairs.push((record.id, k.value().to_owned()));
        }
        for (id, key) in pairs {
            self.license_ids
                .insert(id, key.as_str())
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// Writes the difference between `before` and `after` of one license.
    pub(super) fn write_diff(
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
pub(super) fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    tx: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, StoreError> {
    match tx.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}
