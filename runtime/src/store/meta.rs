//! The metadata port: small named blobs (the API key record, server settings).

use async_trait::async_trait;
pub use tessera_actors::{StoreError, StoreHealth};

/// Small named blobs shared by every server process using the same store.
///
/// Implemented by the embedded (redb) adapter and, later, the Redis adapter; both must give
/// read-your-writes on one key across processes.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// The bytes last written under `key`, or `None` if never written.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes `value` under `key`; durable when it returns `Ok`.
    async fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Atomically replaces the value under `key` with `new` (`None` deletes it) if the value
    /// there is still `expected` (`None`: absent). `Ok(false)` when it was not: nothing was
    /// written; read again and retry. Two servers racing on one key: exactly one wins.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StoreError>;
    /// Whether the backend answers now (reported by `GET /health`).
    async fn health(&self) -> StoreHealth;
    /// Backend name for logs and health: `"embedded"` or `"redis"`.
    fn backend(&self) -> &'static str;
}
