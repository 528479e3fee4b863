//! The event log port on the embedded store: one table of its own in the one redb file.
//!
//! | table | key → value |
//! |---|---|
//! | `events` | `(ms, seq)` of the id → the [`NewEvent`] as JSON (the id is the key) |
//!
//! redb orders tuple keys element by element, so key order is id order: `after` and `before`
//! are range reads, forwards and backwards.
//!
//! An append is one write transaction: it reads the last key and numbers the batch after it,
//! the way Redis numbers `XADD *` entries (the clock's millisecond, or the last id's when the
//! clock is behind it, then a sequence within it). redb runs one writer at a time, so two
//! handles' batches never interleave and ids only grow, also when the clock steps back.
//! Appends do not go through the license writer's group commit (`writer.rs`): the event bus
//! already batches them.
//!
//! A trim deletes in write transactions of at most [`TRIM_CHUNK`] events, and at most
//! [`TRIM_PER_CALL`] per call: the license writer waits for the same write lock, so a backlog
//! (a lowered `max_events`, a log left untrimmed) is worked off over several calls instead of
//! in one long transaction.

use std::ops::Bound;

use chrono::{DateTime, Utc};
use redb::{ReadableTableMetadata, Table};

use super::tables::{decode, encode, read_table, unavailable};
use super::*;
use crate::store::events::{Event, EventId, EventStore, MAX_BATCH, NewEvent};

/// An id as a key: `(ms, seq)`.
pub(super) type Key = (u64, u64);

pub(super) const EVENTS: TableDefinition<Key, &[u8]> = TableDefinition::new("events");

/// Most events one trim transaction deletes: about 20 ms of holding the write lock (measured
/// on a loaded 2-core machine), so license writes queued behind it barely notice.
const TRIM_CHUNK: u64 = 1_000;
/// Most events one trim call deletes; the rest go on the next call.
const TRIM_PER_CALL: u64 = 100_000;

fn key(id: EventId) -> Key {
    (id.ms, id.seq)
}

/// The smallest id above `id`; an error when there is none (never happens: the clock would
/// have to reach the year 584 million).
fn above(id: EventId) -> Result<EventId, StoreError> {
    let next = id.next();
    if next > id {
        Ok(next)
    } else {
        Err(StoreError::Corrupt(format!(
            "event ids exhausted after {id}"
        )))
    }
}

/// The id of the first event appended after `last` at `now_ms`.
fn first_id(last: Option<EventId>, now_ms: u64) -> Result<EventId, StoreError> {
    match last {
        Some(last) if last.ms >= now_ms => above(last),
        _ => Ok(EventId { ms: now_ms, seq: 0 }),
    }
}

/// Milliseconds since the Unix epoch of `at` (0 before it).
fn unix_ms(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}

/// Up to `limit` events of `range`, backwards when `rev`.
fn read(
    db: &Database,
    range: (Bound<Key>, Bound<Key>),
    rev: bool,
    limit: usize,
) -> Result<Vec<Event>, StoreError> {
    let tx = db.begin_read().map_err(unavailable)?;
    let Some(table) = read_table(&tx, EVENTS)? else {
        return Ok(Vec::new());
    };
    let rows = table.range(range).map_err(unavailable)?;
    let rows: Box<dyn Iterator<Item = _>> = if rev {
        Box::new(rows.rev())
    } else {
        Box::new(rows)
    };
    let mut out = Vec::new();
    for row in rows.take(limit) {
        let (k, v) = row.map_err(unavailable)?;
        let (ms, seq) = k.value();
        out.push(decode::<NewEvent>(v.value())?.stored(EventId { ms, seq }));
    }
    Ok(out)
}

/// Deletes the oldest events, at most `n`, while `go(key)` holds; returns how many went.
/// `pop_first` is redb's cheapest removal (measured: about half the cost per row of
/// `extract_from_if` or `retain_in`).
fn pop_oldest(
    table: &mut Table<'_, Key, &'static [u8]>,
    n: u64,
    go: impl Fn(Key) -> bool,
) -> Result<u64, StoreError> {
    let mut gone = 0;
    while gone < n {
        let Some(first) = table.first().map_err(unavailable)?.map(|(k, _)| k.value()) else {
            break;
        };
        if !go(first) {
            break;
        }
        table.pop_first().map_err(unavailable)?;
        gone += 1;
    }
    Ok(gone)
}

/// One trim transaction deleting at most `budget` events: first those stored before
/// `cutoff_ms`, then the oldest beyond `keep`. Returns how many went.
fn trim_once(db: &Database, cutoff_ms: u64, keep: u64, budget: u64) -> Result<u64, StoreError> {
    let tx = db.begin_write().map_err(unavailable)?;
    let gone = {
        let mut table = tx.open_table(EVENTS).map_err(unavailable)?;
        let old = pop_oldest(&mut table, budget, |(ms, _)| ms < cutoff_ms)?;
        // `len` is kept in the table's header: no scan.
        let excess = table.len().map_err(unavailable)?.saturating_sub(keep);
        old + pop_oldest(&mut table, excess.min(budget - old), |_| true)?
    };
    if gone == 0 {
        tx.abort().map_err(unavailable)?;
    } else {
        tx.commit().map_err(unavailable)?;
    }
    Ok(gone)
}

/// A whole trim call: transactions of at most `chunk` deletions until nothing is left to
/// delete or `per_call` have gone.
fn trim_chunked(
    db: &Database,
    cutoff_ms: u64,
    keep: u64,
    chunk: u64,
    per_call: u64,
) -> Result<u64, StoreError> {
    let mut gone = 0;
    while gone < per_call {
        let budget = chunk.min(per_call - gone);
        let n = trim_once(db, cutoff_ms, keep, budget)?;
        gone += n;
        if n < budget {
            break;
        }
    }
    Ok(gone)
}

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if events.len() > MAX_BATCH {
            return Err(StoreError::Corrupt(format!(
                "event batch refused: {} events (at most {MAX_BATCH})",
                events.len()
            )));
        }
        // Encoded before the transaction, so the write lock is held for the inserts only.
        let values = events.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        let ids = self
            .blocking(move |db| {
                let tx = db.begin_write().map_err(unavailable)?;
                let ids = {
                    let mut table = tx.open_table(EVENTS).map_err(unavailable)?;
                    let last = table.last().map_err(unavailable)?.map(|(k, _)| {
                        let (ms, seq) = k.value();
                        EventId { ms, seq }
                    });
                    let mut id = first_id(last, unix_ms(Utc::now()))?;
                    let mut ids = Vec::with_capacity(values.len());
                    for (i, value) in values.iter().enumerate() {
                        if i > 0 {
                            id = above(id)?;
                        }
                        table
                            .insert(key(id), value.as_slice())
                            .map_err(unavailable)?;
                        ids.push(id);
                    }
                    ids
                };
                tx.commit().map_err(unavailable)?;
                Ok(ids)
            })
            .await?;
        Ok(events
            .into_iter()
            .zip(ids)
            .map(|(e, id)| e.stored(id))
            .collect())
    }

    async fn after(&self, after: Option<EventId>, limit: usize) -> Result<Vec<Event>, StoreError> {
        let limit = limit.min(MAX_BATCH);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let start = after.map_or(Bound::Unbounded, |id| Bound::Excluded(key(id)));
        self.blocking(move |db| read(db, (start, Bound::Unbounded), false, limit))
            .await
    }

    async fn before(
        &self,
        before: Option<EventId>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let limit = limit.min(MAX_BATCH);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let end = before.map_or(Bound::Unbounded, |id| Bound::Excluded(key(id)));
        self.blocking(move |db| read(db, (Bound::Unbounded, end), true, limit))
            .await
    }

    async fn trim(&self, older_than: DateTime<Utc>, keep_at_most: u64) -> Result<u64, StoreError> {
        let cutoff_ms = unix_ms(older_than);
        self.blocking(move |db| {
            trim_chunked(db, cutoff_ms, keep_at_most, TRIM_CHUNK, TRIM_PER_CALL)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::events::Severity;

    fn id(ms: u64, seq: u64) -> EventId {
        EventId { ms, seq }
    }

    #[test]
    fn ids_follow_the_clock_and_never_go_back() {
        assert_eq!(first_id(None, 5).unwrap(), id(5, 0));
        assert_eq!(first_id(Some(id(4, 9)), 5).unwrap(), id(5, 0));
        assert_eq!(first_id(Some(id(5, 9)), 5).unwrap(), id(5, 10));
        // The clock stepped back: continue after the last id.
        assert_eq!(first_id(Some(id(7, 2)), 5).unwrap(), id(7, 3));
        assert_eq!(first_id(Some(id(7, u64::MAX)), 5).unwrap(), id(8, 0));
        assert!(first_id(Some(id(u64::MAX, u64::MAX)), 5).is_err());
    }

    #[tokio::test]
    async fn trim_works_in_bounded_chunks_and_stops_at_the_call_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("tessera.redb")).unwrap();
        let batch = (0..25)
            .map(|i| NewEvent::new("test.event", Severity::Info, format!("{i}")))
            .collect();
        store.append(batch).await.unwrap();
        let db = store.database();
        // Keep 2 of 25: 23 to go, 10 per call in chunks of 3 (3 + 3 + 3 + 1).
        assert_eq!(trim_chunked(&db, 0, 2, 3, 10).unwrap(), 10);
        assert_eq!(trim_chunked(&db, 0, 2, 3, 10).unwrap(), 10);
        assert_eq!(trim_chunked(&db, 0, 2, 3, 10).unwrap(), 3);
        assert_eq!(trim_chunked(&db, 0, 2, 3, 10).unwrap(), 0);
        let left = store.after(None, 100).await.unwrap();
        let summaries: Vec<&str> = left.iter().map(|e| e.summary.as_str()).collect();
        assert_eq!(summaries, ["23", "24"]);
    }
}
