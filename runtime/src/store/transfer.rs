//! The transfer port: what `tessera migrate` needs from a store beyond the other ports, to
//! copy one store into another of either backend. Reading goes through the ordinary ports
//! where they can enumerate (licenses, catalog records, the audit chain) and through this
//! port where they cannot (meta names, index-only catalog entries, shared plugin keys);
//! writing a license as it is (ids, activations and sessions kept, not re-counted) is
//! here, every other write uses the other ports' own write paths.
//!
//! Implemented by the embedded store (`embedded/transfer.rs`) and Redis
//! (`redis/transfer.rs`). Nothing else calls it: a server never needs it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tessera_actors::LicenseSnapshot;
pub use tessera_actors::StoreError;

use super::catalog::CatalogKind;
use super::events::{Event, EventId, NewEvent};
use super::resources::Resource;

/// The store's id counters: the last license id and activation id handed out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdCounters {
    /// Last license id.
    pub license: u64,
    /// Last activation id.
    pub activation: u64,
}

/// One durable plugin key of a shared plugin KV ([`super::SharedPluginKv`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginKvEntry {
    /// The plugin.
    pub namespace: String,
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// When it expires (Unix ms), if ever.
    pub expires_at_ms: Option<i64>,
}

/// Export and import of what the other ports cannot enumerate or write as it is.
#[async_trait]
pub trait Transfer: Send + Sync + 'static {
    /// Every meta blob's name, in name order.
    async fn meta_names(&self) -> Result<Vec<String>, StoreError>;

    /// Writes `license` with its activations and sessions exactly as given (ids and times
    /// kept), replacing what the store holds under its key, and its index entries (id, live
    /// sessions, deadlines). Idempotent.
    async fn put_license(&self, license: &LicenseSnapshot) -> Result<(), StoreError>;

    /// The id counters.
    async fn id_counters(&self) -> Result<IdCounters, StoreError>;

    /// Raises each id counter to at least the given value (never lowers one).
    async fn raise_id_counters(&self, at_least: IdCounters) -> Result<(), StoreError>;

    /// The search terms of catalog entry `(kind, id)`, sorted (empty when it has none).
    async fn catalog_terms(&self, kind: CatalogKind, id: &str) -> Result<Vec<String>, StoreError>;

    /// Every id of `kind` that has search terms, in id order (for the index-only kinds,
    /// licenses and devices, these are all their entries).
    async fn catalog_indexed(&self, kind: CatalogKind) -> Result<Vec<String>, StoreError>;

    /// The last id [`super::CatalogStore::next_id`] handed out for `kind`.
    async fn catalog_seq(&self, kind: CatalogKind) -> Result<u64, StoreError>;

    /// Raises `kind`'s catalog id counter to at least `at_least`.
    async fn raise_catalog_seq(&self, kind: CatalogKind, at_least: u64) -> Result<(), StoreError>;

    /// Writes `resource` exactly as given (its id, holder and times kept), replacing the
    /// resource with its id and any other with its type and identifier, and keeps the pool's
    /// indexes and counts right. Idempotent.
    async fn put_resource(&self, resource: &Resource) -> Result<(), StoreError>;

    /// The last resource id handed out.
    async fn resource_seq(&self) -> Result<u64, StoreError>;

    /// Raises the resource id counter to at least `at_least`.
    async fn raise_resource_seq(&self, at_least: u64) -> Result<(), StoreError>;

    /// The stored event with id `id`, if any.
    async fn event(&self, id: EventId) -> Result<Option<Event>, StoreError>;

    /// Stores `event` under its own id (the log's own append assigns new ones). Redis takes
    /// only ids above its newest; a migration copies in id order into a log that has none.
    async fn put_event(&self, event: &Event) -> Result<(), StoreError>;

    /// Every live key of the shared plugin KV, ordered by (namespace, key); empty for a
    /// store without one (the embedded store keeps durable plugin keys as meta blobs).
    async fn plugin_kv_entries(&self) -> Result<Vec<PluginKvEntry>, StoreError>;
}

/// `event` as its id and the record the adapters store under it.
pub fn unstored(event: &Event) -> Result<(EventId, NewEvent), StoreError> {
    let id = event
        .id
        .parse()
        .map_err(|e: String| StoreError::Corrupt(format!("event id: {e}")))?;
    Ok((
        id,
        NewEvent {
            event_type: event.event_type.clone(),
            severity: event.severity,
            summary: event.summary.clone(),
            actor: event.actor.clone(),
            ip: event.ip.clone(),
            license: event.license.clone(),
            app_id: event.app_id.clone(),
            risk: event.risk,
            created_at: event.created_at,
            data: event.data.clone(),
        },
    ))
}
