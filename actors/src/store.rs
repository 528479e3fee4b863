//! The Store port: what the license actors need from persistence.
//!
//! Contract shared by every adapter (the conformance suite checks it):
//! - every method that changes something a limit depends on is ONE atomic operation that
//!   re-checks the limit against what is stored, so several server processes sharing one
//!   store can never exceed a limit together;
//! - a method that returns `Ok` has made its change durable;
//! - session tokens appear only as [`TokenHash`].

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;
use crate::model::{
    Activation, EndReason, LicenseKey, LicenseRecord, LicenseSnapshot, LicenseStatus,
    SessionRecord, TokenHash,
};

/// Why a store operation failed: the one error type of every store port and adapter.
///
/// What a client sees of each: `Unavailable` and `Timeout` are 503 `STORE_UNAVAILABLE` (the
/// change was not made, retrying later is safe); `Corrupt` is a 500 whose cause is logged;
/// `LicenseNotFound` is a 404; `AlreadyExists` never reaches a client (issuing retries with
/// a new key); `Locked` only happens at start-up and in the CLI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or failed; the change was not made.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend did not answer within `store.op_timeout_ms`; the change was not made.
    #[error("store did not answer within {0} ms")]
    Timeout(u64),
    /// The embedded database file is held by another process (a running server).
    #[error("the database {} is in use by another process", .0.display())]
    Locked(std::path::PathBuf),
    /// The stored data could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The license does not exist (for operations that require it).
    #[error("license not found")]
    LicenseNotFound,
    /// A license with this key already exists.
    #[error("license already exists")]
    AlreadyExists,
}

/// Which limit the store found exceeded while re-checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LimitKind {
    /// `max_devices`.
    Devices,
    /// `max_activations`.
    Activations,
    /// `max_sessions`.
    Sessions,
}

/// A device to activate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewActivation {
    /// Device identifier.
    pub hardware_hash: String,
    /// Machine name.
    pub machine_name: String,
    /// Client version.
    pub app_version: String,
    /// Hardware components, if known.
    pub fingerprint: Option<Fingerprint>,
    /// Activation time.
    pub at: DateTime<Utc>,
}

/// One atomic change to one license.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StoreOp {
    /// Activate a device unless `max_devices` active devices or `max_activations`
    /// lifetime activations (0 = unlimited) already exist. Re-activating an active
    /// `hardware_hash` returns the existing activation and counts nothing.
    Activate {
        /// License.
        key: LicenseKey,
        /// The device.
        activation: NewActivation,
        /// Limit on active devices.
        max_devices: u32,
        /// Limit on lifetime activations (0 = unlimited).
        max_activations: u32,
    },
    /// Mark a device inactive and end its sessions with `Admin`.
    Deactivate {
        /// License.
        key: LicenseKey,
        /// The device.
        hardware_hash: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Start a session unless `max_sessions` sessions with a deadline after `at` exist,
    /// not counting the ones ended in the same step by `end` (evictions, replacements).
    StartSession {
        /// License.
        key: LicenseKey,
        /// The session.
        session: SessionRecord,
        /// Limit on live sessions.
        max_sessions: u32,
        /// Sessions ended atomically with the start.
        end: Vec<(TokenHash, EndReason)>,
        /// When.
        at: DateTime<Utc>,
    },
    /// End sessions. With `confirm_deadline`, a session is only ended if its stored
    /// deadline is before `at` (another node may have kept it alive).
    EndSessions {
        /// License.
        key: LicenseKey,
        /// Sessions and reasons.
        ends: Vec<(TokenHash, EndReason)>,
        /// When.
        at: DateTime<Utc>,
        /// Only end sessions whose stored deadline has passed.
        confirm_deadline: bool,
    },
    /// Change the status; entering a non-active status ends all sessions with its reason.
    SetStatus {
        /// License.
        key: LicenseKey,
        /// New status.
        status: LicenseStatus,
        /// Operator note.
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Replace the license record's mutable fields (validity, overrides, plan, warnings).
    UpdateLicense {
        /// The new record (its key and id must match the stored one).
        record: LicenseRecord,
    },
    /// Delete the license, its activations and its sessions (ended with `Admin`), and every
    /// index entry that names them, in one atomic step.
    DeleteLicense {
        /// License.
        key: LicenseKey,
    },
}

impl StoreOp {
    /// The license this operation changes.
    pub fn key(&self) -> &LicenseKey {
        match self {
            StoreOp::Activate { key, .. }
            | StoreOp::Deactivate { key, .. }
            | StoreOp::StartSession { key, .. }
            | StoreOp::EndSessions { key, .. }
            | StoreOp::SetStatus { key, .. }
            | StoreOp::DeleteLicense { key } => key,
            StoreOp::UpdateLicense { record } => &record.key,
        }
    }

    /// A bounded name for metrics.
    pub fn name(&self) -> &'static str {
        match self {
            StoreOp::Activate { .. } => "activate",
            StoreOp::Deactivate { .. } => "deactivate",
            StoreOp::StartSession { .. } => "start_session",
            StoreOp::EndSessions { .. } => "end_sessions",
            StoreOp::SetStatus { .. } => "set_status",
            StoreOp::UpdateLicense { .. } => "update_license",
            StoreOp::DeleteLicense { .. } => "delete_license",
        }
    }
}

/// What an applied [`StoreOp`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StoreOutcome {
    /// `Activate`: the (new or existing) activation.
    Activated {
        /// The activation as stored.
        activation: Activation,
        /// True when the device was already active (nothing counted).
        existing: bool,
    },
    /// The store's own limit check refused the change; nothing was written.
    LimitReached(LimitKind),
    /// `EndSessions`: which sessions ended, and which were kept alive elsewhere
    /// (with their stored deadline).
    Ended {
        /// Ended.
        ended: Vec<TokenHash>,
        /// Not ended because their stored deadline is still ahead.
        still_alive: Vec<(TokenHash, DateTime<Utc>)>,
    },
    /// Any other operation succeeded.
    Done,
}

/// A coalesced heartbeat for the write-behind flush. Stores keep its times to the
/// microsecond ([`HeartbeatWrite::kept_times`]): a single Redis holds them as integer
/// microseconds, and every backend truncates alike so all read back the same values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatWrite {
    /// License.
    pub key: LicenseKey,
    /// Session.
    pub token_hash: TokenHash,
    /// Device of the session (its activation's `last_heartbeat` is updated too).
    pub hardware_hash: String,
    /// Last heartbeat.
    pub last_heartbeat: DateTime<Utc>,
    /// New deadline.
    pub deadline: DateTime<Utc>,
}

impl HeartbeatWrite {
    /// `(last_heartbeat, deadline)` as a store keeps them: truncated to whole microseconds.
    pub fn kept_times(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (
            self.last_heartbeat.trunc_subsecs(6),
            self.deadline.trunc_subsecs(6),
        )
    }
}

/// Backend health as reported on `/health` and `/ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreHealth {
    /// Reachable.
    Ok,
    /// Unreachable or failing; durable writes answer 503.
    Degraded,
}

/// Persistence of licenses, activations and sessions.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Loads a license with its activations and not-yet-ended sessions; `None` if unknown.
    async fn load(&self, key: &LicenseKey) -> Result<Option<LicenseSnapshot>, StoreError>;

    /// Creates a license, assigning its `id`; fails with `AlreadyExists` if the key is taken.
    async fn create_license(&self, record: LicenseRecord) -> Result<LicenseRecord, StoreError>;

    /// Applies one atomic, limit-checked change.
    async fn apply(&self, op: StoreOp) -> Result<StoreOutcome, StoreError>;

    /// Writes coalesced heartbeats (last_heartbeat and deadline) in one batch; sessions
    /// that have ended meanwhile are skipped.
    async fn flush_heartbeats(&self, batch: &[HeartbeatWrite]) -> Result<(), StoreError>;

    /// The license a live session belongs to.
    async fn find_session(&self, token: &TokenHash) -> Result<Option<LicenseKey>, StoreError>;

    /// Up to `limit` live sessions (any license) whose stored deadline is before `before`.
    async fn overdue_sessions(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(LicenseKey, TokenHash)>, StoreError>;

    /// Up to `limit` license keys after `after` in key order (for listing and admin).
    async fn list_licenses(
        &self,
        after: Option<&LicenseKey>,
        limit: usize,
    ) -> Result<Vec<LicenseKey>, StoreError>;

    /// Up to `limit` license records after `after` in key order: the admin listing's page
    /// source (it filters what it reads; see `runtime/src/admin/list.rs`).
    async fn list_records(
        &self,
        after: Option<&LicenseKey>,
        limit: usize,
    ) -> Result<Vec<LicenseRecord>, StoreError>;

    /// The key of the license with numeric id `id` (seed 000's admin paths name licenses by
    /// id), or `None`.
    async fn key_for_id(&self, id: u64) -> Result<Option<LicenseKey>, StoreError>;

    /// Current backend health.
    fn health(&self) -> StoreHealth;
}
