//! Domain records: licenses, activations (devices), sessions and their enums.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fingerprint::Fingerprint;

/// Longest license key we accept; keys are short identifiers, never documents.
pub const MAX_LICENSE_KEY_LEN: usize = 64;

/// A license key, normalized to upper case (`XXXX-XXXX-XXXX-XXXX` for keys we generate).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LicenseKey(Arc<str>);

/// Why a string is not a license key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseKeyError {
    /// The key is empty.
    #[error("license_key must not be empty")]
    Empty,
    /// The key is longer than [`MAX_LICENSE_KEY_LEN`].
    #[error("license_key must be at most {MAX_LICENSE_KEY_LEN} characters")]
    TooLong,
    /// The key holds a character outside `A-Z a-z 0-9 - _`.
    #[error("license_key may only contain letters, digits, '-' and '_'")]
    BadCharacter,
}

impl LicenseKey {
    /// Validates and normalizes a key given by a client.
    pub fn parse(raw: &str) -> Result<Self, LicenseKeyError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(LicenseKeyError::Empty);
        }
        if trimmed.len() > MAX_LICENSE_KEY_LEN {
            return Err(LicenseKeyError::TooLong);
        }
        if !trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(LicenseKeyError::BadCharacter);
        }
        Ok(Self(trimmed.to_ascii_uppercase().into()))
    }

    /// The normalized key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as logs show it: a key is half a credential, so only its first and last four
    /// characters (`ABCD-…-WXYZ`); keys of eight characters or fewer are fully hidden.
    pub fn masked(&self) -> MaskedKey<'_> {
        MaskedKey(&self.0)
    }
}

/// A license key displayed masked (see [`LicenseKey::masked`]).
#[derive(Clone, Copy, Debug)]
pub struct MaskedKey<'a>(&'a str);

impl fmt::Display for MaskedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        mask(self.0, f)
    }
}

/// Writes `key` masked: `ABCD-…-WXYZ`. Keys are ASCII (checked by [`LicenseKey::parse`]);
/// anything else is hidden entirely.
pub fn mask(key: &str, f: &mut impl fmt::Write) -> fmt::Result {
    if key.len() <= 8 || !key.is_ascii() {
        return f.write_str("****");
    }
    let (head, tail) = (&key[..4], &key[key.len() - 4..]);
    write!(f, "{head}-…-{tail}")
}

impl fmt::Display for LicenseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 of a session token: the only form in which a token is kept. Serialized as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes a raw session token.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Parses a hex digest (as read back from a store).
    pub fn from_hex(hex_digest: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut out).ok()?;
        Some(Self(out))
    }

    /// The hex digest.
    pub fn to_hex(&self) -> String {
        let mut buf = [0u8; 64];
        match hex::encode_to_slice(self.0, &mut buf) {
            Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
            // Unreachable: the buffer is exactly twice the digest's length.
            Err(_) => hex::encode(self.0),
        }
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Wraps a raw digest.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only a prefix: enough to correlate logs, useless to an attacker.
        f.write_str(&hex::encode(&self.0[..6]))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({self})")
    }
}

impl Serialize for TokenHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("token hash must be 64 hex digits"))
    }
}

/// The administrative status of a license. `expired` is derived from `valid_until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenseStatus {
    /// Usable.
    Active,
    /// Temporarily disabled by an operator.
    Suspended,
    /// Permanently withdrawn.
    Revoked,
    /// Banned by policy (warnings threshold, plugin decision).
    Banned,
}

impl LicenseStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
            Self::Banned => "banned",
        }
    }

    /// The reason sessions end with when a license enters this status.
    pub fn end_reason(self) -> Option<EndReason> {
        match self {
            Self::Active => None,
            Self::Suspended => Some(EndReason::Suspended),
            Self::Revoked => Some(EndReason::Revoked),
            Self::Banned => Some(EndReason::Banned),
        }
    }
}

/// Why a session ended. Every ended session carries exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The client ended it.
    ClientEnd,
    /// No heartbeat within timeout + grace.
    Timeout,
    /// Evicted to make room for a newer session (`evict_oldest`).
    Evicted,
    /// Replaced by a new session on the same device (`replace_same_device`).
    Replaced,
    /// The license was revoked.
    Revoked,
    /// The license was suspended.
    Suspended,
    /// The license was banned.
    Banned,
    /// The license passed its `valid_until`.
    Expired,
    /// An operator forced everyone to authenticate again.
    ForceReauth,
    /// An operator ended it (or deactivated its device).
    Admin,
}

impl EndReason {
    /// Every reason, for metrics and docs.
    pub const ALL: [EndReason; 10] = [
        Self::ClientEnd,
        Self::Timeout,
        Self::Evicted,
        Self::Replaced,
        Self::Revoked,
        Self::Suspended,
        Self::Banned,
        Self::Expired,
        Self::ForceReauth,
        Self::Admin,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientEnd => "client_end",
            Self::Timeout => "timeout",
            Self::Evicted => "evicted",
            Self::Replaced => "replaced",
            Self::Revoked => "revoked",
            Self::Suspended => "suspended",
            Self::Banned => "banned",
            Self::Expired => "expired",
            Self::ForceReauth => "force_reauth",
            Self::Admin => "admin",
        }
    }
}

/// What happens when a session start would exceed `max_sessions`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionLimitStrategy {
    /// Refuse the new session (409).
    #[default]
    Reject,
    /// A restart on the same device takes over that device's session; otherwise refuse.
    ReplaceSameDevice,
    /// End the oldest live session to make room.
    EvictOldest,
}

/// Per-plan or per-license overrides of the default limits. `None` inherits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitOverrides {
    /// Devices active at once.
    pub max_devices: Option<u32>,
    /// Lifetime activations (0 = unlimited).
    pub max_activations: Option<u32>,
    /// Live sessions at once.
    pub max_sessions: Option<u32>,
    /// Strategy when `max_sessions` is reached.
    pub on_session_limit: Option<SessionLimitStrategy>,
}

/// A license as persisted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LicenseRecord {
    /// The key clients present.
    pub key: LicenseKey,
    /// Numeric id (seed 000 shows one), assigned by the store.
    pub id: u64,
    /// Product this license belongs to.
    pub product: String,
    /// Plan whose limits apply.
    pub plan: String,
    /// Customer name, if known.
    pub customer_name: Option<String>,
    /// `perpetual` or `subscription` (seed 000's `type`).
    pub license_type: String,
    /// Administrative status.
    pub status: LicenseStatus,
    /// Operator note on the last status change.
    pub status_reason: Option<String>,
    /// When a temporary suspension or ban lapses (the license is usable again from then on
    /// without another write); `None` = until changed.
    #[serde(default)]
    pub status_until: Option<DateTime<Utc>>,
    /// Start of validity.
    pub valid_from: DateTime<Utc>,
    /// End of validity; `None` never expires.
    pub valid_until: Option<DateTime<Utc>>,
    /// Per-license limit overrides.
    pub overrides: LimitOverrides,
    /// Lifetime count of activations, checked against `max_activations`.
    pub activations_used: u32,
    /// Warnings recorded against this license.
    pub warnings: u32,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// The customer this license belongs to (at most one), by customer id.
    #[serde(default)]
    pub customer_id: Option<u64>,
    /// Operator's free-text note.
    #[serde(default)]
    pub note: Option<String>,
    /// Operator-defined key/value pairs (bounded by the admin service).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Features granted to this license on top of its plan's (entitlements).
    #[serde(default)]
    pub features: Vec<String>,
}

impl LicenseRecord {
    /// The status in force at `now`: a temporary status past its `status_until` has lapsed.
    pub fn effective_status(&self, now: DateTime<Utc>) -> LicenseStatus {
        match self.status_until {
            Some(until) if until <= now => LicenseStatus::Active,
            _ => self.status,
        }
    }

    /// A new active license with no overrides (its `id` is assigned by the store).
    pub fn new(key: LicenseKey, product: &str, plan: &str, now: DateTime<Utc>) -> Self {
        Self {
            key,
            id: 0,
            product: product.to_string(),
            plan: plan.to_string(),
            customer_name: None,
            license_type: "perpetual".to_string(),
            status: LicenseStatus::Active,
            status_reason: None,
            status_until: None,
            valid_from: now,
            valid_until: None,
            overrides: LimitOverrides::default(),
            activations_used: 0,
            warnings: 0,
            created_at: now,
            customer_id: None,
            note: None,
            metadata: BTreeMap::new(),
            features: Vec::new(),
        }
    }

    /// Whether `valid_until` has passed at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.valid_until.is_some_and(|until| until <= now)
    }
}

/// A device bound to a license.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Activation {
    /// Numeric id, assigned by the store.
    pub id: u64,
    /// The device identifier the client sent (or derived from its fingerprint).
    pub hardware_hash: String,
    /// Human name of the machine.
    pub machine_name: String,
    /// Client version at activation.
    pub app_version: String,
    /// Hardware components, when the client sent them (seed 003). Boxed: most clients send
    /// none, and a device without one then spends 8 bytes on it instead of 120.
    pub fingerprint: Option<Box<Fingerprint>>,
    /// When it was activated.
    pub activated_at: DateTime<Utc>,
    /// Last heartbeat of any session on this device (or the activation time).
    pub last_heartbeat: DateTime<Utc>,
    /// False once deactivated.
    pub is_active: bool,
}

/// A live session as persisted and held in memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// SHA-256 of the session token.
    pub token_hash: TokenHash,
    /// Device the session runs on.
    pub hardware_hash: String,
    /// Machine id the client sent.
    pub machine_id: String,
    /// Client version.
    pub version: String,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// Last heartbeat (start time until the first one).
    pub last_heartbeat: DateTime<Utc>,
    /// Expires when no heartbeat arrives before this instant.
    pub deadline: DateTime<Utc>,
    /// In memory only, never persisted: the deadline the store holds for this session (the
    /// Unix epoch when unknown). The write-behind skips heartbeats while it is far ahead.
    #[serde(skip)]
    pub stored_deadline: DateTime<Utc>,
}

/// A session that has ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndedSession {
    /// The session as it was when it ended.
    pub session: SessionRecord,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// Why it ended.
    pub reason: EndReason,
}

/// Everything the store holds about one license: what an actor loads on activation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LicenseSnapshot {
    /// The license.
    pub record: LicenseRecord,
    /// All its activations, active or not.
    pub activations: Vec<Activation>,
    /// Its sessions not yet ended (some may be past their deadline).
    pub sessions: Vec<SessionRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_keys_show_only_their_ends() {
        let shown = |k: &str| LicenseKey::parse(k).map(|k| k.masked().to_string());
        assert_eq!(shown("abcd-efgh-jkmn-wxyz"), Ok("ABCD-…-WXYZ".to_string()));
        assert_eq!(shown("SHORT12"), Ok("****".to_string()));
    }

    #[test]
    fn license_key_is_normalized_and_validated() {
        assert_eq!(
            LicenseKey::parse(" abcd-efgh ").map(|k| k.to_string()),
            Ok("ABCD-EFGH".to_string())
        );
        assert_eq!(LicenseKey::parse(""), Err(LicenseKeyError::Empty));
        assert_eq!(LicenseKey::parse("a b"), Err(LicenseKeyError::BadCharacter));
        assert_eq!(
            LicenseKey::parse(&"A".repeat(65)),
            Err(LicenseKeyError::TooLong)
        );
    }

    #[test]
    fn token_hash_is_sha256_hex_and_display_is_a_prefix() {
        let h = TokenHash::of("abc");
        assert_eq!(
            h.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(TokenHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(h.to_string(), "ba7816bf8f01");
    }
}
