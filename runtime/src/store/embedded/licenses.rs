//! Licenses, activations and sessions in the embedded redb file: the [`Store`] port for
//! `store.backend = "embedded"`.
//!
//! Each operation runs inside a redb write transaction: it loads the license's stored state,
//! applies [`apply_to_snapshot`] (the reference semantics every adapter shares) and writes
//! back what changed, so limits are re-checked and written atomically. Operations queued
//! while a commit runs share the next transaction (`writer.rs`); commits are
//! durable (`Durability::Immediate`) before any of their calls return.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable};
use tessera_actors::memory_store::{apply_heartbeat, apply_to_snapshot};
use tessera_actors::{
    HeartbeatWrite, LicenseKey, LicenseRecord, LicenseSnapshot, Store, StoreError, StoreHealth,
    StoreOp, StoreOutcome, TokenHash,
};

use super::EmbeddedStore;
use super::tables::*;

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

    /// Up to `limit` license rows after `after` in key order, each read by `row`.
    async fn page<T: Send + 'static>(
        &self,
        after: Option<&LicenseKey>,
        limit: usize,
        row: fn(&str, &[u8]) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let after = after.cloned();
        self.run(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let Some(licenses) = read_table(&tx, LICENSES)? else {
                return Ok(Vec::new());
            };
            let rows = match &after {
                Some(a) => licenses.range::<&str>((
                    std::ops::Bound::Excluded(a.as_str()),
                    std::ops::Bound::Unbounded,
                )),
                None => licenses.range::<&str>(..),
            }
            .map_err(unavailable)?;
            let mut out = Vec::new();
            for r in rows.take(limit) {
                let (k, v) = r.map_err(unavailable)?;
                out.push(row(k.value(), v.value())?);
            }
            Ok(out)
        })
        .await
    }

    /// Applies `f` in the writer's next group commit (see `writer.rs`); `f` may
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
            t.license_ids
                .insert(record.id, record.key.as_str())
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
            if matches!(op, StoreOp::DeleteLicense { .. }) {
                t.remove_license(&after.record)?;
            }
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
        self.page(after, limit, |k, _| {
            LicenseKey::parse(k).map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .await
    }

    async fn list_records(
        &self,
        after: Option<&LicenseKey>,
        limit: usize,
    ) -> Result<Vec<LicenseRecord>, StoreError> {
        self.page(after, limit, |_, v| decode::<LicenseRecord>(v))
            .await
    }

    async fn key_for_id(&self, id: u64) -> Result<Option<LicenseKey>, StoreError> {
        self.run(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let Some(ids) = read_table(&tx, LICENSE_IDS)? else {
                return Ok(None);
            };
            let Some(key) = ids.get(id).map_err(unavailable)? else {
                return Ok(None);
            };
            LicenseKey::parse(key.value())
                .map(Some)
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .await
    }

    fn health(&self) -> StoreHealth {
        StoreHealth::Ok
    }
}
