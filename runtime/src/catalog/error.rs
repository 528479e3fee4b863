//! Why a change to the catalog was refused.

use tessera_actors::StoreError;

/// Why a change to a product, plan or release was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    /// A field is out of range or malformed.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// No product with this id.
    #[error("no product `{0}`")]
    ProductNotFound(String),
    /// No plan with this name.
    #[error("no plan `{0}`")]
    PlanNotFound(String),
    /// The change conflicts with what exists (a product that exists, a version published).
    #[error("{0}")]
    Conflict(String),
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CatalogError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}
