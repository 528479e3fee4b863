//! Why an administrative operation was refused: one error for every caller (the API maps
//! it to its error shape, the CLI and control socket print it).

use tessera_actors::{LicenseError, StoreError};

use super::issue::{IssueError, MAX_VALID_DAYS};
use crate::catalog::CatalogError;

/// Why an administrative operation was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdminError {
    /// An argument is out of range or malformed; `field` names it.
    #[error("{field}: {message}")]
    Invalid {
        /// The argument (JSON field or CLI flag name without dashes).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The license actors refused (not found, store unavailable, ...).
    #[error(transparent)]
    License(#[from] LicenseError),
    /// The store refused a write that does not go through an actor (issuing).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The license has no active device with this id.
    #[error("the license has no active device {0}")]
    DeviceNotFound(u64),
    /// No customer with this id.
    #[error("no customer {0}")]
    CustomerNotFound(u64),
    /// No product with this id.
    #[error("no product `{0}`")]
    ProductNotFound(String),
    /// No plan with this name.
    #[error("no plan `{0}`")]
    PlanNotFound(String),
    /// The operation conflicts with what exists (the message says how).
    #[error("{0}")]
    Conflict(String),
    /// A destructive operation came without its confirmation.
    #[error(
        "confirmation required: send `confirm` with the license key (for a bulk delete, the number of licenses matched)"
    )]
    ConfirmationRequired,
    /// The actors answered with a reply of the wrong kind: a bug, logged by the caller.
    #[error("unexpected reply from the license actors")]
    Unexpected,
}

impl AdminError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<IssueError> for AdminError {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::UnknownPlan(p) => Self::invalid("plan", format!("unknown plan `{p}`")),
            IssueError::UnknownProduct(p) => {
                Self::invalid("product", format!("unknown product `{p}`"))
            }
            IssueError::DaysOutOfRange(d) => Self::invalid(
                "days_valid",
                format!("{d} is more than the allowed {MAX_VALID_DAYS}"),
            ),
            IssueError::LimitOutOfRange(field) => Self::invalid(
                field,
                format!("must be at most {}", super::issue::MAX_LIMIT),
            ),
            IssueError::Store(e) => Self::Store(e),
        }
    }
}

impl From<CatalogError> for AdminError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Invalid { field, message } => Self::Invalid { field, message },
            CatalogError::ProductNotFound(p) => Self::ProductNotFound(p),
            CatalogError::PlanNotFound(p) => Self::PlanNotFound(p),
            CatalogError::Conflict(m) => Self::Conflict(m),
            CatalogError::Store(e) => Self::Store(e),
        }
    }
}
