//! The event log port and its records: an event as operators see it (seed 001's fields),
//! appended in order with increasing ids, read forwards (the live stream's catch-up) and
//! backwards (the admin listing), trimmed by age and count. The records live here, beside
//! the port, so the adapters need nothing from the service (`crate::events`) above them.
//!
//! Implemented on the same adapters as the other ports: the embedded store
//! (`embedded/events.rs`, one redb table keyed by id, one write transaction per batch) and
//! Redis (`redis/events.rs`, a Redis Stream: `XADD` assigns the ids, `MAXLEN ~` and `MINID ~`
//! trim it).

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_actors::LicenseKey;
pub use tessera_actors::StoreError;
use utoipa::ToSchema;

/// Most events one append, or one read, handles.
pub const MAX_BATCH: usize = 1_000;

/// The event log, shared by every server using the store.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` in order (at most [`MAX_BATCH`]) and returns them stored, with ids
    /// greater than every id stored before, also across servers.
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Event>, StoreError>;

    /// Up to `limit` events with ids greater than `after` (all when `None`), oldest first.
    async fn after(&self, after: Option<EventId>, limit: usize) -> Result<Vec<Event>, StoreError>;

    /// Up to `limit` events with ids less than `before` (the newest when `None`), newest
    /// first.
    async fn before(&self, before: Option<EventId>, limit: usize)
    -> Result<Vec<Event>, StoreError>;

    /// Removes events stored before `older_than` (by the millisecond of their id) and all but
    /// the newest `keep_at_most` (approximately, where the backend trims in whole blocks).
    /// Returns how many went. One call's work is bounded (on the order of 100,000 events): a
    /// larger backlog goes over the next calls.
    async fn trim(&self, older_than: DateTime<Utc>, keep_at_most: u64) -> Result<u64, StoreError>;
}

/// How much an event matters.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Normal operation (a session started, a license issued).
    #[default]
    Info,
    /// Worth a look (a rejection, a suspension, a failed login).
    Warning,
    /// Needs attention (a ban, a webhook endpoint disabled, an emergency control).
    Critical,
}

impl Severity {
    /// `info`, `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    /// Parses `info`, `warning` or `critical`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "info" => Some(Self::Info),
            "warning" => Some(Self::Warning),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }
}

/// An event's id: `{unix ms}-{sequence}`, the form of a Redis Streams id, increasing in the
/// order events were stored. SSE sends it as `id:` and takes it back as `Last-Event-ID`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    /// Milliseconds since the Unix epoch.
    pub ms: u64,
    /// Order within the millisecond.
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for EventId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = s
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("`{s}` is not an event id like 1733500000000-0"))?;
        let num = |p: &str| {
            p.parse::<u64>()
                .map_err(|_| format!("`{s}` is not an event id"))
        };
        Ok(Self {
            ms: num(ms)?,
            seq: num(seq)?,
        })
    }
}

impl EventId {
    /// The smallest id after `self`.
    pub fn next(self) -> Self {
        match self.seq.checked_add(1) {
            Some(seq) => Self { ms: self.ms, seq },
            None => Self {
                ms: self.ms.saturating_add(1),
                seq: 0,
            },
        }
    }
}

/// A stored event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Its id (`{unix ms}-{sequence}`), increasing in storage order.
    pub id: String,
    /// Dotted type: `session.ended`, `license.banned`, `admin.license.edited`, ...
    pub event_type: String,
    /// `info`, `warning` or `critical`.
    pub severity: Severity,
    /// One line for people.
    pub summary: String,
    /// Who acted: `key:<name>`, `operator:<username>`, `cli`, `system`, or none for clients.
    pub actor: Option<String>,
    /// The client address, when a request caused it.
    pub ip: Option<String>,
    /// The license concerned.
    pub license: Option<String>,
    /// The product (seed 001's `app_id`).
    pub app_id: Option<String>,
    /// Risk score of a policy decision (0 when none).
    pub risk: u32,
    /// When it happened.
    pub created_at: DateTime<Utc>,
    /// Details, by type (a session end's `reason`, a rejection's `code`, an edit's fields).
    pub data: serde_json::Value,
}

/// An event before it is stored (no id yet). Built with [`NewEvent::new`] and the setters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// See [`Event::event_type`].
    pub event_type: String,
    /// See [`Event::severity`].
    pub severity: Severity,
    /// See [`Event::summary`].
    pub summary: String,
    /// See [`Event::actor`].
    pub actor: Option<String>,
    /// See [`Event::ip`].
    pub ip: Option<String>,
    /// See [`Event::license`].
    pub license: Option<String>,
    /// See [`Event::app_id`].
    pub app_id: Option<String>,
    /// See [`Event::risk`].
    pub risk: u32,
    /// See [`Event::created_at`].
    pub created_at: DateTime<Utc>,
    /// See [`Event::data`].
    pub data: serde_json::Value,
}

impl NewEvent {
    /// An event of `event_type` happening now.
    pub fn new(
        event_type: impl Into<String>,
        severity: Severity,
        summary: impl Into<String>,
    ) -> Self {
        Self {
            event_type: event_type.into(),
            severity,
            summary: summary.into(),
            actor: None,
            ip: None,
            license: None,
            app_id: None,
            risk: 0,
            created_at: Utc::now(),
            data: serde_json::Value::Null,
        }
    }

    /// Who acted.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// The client address.
    pub fn ip(mut self, ip: impl fmt::Display) -> Self {
        self.ip = Some(ip.to_string());
        self
    }

    /// The license concerned.
    pub fn license(mut self, key: &LicenseKey) -> Self {
        self.license = Some(key.to_string());
        self
    }

    /// The product.
    pub fn app_id(mut self, product: impl Into<String>) -> Self {
        self.app_id = Some(product.into());
        self
    }

    /// The risk score.
    pub fn risk(mut self, risk: u32) -> Self {
        self.risk = risk;
        self
    }

    /// Details.
    pub fn data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }

    /// The stored event with `id`.
    pub fn stored(self, id: EventId) -> Event {
        Event {
            id: id.to_string(),
            event_type: self.event_type,
            severity: self.severity,
            summary: self.summary,
            actor: self.actor,
            ip: self.ip,
            license: self.license,
            app_id: self.app_id,
            risk: self.risk,
            created_at: self.created_at,
            data: self.data,
        }
    }
}

impl Event {
    /// Its id, parsed.
    pub fn event_id(&self) -> Option<EventId> {
        self.id.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_parse_and_order_like_stream_ids() {
        let a: EventId = "1733500000000-0".parse().unwrap_or_else(|e| panic!("{e}"));
        let b: EventId = "1733500000000-10".parse().unwrap_or_else(|e| panic!("{e}"));
        let c: EventId = "1733500000001-0".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(a < b && b < c);
        assert_eq!(b.to_string(), "1733500000000-10");
        assert_eq!(a.next().to_string(), "1733500000000-1");
        for bad in ["", "1", "a-b", "1-", "-1", "1-2-3"] {
            assert!(bad.parse::<EventId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn severities_order_and_parse() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Critical);
        assert_eq!(Severity::parse("warning"), Some(Severity::Warning));
        assert_eq!(Severity::parse("loud"), None);
    }
}
