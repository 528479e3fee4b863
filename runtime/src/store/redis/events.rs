//! The event log port on Redis: one Stream.
//!
//! | key | type | content |
//! |---|---|---|
//! | `tessera:{events}:log` | stream | one entry per event: field `e` → the [`NewEvent`] as JSON |
//!
//! The whole log is one key, so on a Redis Cluster it lives in one slot and every command
//! here goes to one primary (the hash tag `{events}` would keep any later key of the log in
//! that slot too). `XADD *` assigns the ids: Redis's clock in milliseconds (or the last id's when
//! the clock is behind) and a sequence, always above the stream's last id, so ids increase
//! across every server appending. A batch is one `MULTI`/`EXEC` of `XADD`s, one round trip,
//! applied whole or not at all. Reads are `XRANGE`/`XREVRANGE` with an exclusive bound `(id`
//! (Redis 6.2 or later).
//!
//! Trims are `XTRIM ... ~`: Redis drops whole nodes of the stream (at most
//! `stream-node-max-entries`, 100 by default, or `stream-node-max-bytes`, 4 KiB), so up to one
//! node of events past the bound may stay until a later trim. `LIMIT` bounds one call's work
//! like the embedded store's.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Value;
use tessera_actors::StoreError;

use super::codec::{corrupt, decode_value, from_json, to_json};
use super::{RedisStore, conn};
use crate::store::events::{Event, EventId, EventStore, MAX_BATCH, NewEvent};

/// The stream.
pub(crate) const LOG: &str = "tessera:{events}:log";
/// The one field of an entry.
pub(super) const FIELD: &str = "e";
/// Most entries one `XTRIM` removes (whole nodes: a cheap free of each).
const TRIM_LIMIT: u64 = 100_000;

/// A count as Redis takes it.
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An entry id Redis returned.
fn parse_id(id: &str) -> Result<EventId, StoreError> {
    id.parse()
        .map_err(|e| corrupt(format!("stream entry id: {e}")))
}

/// The events of an `XRANGE`/`XREVRANGE` reply, in its order.
pub(super) fn entries(reply: Value) -> Result<Vec<Event>, StoreError> {
    let rows = decode_value::<Vec<(String, Vec<String>)>>(reply)?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, fields) in rows {
        let json = fields
            .chunks_exact(2)
            .find(|pair| pair[0] == FIELD)
            .map(|pair| pair[1].as_str())
            .ok_or_else(|| corrupt(format!("stream entry {id} has no `{FIELD}` field")))?;
        out.push(from_json::<NewEvent>(json)?.stored(parse_id(&id)?));
    }
    Ok(out)
}

impl RedisStore {
    /// One read command (`XRANGE` or `XREVRANGE`) of the log from `start` to `end`.
    async fn read_log(
        &self,
        command: &str,
        start: String,
        end: &str,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let mut cmd = redis::cmd(command);
        cmd.arg(LOG)
            .arg(start)
            .arg(end)
            .arg("COUNT")
            .arg(count(limit as u64));
        let inner = &self.inner;
        self.guarded(async { entries(inner.query(&cmd).await?) })
            .await
    }
}

#[async_trait]
impl EventStore for RedisStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if events.len() > MAX_BATCH {
            return Err(corrupt(format!(
                "event batch refused: {} events (at most {MAX_BATCH})",
                events.len()
            )));
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for e in &events {
            pipe.cmd("XADD")
                .arg(LOG)
                .arg("*")
                .arg(FIELD)
                .arg(to_json(e)?);
        }
        let inner = &self.inner;
        // Not through `Inner::pipeline`: it resends a pipeline after NOSCRIPT, and a resent
        // XADD would store the batch twice (no script runs here, but the rule is kept).
        let ids = self
            .guarded(async {
                let mut c = inner.conn();
                pipe.query_async::<Vec<String>>(&mut c)
                    .await
                    .map_err(|e| conn::map_err(&e))
            })
            .await?;
        if ids.len() != events.len() {
            return Err(corrupt(format!(
                "{} ids for a batch of {} events",
                ids.len(),
                events.len()
            )));
        }
        events
            .into_iter()
            .zip(ids)
            .map(|(e, id)| Ok(e.stored(parse_id(&id)?)))
            .collect()
    }

    async fn after(&self, after: Option<EventId>, limit: usize) -> Result<Vec<Event>, StoreError> {
        let limit = limit.min(MAX_BATCH);
        // Redis refuses `(` of the largest id; nothing can follow it anyway.
        if limit == 0 || after.is_some_and(|id| id.next() <= id) {
            return Ok(Vec::new());
        }
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        self.read_log("XRANGE", start, "+", limit).await
    }

    async fn before(
        &self,
        before: Option<EventId>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let limit = limit.min(MAX_BATCH);
        // Redis refuses `(0-0`; nothing can precede it anyway.
        if limit == 0 || before == Some(EventId { ms: 0, seq: 0 }) {
            return Ok(Vec::new());
        }
        let start = before.map_or_else(|| "+".to_owned(), |id| format!("({id}"));
        self.read_log("XREVRANGE", start, "-", limit).await
    }

    async fn trim(&self, older_than: DateTime<Utc>, keep_at_most: u64) -> Result<u64, StoreError> {
        let min_id = u64::try_from(older_than.timestamp_millis()).unwrap_or(0);
        let xtrim = |strategy: &str, threshold: String| {
            let mut cmd = redis::cmd("XTRIM");
            cmd.arg(LOG)
                .arg(strategy)
                .arg("~")
                .arg(threshold)
                .arg("LIMIT")
                .arg(count(TRIM_LIMIT));
            cmd
        };
        // One key, one slot: one round trip, also on a cluster.
        let cmds = [
            xtrim("MINID", min_id.to_string()),
            xtrim("MAXLEN", count(keep_at_most).to_string()),
        ];
        let inner = &self.inner;
        let replies = self.guarded(inner.pipeline(&cmds)).await?;
        replies.into_iter().try_fold(0u64, |sum, reply| {
            let n = decode_value::<u64>(reply)?;
            Ok(sum.saturating_add(n))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn replies_decode_into_events_in_order() {
        let event = NewEvent::new(
            "license.banned",
            crate::store::events::Severity::Critical,
            "x",
        );
        let json = to_json(&event).unwrap();
        let entry = |id: &str| {
            Value::Array(vec![
                Value::BulkString(id.as_bytes().to_vec()),
                Value::Array(vec![
                    Value::BulkString(FIELD.as_bytes().to_vec()),
                    Value::BulkString(json.as_bytes().to_vec()),
                ]),
            ])
        };
        let got = entries(Value::Array(vec![entry("5-1"), entry("4-0")])).unwrap();
        assert_eq!(got[0], event.clone().stored(EventId { ms: 5, seq: 1 }));
        assert_eq!(got[1].id, "4-0");
        let bad = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"1-0".to_vec()),
            Value::Array(vec![]),
        ])]);
        assert!(entries(bad).is_err());
    }
}
