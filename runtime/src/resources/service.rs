//! The service itself: the store it works on. Its operations live beside it, one job per
//! module (`pool.rs`, `allocation.rs`).

use std::sync::Arc;

use crate::store::resources::ResourceStore;

/// The resource service over one store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Resources {
    pub(super) store: Arc<dyn ResourceStore>,
}

impl Resources {
    /// The service over `store`.
    pub fn new(store: Arc<dyn ResourceStore>) -> Self {
        Self { store }
    }
}
