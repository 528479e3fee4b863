//! Events: every significant happening (a session started or ended, a rejection, a ban, a
//! failed login, an admin change) as one record with seed 001's fields, through one fan-out.
//!
//! [`Events::publish`] never blocks and never fails its caller: it queues the event for the
//! persister task (`bus.rs`), which appends batches to the event log (the [`EventStore`] of the
//! configured backend: a redb table or a Redis Stream) and then hands each stored event to
//! this server's local consumers ([`Events::subscribe_local`]: webhooks, statistics), each on
//! its own bounded channel. The live stream (`stream.rs`) tails the log itself, so it shows
//! every server's events, and resumes from an id. A full queue drops the event and counts it
//! in `tessera_events_dropped_total{sink}`; nothing is dropped silently.
//!
//! Producers: the license actors' events (`license.rs`), the admin service's fan-out, the
//! login and policy paths of the API.
//!
//! [`EventStore`]: crate::store::EventStore

mod bus;
mod license;
pub mod query;
mod stream;

pub use bus::{EVENT_QUEUE, Events};
pub use license::LicenseEventSink;
pub use query::EventPage;
pub use stream::{EventFilter, Subscription};

pub use crate::store::events::{Event, EventId, NewEvent, Severity};
