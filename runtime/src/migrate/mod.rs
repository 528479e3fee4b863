//! `tessera migrate`: copies one store into another, embedded ↔ Redis (or either to its
//! own kind), through the stores' ports (`store::transfer` for what the others cannot list
//! or write as it is), never by poking at keys.
//!
//! Both stores must be stopped: an embedded store is opened with its lock (a server running
//! on it makes the migration fail); for Redis nothing can tell, so stop every server using
//! it. A migration makes three passes over the source: **check** (every item compared with
//! the target: new, unchanged or differing), **write** (new items, and differing ones with
//! `--force`, each through the target's own write path), **verify** (the check again: every
//! source item must now be in the target as it is in the source). A differing item without
//! `--force` refuses the migration before anything is written; rerunning a migration is
//! therefore safe and writes nothing the target already holds. Items only in the target are
//! kept. What is copied and what not: `docs/deployment.md`, "Moving between stores".

mod audit;
mod catalog;
pub mod endpoint;
mod events;
mod licenses;
mod meta;
mod pass;
mod resources;
mod run;
pub mod tally;

pub use self::endpoint::Endpoint;
pub use self::pass::MigrateError;
pub use self::run::{Report, migrate};
pub use self::tally::Tally;
