//! Plugin key-value state: per-plugin namespaces in host memory, written through to a
//! [`DurableKv`] for keys the plugin marks durable.
//!
//! **Invariant:** plugin state lives here, never in instance memory, so it is shared by all
//! instances of a plugin and survives instance discards and reloads (namespaces are keyed
//! by plugin name).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use parking_lot::Mutex;

/// One stored value and its absolute expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvRecord {
    /// The bytes.
    pub value: Vec<u8>,
    /// Expiry, Unix milliseconds; `None` never expires.
    pub expires_at_ms: Option<i64>,
}

/// The durable store could not answer a read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("durable kv unavailable: {0}")]
pub struct KvError(pub String);

/// The server's persistent store, as seen by plugins' durable keys.
///
/// The runtime implements this on its store (redb or Redis), e.g. with keys
/// `plugin:{namespace}:{hex(key)}` and the store's native expiry. The host keeps a memory
/// cache in front of it and reads a durable key from here only when the cache misses
/// (the first use of a key after a start or a reload of the process), so `get` may block
/// briefly; `put` and `delete` are fire-and-forget (queue and return; log failures).
pub trait DurableKv: Send + Sync + 'static {
    /// Reads `key` of `namespace`; `Ok(None)` when absent. Expired records may be
    /// returned: the host checks `expires_at_ms` against the event time.
    ///
    /// # Errors
    /// [`KvError`] when the store cannot be reached; the plugin call then fails with kind
    /// `kv_unavailable` and its fail mode applies.
    fn get(&self, namespace: &str, key: &[u8]) -> Result<Option<KvRecord>, KvError>;

    /// Writes `key` of `namespace` (replacing any previous value), without waiting.
    fn put(&self, namespace: &str, key: &[u8], record: KvRecord);

    /// Deletes `key` of `namespace`, without waiting.
    fn delete(&self, namespace: &str, key: &[u8]);

    /// Whether other servers write this store too (Redis). Then the host keeps no copy of
    /// durable keys: every durable read, write and increment goes to the store and is
    /// answered before the plugin continues (`put` and `delete` included), and increments
    /// are [`DurableKv::incr`], so every server sees one value. Hooks run off the request
    /// threads, so the wait stalls only the calling hook.
    fn shared(&self) -> bool {
        false
    }

    /// Adds `delta` (saturating) to the 8-byte little-endian counter at `key` in one atomic
    /// step of the store and returns the new value. A missing or expired key, or a value
    /// that is not 8 bytes, counts as 0. The key's expiry becomes `expires_at_ms` when it is
    /// created or when `refresh_ttl`; otherwise it keeps its own. Called only when
    /// [`DurableKv::shared`].
    ///
    /// # Errors
    /// [`KvError`] when the store cannot be reached or has no atomic increment.
    fn incr(
        &self,
        namespace: &str,
        key: &[u8],
        delta: i64,
        expires_at_ms: Option<i64>,
        refresh_ttl: bool,
    ) -> Result<i64, KvError> {
        let _ = (namespace, key, delta, expires_at_ms, refresh_ttl);
        Err(KvError("this store has no atomic increment".into()))
    }
}

/// A [`DurableKv`] in process memory: for tests and `tessera plugin run`.
#[derive(Debug, Default)]
pub struct MemoryKv {
    map: Mutex<HashMap<(String, Vec<u8>), KvRecord>>,
}

impl MemoryKv {
    /// An empty store.
    #[must_use]
    pub fn new() -> MemoryKv {
        MemoryKv::default()
    }

    /// Number of records (expired ones included until overwritten or deleted).
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether the store holds no record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of one record, for assertions.
    #[must_use]
    pub fn record(&self, namespace: &str, key: &[u8]) -> Option<KvRecord> {
        self.map
            .lock()
            .get(&(namespace.to_owned(), key.to_vec()))
            .cloned()
    }
}

impl DurableKv for MemoryKv {
    fn get(&self, namespace: &str, key: &[u8]) -> Result<Option<KvRecord>, KvError> {
        Ok(self.record(namespace, key))
    }

    fn put(&self, namespace: &str, key: &[u8], record: KvRecord) {
        self.map
            .lock()
            .insert((namespace.to_owned(), key.to_vec()), record);
    }

    fn delete(&self, namespace: &str, key: &[u8]) {
        self.map
            .lock()
            .remove(&(namespace.to_owned(), key.to_vec()));
    }
}

/// How long a "durable key is absent" answer is cached before the store is asked again.
const ABSENT_CACHE_MS: i64 = 60_000;
/// Inserts between two sweeps of expired entries.
const SWEEP_EVERY: usize = 4096;

#[derive(Debug, Clone)]
enum Slot {
    Value {
        bytes: Box<[u8]>,
        expires_at_ms: Option<i64>,
        durable: bool,
    },
    /// The durable store said the key is absent (cached until `until_ms`).
    Absent { until_ms: i64 },
}

impl Slot {
    fn live(&self, now_ms: i64) -> bool {
        match self {
            Slot::Value { expires_at_ms, .. } => expires_at_ms.is_none_or(|t| t > now_ms),
            Slot::Absent { until_ms } => *until_ms > now_ms,
        }
    }
}

/// Outcome of a write that may be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// The namespace holds `kv_max_entries_per_plugin` live entries.
    Full,
}

/// One plugin's key-value namespace.
pub(crate) struct Namespace {
    name: Arc<str>,
    entries: DashMap<Box<[u8]>, Slot>,
    durable: Arc<dyn DurableKv>,
    max_entries: usize,
    inserts: AtomicUsize,
}

fn expiry(now_ms: i64, ttl_ms: i64) -> Option<i64> {
    (ttl_ms > 0).then(|| now_ms.saturating_add(ttl_ms))
}

impl Namespace {
    pub(crate) fn new(name: Arc<str>, durable: Arc<dyn DurableKv>, max_entries: usize) -> Self {
        Namespace {
            name,
            entries: DashMap::new(),
            durable,
            max_entries,
            inserts: AtomicUsize::new(0),
        }
    }

    /// Loads a durable key into the cache when the cache has no live slot for it.
    fn fill_from_durable(&self, key: &[u8], now_ms: i64) -> Result<(), KvError> {
        if self.entries.get(key).is_some_and(|s| s.live(now_ms)) {
            return Ok(());
        }
        let slot = match self.durable.get(&self.name, key)? {
            Some(rec) if rec.expires_at_ms.is_none_or(|t| t > now_ms) => Slot::Value {
                bytes: rec.value.into_boxed_slice(),
                expires_at_ms: rec.expires_at_ms,
                durable: true,
            },
            _ => Slot::Absent {
                until_ms: now_ms.saturating_add(ABSENT_CACHE_MS),
            },
        };
        self.insert_slot(key, slot, now_ms);
        Ok(())
    }

    fn insert_slot(&self, key: &[u8], slot: Slot, now_ms: i64) {
        self.entries.insert(key.into(), slot);
        self.note_insert(now_ms);
    }

    fn note_insert(&self, now_ms: i64) {
        if self.inserts.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep(now_ms);
        }
    }

    /// Drops entries expired as of `now_ms`.
    fn sweep(&self, now_ms: i64) {
        self.entries.retain(|_, slot| slot.live(now_ms));
    }

    fn has_room_for(&self, key: &[u8], now_ms: i64) -> bool {
        if self.entries.len() < self.max_entries || self.entries.contains_key(key) {
            return true;
        }
        self.sweep(now_ms);
        self.entries.len() < self.max_entries
    }

    /// The live value of `key`.
    pub(crate) fn get(
        &self,
        key: &[u8],
        durable: bool,
        now_ms: i64,
    ) -> Result<Option<Box<[u8]>>, KvError> {
        if durable && self.durable.shared() {
            return Ok(self
                .durable
                .get(&self.name, key)?
                .filter(|r| r.expires_at_ms.is_none_or(|t| t > now_ms))
                .map(|r| r.value.into_boxed_slice()));
        }
        if durable {
            self.fill_from_durable(key, now_ms)?;
        }
        Ok(match self.entries.get(key) {
            Some(slot) => match &*slot {
                Slot::Value { bytes, .. } if slot.live(now_ms) => Some(bytes.clone()),
                _ => None,
            },
            None => None,
        })
    }

    /// Sets `key` to `value`, expiring `ttl_ms` after `now_ms` when `ttl_ms > 0`.
    pub(crate) fn set(
        &self,
        key: &[u8],
        value: &[u8],
        ttl_ms: i64,
        durable: bool,
        now_ms: i64,
    ) -> Result<(), WriteError> {
        let expires_at_ms = expiry(now_ms, ttl_ms);
        if durable && self.durable.shared() {
            self.entries.remove(key);
            self.durable.put(
                &self.name,
                key,
                KvRecord {
                    value: value.to_vec(),
                    expires_at_ms,
                },
            );
            return Ok(());
        }
        if !self.has_room_for(key, now_ms) {
            return Err(WriteError::Full);
        }
        self.insert_slot(
            key,
            Slot::Value {
                bytes: value.into(),
                expires_at_ms,
                durable,
            },
            now_ms,
        );
        if durable {
            self.durable.put(
                &self.name,
                key,
                KvRecord {
                    value: value.to_vec(),
                    expires_at_ms,
                },
            );
        }
        Ok(())
    }

    /// Adds `delta` to the counter at `key` (8-byte little-endian i64; a missing, expired
    /// or non-counter value counts as 0) and returns the new value. The expiry is set when
    /// the key is created, or on every call with `refresh_ttl`.
    pub(crate) fn incr(
        &self,
        key: &[u8],
        delta: i64,
        ttl_ms: i64,
        durable: bool,
        refresh_ttl: bool,
        now_ms: i64,
    ) -> Result<Result<i64, WriteError>, KvError> {
        if durable && self.durable.shared() {
            self.entries.remove(key);
            let exp = expiry(now_ms, ttl_ms);
            return Ok(Ok(self.durable.incr(
                &self.name,
                key,
                delta,
                exp,
                refresh_ttl,
            )?));
        }
        if durable {
            self.fill_from_durable(key, now_ms)?;
        }
        if !self.has_room_for(key, now_ms) {
            return Ok(Err(WriteError::Full));
        }
        let (value, expires_at_ms, created) = match self.entries.entry(key.into()) {
            Entry::Occupied(mut occ) => {
                let (current, old_expiry) = match occ.get() {
                    slot @ Slot::Value {
                        bytes,
                        expires_at_ms,
                        ..
                    } if slot.live(now_ms) => (counter_value(bytes), Some(*expires_at_ms)),
                    _ => (0, None),
                };
                let value = current.saturating_add(delta);
                let exp = match old_expiry {
                    Some(old) if !refresh_ttl => old,
                    _ => expiry(now_ms, ttl_ms),
                };
                occ.insert(Slot::Value {
                    bytes: value.to_le_bytes().into(),
                    expires_at_ms: exp,
                    durable,
                });
                (value, exp, false)
            }
            Entry::Vacant(vac) => {
                let exp = expiry(now_ms, ttl_ms);
                vac.insert(Slot::Value {
                    bytes: delta.to_le_bytes().into(),
                    expires_at_ms: exp,
                    durable,
                });
                (delta, exp, true)
            }
        };
        if created {
            self.note_insert(now_ms);
        }
        if durable {
            self.durable.put(
                &self.name,
                key,
                KvRecord {
                    value: value.to_le_bytes().to_vec(),
                    expires_at_ms,
                },
            );
        }
        Ok(Ok(value))
    }

    /// Deletes `key` (from the durable store too when `durable` or when it was written
    /// durable).
    pub(crate) fn delete(&self, key: &[u8], durable: bool, now_ms: i64) {
        if durable && self.durable.shared() {
            self.entries.remove(key);
            self.durable.delete(&self.name, key);
            return;
        }
        let was_durable = match self.entries.remove(key) {
            Some((_, Slot::Value { durable, .. })) => durable,
            _ => false,
        };
        if durable || was_durable {
            self.durable.delete(&self.name, key);
            self.insert_slot(
                key,
                Slot::Absent {
                    until_ms: now_ms.saturating_add(ABSENT_CACHE_MS),
                },
                now_ms,
            );
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

fn counter_value(bytes: &[u8]) -> i64 {
    <[u8; 8]>::try_from(bytes)
        .map(i64::from_le_bytes)
        .unwrap_or(0)
}

/// Wall clock in Unix milliseconds.
pub(crate) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Namespaces by plugin name; lives as long as the host, across reloads.
#[derive(Default)]
pub(crate) struct Namespaces {
    map: Mutex<HashMap<String, Arc<Namespace>>>,
}

impl Namespaces {
    pub(crate) fn get_or_create(
        &self,
        name: &str,
        durable: &Arc<dyn DurableKv>,
        max_entries: usize,
    ) -> Arc<Namespace> {
        self.map
            .lock()
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Namespace::new(
                    name.into(),
                    Arc::clone(durable),
                    max_entries,
                ))
            })
            .clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ns(max: usize) -> (Arc<MemoryKv>, Namespace) {
        let kv = Arc::new(MemoryKv::new());
        let dyn_kv: Arc<dyn DurableKv> = kv.clone();
        (kv, Namespace::new("p".into(), dyn_kv, max))
    }

    #[test]
    fn incr_sets_expiry_on_create_only_unless_refreshed() {
        let (_, ns) = ns(100);
        assert_eq!(ns.incr(b"k", 1, 1000, false, false, 0).unwrap(), Ok(1));
        assert_eq!(ns.incr(b"k", 1, 1000, false, false, 900).unwrap(), Ok(2));
        // fixed window: expired at 1000
        assert_eq!(ns.incr(b"k", 1, 1000, false, false, 1000).unwrap(), Ok(1));
        assert_eq!(ns.incr(b"k", 1, 1000, false, true, 1900).unwrap(), Ok(2));
        // refreshed at 1900: alive until 2900
        assert_eq!(ns.incr(b"k", 1, 1000, false, false, 2800).unwrap(), Ok(3));
    }

    #[test]
    fn durable_keys_write_through_and_reload_after_restart() {
        let (kv, ns1) = ns(100);
        ns1.incr(b"warn", 2, 0, true, false, 10).unwrap().unwrap();
        assert_eq!(kv.record("p", b"warn").unwrap().value, 2i64.to_le_bytes());
        // a new namespace over the same store sees the count (a restart)
        let ns2 = Namespace::new("p".into(), kv.clone(), 100);
        assert_eq!(ns2.incr(b"warn", 1, 0, true, false, 20).unwrap(), Ok(3));
        assert_eq!(
            ns2.get(b"warn", true, 20).unwrap().unwrap()[..],
            3i64.to_le_bytes()
        );
        ns2.delete(b"warn", true, 30);
        assert!(kv.record("p", b"warn").is_none());
        assert!(ns2.get(b"warn", true, 30).unwrap().is_none());
    }

    /// A store two "servers" share, with an atomic increment (what the Redis one does).
    #[derive(Default)]
    struct Shared(MemoryKv);

    impl DurableKv for Shared {
        fn get(&self, namespace: &str, key: &[u8]) -> Result<Option<KvRecord>, KvError> {
            self.0.get(namespace, key)
        }
        fn put(&self, namespace: &str, key: &[u8], record: KvRecord) {
            self.0.put(namespace, key, record);
        }
        fn delete(&self, namespace: &str, key: &[u8]) {
            self.0.delete(namespace, key);
        }
        fn shared(&self) -> bool {
            true
        }
        fn incr(
            &self,
            namespace: &str,
            key: &[u8],
            delta: i64,
            expires_at_ms: Option<i64>,
            refresh_ttl: bool,
        ) -> Result<i64, KvError> {
            let mut map = self.0.map.lock();
            let slot = map
                .entry((namespace.to_owned(), key.to_vec()))
                .or_insert(KvRecord {
                    value: 0i64.to_le_bytes().to_vec(),
                    expires_at_ms,
                });
            let value = counter_value(&slot.value).saturating_add(delta);
            slot.value = value.to_le_bytes().to_vec();
            if refresh_ttl {
                slot.expires_at_ms = expires_at_ms;
            }
            Ok(value)
        }
    }

    #[test]
    fn durable_keys_on_a_shared_store_add_up_across_servers() {
        let store: Arc<dyn DurableKv> = Arc::new(Shared::default());
        let a = Namespace::new("p".into(), Arc::clone(&store), 1);
        let b = Namespace::new("p".into(), Arc::clone(&store), 1);
        assert_eq!(a.incr(b"hits", 2, 0, true, false, 0).unwrap(), Ok(2));
        assert_eq!(b.incr(b"hits", 3, 0, true, false, 0).unwrap(), Ok(5));
        assert_eq!(a.incr(b"hits", 1, 0, true, false, 0).unwrap(), Ok(6));
        // Writes by one are read by the other at once: no copy is cached.
        b.set(b"tag", b"x", 0, true, 0).unwrap();
        assert_eq!(&a.get(b"tag", true, 0).unwrap().unwrap()[..], b"x");
        a.set(b"tag", b"y", 0, true, 0).unwrap();
        assert_eq!(&b.get(b"tag", true, 0).unwrap().unwrap()[..], b"y");
        a.delete(b"tag", true, 0);
        assert!(b.get(b"tag", true, 0).unwrap().is_none());
        // Durable keys live in the store, not in the (1-entry) memory namespace.
        a.set(b"other", b"z", 0, true, 0).unwrap();
        assert_eq!(a.len(), 0);
        // Non-durable keys stay per server.
        a.set(b"local", b"1", 0, false, 0).unwrap();
        assert!(b.get(b"local", false, 0).unwrap().is_none());
    }

    #[test]
    fn non_durable_keys_stay_in_memory() {
        let (kv, ns) = ns(100);
        ns.set(b"a", b"v", 0, false, 0).unwrap();
        assert!(kv.is_empty());
        assert_eq!(&ns.get(b"a", false, 0).unwrap().unwrap()[..], b"v");
    }

    #[test]
    fn full_namespace_refuses_new_keys_but_sweeps_expired_first() {
        let (_, ns) = ns(2);
        ns.set(b"a", b"1", 10, false, 0).unwrap();
        ns.set(b"b", b"1", 0, false, 0).unwrap();
        assert_eq!(ns.set(b"c", b"1", 0, false, 5), Err(WriteError::Full));
        ns.set(b"b", b"2", 0, false, 5).unwrap();
        // "a" expired at 10: room again
        ns.set(b"c", b"1", 0, false, 20).unwrap();
        assert_eq!(ns.len(), 2);
    }
}
