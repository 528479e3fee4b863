//! The admin listing of the event log: newest first, filtered, cursor-paged, with a bound on
//! how much of the log one call reads.

use serde::Serialize;
use utoipa::ToSchema;

use super::stream::EventFilter;
use crate::store::events::{Event, EventId, EventStore, StoreError};

/// Page size when the caller gives none.
pub const DEFAULT_PAGE: usize = 50;
/// Most events one listing call reads to fill a page.
pub const SCAN_BUDGET: usize = 10_000;
/// Largest page.
pub const MAX_PAGE: usize = 500;
/// Events read per store read.
const READ: usize = 500;

/// One page of the listing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventPage {
    /// Matching events, newest first.
    pub events: Vec<Event>,
    /// Send back as `cursor` for older events; null when the log (or the `since` bound) is
    /// exhausted.
    pub next_cursor: Option<String>,
    /// Events read to answer (at most 10,000 per call: a narrow filter may answer fewer than
    /// `limit` with a `next_cursor` to go on from).
    pub scanned: usize,
}

/// Events matching `filter`, newest first, older than `cursor`, at most `limit`.
pub async fn page(
    store: &dyn EventStore,
    filter: &EventFilter,
    cursor: Option<EventId>,
    limit: usize,
) -> Result<EventPage, StoreError> {
    let limit = limit.clamp(1, MAX_PAGE);
    // `until` bounds the start: nothing at or after it is read.
    let until_id = filter.until.map(|t| EventId {
        ms: u64::try_from(t.timestamp_millis()).unwrap_or(0),
        seq: 0,
    });
    let mut before = match (cursor, until_id) {
        (Some(c), Some(u)) => Some(c.min(u)),
        (c, u) => c.or(u),
    };
    let mut out = Vec::new();
    let mut scanned = 0;
    loop {
        let batch = store.before(before, READ).await?;
        let exhausted = batch.len() < READ;
        for e in batch {
            scanned += 1;
            before = e.event_id();
            if filter.since.is_some_and(|s| e.created_at < s) {
                return Ok(EventPage {
                    events: out,
                    next_cursor: None,
                    scanned,
                });
            }
            if filter.matches(&e) {
                out.push(e);
                if out.len() == limit {
                    return Ok(EventPage {
                        events: out,
                        next_cursor: before.map(|b| b.to_string()),
                        scanned,
                    });
                }
            }
        }
        if exhausted {
            return Ok(EventPage {
                events: out,
                next_cursor: None,
                scanned,
            });
        }
        if scanned >= SCAN_BUDGET {
            return Ok(EventPage {
                events: out,
                next_cursor: before.map(|b| b.to_string()),
                scanned,
            });
        }
    }
}
