//! The resource port: pools of identifiers by type (servers, domains, seats) that licenses
//! hold, seed 000's Resource Management API. Validation and the rules around it live in
//! `crate::resources`; this port only keeps the pools, atomically.
//!
//! Implemented on the same adapters as the other ports: the embedded store
//! (`embedded/resources.rs`, one redb write transaction per change) and Redis
//! (`redis/resources.rs`, one Lua script per change, every key in one hash tag).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tessera_actors::LicenseKey;
pub use tessera_actors::StoreError;

/// Longest resource type name.
pub const MAX_TYPE_LEN: usize = 32;

/// Most resource types a store holds at once: each type is a label value of the pool gauges,
/// so the set must stay bounded. A type disappears with its last resource.
pub const MAX_RESOURCE_TYPES: usize = 100;

/// A resource type name: 1 to [`MAX_TYPE_LEN`] characters of `a-z 0-9 _ -`.
///
/// The adapters rely on the charset: `:` and `;` never occur in a type, so `type:identifier`
/// and `type:id` index keys are unambiguous and a type's range ends before `type;`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceType(String);

impl ResourceType {
    /// `name` as a type, or `None` when it is empty, too long or outside the charset (callers
    /// trim and lower-case first).
    pub fn new(name: &str) -> Option<Self> {
        let ok = !name.is_empty()
            && name.len() <= MAX_TYPE_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        ok.then(|| Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a resource is in its pool or held by a license.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceStatus {
    /// In the pool: any license may be given it.
    Free,
    /// Held by one license.
    Allocated,
}

impl ResourceStatus {
    /// `"free"` or `"allocated"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Allocated => "allocated",
        }
    }
}

/// One resource of a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    /// Store-wide id, increasing, never reused.
    pub id: u64,
    /// Its pool.
    pub kind: ResourceType,
    /// The identifier (a server name, a domain, a seat), unique within its type.
    pub identifier: String,
    /// The license holding it, if allocated.
    pub holder: Option<LicenseKey>,
    /// When it was allocated to `holder`.
    pub allocated_at: Option<DateTime<Utc>>,
    /// When it entered the pool.
    pub created_at: DateTime<Utc>,
}

impl Resource {
    /// Free or allocated.
    pub fn status(&self) -> ResourceStatus {
        if self.holder.is_some() {
            ResourceStatus::Allocated
        } else {
            ResourceStatus::Free
        }
    }
}

/// One identifier of a [`ResourceStore::create`] call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// The resource as stored now.
    pub resource: Resource,
    /// False when `(type, identifier)` was in the pool already (it is returned unchanged).
    pub created: bool,
}

/// What [`ResourceStore::create`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    /// Every identifier, in the order given, each created or found.
    Done(Vec<Created>),
    /// The type is new and the store holds [`MAX_RESOURCE_TYPES`] types: nothing changed.
    TooManyTypes,
}

/// What an allocation or a release did. Every refusal changed nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// All of them changed; the resources as they are now, in id order.
    Done(Vec<Resource>),
    /// No resource has these ids.
    Unknown(Vec<u64>),
    /// Allocation with a type: these resources are of another type.
    WrongType(Vec<u64>),
    /// Allocation: these are held by a license already. Release: these are not held by the
    /// license named.
    Conflict(Vec<u64>),
}

/// What [`ResourceStore::delete`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Removed from its pool; the resource as it was.
    Deleted(Resource),
    /// No resource has this id.
    Unknown,
    /// A license holds it: nothing changed.
    Allocated,
}

/// An ordered index of resources that [`ResourceStore::page`] reads.
#[derive(Clone, Copy, Debug)]
pub enum ResourceIndex<'a> {
    /// Every resource.
    All,
    /// The resources of one type.
    OfType(&'a ResourceType),
    /// The free resources of one type.
    FreeOfType(&'a ResourceType),
    /// The resources one license holds.
    HeldBy(&'a LicenseKey),
}

/// How many resources of a type are free and allocated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeCounts {
    /// The type.
    pub kind: ResourceType,
    /// Free.
    pub free: u64,
    /// Allocated.
    pub allocated: u64,
}

/// Resource pools shared by every server using the same store.
///
/// Every change is atomic with respect to every other change by any process on the same
/// store: of two allocations racing for one resource exactly one succeeds. Callers pass
/// distinct ids and validated identifiers; the adapters keep the pools and their counts.
#[async_trait]
pub trait ResourceStore: Send + Sync + 'static {
    /// Adds each identifier to `kind`'s pool, free, unless `(kind, identifier)` exists already
    /// (then it is returned as it is): import is idempotent.
    async fn create(
        &self,
        kind: &ResourceType,
        identifiers: &[String],
        at: DateTime<Utc>,
    ) -> Result<CreateOutcome, StoreError>;

    /// Up to `limit` resources of `index` with an id above `after`, in id order.
    async fn page(
        &self,
        index: ResourceIndex<'_>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Resource>, StoreError>;

    /// Gives every resource of `ids` to `license`, or none of them: not when one is unknown,
    /// of another type than `kind` (when given) or held by any license.
    async fn allocate(
        &self,
        license: &LicenseKey,
        ids: &[u64],
        kind: Option<&ResourceType>,
        at: DateTime<Utc>,
    ) -> Result<Change, StoreError>;

    /// Returns every resource of `ids` to its pool, or none of them: not when one is unknown
    /// or not held by `license`.
    async fn release(&self, license: &LicenseKey, ids: &[u64]) -> Result<Change, StoreError>;

    /// Returns every resource `license` holds to its pool (for a license that goes away);
    /// the ids released.
    async fn release_all(&self, license: &LicenseKey) -> Result<Vec<u64>, StoreError>;

    /// Removes a free resource from its pool.
    async fn delete(&self, id: u64) -> Result<Removal, StoreError>;

    /// Free and allocated counts of each of `kinds` (zeros for a type without resources).
    async fn counts(&self, kinds: &[ResourceType]) -> Result<Vec<TypeCounts>, StoreError>;
}

impl std::fmt::Debug for dyn ResourceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResourceStore")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_bounded_lower_case_words() {
        assert!(ResourceType::new("server").is_some());
        assert!(ResourceType::new("seat_2-b").is_some());
        assert!(ResourceType::new(&"a".repeat(MAX_TYPE_LEN)).is_some());
        for bad in [
            "",
            "Server",
            "a:b",
            "a;b",
            "a b",
            "ü",
            &"a".repeat(MAX_TYPE_LEN + 1),
        ] {
            assert!(ResourceType::new(bad).is_none(), "{bad:?}");
        }
    }
}
