//! Write-behind of heartbeats: coalesced per session in memory, flushed in one batch per
//! interval. A crash loses what is queued, at most one interval of the writes handed here;
//! the license machine hands over a heartbeat only when its session's stored deadline is
//! less than half a lifetime ahead, so the store's `last_heartbeat` can lag the real one by
//! up to half a lifetime plus one interval (docs/architecture.md, "The path of a
//! heartbeat"). A failed flush keeps its entries (newer heartbeats win) for the next
//! attempt.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::model::TokenHash;
use crate::store::{HeartbeatWrite, Store, StoreError};

/// Largest batch handed to the store at once.
const MAX_BATCH: usize = 5_000;

/// Pending heartbeat writes, partitioned (one partition per shard) to keep locks uncontended.
pub struct WriteBehind {
    parts: Vec<Mutex<HashMap<TokenHash, HeartbeatWrite>>>,
    store: Arc<dyn Store>,
    flush_lock: tokio::sync::Mutex<()>,
}

impl WriteBehind {
    /// A buffer with `parts` partitions in front of `store`.
    pub fn new(store: Arc<dyn Store>, parts: usize) -> Self {
        Self {
            parts: (0..parts.max(1))
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            store,
            flush_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Queues a heartbeat; an older pending one for the same session is replaced.
    pub fn push(&self, write: HeartbeatWrite) {
        let part = partition_of(&write.token_hash, self.parts.len());
        merge(&mut self.parts[part].lock(), write);
    }

    /// Sessions with a heartbeat waiting to be flushed.
    pub fn depth(&self) -> usize {
        self.parts.iter().map(|p| p.lock().len()).sum()
    }

    /// Writes everything pending. Returns how many sessions were written; on error the
    /// unwritten entries stay queued.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let _one_flush_at_a_time = self.flush_lock.lock().await;
        let mut batch: Vec<HeartbeatWrite> = Vec::new();
        for part in &self.parts {
            batch.extend(std::mem::take(&mut *part.lock()).into_values());
        }
        metrics::gauge!("tessera_write_behind_queue_depth").set(0.0);
        if batch.is_empty() {
            return Ok(0);
        }
        let total = batch.len();
        let started = Instant::now();
        let mut written = 0;
        for chunk in batch.chunks(MAX_BATCH) {
            if let Err(e) = self.store.flush_heartbeats(chunk).await {
                metrics::counter!("tessera_write_behind_flush_errors_total").increment(1);
                for w in &batch[written..] {
                    self.push(w.clone());
                }
                metrics::gauge!("tessera_write_behind_queue_depth").set(self.depth() as f64);
                return Err(e);
            }
            written += chunk.len();
        }
        metrics::histogram!("tessera_write_behind_flush_size").record(total as f64);
        metrics::histogram!("tessera_write_behind_flush_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(total)
    }

    /// Flushes every `interval` until the returned task is aborted.
    pub fn spawn_flusher(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let wb = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                metrics::gauge!("tessera_write_behind_queue_depth").set(wb.depth() as f64);
                if let Err(e) = wb.flush().await {
                    tracing::warn!(error = %e, "heartbeat flush failed; will retry");
                }
            }
        })
    }
}

fn merge(map: &mut HashMap<TokenHash, HeartbeatWrite>, write: HeartbeatWrite) {
    match map.get_mut(&write.token_hash) {
        Some(old) if old.last_heartbeat >= write.last_heartbeat => {}
        Some(old) => *old = write,
        None => {
            map.insert(write.token_hash, write);
        }
    }
}

/// The token is already a uniform hash: its first bytes pick the partition.
fn partition_of(token: &TokenHash, parts: usize) -> usize {
    let b = token.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize % parts
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::memory_store::MemoryStore;
    use crate::model::{LicenseKey, LicenseRecord, SessionRecord};
    use crate::store::StoreOp;
    use chrono::{TimeZone, Utc};

    fn write(token: &str, secs: i64) -> HeartbeatWrite {
        let at = Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap();
        HeartbeatWrite {
            key: LicenseKey::parse("K").unwrap(),
            token_hash: TokenHash::of(token),
            hardware_hash: "hw".into(),
            last_heartbeat: at,
            deadline: at + chrono::Duration::seconds(100),
        }
    }

    #[tokio::test]
    async fn heartbeats_coalesce_per_session_and_survive_a_failed_flush() {
        let store = Arc::new(MemoryStore::new());
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let key = LicenseKey::parse("K").unwrap();
        store
            .create_now(LicenseRecord::new(key.clone(), "default", "default", now))
            .unwrap();
        store
            .apply_now(StoreOp::StartSession {
                key: key.clone(),
                session: SessionRecord {
                    token_hash: TokenHash::of("a"),
                    hardware_hash: "hw".into(),
                    machine_id: "m".into(),
                    version: "1".into(),
                    started_at: now,
                    last_heartbeat: now,
                    deadline: now + chrono::Duration::seconds(10),
                    stored_deadline: Default::default(),
                },
                max_sessions: 1,
                end: vec![],
                at: now,
            })
            .unwrap();
        let wb = WriteBehind::new(store.clone(), 2);
        wb.push(write("a", 5));
        wb.push(write("a", 3));
        wb.push(write("a", 7));
        assert_eq!(wb.depth(), 1, "coalesced per session");

        store.set_available(false);
        assert!(wb.flush().await.is_err());
        assert_eq!(wb.depth(), 1, "failed entries are kept, coalesced");

        store.set_available(true);
        assert_eq!(wb.flush().await.unwrap(), 1);
        let snap = store.snapshot(&key).unwrap();
        assert_eq!(
            snap.sessions[0].last_heartbeat,
            write("a", 7).last_heartbeat
        );
        assert_eq!(wb.depth(), 0);
    }
}
