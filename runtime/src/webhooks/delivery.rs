//! Deliveries: one record per (event, endpoint) in the catalog store, written before the
//! first attempt, so a restart loses none. The record holds the rendered body and the
//! `webhook-id` (the same on every attempt, so a receiver can drop a duplicate), the status
//! (`pending`, `delivered`, `failed`) and what the last attempt saw.
//!
//! Ids: `{endpoint}/{u64::MAX - seq}`, both zero-padded, so one endpoint's deliveries are a
//! contiguous id range, newest first (the delivery log is a range read). Terms: `ep:{endpoint}`
//! on every delivery (to trim an endpoint's log from the index, ids only) and, while pending,
//! `due:{unix ms}`, so a prefix read of `due:` is the queue in due order.
//!
//! Claiming: an attempt first moves the record's due time to the end of a lease (the
//! attempt's timeout and a margin) by compare-and-swap; only one server wins that swap, and a
//! server that dies mid-attempt leaves a delivery that is due again when the lease ends.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::WebhookError;
use crate::store::catalog::{numeric_id, parse_numeric_id};

/// Retry delays as multiples of `webhooks.retry_base_ms`: at the default 5 s, 5 s, 30 s,
/// 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 8 h, 8 h (12 attempts over about 32 hours).
pub const SCHEDULE: [u32; 11] = [1, 6, 24, 120, 360, 720, 1_440, 2_880, 5_760, 5_760, 5_760];

/// Attempts one delivery gets (per redelivery).
pub const MAX_ATTEMPTS: u32 = SCHEDULE.len() as u32 + 1;

/// A retry waits its delay times a factor in `[1 - JITTER, 1 + JITTER]`, so deliveries that
/// failed together do not all come back together.
pub const JITTER: f64 = 0.2;

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not delivered yet; an attempt is due at `next_attempt_at` (or running).
    Pending,
    /// A 2xx answer arrived.
    Delivered,
    /// Every attempt failed, or its endpoint was disabled.
    Failed,
}

/// A stored delivery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Its number: unix ms × 1000 plus a counter (see `dispatcher.rs`); unique per endpoint.
    pub seq: u64,
    /// The endpoint's id.
    pub endpoint: u64,
    /// The `webhook-id` header: the same on every attempt and redelivery.
    pub webhook_id: String,
    /// The event's id.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The body, rendered once.
    pub body: String,
    /// Where it stands.
    pub status: Status,
    /// Attempts made, over its life.
    pub attempts: u32,
    /// Attempts since it was last queued (its place in [`SCHEDULE`]).
    pub step: u32,
    /// Made.
    pub created_at: DateTime<Utc>,
    /// While pending: when the next attempt is due (while one runs: when its lease ends).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// An attempt is running (claimed).
    #[serde(default)]
    pub in_flight: bool,
    /// When the last attempt started.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The last attempt's HTTP status, if an answer came.
    pub last_status_code: Option<u16>,
    /// How long the last attempt took.
    pub last_latency_ms: Option<u64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

impl Delivery {
    /// Its store id.
    pub fn store_id(&self) -> String {
        store_id(self.endpoint, self.seq)
    }

    /// Its index terms: the endpoint, and the due time while pending.
    pub fn terms(&self) -> Vec<String> {
        let mut terms = vec![endpoint_term(self.endpoint)];
        if let (Status::Pending, Some(at)) = (self.status, self.next_attempt_at) {
            terms.push(due_term(at));
        }
        terms
    }

    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A record from its bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, WebhookError> {
        serde_json::from_slice(bytes).map_err(|e| WebhookError::Corrupt(format!("delivery: {e}")))
    }

    /// Whether an attempt may start at `now`.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.status == Status::Pending && self.next_attempt_at.is_none_or(|t| t <= now)
    }

    /// What operators see (not the body).
    pub fn view(&self) -> DeliveryView {
        DeliveryView {
            id: self.seq,
            webhook_id: self.webhook_id.clone(),
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            status: self.status,
            attempts: self.attempts,
            created_at: self.created_at,
            last_attempt_at: self.last_attempt_at,
            next_attempt_at: match self.status {
                Status::Pending => self.next_attempt_at,
                _ => None,
            },
            last_status_code: self.last_status_code,
            last_latency_ms: self.last_latency_ms,
            last_error: self.last_error.clone(),
        }
    }
}

/// A delivery as operators see it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Its id (for redeliver).
    pub id: u64,
    /// The `webhook-id` header it is sent with, the same on every attempt.
    pub webhook_id: String,
    /// The event's id.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: Status,
    /// Attempts made.
    pub attempts: u32,
    /// Made (RFC 3339).
    pub created_at: DateTime<Utc>,
    /// When the last attempt started.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// While pending: when the next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last answer's HTTP status, if one came.
    pub last_status_code: Option<u16>,
    /// How long the last attempt took, in milliseconds.
    pub last_latency_ms: Option<u64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// `{endpoint}/{u64::MAX - seq}`, zero-padded: newest first within an endpoint.
pub fn store_id(endpoint: u64, seq: u64) -> String {
    format!("{}/{}", numeric_id(endpoint), numeric_id(u64::MAX - seq))
}

/// The endpoint of a delivery's store id.
pub fn endpoint_of(store_id: &str) -> Option<u64> {
    store_id
        .split_once('/')
        .and_then(|(e, _)| parse_numeric_id(e))
}

/// Every delivery id of `endpoint` sorts after this (and before the next endpoint's).
pub fn range_start(endpoint: u64) -> String {
    format!("{}/", numeric_id(endpoint))
}

/// The term every delivery of `endpoint` carries.
pub fn endpoint_term(endpoint: u64) -> String {
    format!("ep:{}", numeric_id(endpoint))
}

/// The prefix of due-time terms: a prefix search in due order is the queue.
pub const DUE_PREFIX: &str = "due:";

fn due_term(at: DateTime<Utc>) -> String {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    format!("{DUE_PREFIX}{}", numeric_id(ms))
}

/// The delay before the retry that follows `failed` failed attempts (1 for the first
/// retry), scaled by `base` and by `jitter` in `[-1, 1]` (times [`JITTER`]); `None` when no
/// retry is left.
pub fn backoff(failed: u32, base: Duration, jitter: f64) -> Option<Duration> {
    let step = usize::try_from(failed.checked_sub(1)?).ok()?;
    let factor = *SCHEDULE.get(step)?;
    let delay = base.saturating_mul(factor);
    Some(delay.mul_f64(1.0 + JITTER * jitter.clamp(-1.0, 1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_spans_hours_from_a_5_second_base() {
        let base = Duration::from_secs(5);
        let plain: Vec<u64> = (1..MAX_ATTEMPTS)
            .filter_map(|n| backoff(n, base, 0.0))
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(
            plain,
            [
                5, 30, 120, 600, 1_800, 3_600, 7_200, 14_400, 28_800, 28_800, 28_800
            ]
        );
        assert_eq!(backoff(MAX_ATTEMPTS, base, 0.0), None);
        assert_eq!(backoff(0, base, 0.0), None);
        let total: u64 = plain.iter().sum();
        assert!(total > 30 * 3_600, "{total} s");
        let early = backoff(1, base, -1.0).map(|d| d.as_millis());
        let late = backoff(1, base, 1.0).map(|d| d.as_millis());
        assert_eq!((early, late), (Some(4_000), Some(6_000)));
    }

    #[test]
    fn ids_group_an_endpoint_newest_first_and_terms_queue_by_due_time() {
        let (a, b) = (store_id(7, 1), store_id(7, 2));
        assert!(b < a, "newer sorts first");
        assert!(a.starts_with(&range_start(7)) && a > range_start(7));
        assert!(store_id(8, 0) > a && store_id(6, u64::MAX) < b);
        assert_eq!(endpoint_of(&a), Some(7));
        let t1 = due_term(DateTime::from_timestamp_millis(999).unwrap_or_default());
        let t2 = due_term(DateTime::from_timestamp_millis(1_000).unwrap_or_default());
        assert!(t1 < t2 && t1.starts_with(DUE_PREFIX));
        assert!(t2.len() <= crate::store::catalog::MAX_TERM_LEN);
    }
}
