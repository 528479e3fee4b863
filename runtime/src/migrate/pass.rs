//! A migration's pass over the source (check or write) and why a migration fails: what
//! every part module shares.

use super::tally::Verdict;
use crate::store::StoreError;

/// One pass over the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Compare only.
    Check,
    /// Write what the target lacks, and what differs when `force`.
    Write {
        /// Overwrite differing items.
        force: bool,
    },
}

impl Pass {
    /// Whether an item with `verdict` is written in this pass.
    pub(crate) fn writes(self, verdict: Verdict) -> bool {
        match self {
            Self::Check => false,
            Self::Write { force } => {
                verdict == Verdict::New || (force && verdict == Verdict::Conflict)
            }
        }
    }
}

/// Why a migration failed or was refused.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Source and target are the same store.
    #[error("the source and the target are the same store")]
    SameStore,
    /// The target holds different data and `--force` was not given; nothing was written.
    #[error(
        "the target holds {0} item(s) that differ from the source (listed above); nothing was \
         written. Pass --force to overwrite them with the source's"
    )]
    Conflicts(u64),
    /// The target's audit chain differs from the source's at this record.
    #[error(
        "the target's audit chain differs from the source's at record {0}: an audit chain \
         cannot be merged; migrate into an empty target"
    )]
    AuditDiverges(u64),
    /// An item changed while being written: a server is using the target.
    #[error("{0} changed while it was written: is a server running on the target?")]
    Raced(String),
    /// After the copy, the target does not hold every source item as the source does.
    #[error("verification failed: {0}")]
    Verify(String),
    /// The source holds something unreadable.
    #[error("source: {0}")]
    Source(String),
    /// The target holds something unreadable.
    #[error("target: {0}")]
    Target(String),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
