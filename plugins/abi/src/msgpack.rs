//! MessagePack encoding of payloads (feature `msgpack`).
//!
//! Structs are encoded as maps keyed by field name (`rmp_serde::encode::write_named`),
//! enums as their `snake_case` string or, for [`Decision`], a map tagged by `decision`.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::decision::Decision;
use crate::event::Event;
use crate::hook::Hook;

/// A value could not be encoded.
#[derive(Debug)]
pub struct EncodeError(rmp_serde::encode::Error);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessagePack encoding failed: {}", self.0)
    }
}

impl std::error::Error for EncodeError {}

/// A payload could not be decoded, or decoded to an invalid value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Encodes `value` as a MessagePack map-based payload, appending to `buf`.
///
/// # Errors
/// [`EncodeError`] when serialization fails (not for the types of this crate).
pub fn encode_msgpack_into<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    rmp_serde::encode::write_named(buf, value).map_err(EncodeError)
}

/// Encodes `value` as a MessagePack map-based payload.
///
/// # Errors
/// [`EncodeError`] when serialization fails (not for the types of this crate).
pub fn encode_msgpack<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut buf = Vec::with_capacity(128);
    encode_msgpack_into(value, &mut buf)?;
    Ok(buf)
}

/// Decodes a MessagePack payload into `T`.
///
/// # Errors
/// [`DecodeError`] with the decoder's message.
pub fn decode_msgpack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    rmp_serde::from_slice(bytes).map_err(|e| DecodeError(e.to_string()))
}

/// Decodes and validates a decision payload.
///
/// # Errors
/// [`DecodeError`] when the bytes are not a decision map or the decision breaks a limit of
/// [`Decision::validate`].
pub fn decode_decision(bytes: &[u8]) -> Result<Decision, DecodeError> {
    let d: Decision = rmp_serde::from_slice(bytes)
        .map_err(|e| DecodeError(format!("undecodable decision: {e}")))?;
    d.validate()
        .map_err(|e| DecodeError(format!("invalid decision: {e}")))?;
    Ok(d)
}

impl Event {
    /// Decodes the MessagePack payload of `hook`.
    ///
    /// # Errors
    /// [`DecodeError`] when the payload does not match the hook's schema.
    pub fn decode_msgpack(hook: Hook, bytes: &[u8]) -> Result<Event, DecodeError> {
        let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
        Event::deserialize_for(hook, &mut de)
            .map_err(|e| DecodeError(format!("{} payload: {e}", hook.name())))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::event::TickEvent;

    #[test]
    fn events_roundtrip_through_msgpack() {
        let ev = Event::Tick(TickEvent {
            ts_ms: 42,
            interval_ms: 1000,
        });
        let bytes = encode_msgpack(&ev).unwrap();
        assert_eq!(Event::decode_msgpack(Hook::Tick, &bytes).unwrap(), ev);
        assert!(Event::decode_msgpack(Hook::Heartbeat, &bytes).is_err());
    }

    #[test]
    fn invalid_decisions_are_rejected() {
        let bytes = encode_msgpack(&Decision::deny("bad code", "")).unwrap();
        assert!(decode_decision(&bytes).unwrap_err().0.contains("deny.code"));
        assert!(decode_decision(&[0xc1]).is_err());
    }
}
