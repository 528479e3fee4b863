//! Store adapters, picked at start-up from `[store] backend`.
//!
//! [`meta::MetaStore`] holds server metadata (the API key record); the license Store port of
//! `tessera-actors` is implemented beside it per backend, and so is [`ResourceStore`] (resource
//! pools, seed 000), and so is [`CatalogStore`] (customers, run-time products and plans,
//! the search index), and so is [`EventStore`] (the event log), and so is
//! [`AuditStore`] (the hash-chained audit log), and so is [`Transfer`] (what `tessera migrate`
//! needs beyond them). The embedded adapter opens one redb database that every embedded table
//! shares.

pub mod audit;
pub mod catalog;
pub mod changes;
pub mod embedded;
pub mod events;
pub mod meta;
pub mod plugin_kv;
pub mod redis;
pub mod resources;
pub mod transfer;

pub use audit::AuditStore;
pub use catalog::CatalogStore;
pub use changes::ChangeFeed;
pub use embedded::EmbeddedStore;
pub use events::EventStore;
pub use meta::{MetaStore, StoreError, StoreHealth};
pub use plugin_kv::SharedPluginKv;
pub use resources::ResourceStore;
pub use transfer::Transfer;
