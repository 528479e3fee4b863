//! Tessera license server: HTTP API, auth, rate limits, store adapters, metrics, CLI.
//!
//! Start here: [`AppState::open`] builds the services from a [`tessera_config::Config`],
//! [`app`] is the whole HTTP application (for `oneshot` tests), [`serve`] runs it on a
//! listener until a shutdown future resolves. See `docs/architecture.md`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod control;
pub mod events;
pub mod http;
pub mod licenses;
pub mod migrate;
pub mod panel;
pub mod policy;
pub mod reload;
pub mod resources;
pub mod search;
pub mod state;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod webhooks;

pub use http::error::{ApiError, ErrorCode};
pub use http::extract::ApiJson;
pub use http::server::{app, serve, serve_router, shutdown_signal};
pub use state::{AppState, AppStateInner, Opened, StartupError};
