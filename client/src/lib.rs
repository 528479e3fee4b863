//! Tessera client SDK.
//!
//! Activate a license, start a session, and let the [`Session`] keep itself alive: it
//! heartbeats on the interval the server announced (with jitter, re-anchored after a suspend
//! or a stalled process), retries with exponential backoff on network errors, 5xx and 429
//! (honouring `Retry-After`), stays valid offline for the server's timeout + grace, and ends
//! itself on the server on [`Session::end`], on drop, and on process shutdown
//! ([`end_sessions_on_shutdown`]). Every call carries `X-License-Key` so that a balancer
//! can keep one license on one node. Seed 003's `/api/v2` with its encrypted envelope is
//! supported too ([`Client::register_instance`], [`Client::begin_session`], [`envelope`]).
//!
//! ```no_run
//! use tessera_client::{ActivateRequest, Client, Event, StartRequest, fingerprint};
//!
//! # async fn demo() -> Result<(), tessera_client::Error> {
//! let client = Client::new("http://127.0.0.1:8080", "AF-2026-...")?;
//! let device = fingerprint().hardware_hash();
//! client.activate(&ActivateRequest::new("ABCD-EFGH-JKMN-PQRS", &device)).await?;
//! let mut session = client.start_session(&StartRequest::new("ABCD-EFGH-JKMN-PQRS", &device)).await?;
//! let mut events = session.events().expect("first call");
//! while let Some(event) = events.recv().await {
//!     match event {
//!         Event::Ended { reason } => { eprintln!("session ended: {reason}"); break; }
//!         Event::Degraded { error } => eprintln!("server unreachable, retrying: {error}"),
//!         Event::Recovered => eprintln!("back online"),
//!         Event::UpdateAvailable { latest_version, .. } => eprintln!("update: {latest_version}"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The C ABI over this crate is [`ffi`] (header `include/tessera_client.h`).
// `forbid` everywhere but the C ABI, which cannot be written without `unsafe`: every
// unsafe block there carries a `// SAFETY:` comment.
#![deny(unsafe_code)]

/// The Rust examples of `README.md`, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod client;
pub mod envelope;
mod error;
#[allow(unsafe_code)]
pub mod ffi;
mod fingerprint;
mod retry;
mod schedule;
mod session;
mod shutdown;
mod v2;
mod ws;

pub use client::{
    API_KEY_HEADER, ActivateRequest, Activation, ActivationRecord, Client, ClientBuilder,
    LICENSE_KEY_HEADER, StartRequest, Verification, VerifiedLicense, VerifyRequest,
};
pub use error::Error;
pub use fingerprint::{Fingerprint, fingerprint};
pub use retry::RetryPolicy;
pub use session::{
    EndReason, Event, EventCallback, Session, SessionOptions, SessionState, end_all_sessions,
};
pub use shutdown::end_sessions_on_shutdown;
pub use v2::{BeginSession, ControlOptions, Instance, RegisterInstance};
