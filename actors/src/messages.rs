//! What goes into and comes out of a license state machine: requests, replies, refusals,
//! events and effects. Hosts (the shard actor, the registry, the server) speak only these.

use chrono::{DateTime, Utc};

use crate::fingerprint::Fingerprint;
use crate::model::{
    Activation, EndReason, LicenseKey, LicenseRecord, LicenseStatus, LimitOverrides, SessionRecord,
    TokenHash,
};
use crate::settings::{Limits, SessionTiming};
use crate::store::{HeartbeatWrite, LimitKind, StoreOp};

/// Identifies a request so its reply can be routed back by the host.
pub type ReqId = u64;
/// Identifies a persist effect so its completion can be matched.
pub type OpId = u64;

/// How a request names a device.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceRef {
    /// By the hardware hash the client computed (seed 000).
    Hash(String),
    /// By hardware components (seed 003), matched under the configured strategy.
    Fingerprint(Fingerprint),
}

/// A change to a license's own fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LicensePatch {
    /// New end of validity (`Some(None)` = never expires).
    pub valid_until: Option<Option<DateTime<Utc>>>,
    /// New plan.
    pub plan: Option<String>,
    /// Per-license limit overrides to set; fields left `None` keep their current override.
    pub overrides: Option<LimitOverrides>,
    /// Renewal: move `valid_until` this far past the later of itself and now (a license
    /// that never expires is left so). Applied after `valid_until`.
    pub extend_validity: Option<chrono::Duration>,
    /// New customer name (`Some(None)` clears it).
    pub customer_name: Option<Option<String>>,
    /// New customer id (`Some(None)`: the license belongs to no customer).
    pub customer_id: Option<Option<u64>>,
    /// New operator note (`Some(None)` clears it).
    pub note: Option<Option<String>>,
    /// New metadata (replaces the whole map).
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
    /// New license features (replaces the list).
    pub features: Option<Vec<String>>,
    /// Warnings to add.
    pub add_warnings: u32,
    /// Reset the lifetime activation count (hwid-reset, renewal).
    pub reset_activations: bool,
}

/// A request to a license.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Activate a device (idempotent for an already active device).
    Activate {
        /// The device.
        device: DeviceRef,
        /// Machine name.
        machine_name: String,
        /// Client version.
        app_version: String,
    },
    /// Deactivate a device and end its sessions.
    Deactivate {
        /// The device's hardware hash.
        hardware_hash: String,
    },
    /// Check the license is usable (and, if given, that the device is activated).
    Verify {
        /// Optional device.
        device: Option<DeviceRef>,
    },
    /// Read the license with its devices and sessions.
    Info,
    /// Start a session on an activated device.
    StartSession {
        /// Hash of the new session token (the raw token never reaches the machine).
        token_hash: TokenHash,
        /// The device.
        device: DeviceRef,
        /// Machine id the client sent.
        machine_id: String,
        /// Client version.
        version: String,
    },
    /// Keep a session alive.
    Heartbeat {
        /// The session.
        token_hash: TokenHash,
    },
    /// End a session at the client's request.
    EndSession {
        /// The session.
        token_hash: TokenHash,
        /// Why (normally `ClientEnd`; `Admin` from operators).
        reason: EndReason,
    },
    /// Change the license status.
    SetStatus {
        /// New status.
        status: LicenseStatus,
        /// Operator note.
        reason: Option<String>,
        /// When a suspension or ban lapses by itself (`None` = until changed).
        until: Option<DateTime<Utc>>,
    },
    /// Change the license's fields.
    Update(LicensePatch),
    /// End every live session of the license with `reason` (an operator's emergency stop).
    EndAllSessions {
        /// Why they end.
        reason: EndReason,
    },
    /// Delete the license with its devices and sessions; live sessions end with `admin`.
    /// Afterwards the license answers `NotFound` to everything.
    Delete,
}

impl Request {
    /// Whether the request may change durable state (and so waits behind an in-flight change).
    pub(crate) fn is_mutation(&self) -> bool {
        !matches!(
            self,
            Request::Verify { .. } | Request::Info | Request::Heartbeat { .. }
        )
    }
}

/// A license as shown to callers, with its effective limits.
#[derive(Debug, Clone, PartialEq)]
pub struct LicenseView {
    /// The record.
    pub record: LicenseRecord,
    /// Effective limits.
    pub limits: Limits,
    /// Effective session timing.
    pub timing: SessionTiming,
    /// Live sessions now.
    pub live_sessions: u32,
    /// Active devices now.
    pub active_devices: u32,
}

/// A successful reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The device is active.
    Activated {
        /// The activation.
        activation: Activation,
        /// True if it already was.
        existing: bool,
        /// The license after activation.
        license: LicenseView,
    },
    /// The license's live sessions ended.
    SessionsEnded {
        /// How many live sessions ended.
        count: u32,
    },
    /// The device is inactive.
    Deactivated {
        /// Sessions ended with it.
        ended_sessions: u32,
    },
    /// The license is usable.
    Verified {
        /// The license.
        license: LicenseView,
        /// The device's activation, if a device was named.
        activation: Option<Activation>,
    },
    /// Full read.
    Info {
        /// The license.
        license: LicenseView,
        /// All activations.
        activations: Vec<Activation>,
        /// Live sessions.
        sessions: Vec<SessionRecord>,
    },
    /// A session started.
    SessionStarted {
        /// The session.
        session: SessionRecord,
        /// Sessions ended to make room (replaced or evicted).
        ended: Vec<(TokenHash, EndReason)>,
        /// The device's activation.
        activation: Activation,
        /// The license.
        license: LicenseView,
    },
    /// A heartbeat was recorded.
    Heartbeat {
        /// The session after the heartbeat.
        session: SessionRecord,
        /// Timing the client should follow.
        timing: SessionTiming,
    },
    /// A session ended.
    SessionEnded {
        /// The session as it was.
        session: SessionRecord,
        /// When it ended.
        ended_at: DateTime<Utc>,
        /// Why.
        reason: EndReason,
    },
    /// The status changed.
    StatusSet {
        /// The license after the change.
        license: LicenseView,
        /// Sessions ended by it.
        ended_sessions: u32,
    },
    /// The license fields changed.
    Updated {
        /// The license after the change.
        license: LicenseView,
    },
    /// The license was deleted.
    Deleted {
        /// Live sessions the deletion ended.
        ended_sessions: u32,
    },
}

/// A refused request. These are normal answers, not failures of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LicenseError {
    /// No such license.
    #[error("license not found")]
    NotFound,
    /// The license is suspended.
    #[error("license is suspended")]
    Suspended,
    /// The license is revoked.
    #[error("license is revoked")]
    Revoked,
    /// The license is banned.
    #[error("license is banned")]
    Banned,
    /// The license is past `valid_until`.
    #[error("license has expired")]
    Expired,
    /// `max_devices` active devices exist.
    #[error("device limit reached")]
    DeviceLimit,
    /// `max_activations` lifetime activations used.
    #[error("activation limit reached")]
    ActivationLimit,
    /// `max_sessions` live sessions exist.
    #[error("session limit reached")]
    SessionLimit,
    /// No such session.
    #[error("session not found")]
    SessionNotFound,
    /// The session ended (timeout or otherwise) before this request.
    #[error("session has expired")]
    SessionExpired,
    /// The device is not activated on this license.
    #[error("device is not activated for this license")]
    NotActivated,
    /// The store could not make the change durable.
    #[error("store unavailable")]
    StoreUnavailable,
    /// More than [`crate::machine::MAX_PARKED`] mutations of this license wait behind a
    /// store write: the store is slower than the traffic. Answered like a store outage (503
    /// `STORE_UNAVAILABLE`): nothing was changed and retrying later is safe.
    #[error("license is busy")]
    Busy,
    /// The server failed while handling the request.
    #[error("internal error")]
    Internal,
}

/// Something that happened to a license, for metrics, plugins and webhooks.
#[derive(Debug, Clone, PartialEq)]
pub enum LicenseEvent {
    /// A session started.
    SessionStarted {
        /// License.
        key: LicenseKey,
        /// The license's product.
        product: String,
        /// Session.
        token_hash: TokenHash,
        /// Device.
        hardware_hash: String,
    },
    /// A session ended.
    SessionEnded {
        /// License.
        key: LicenseKey,
        /// The license's product.
        product: String,
        /// The session.
        session: SessionRecord,
        /// When.
        ended_at: DateTime<Utc>,
        /// Why.
        reason: EndReason,
    },
    /// A device was activated.
    Activated {
        /// License.
        key: LicenseKey,
        /// The license's product.
        product: String,
        /// The license's numeric id.
        license_id: u64,
        /// The new activation's id.
        device_id: u64,
        /// Device.
        hardware_hash: String,
        /// The machine name the client sent.
        machine_name: String,
    },
    /// The status changed.
    StatusChanged {
        /// License.
        key: LicenseKey,
        /// The license's product.
        product: String,
        /// New status.
        status: LicenseStatus,
    },
    /// A request was refused by a limit.
    LimitReached {
        /// License.
        key: LicenseKey,
        /// The license's product.
        product: String,
        /// Which limit.
        kind: LimitKind,
    },
}

/// An output of the machine, drained by the host in order.
// Effects live for microseconds in a queue that is drained at once; boxing the large
// reply would cost an allocation per heartbeat for no memory gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Answer request `ReqId`.
    Reply(ReqId, Result<Reply, LicenseError>),
    /// Run this store operation off the loop and report back with `on_persisted(OpId, ..)`.
    Persist(OpId, StoreOp),
    /// Call `on_deadline(token)` at (or after) this instant.
    Arm(TokenHash, DateTime<Utc>),
    /// Queue this heartbeat for the write-behind flush.
    WriteBehind(HeartbeatWrite),
    /// Publish this event.
    Event(LicenseEvent),
}
