//! Statistics (seed 002): per day, per product, counted as events happen, not by scanning
//! the event log. Each server counts the events it stores (`Events::subscribe_local`, so
//! every event is counted once), keeps the counts of the current minute in memory, and adds
//! them every few seconds to one record per day in the metadata store with a
//! compare-and-swap, so servers sharing a store add up instead of overwriting each other.

mod counters;
mod service;

pub use counters::{DayStats, ProductStats};
pub use service::{FLUSH_EVERY, Period, Stats, StatsReport};
