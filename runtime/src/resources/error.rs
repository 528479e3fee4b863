//! Why a resource operation was refused, in terms of the pools (no HTTP).

use crate::store::StoreError;

/// Why a resource operation was refused. Every refusal changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// An argument is malformed or out of range; `field` names it.
    #[error("{field}: {message}")]
    Invalid {
        /// The argument (JSON field or query parameter).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// No resource has these ids.
    #[error("no resource with id {}", list(.0))]
    NotFound(Vec<u64>),
    /// These resources are held by a license (an allocation, or a delete, needs them free).
    #[error("resource {} is allocated", list(.0))]
    Unavailable(Vec<u64>),
    /// A release names resources the license does not hold.
    #[error("resource {} is not allocated to this license", list(.0))]
    NotAllocated(Vec<u64>),
    /// The store could not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ResourceError {
    pub(super) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// Ids as `1, 2, 3` (the first 20, then how many more), for messages.
pub(crate) fn list(ids: &[u64]) -> String {
    const SHOWN: usize = 20;
    let mut text = ids
        .iter()
        .take(SHOWN)
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN {
        text.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_id_lists_are_cut_in_messages() {
        assert_eq!(list(&[1, 2]), "1, 2");
        let many: Vec<u64> = (1..=25).collect();
        assert!(list(&many).ends_with("20 and 5 more"));
        assert_eq!(
            ResourceError::Unavailable(vec![7]).to_string(),
            "resource 7 is allocated"
        );
    }
}
