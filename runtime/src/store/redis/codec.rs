//! How records, sessions and replies are encoded in Redis: JSON fields, `deadline|last` pairs,
//! script replies. Shared by the Store port (`licenses.rs`) and the connection layer.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use redis::{Cmd, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_actors::{
    Activation, EndReason, LicenseKey, LicenseRecord, LimitKind, StoreError, TokenHash,
};

use super::keys::{self, t};

/// One ended session as recorded in a license's capped `ended` log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedEntry {
    /// The session.
    pub token_hash: TokenHash,
    /// Why it ended.
    pub reason: EndReason,
    /// When (the `at` of the operation that ended it).
    pub ended_at: DateTime<Utc>,
}

pub(super) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("redis: {what}"))
}

pub(super) fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(corrupt)
}

pub(super) fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(corrupt)
}

pub(super) fn decode_value<T: redis::FromRedisValue>(v: Value) -> Result<T, StoreError> {
    redis::from_redis_value(v).map_err(corrupt)
}

/// A license record as `field, json value` pairs (the `rec` hash).
pub(super) fn record_fields(record: &LicenseRecord) -> Result<Vec<String>, StoreError> {
    let serde_json::Value::Object(map) = serde_json::to_value(record).map_err(corrupt)? else {
        return Err(corrupt("a license record must serialize to an object"));
    };
    let mut out = Vec::with_capacity(map.len() * 2);
    for (field, value) in map {
        out.push(field);
        out.push(value.to_string());
    }
    Ok(out)
}

/// The inverse of [`record_fields`].
pub(super) fn record_from_pairs(pairs: &[String]) -> Result<LicenseRecord, StoreError> {
    let mut map = serde_json::Map::new();
    for pair in pairs.chunks_exact(2) {
        map.insert(pair[0].clone(), from_json(&pair[1])?);
    }
    serde_json::from_value(serde_json::Value::Object(map)).map_err(corrupt)
}

/// Session times as stored in the `t` hash: deadline then last heartbeat.
pub(super) fn session_times(deadline: DateTime<Utc>, last_heartbeat: DateTime<Utc>) -> String {
    let mut s = t(deadline);
    s.push_str(&t(last_heartbeat));
    s
}

pub(super) fn parse_session_times(
    text: &str,
) -> Result<(DateTime<Utc>, DateTime<Utc>), StoreError> {
    let bad = || corrupt("malformed session times");
    let deadline = text
        .get(..keys::T_LEN)
        .and_then(keys::parse_t)
        .ok_or_else(bad)?;
    let beat = text
        .get(keys::T_LEN..2 * keys::T_LEN)
        .and_then(keys::parse_t)
        .ok_or_else(bad)?;
    Ok((deadline, beat))
}

/// An activation's state in the `t` hash: active flag, then last heartbeat.
pub(super) fn parse_activation_state(text: &str) -> Result<(bool, DateTime<Utc>), StoreError> {
    let bad = || corrupt("malformed activation state");
    let active = match text.get(..1) {
        Some("1") => true,
        Some("0") => false,
        _ => return Err(bad()),
    };
    let beat = text.get(1..).and_then(keys::parse_t).ok_or_else(bad)?;
    Ok((active, beat))
}

pub(super) fn activation_with_state(json: &str, state: &str) -> Result<Activation, StoreError> {
    let mut activation: Activation = from_json(json)?;
    let (active, beat) = parse_activation_state(state)?;
    activation.is_active = active;
    activation.last_heartbeat = beat;
    Ok(activation)
}

pub(super) fn pairs_to_map(pairs: Vec<String>) -> HashMap<String, String> {
    let mut map = HashMap::with_capacity(pairs.len() / 2);
    let mut it = pairs.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        map.insert(k, v);
    }
    map
}

pub(super) fn token(hex: &str) -> Result<TokenHash, StoreError> {
    TokenHash::from_hex(hex).ok_or_else(|| corrupt("malformed token hash"))
}

pub(super) fn parse_ended(line: &str) -> Result<EndedEntry, StoreError> {
    let mut parts = line.splitn(3, ' ');
    let (Some(reason), Some(at), Some(tok)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(corrupt("malformed ended entry"));
    };
    let reason: EndReason = from_json(&format!("\"{reason}\""))?;
    Ok(EndedEntry {
        token_hash: token(tok)?,
        reason,
        ended_at: keys::parse_t(at).ok_or_else(|| corrupt("malformed ended time"))?,
    })
}

/// Decodes the `{status, ...}` reply of a per-license script.
pub(super) fn reply_parts(v: Value) -> Result<(String, Vec<Value>), StoreError> {
    let mut items: Vec<Value> = decode_value(v)?;
    if items.is_empty() {
        return Err(corrupt("empty script reply"));
    }
    let status: String = decode_value(items.remove(0))?;
    Ok((status, items))
}

pub(super) fn tokens_of(values: Vec<Value>) -> Result<Vec<TokenHash>, StoreError> {
    values
        .into_iter()
        .map(|v| token(&decode_value::<String>(v)?))
        .collect()
}

/// `DEL` of the token index and `ZREM` of the session's entries in the global heartbeat sets
/// for `tokens`.
pub(super) fn forget_commands(key: &LicenseKey, tokens: &[TokenHash]) -> Vec<Cmd> {
    let mut cmds = Vec::with_capacity(tokens.len() + 2);
    let members: Vec<String> = tokens
        .iter()
        .map(|tok| keys::deadline_member(key, tok))
        .collect();
    for tok in tokens {
        let mut del = redis::cmd("DEL");
        del.arg(keys::token_index(tok));
        cmds.push(del);
    }
    cmds.extend(zrem_sessions(&members));
    cmds
}

/// `ZREM` of session members from [`keys::DEADLINES`] and [`keys::BEATS`].
pub(super) fn zrem_sessions(members: &[String]) -> [Cmd; 2] {
    [keys::DEADLINES, keys::BEATS].map(|set| {
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(set).arg(members);
        zrem
    })
}

pub(super) fn limit_kind(name: &str) -> Result<LimitKind, StoreError> {
    match name {
        "devices" => Ok(LimitKind::Devices),
        "activations" => Ok(LimitKind::Activations),
        "sessions" => Ok(LimitKind::Sessions),
        other => Err(corrupt(format!("unknown limit `{other}`"))),
    }
}

pub(super) fn unexpected(status: &str) -> StoreError {
    corrupt(format!("unexpected script reply `{status}`"))
}
