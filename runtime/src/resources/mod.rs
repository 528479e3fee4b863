//! Resource pools (seed 000's Resource Management API): identifiers by type (servers,
//! domains, seats) that operators import into pools and allocate to licenses.
//!
//! [`Resources`] is the service: it validates what callers send (`validate.rs`), manages the
//! pools (`pool.rs`: import, list, delete), moves resources between pools and licenses
//! (`allocation.rs`: allocate, release, what a license holds, availability) and keeps the
//! pool gauges (`gauges.rs`). The atomicity lives in the
//! [`ResourceStore`](crate::store::resources::ResourceStore) port: an allocation takes all
//! its resources or none, and no resource is ever held by two licenses, also with several
//! servers on one store.
//!
//! **Architecture Invariant:** nothing here knows HTTP; errors are [`ResourceError`], which
//! the API maps to its error shape.

mod allocation;
mod error;
mod gauges;
mod pool;
mod service;
pub mod validate;

pub use allocation::{Availability, MAX_HELD_LISTED};
pub use error::ResourceError;
pub use pool::{Import, Listing, Page};
pub use service::Resources;
