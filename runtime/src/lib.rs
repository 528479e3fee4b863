//! Tessera license server: HTTP API, auth, rate limits, store adapters, metrics, CLI.
//!
//! Start here: [`AppState::open`] builds the services from a [`tessera_config::Config`],
//! [`app`] is the whole HTTP application (for `oneshot` tests), [`serve`] runs it on a
//! listener until a shutdown future resolves. See `docs/architecture.md`.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod client_ip;
pub mod control;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod license_cli;
pub mod licenses;
pub mod metrics;
pub mod plugin_cli;
pub mod plugin_kv;
pub mod policy;
pub mod rate_limit;
pub mod reload;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;

pub use error::{ApiError, ErrorCode};
pub use extract::ApiJson;
pub use server::{app, serve, serve_router, shutdown_signal};
pub use state::{AppState, AppStateInner, Opened, StartupError};
