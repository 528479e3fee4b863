//! The search index behind seed 000's `GET /api/search` and `GET /api/customers?q=`:
//! customers, licenses and devices under their words, in the catalog store's ordered index
//! (a prefix query is a range read, not a scan, at any number of licenses).
//!
//! Who writes it: customers with their record (one atomic step, `admin/customers.rs`);
//! licenses after every admin operation that changes a key, customer or note (`admin/`);
//! devices from the license actors' activation events, off the request path
//! ([`IndexEvents`]); and [`backfill`] once per store for data that predates the index.
//! The index may hold stale entries (a write that failed after the change): every hit is
//! checked against the entity before it is shown, so a stale entry is never a wrong result.

mod backfill;
mod events;
mod index;
pub mod terms;

pub use backfill::{BACKFILL_DONE_KEY, backfill, spawn_backfill};
pub use events::IndexEvents;
pub use index::{DeviceRef, SearchIndex};
