//! Products and plans at run time: the config's `[products.*]` and `[plans.*]` are the
//! initial set; operators create and change them, and publish releases, through the admin
//! API. The stored definitions live in the catalog store, every server holds the merged
//! view in memory ([`Catalog::snapshot`]) and refreshes it within a second of a change made
//! on any server (a revision counter in the metadata store, polled), so `version/check`,
//! session start and the license rules see a release or a changed plan without a restart.
//!
//! **Architecture Invariant:** nothing here knows HTTP or the admin service; the admin
//! service validates callers and publishes events, then calls [`Catalog`].

mod error;
pub mod records;
mod service;
mod snapshot;
pub mod version;

pub use error::CatalogError;
pub use records::{PlanDef, ProductDef, Release};
pub use service::{Catalog, MAX_DEFS, REFRESH_EVERY};
pub use snapshot::Snapshot;
