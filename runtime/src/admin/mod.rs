//! The admin service: every administrative operation once, through the license actors, so a
//! change reaches live sessions at once and is serialized with client traffic. HTTP handlers
//! (`api/admin.rs`, `api/license_admin.rs`), the control socket and the CLI are thin callers:
//! they parse, call one of these (directly or as an [`command::AdminCommand`]), and render
//! the result. Every operation publishes an [`AdminEvent`] through one fan-out
//! (`events.rs`).
//!
//! **Architecture Invariant:** nothing here knows HTTP; errors are [`AdminError`], which the
//! API maps to its error shape and the CLI prints.

pub mod bulk;
pub mod bundle;
pub mod command;
pub mod customers;
mod devices;
pub mod edit;
mod error;
pub mod events;
mod issue;
pub mod list;
pub mod products;
mod remembered;
pub mod search;
mod service;
pub mod view;

pub use bundle::{BundleRequest, PresetView};
pub use customers::{Customer, CustomerInput, CustomerPage, NewCustomer};
pub use devices::HwidReset;
pub use edit::LicenseEdit;
pub use error::AdminError;
pub use events::{AdminEvent, AdminEvents};
pub use issue::{IssueError, MAX_VALID_DAYS, NewLicense};
pub use list::{LicenseFilter, LicensePage, StatusFilter};
pub use products::{NewRelease, PlanInput, ProductInput};
pub use search::{SearchHit, SearchResults, SearchType};
pub(crate) use service::lapse_after;
pub use service::{
    Admin, LicenseDetail, MAX_ISSUE_COUNT, MAX_STATUS_SECS, StatusChange, parse_status,
};
