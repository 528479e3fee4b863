//! The metadata port: small named blobs (the API key record, server settings).

use async_trait::async_trait;
use std::path::PathBuf;

use crate::error::ApiError;

/// Whether a store answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreHealth {
    /// Reads and writes work.
    Ok,
    /// The backend does not answer (or not in time); durable writes fail with 503.
    Degraded,
}

/// Errors of a store adapter.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded database file is held by another process (a running server).
    #[error("the database {} is in use by another process", path.display())]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The backend did not answer within `store.op_timeout_ms`.
    #[error("store operation timed out")]
    Timeout,
    /// The backend failed.
    #[error("store backend error: {0:#}")]
    Backend(#[source] anyhow::Error),
    /// A stored value could not be decoded.
    #[error("corrupt stored value under `{key}`: {reason}")]
    Corrupt {
        /// The key read.
        key: String,
        /// What was wrong.
        reason: String,
    },
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt { .. } => ApiError::internal(e),
            _ => ApiError::store(e),
        }
    }
}

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
    /// Whether the backend answers now (reported by `GET /health`).
    async fn health(&self) -> StoreHealth;
    /// Backend name for logs and health: `"embedded"` or `"redis"`.
    fn backend(&self) -> &'static str;
}
