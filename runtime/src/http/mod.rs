//! Everything between a socket and a handler: the server loop, the gateway layer, extractors,
//! the one error type, the client's address, rate limits, request metrics and TLS. Handlers live
//! in `api/`; nothing here knows a license.

pub mod client_ip;
pub mod conn_cap;
pub mod error;
pub mod extract;
pub mod fallback;
pub mod gateway;
pub mod metrics;
pub mod rate_limit;
pub(crate) mod redact;
pub mod server;
pub mod tls;
