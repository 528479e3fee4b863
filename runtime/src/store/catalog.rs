//! The catalog port: small administrative records (customers, products, plans) and the
//! search index over them and over licenses and devices.
//!
//! Records are opaque bytes under `(kind, id)`, written by compare-and-swap so two servers
//! editing one record cannot lose an update. Every record, and every index-only entry (a
//! license or a device, whose data lives in the license tables), carries a set of search
//! *terms*; the store keeps them in one ordered index per kind, so a prefix query is a range
//! read of the index (O(log n + results)), never a scan of the records. A record's terms are
//! replaced in the same atomic step as its value.
//!
//! Implemented on the same adapters as the other ports: the embedded store
//! (`embedded/catalog.rs`, one redb write transaction per change) and Redis
//! (`redis/catalog.rs`, one Lua script per change, every key of a kind in one hash tag).

use async_trait::async_trait;
pub use tessera_actors::StoreError;

/// Longest id of a record or index entry.
pub const MAX_ID_LEN: usize = 200;
/// Longest search term; longer terms are cut by the caller (`crate::search::terms`).
pub const MAX_TERM_LEN: usize = 64;
/// Most terms one record or index entry carries.
pub const MAX_TERMS: usize = 64;

/// What a catalog entry is. Each kind has its own records, ids and index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CatalogKind {
    /// A customer (record; ids are zero-padded numbers, see [`numeric_id`]).
    Customer,
    /// A product defined or changed at run time (record; id = product id).
    Product,
    /// A plan defined or changed at run time (record; id = plan name).
    Plan,
    /// A license (index only; id = its zero-padded numeric id).
    License,
    /// A device (index only; id = `{license id}/{device id}`, both zero-padded).
    Device,
    /// A webhook endpoint (record; ids are zero-padded numbers).
    WebhookEndpoint,
    /// A webhook delivery (record; id = `{endpoint id}/{newest-first sequence}`, both
    /// zero-padded, see `crate::webhooks`); its terms are the endpoint and, while pending, its
    /// due time, so the index is also the delivery queue.
    WebhookDelivery,
}

impl CatalogKind {
    /// The kind's name in store keys: `customer`, `product`, `plan`, `license`, `device`,
    /// `webhook_endpoint`, `webhook_delivery`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Product => "product",
            Self::Plan => "plan",
            Self::License => "license",
            Self::Device => "device",
            Self::WebhookEndpoint => "webhook_endpoint",
            Self::WebhookDelivery => "webhook_delivery",
        }
    }

    /// Every kind, for tests and maintenance.
    pub const ALL: [CatalogKind; 7] = [
        Self::Customer,
        Self::Product,
        Self::Plan,
        Self::License,
        Self::Device,
        Self::WebhookEndpoint,
        Self::WebhookDelivery,
    ];
}

/// `n` as a catalog id whose byte order is its numeric order (20 digits, zero-padded).
pub fn numeric_id(n: u64) -> String {
    format!("{n:020}")
}

/// The number behind a [`numeric_id`], or `None` if `id` is not one.
pub fn parse_numeric_id(id: &str) -> Option<u64> {
    (id.len() == 20 && id.bytes().all(|b| b.is_ascii_digit()))
        .then(|| id.parse().ok())
        .flatten()
}

/// A record's new value and its search terms.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    /// The record's bytes.
    pub value: &'a [u8],
    /// Its search terms (normalized by the caller; at most [`MAX_TERMS`], each at most
    /// [`MAX_TERM_LEN`] bytes, none containing a NUL byte).
    pub terms: &'a [String],
}

/// Records and the search index of every kind, shared by every server using the store.
///
/// Ids and terms never contain a NUL byte (callers guarantee it; adapters may rely on it to
/// separate a term from its id in one index key). [`CatalogStore::swap`] and
/// [`CatalogStore::set_terms`] refuse, with an error and writing nothing, an id or terms
/// breaking that or the limits above ([`MAX_ID_LEN`], [`MAX_TERMS`], [`MAX_TERM_LEN`]): a
/// search reads at most `limit * MAX_TERMS` index entries, which holds only while they hold.
#[async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    /// A new id for `kind`: 1, 2, 3, ... never handed out twice, also across servers.
    async fn next_id(&self, kind: CatalogKind) -> Result<u64, StoreError>;

    /// The record `(kind, id)`, or `None`.
    async fn get(&self, kind: CatalogKind, id: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Replaces the record `(kind, id)` with `new` (`None` deletes it and its terms) if its
    /// value is still `expected` (`None`: absent). `Ok(false)` when it was not: nothing was
    /// written. The value, the id list and the index change together or not at all.
    async fn swap(
        &self,
        kind: CatalogKind,
        id: &str,
        expected: Option<&[u8]>,
        new: Option<Entry<'_>>,
    ) -> Result<bool, StoreError>;

    /// Records of `kind` in id order, starting after `after`, at most `limit`.
    async fn list(
        &self,
        kind: CatalogKind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Replaces the search terms of the index-only entry `(kind, id)` (an empty list removes
    /// it). For kinds with records, use [`CatalogStore::swap`].
    async fn set_terms(
        &self,
        kind: CatalogKind,
        id: &str,
        terms: &[String],
    ) -> Result<(), StoreError>;

    /// Ids of `kind` having a term that starts with `prefix`, in (term, id) order, each id
    /// once (at its first matching term), at most `limit`. `exact` restricts it to terms equal
    /// to `prefix`; then `after` continues after that id (ids of one exact term come in id
    /// order). Without `exact`, `after` is ignored: a prefix search's order is by term, which
    /// an id alone cannot resume, so it is not paged (ask for a larger `limit`).
    async fn search(
        &self,
        kind: CatalogKind,
        prefix: &str,
        exact: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
}
