//! What a webhook operation fails with. Knows no HTTP: `api/webhooks.rs` maps it to the
//! error shape.

use tessera_actors::StoreError;

/// A refused or failed webhook operation.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A field is missing or invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as the API names it.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// No endpoint with this id.
    #[error("no webhook with id {0}")]
    NotFound(String),
    /// The endpoint has no delivery with this id (any more: the log keeps the newest).
    #[error("webhook {endpoint} has no delivery {delivery}")]
    DeliveryNotFound {
        /// The endpoint.
        endpoint: u64,
        /// The delivery id asked for.
        delivery: String,
    },
    /// The URL's host is, or resolves to, an address webhooks may not reach.
    #[error("{0}")]
    TargetRefused(String),
    /// The change conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A stored record does not decode.
    #[error("a stored webhook record does not decode: {0}")]
    Corrupt(String),
}

impl WebhookError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}
