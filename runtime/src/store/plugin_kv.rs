//! The shared plugin KV port: durable plugin keys that every server using the store reads
//! and writes as one, so counters a policy keeps (warnings, activations per address) add up
//! across nodes instead of splitting in two.
//!
//! Only a store that several servers share implements it (Redis). The embedded store has one
//! server by construction; its durable keys stay in memory and are written back as blobs
//! (`policy::kv`).

use async_trait::async_trait;

use tessera_actors::StoreError;

/// Durable plugin keys by (plugin, key), each key changed atomically on the store.
#[async_trait]
pub trait SharedPluginKv: Send + Sync + 'static {
    /// The live value of `key` of plugin `namespace` (the store expires keys itself).
    async fn kv_get(&self, namespace: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Replaces `key`'s value and expiry.
    async fn kv_set(
        &self,
        namespace: &str,
        key: &[u8],
        value: &[u8],
        expires_at_ms: Option<i64>,
    ) -> Result<(), StoreError>;
    /// Adds `delta` (saturating) to the 8-byte little-endian counter at `key` (missing or
    /// not 8 bytes: 0) in one atomic step and returns the new value. The expiry becomes
    /// `expires_at_ms` when the key is created or `refresh_ttl`; otherwise it is kept.
    async fn kv_incr(
        &self,
        namespace: &str,
        key: &[u8],
        delta: i64,
        expires_at_ms: Option<i64>,
        refresh_ttl: bool,
    ) -> Result<i64, StoreError>;
    /// Deletes `key`.
    async fn kv_delete(&self, namespace: &str, key: &[u8]) -> Result<(), StoreError>;
}
