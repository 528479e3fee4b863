//! The pool gauges: `tessera_resources{type, status="free"|"allocated"}`, the store's counts
//! as this server last read them (after each change it made and each availability check).
//! Types are bounded by `MAX_RESOURCE_TYPES`, so the label set is too. With several servers
//! on one store, each reports the counts of its own last read: take the latest, not the sum.

use std::sync::Once;

use crate::store::resources::{ResourceStore, ResourceType, TypeCounts};

const GAUGE: &str = "tessera_resources";

/// Sets the gauges of `counts`.
pub(super) fn set(counts: &[TypeCounts]) {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(|| {
        metrics::describe_gauge!(
            GAUGE,
            "Resources in the pools by type and status (free, allocated), as last read."
        );
    });
    for c in counts {
        let kind = c.kind.as_str().to_owned();
        metrics::gauge!(GAUGE, "type" => kind.clone(), "status" => "free").set(c.free as f64);
        metrics::gauge!(GAUGE, "type" => kind, "status" => "allocated").set(c.allocated as f64);
    }
}

/// Reads the counts of `kinds` and sets their gauges. The change they follow is done: a
/// failed read only leaves the gauges behind until the next one.
pub(super) async fn refresh(store: &dyn ResourceStore, kinds: &[ResourceType]) {
    if kinds.is_empty() {
        return;
    }
    match store.counts(kinds).await {
        Ok(counts) => set(&counts),
        Err(e) => tracing::debug!(error = %e, "resource gauges not refreshed"),
    }
}
