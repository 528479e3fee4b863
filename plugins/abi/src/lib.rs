//! Event and decision types shared by the Tessera plugin host and SDK (ABI v1).
//!
//! This crate is the single definition of what crosses the WebAssembly boundary:
//! the [`Hook`]s, the event payload of each hook ([`Event`] and its per-hook structs),
//! the [`Decision`] a plugin returns, and the wire constants of ABI v1 ([`wire`]).
//! Payloads are MessagePack maps with the same field names as the JSON examples in
//! `plugins/ABI.md`; the `msgpack` feature adds the encoders and decoders used by the
//! host and the SDK. Without features the crate depends on `serde` only, so the domain
//! crates can name these types cheaply.

#![forbid(unsafe_code)]

mod decision;
mod event;
mod hook;
#[cfg(feature = "msgpack")]
mod msgpack;
pub mod wire;

pub use decision::{DEFAULT_DENY_STATUS, Decision, DecisionError};
pub use event::{
    ActivateEvent, AttemptOutcome, CredentialKind, EndReason, Event, Fingerprint, HeartbeatEvent,
    LoginFailureEvent, RequestEvent, SessionEndEvent, SessionStartEvent, TickEvent, WarningEvent,
};
pub use hook::{Hook, HookSet, UnknownHook};
#[cfg(feature = "msgpack")]
pub use msgpack::{
    DecodeError, EncodeError, decode_decision, decode_msgpack, encode_msgpack, encode_msgpack_into,
};
