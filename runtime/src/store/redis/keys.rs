//! The Redis key space and the encodings the Lua scripts compare.
//!
//! Per license (one hash tag, so one cluster slot, so every limit check is one script):
//!
//! | key | type | content |
//! |---|---|---|
//! | `{lic:KEY}:rec` | hash | one field per [`LicenseRecord`] field, value its JSON |
//! | `{lic:KEY}:act` | hash | hardware hash → [`Activation`] JSON as activated |
//! | `{lic:KEY}:ses` | hash | token hex → [`SessionRecord`] JSON as started |
//! | `{lic:KEY}:t` | hash | `s:<token hex>` → deadline + last heartbeat (T strings); `a:<hardware hash>` → `1`/`0` (active) + last heartbeat |
//! | `{lic:KEY}:ended` | list | newest first, capped: `reason ended_at_T token_hex` |
//!
//! Global (outside any license's slot; see the cross-slot notes in `mod.rs`):
//!
//! | key | type | content |
//! |---|---|---|
//! | `tessera:license_id` | string | counter of license ids |
//! | `tessera:activation_id` | string | counter of activation ids |
//! | `tessera:licenses` | zset | every license key, score 0 (listed by `ZRANGEBYLEX`) |
//! | `tessera:license_ids` | hash | license id → license key (seed 000's admin paths name licenses by id) |
//! | `tessera:deadlines` | zset | `KEY token_hex` → session deadline (unix µs) |
//! | `tessera:beats` | zset | `KEY token_hex` → session last heartbeat (unix µs; single Redis only) |
//! | `tessera:device_beats` | zset | `KEY hardware_hash` → device last heartbeat (unix µs; single Redis only) |
//! | `tessera:tok:<token_hex>` | string | the license key of a session |
//! | `tessera:meta:<name>` | string | [`MetaStore`](crate::store::MetaStore) blobs |
//!
//! Where a heartbeat lands depends on the deployment. On a single Redis the flush moves the
//! three global sets (`deadlines`, `beats`, `device_beats`): one command each per flush,
//! whatever the number of licenses; the `t` hash keeps the times a session started with, and
//! every script reads the later of the two. On a cluster a script may not touch another slot,
//! so the flush writes each license's `t` hash (one read and one write per license) and the
//! `deadlines` set, and the `beats` sets stay empty. Times in the `t` hash are fixed-width
//! "T strings" so scripts compare them exactly without decoding or re-encoding JSON (Redis'
//! cjson would round numbers to 14 digits and turn empty arrays into objects); the global sets
//! hold microseconds, so times read back from them are exact to the microsecond.
//!
//! [`LicenseRecord`]: tessera_actors::LicenseRecord
//! [`Activation`]: tessera_actors::Activation
//! [`SessionRecord`]: tessera_actors::SessionRecord

use chrono::{DateTime, Utc};
use tessera_actors::{LicenseKey, TokenHash};

/// Counter of license ids.
pub(crate) const LICENSE_ID: &str = "tessera:license_id";
/// Counter of activation ids.
pub(crate) const ACTIVATION_ID: &str = "tessera:activation_id";
/// Every license key, for `list_licenses`.
pub(crate) const LICENSES: &str = "tessera:licenses";
/// License id → license key.
pub(crate) const LICENSE_IDS: &str = "tessera:license_ids";
/// Every live session's deadline, for `overdue_sessions`.
pub(crate) const DEADLINES: &str = "tessera:deadlines";
/// Session last heartbeats (µs since the Unix epoch), members as in [`DEADLINES`]; written by
/// the heartbeat flush on a single Redis only.
pub(crate) const BEATS: &str = "tessera:beats";
/// Active devices' last heartbeats (µs since the Unix epoch), members [`device_member`];
/// written by the heartbeat flush on a single Redis only.
pub(crate) const DEVICE_BEATS: &str = "tessera:device_beats";
/// The global sets a single Redis's heartbeat flush moves, in the order the scripts get them.
pub(crate) const HEARTBEAT_SETS: [&str; 3] = [DEADLINES, BEATS, DEVICE_BEATS];

/// The keys of one license, in the order every per-license script takes them
/// (`KEYS[1..=5]` in `prelude.lua`).
#[derive(Debug, Clone)]
pub(crate) struct LicenseKeys {
    /// `{lic:KEY}:rec`.
    pub(crate) rec: String,
    /// `{lic:KEY}:act`.
    pub(crate) act: String,
    /// `{lic:KEY}:ses`.
    pub(crate) ses: String,
    /// `{lic:KEY}:t`.
    pub(crate) times: String,
    /// `{lic:KEY}:ended`.
    pub(crate) ended: String,
}

impl LicenseKeys {
    /// The keys of `key`'s license.
    pub(crate) fn of(key: &LicenseKey) -> Self {
        let tag = format!("{{lic:{}}}", key.as_str());
        Self {
            rec: format!("{tag}:rec"),
            act: format!("{tag}:act"),
            ses: format!("{tag}:ses"),
            times: format!("{tag}:t"),
            ended: format!("{tag}:ended"),
        }
    }

    /// All five, in script order.
    pub(crate) fn all(&self) -> [&str; 5] {
        [&self.rec, &self.act, &self.ses, &self.times, &self.ended]
    }
}

/// The field of a session in the `t` hash.
pub(crate) fn session_field(token: &TokenHash) -> String {
    format!("s:{}", token.to_hex())
}

/// `tessera:tok:<hex>`: the token → license index entry.
pub(crate) fn token_index(token: &TokenHash) -> String {
    format!("tessera:tok:{}", token.to_hex())
}

/// `tessera:pkv:{<plugin>:<hex key>}`: one durable plugin key. The hash tag is the whole
/// key, so a plugin's keys spread over a cluster instead of loading one slot.
pub(crate) fn plugin_kv(namespace: &str, key: &[u8]) -> String {
    format!("tessera:pkv:{{{namespace}:{}}}", hex::encode(key))
}

/// `tessera:meta:<name>`.
pub(crate) fn meta(name: &str) -> String {
    format!("tessera:meta:{name}")
}

/// The member of [`DEADLINES`] for one session.
pub(crate) fn deadline_member(key: &LicenseKey, token: &TokenHash) -> String {
    format!("{} {}", key.as_str(), token.to_hex())
}

/// Member of [`DEVICE_BEATS`] for a license's device.
pub(crate) fn device_member(key: &LicenseKey, hardware_hash: &str) -> String {
    format!("{} {hardware_hash}", key.as_str())
}

/// Splits a [`DEADLINES`] member back into license and token; `None` if malformed.
pub(crate) fn parse_deadline_member(member: &str) -> Option<(LicenseKey, TokenHash)> {
    let (key, token) = member.split_once(' ')?;
    Some((LicenseKey::parse(key).ok()?, TokenHash::from_hex(token)?))
}

/// Score of a time in [`DEADLINES`], [`BEATS`] and [`DEVICE_BEATS`]: unix microseconds (exact
/// in an `f64` for ±285 years).
pub(crate) fn time_score(at: DateTime<Utc>) -> f64 {
    at.timestamp_micros() as f64
}

/// Seconds from 0001-01-01T00:00:00Z to the unix epoch.
const SHIFT_SECS: i64 = 62_135_596_800;
/// Largest seconds value with 14 digits.
const MAX_SECS: i64 = 99_999_999_999_999;
/// Length of a T string.
pub(crate) const T_LEN: usize = 23;

/// Encodes `at` as a T string: 14 digits of seconds since 0001-01-01 and 9 of nanoseconds.
/// Times before year 1 are clamped to its start (they never occur: times come from clocks).
pub(crate) fn t(at: DateTime<Utc>) -> String {
    let secs = at.timestamp().saturating_add(SHIFT_SECS);
    if secs < 0 {
        return "0".repeat(T_LEN);
    }
    // A leap second is represented with nanos >= 1e9: keep the field at 9 digits.
    let nanos = at.timestamp_subsec_nanos().min(999_999_999);
    format!("{:014}{nanos:09}", secs.min(MAX_SECS))
}

/// Decodes a T string.
pub(crate) fn parse_t(text: &str) -> Option<DateTime<Utc>> {
    if text.len() != T_LEN || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = text[..14].parse().ok()?;
    let nanos: u32 = text[14..].parse().ok()?;
    DateTime::from_timestamp(secs - SHIFT_SECS, nanos)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn t_strings_round_trip_and_sort_like_times() {
        let a = Utc.timestamp_opt(1_700_000_000, 5).unwrap();
        let b = Utc.timestamp_opt(1_700_000_000, 999_999_999).unwrap();
        let c = Utc.timestamp_opt(-5, 0).unwrap();
        for x in [a, b, c] {
            assert_eq!(t(x).len(), T_LEN);
            assert_eq!(parse_t(&t(x)), Some(x));
        }
        assert!(t(c) < t(a) && t(a) < t(b));
        assert_eq!(parse_t("12"), None);
    }

    #[test]
    fn keys_of_one_license_share_its_hash_tag() {
        let key = LicenseKey::parse("ABCD-EFGH").unwrap();
        for k in LicenseKeys::of(&key).all() {
            assert!(k.starts_with("{lic:ABCD-EFGH}:"), "{k}");
        }
        let token = TokenHash::of("t");
        assert_eq!(
            parse_deadline_member(&deadline_member(&key, &token)),
            Some((key, token))
        );
    }
}
