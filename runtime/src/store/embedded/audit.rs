//! The audit log port on the embedded store: one table of its own in the one redb file.
//!
//! | table | key → value |
//! |---|---|
//! | `audit` | sequence number → the [`AuditRecord`] as JSON |
//!
//! The head is the last key: an append reads it and inserts `head + 1` in one write
//! transaction, so a stale head (another writer appended first) writes nothing.

use super::tables::{decode, encode, read_table, unavailable};
use super::*;
use crate::store::audit::{AuditRecord, AuditStore, MAX_READ};

/// The audit table. Its name is also what tests open to tamper with a record.
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

#[async_trait]
impl AuditStore for EmbeddedStore {
    async fn audit_head(&self) -> Result<u64, StoreError> {
        self.blocking(|db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let Some(table) = read_table(&tx, AUDIT)? else {
                return Ok(0);
            };
            let last = table.last().map_err(unavailable)?;
            Ok(last.map_or(0, |(k, _)| k.value()))
        })
        .await
    }

    async fn audit_append(&self, head: u64, record: &AuditRecord) -> Result<bool, StoreError> {
        if record.seq != head.saturating_add(1) {
            return Err(StoreError::Corrupt(format!(
                "audit record {} cannot follow head {head}",
                record.seq
            )));
        }
        let value = encode(record)?;
        let seq = record.seq;
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            let appended = {
                let mut table = tx.open_table(AUDIT).map_err(unavailable)?;
                let last = table
                    .last()
                    .map_err(unavailable)?
                    .map_or(0, |(k, _)| k.value());
                if last != head {
                    false
                } else {
                    table.insert(seq, value.as_slice()).map_err(unavailable)?;
                    true
                }
            };
            if appended {
                tx.commit().map_err(unavailable)?;
            } else {
                tx.abort().map_err(unavailable)?;
            }
            Ok(appended)
        })
        .await
    }

    async fn audit_range(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Option<AuditRecord>)>, StoreError> {
        let limit = limit.min(MAX_READ) as u64;
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let Some(table) = read_table(&tx, AUDIT)? else {
                return Ok(Vec::new());
            };
            let head = table
                .last()
                .map_err(unavailable)?
                .map_or(0, |(k, _)| k.value());
            let from = from.max(1);
            let to = head.min(from.saturating_add(limit).saturating_sub(1));
            let mut out = Vec::new();
            if limit == 0 || to < from {
                return Ok(out);
            }
            let mut rows = table.range(from..=to).map_err(unavailable)?.peekable();
            for seq in from..=to {
                let record = match rows.peek() {
                    Some(Ok((k, _))) if k.value() == seq => match rows.next() {
                        Some(Ok((_, v))) => Some(decode::<AuditRecord>(v.value())?),
                        _ => None,
                    },
                    Some(Err(_)) => {
                        return Err(unavailable("audit table read failed"));
                    }
                    _ => None,
                };
                out.push((seq, record));
            }
            Ok(out)
        })
        .await
    }
}
