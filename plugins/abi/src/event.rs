//! The payload of each hook.
//!
//! Every event carries `ts_ms`, the server's wall clock in Unix milliseconds when the
//! event was built; the `now_ms` host function returns the same value for the whole call.
//! Secrets never appear: sessions are identified by the SHA-256 hex of their token
//! (`session_hash`), devices by their hardware fingerprint hash (`device_hash`).
//! Optional fields are omitted from the payload when absent; plugins must ignore
//! fields they do not know (new optional fields may appear within ABI v1).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hook::Hook;

/// `on_request`: every API call, before it is handled.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RequestEvent {
    /// Event time, Unix milliseconds.
    #[serde(default)]
    pub ts_ms: i64,
    /// Client IP address (after trusted-proxy resolution), e.g. `203.0.113.7` or `2001:db8::1`.
    pub ip: String,
    /// HTTP method, upper case.
    pub method: String,
    /// Matched route template, e.g. `/api/license/session/heartbeat`; absent when no route
    /// matched (the request will be answered 404).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Id of the API key that authenticated the call, when one did (never the key itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    /// License key named by the request, when the server can tell before handling it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_key: Option<String>,
}

/// Seed 003 hardware fingerprint components, as the client sent them (`/api/v2/*`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Fingerprint {
    /// CPU id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_id: Option<String>,
    /// Mainboard serial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mb_serial: Option<String>,
    /// MAC addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mac_addresses: Vec<String>,
    /// Volume hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_hash: Option<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
}

/// Whether the attempt an event describes is going ahead or was already refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The server is about to accept it; a `deny` or `ban` decision refuses it.
    #[default]
    Ok,
    /// The server already refused it (`error_code` says why); decisions still apply
    /// (a `ban` bans, a `deny` replaces the error the client gets).
    Failed,
}

/// `on_activate`: a device asks for a seat on a license.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ActivateEvent {
    /// Event time, Unix milliseconds.
    #[serde(default)]
    pub ts_ms: i64,
    /// License key as sent by the client (may be unknown when `outcome` is `failed`).
    pub license_key: String,
    /// Product of the license, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Plan of the license, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// Hardware fingerprint hash of the device.
    pub device_hash: String,
    /// Client IP address, when the request came over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Whether the activation is going ahead or was refused.
    #[serde(default)]
    pub outcome: AttemptOutcome,
    /// The error code the server refused with, when `outcome` is `failed`
    /// (e.g. `LICENSE_NOT_FOUND`, `DEVICE_LIMIT_REACHED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Devices active on the license before this attempt.
    #[serde(default)]
    pub active_devices: u32,
    /// The license's device limit, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_devices: Option<u32>,
    /// Machine name the client sent (seed 003: the fingerprint's `host_name`, else `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_name: Option<String>,
    /// Application version the client sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// Seed 003 hardware fingerprint components (`/api/v2` requests only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// The request's `User-Agent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Type of the license (`standard`, `trial`, ...), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_type: Option<String>,
    /// End of the license's validity, Unix milliseconds; absent: no end or unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until_ms: Option<i64>,
    /// Lifetime activations used on the license, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activations_used: Option<u32>,
    /// The license's lifetime activation limit (0: unlimited), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_activations: Option<u32>,
    /// The license's feature flags (omitted when it has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// The license's metadata, name to value (omitted when it has none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// `on_session_start`: a session is about to start.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionStartEvent {
    /// Event time, Unix milliseconds.
    #[serde(default)]
    pub ts_ms: i64,
    /// License key.
    pub license_key: String,
    /// Product of the license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Plan of the license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// Hardware fingerprint hash of the device.
    pub device_hash: String,
    /// SHA-256 hex of the new session token.
    pub session_hash: String,
    /// Client IP address, when the request came over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Live sessions on the license before this one.
    #[serde(default)]
    pub live_sessions: u32,
    /// The license's concurrent session limit, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u32>,
    /// Machine name the client sent (seed 003: the fingerprint's `host_name`, else `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_name: Option<String>,
    /// Application version: the `version` the client sent to start the session, else the one it activated with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// Seed 003 hardware fingerprint components (`/api/v2` requests only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// The request's `User-Agent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Machine id the client sent with the session start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// Type of the license (`standard`, `trial`, ...), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_type: Option<String>,
    /// End of the license's validity, Unix milliseconds; absent: no end or unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until_ms: Option<i64>,
    /// Lifetime activations used on the license, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activations_used: Option<u32>,
    /// The license's lifetime activation limit (0: unlimited), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_activations: Option<u32>,
    /// The license's feature flags (omitted when it has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// The license's metadata, name to value (omitted when it has none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// `on_heartbeat`: a heartbeat of a live session.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HeartbeatEvent {
    /// Event time, Unix milliseconds.
    #[serde(default)]
    pub ts_ms: i64,
    /// License key.
    pub license_key: String,
    /// Product of the license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Plan of the license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// Hardware fingerprint hash of the session's device.
    pub device_hash: String,
    /// SHA-256 hex of the session token.
    pub session_hash: String,
    /// Client IP address, when the request came over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// When the session started, Unix milliseconds.
    pub started_ms: i64,
    /// The previous heartbeat (or the start), Unix milliseconds.
    pub last_seen_ms: i64,
    /// Machine id the session was started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// Application version the session was started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// The request's `User-Agent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The client ended it.
    ClientEnd,
    /// No heartbeat arrived in time.
    Timeout,
    /// Evicted to make room for another session.
    Evicted,
    /// Replaced by a new session of the same device.
    Replaced,
    /// The license was revoked.
    Revoked,
    /// The license was suspended.
    Suspended,
    /// The license was banned.
    Banned,
    /// The license expired.
    Expired,
    /// An operator forced re-authentication.
    ForceReauth,
    /// An operator ended it.
    Admin,
    /// A reason this version of the types does not know (decoding only).
    #[serde(other)]
    Unknown,
}

/// `on_session_end`: a session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEndEvent {
    /// Event time, Unix milliseconds.
    #[serde(default)]
    pub ts_ms: i64,
    /// License key.
    pub license_key: String,
    /// Product of the license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Plan of the license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// Hardware fingerprint hash of the session's device.
    pub device_hash: String,
    /// SHA-256 hex of the session token.
    pub session_hash: String,
    /// Why it ended.
    pub reason: EndReason,
    /// When the session started, Unix milliseconds.
    pub started_ms: i64,
    /// The last heartbeat, Unix milliseconds.
    pub last_seen_ms: i64,
    /// Machine id the session was started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// Application version the session was started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
}

/// `on_warning`: a warning was recorded on a license.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WarningEvent {
    /// Event time, Unix milliseconds.
    #[serde(default)]
    pub ts_ms: i64,
    /// License key.
    pub license_key: String,
    /// Product of the license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Plan of the license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The warning's note, e.g. `license sharing violation`.
    #[serde(default)]
    pub note: String,
    /// Warnings recorded on the license so far, this one included.
    #[serde(default)]
    pub warning_count: u32,
    /// Who recorded it (`admin:alice`, `plugin:ip-reputation`, `sdk:c++`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Type of the license (`standard`, `trial`, ...), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_type: Option<String>,
    /// End of the license's validity, Unix milliseconds; absent: no end or unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until_ms: Option<i64>,
}

/// What kind of credential was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// An operator's password (admin login).
    Password,
    /// An API key.
    ApiKey,
    /// A license key that does not exist or does not match.
    LicenseKey,
    /// A session token that does not exist.
    SessionToken,
    /// Anything else (decoding of unknown kinds lands here too).
    #[default]
    #[serde(other)]
    Other,
}

/// `on_login_failure`: a credential was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LoginFailureEvent {
    /// Event time, Unix milliseconds.
    #[serde(default)]
    pub ts_ms: i64,
    /// Client IP address, when the request came over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// What was rejected.
    pub kind: CredentialKind,
    /// Route template of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Operator user name, for password failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// License key, for license-key failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_key: Option<String>,
    /// The error code the client got, e.g. `INVALID_API_KEY`.
    #[serde(default)]
    pub error_code: String,
}

/// `on_tick`: a periodic timer tick (for housekeeping; no client waits on it).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TickEvent {
    /// Event time, Unix milliseconds.
    #[serde(default)]
    pub ts_ms: i64,
    /// Interval between ticks, milliseconds.
    pub interval_ms: u64,
}

/// An event for one hook; the variant decides which hook it is for.
///
/// On the wire the payload is the inner struct alone (a MessagePack map): the hook is
/// implied by the export being called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Payload of `on_request`.
    Request(RequestEvent),
    /// Payload of `on_activate`.
    Activate(ActivateEvent),
    /// Payload of `on_session_start`.
    SessionStart(SessionStartEvent),
    /// Payload of `on_heartbeat`.
    Heartbeat(HeartbeatEvent),
    /// Payload of `on_session_end`.
    SessionEnd(SessionEndEvent),
    /// Payload of `on_warning`.
    Warning(WarningEvent),
    /// Payload of `on_login_failure`.
    LoginFailure(LoginFailureEvent),
    /// Payload of `on_tick`.
    Tick(TickEvent),
}

impl Event {
    /// The hook this event is for.
    #[must_use]
    pub const fn hook(&self) -> Hook {
        match self {
            Event::Request(_) => Hook::Request,
            Event::Activate(_) => Hook::Activate,
            Event::SessionStart(_) => Hook::SessionStart,
            Event::Heartbeat(_) => Hook::Heartbeat,
            Event::SessionEnd(_) => Hook::SessionEnd,
            Event::Warning(_) => Hook::Warning,
            Event::LoginFailure(_) => Hook::LoginFailure,
            Event::Tick(_) => Hook::Tick,
        }
    }

    /// Sets the event time, Unix milliseconds.
    pub fn set_ts_ms(&mut self, ts_ms: i64) {
        match self {
            Event::Request(e) => e.ts_ms = ts_ms,
            Event::Activate(e) => e.ts_ms = ts_ms,
            Event::SessionStart(e) => e.ts_ms = ts_ms,
            Event::Heartbeat(e) => e.ts_ms = ts_ms,
            Event::SessionEnd(e) => e.ts_ms = ts_ms,
            Event::Warning(e) => e.ts_ms = ts_ms,
            Event::LoginFailure(e) => e.ts_ms = ts_ms,
            Event::Tick(e) => e.ts_ms = ts_ms,
        }
    }

    /// The event time, Unix milliseconds (what `now_ms` returns during the call).
    #[must_use]
    pub const fn ts_ms(&self) -> i64 {
        match self {
            Event::Request(e) => e.ts_ms,
            Event::Activate(e) => e.ts_ms,
            Event::SessionStart(e) => e.ts_ms,
            Event::Heartbeat(e) => e.ts_ms,
            Event::SessionEnd(e) => e.ts_ms,
            Event::Warning(e) => e.ts_ms,
            Event::LoginFailure(e) => e.ts_ms,
            Event::Tick(e) => e.ts_ms,
        }
    }
}

impl Serialize for Event {
    /// Serializes the inner struct only (the wire payload of the hook).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Event::Request(e) => e.serialize(s),
            Event::Activate(e) => e.serialize(s),
            Event::SessionStart(e) => e.serialize(s),
            Event::Heartbeat(e) => e.serialize(s),
            Event::SessionEnd(e) => e.serialize(s),
            Event::Warning(e) => e.serialize(s),
            Event::LoginFailure(e) => e.serialize(s),
            Event::Tick(e) => e.serialize(s),
        }
    }
}

impl Event {
    /// Deserializes the payload of `hook` from any serde format (JSON for
    /// `tessera plugin run`, MessagePack on the wire).
    ///
    /// # Errors
    /// The deserializer's error when the payload does not match the hook's schema.
    pub fn deserialize_for<'de, D: serde::Deserializer<'de>>(
        hook: Hook,
        d: D,
    ) -> Result<Event, D::Error> {
        Ok(match hook {
            Hook::Request => Event::Request(RequestEvent::deserialize(d)?),
            Hook::Activate => Event::Activate(ActivateEvent::deserialize(d)?),
            Hook::SessionStart => Event::SessionStart(SessionStartEvent::deserialize(d)?),
            Hook::Heartbeat => Event::Heartbeat(HeartbeatEvent::deserialize(d)?),
            Hook::SessionEnd => Event::SessionEnd(SessionEndEvent::deserialize(d)?),
            Hook::Warning => Event::Warning(WarningEvent::deserialize(d)?),
            Hook::LoginFailure => Event::LoginFailure(LoginFailureEvent::deserialize(d)?),
            Hook::Tick => Event::Tick(TickEvent::deserialize(d)?),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_json_matches_documented_shape() {
        let ev = HeartbeatEvent {
            ts_ms: 1_700_000_000_000,
            license_key: "ABCD-EFGH-JKMN-PQRS".into(),
            product: Some("default".into()),
            plan: Some("pro".into()),
            device_hash: "9f2c".into(),
            session_hash: "5e88".into(),
            ip: None,
            started_ms: 1_699_999_000_000,
            last_seen_ms: 1_699_999_970_000,
            ..HeartbeatEvent::default()
        };
        let json = serde_json::to_value(&ev).unwrap();
        assert!(json.get("ip").is_none(), "absent options are omitted");
        assert_eq!(json["session_hash"], "5e88");
        let back: HeartbeatEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn unknown_end_reason_decodes_as_unknown() {
        let r: EndReason = serde_json::from_str("\"meteor_strike\"").unwrap();
        assert_eq!(r, EndReason::Unknown);
        let r: EndReason = serde_json::from_str("\"force_reauth\"").unwrap();
        assert_eq!(r, EndReason::ForceReauth);
    }

    #[test]
    fn event_deserializes_for_its_hook() {
        let json = r#"{"ts_ms": 5, "interval_ms": 1000}"#;
        let mut de = serde_json::Deserializer::from_str(json);
        let ev = Event::deserialize_for(Hook::Tick, &mut de).unwrap();
        assert_eq!(ev.hook(), Hook::Tick);
        assert_eq!(ev.ts_ms(), 5);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod extension_tests {
    use super::*;

    /// The fields added within ABI v1 are optional both ways: a v1 payload without them
    /// still decodes, and an event without them encodes exactly as before.
    #[test]
    fn added_fields_are_optional_and_omitted_when_absent() {
        let old = r#"{"ts_ms": 1, "license_key": "K", "device_hash": "d", "outcome": "ok",
                      "active_devices": 0}"#;
        let ev: ActivateEvent = serde_json::from_str(old).unwrap();
        assert_eq!(ev.machine_name, None);
        let json = serde_json::to_value(&ev).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5, "{keys:?}");

        let full = ActivateEvent {
            machine_name: Some("build-vm-07".into()),
            fingerprint: Some(Fingerprint {
                host_name: Some("build-vm-07".into()),
                mac_addresses: vec!["00:11:22:33:44:55".into()],
                ..Fingerprint::default()
            }),
            ..ev
        };
        let json = serde_json::to_value(&full).unwrap();
        assert_eq!(json["machine_name"], "build-vm-07");
        assert_eq!(json["fingerprint"]["mac_addresses"][0], "00:11:22:33:44:55");
        assert!(json["fingerprint"].get("cpu_id").is_none());
    }
}
