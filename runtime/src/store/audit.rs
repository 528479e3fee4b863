//! The audit log port: append-only records numbered 1, 2, 3, ..., each carrying the SHA-256
//! of the record before it (a hash chain, computed by `crate::audit`), appended by
//! compare-and-swap on the chain head so two servers never fork the chain.
//!
//! Implemented on the same adapters as the other ports: the embedded store
//! (`embedded/audit.rs`, one redb table keyed by the sequence number) and Redis
//! (`redis/audit.rs`, a hash of sequence number → record and a head key, changed together by
//! one script; both keys share the hash tag `{audit}`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
pub use tessera_actors::StoreError;
use utoipa::ToSchema;

/// Most records one read returns.
pub const MAX_READ: usize = 1_000;

/// One audit record as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When the action took effect.
    pub at: DateTime<Utc>,
    /// Who acted: `key:<name>`, `operator:<username>`, `cli`, `system`.
    pub actor: String,
    /// From where: the client address of the request (none for the CLI).
    pub ip: Option<String>,
    /// What: the action's event type (`admin.license.edited`, ...).
    pub action: String,
    /// On what: a license key, `customer:<id>`, `product:<id>`, ... (none for global
    /// actions).
    pub target: Option<String>,
    /// One line for people.
    pub summary: String,
    /// The state before, where the action has one (an edit's previous values).
    pub before: Option<serde_json::Value>,
    /// The change or the state after.
    pub after: serde_json::Value,
    /// SHA-256 (hex) of the previous record; 64 zeros for the first.
    pub prev_hash: String,
    /// SHA-256 (hex) of this record's content and `prev_hash`.
    pub hash: String,
}

/// The audit log, shared by every server using the store.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// The sequence number of the last record (0 when the log is empty).
    async fn audit_head(&self) -> Result<u64, StoreError>;

    /// Appends `record` (whose `seq` must be `head + 1`) if the head is still `head`.
    /// `Ok(false)`: another server appended first; nothing was written. Durable when it
    /// returns `Ok(true)`.
    async fn audit_append(&self, head: u64, record: &AuditRecord) -> Result<bool, StoreError>;

    /// The records with sequence numbers `from..from + limit` (at most [`MAX_READ`]) up to the
    /// head, in order; a number whose record is missing is `None` (the verifier reports it
    /// as removed).
    async fn audit_range(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Option<AuditRecord>)>, StoreError>;
}
