//! The tamper-evident audit log: every operator and admin-key action (who, from where, what,
//! before and after) as an append-only record carrying the SHA-256 of the record before it.
//! Changing, removing or reordering a stored record breaks the chain at that record, and
//! [`AuditLog::verify`] names it. The chain head is anchored every minute: logged, and
//! exposed in `/metrics` (`tessera_audit_head_seq`, `tessera_audit_head_hash_prefix`), so a
//! rewrite of the whole tail after an anchor is detectable against the logs too.
//!
//! Records are appended by the admin service (and the other operator paths) before the
//! action is acknowledged, by compare-and-swap on the chain head, so servers sharing a store
//! extend one chain.

mod chain;
pub mod context;
mod service;

pub use chain::{GENESIS, hash_of};
pub use service::{AuditEntry, AuditLog, AuditPage, Problem, ProblemKind, VerifyReport};

pub use crate::store::audit::AuditRecord;
