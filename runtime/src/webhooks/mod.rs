//! Outgoing webhooks, per the Standard Webhooks specification: operators register endpoints
//! (a URL, event types or prefixes, `json` or `discord`), and every event this server stores
//! that an endpoint wants becomes a signed, durable delivery, retried with backoff over
//! hours.
//!
//! [`Webhooks`] (`service.rs`) is the service the API calls: endpoints (`endpoint.rs`),
//! secrets and signatures (`secret.rs`), the delivery log and redelivery (`delivery.rs`).
//! Behind it the dispatcher (`dispatcher.rs`) turns events into deliveries and runs the
//! attempts (`attempt.rs`) on tasks of its own, under a concurrency cap and a timeout, through
//! the SSRF guard (`guard.rs`); `payload.rs` renders the bodies. Endpoints and deliveries are
//! records in the catalog store, so they survive restarts and are shared by every server on
//! the store; the store's index is the delivery queue.
//!
//! **Architecture Invariant:** nothing here runs on a request's path but the API's own
//! calls: a slow or hanging receiver holds delivery slots, never a client request.
//!
//! **Architecture Invariant:** nothing here knows HTTP's server side; errors are
//! [`WebhookError`], which the API maps to its error shape.

mod attempt;
pub mod delivery;
mod dispatcher;
pub mod endpoint;
mod error;
pub mod guard;
pub mod payload;
pub mod secret;
mod service;

pub use delivery::{DeliveryView, Status};
pub use endpoint::{
    CreatedEndpoint, EndpointPatch, EndpointView, Format, NewEndpoint, RotatedSecret,
};
pub use error::WebhookError;
pub use service::{DEFAULT_PAGE, DeliveryPage, EndpointPage, MAX_PAGE, Webhooks};
