//! The SDK's error type.
#![forbid(unsafe_code)]

use std::time::Duration;

use crate::envelope::EnvelopeError;
use crate::session::EndReason;

/// What went wrong in a call.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error (`{"error", "code", "status"}`).
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The stable code, e.g. `SESSION_LIMIT_REACHED` (`docs/api.md` lists them all).
        code: String,
        /// The server's human sentence.
        message: String,
        /// The server's `Retry-After`, when it sent one (429, 503).
        retry_after: Option<Duration>,
    },
    /// The server could not be reached, or the connection broke or timed out.
    #[error("network error: {0}")]
    Network(String),
    /// The server's reply is not what the API documents.
    #[error("unexpected reply: {0}")]
    Protocol(String),
    /// An argument is invalid (a URL, a key with characters a header cannot carry).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The session has ended; it cannot heartbeat again.
    #[error("the session has ended ({0})")]
    SessionEnded(EndReason),
    /// A seed 003 envelope could not be sealed or opened.
    #[error("envelope: {0}")]
    Envelope(#[from] EnvelopeError),
}

impl Error {
    /// The server's error code, for [`Error::Api`].
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: network errors, 5xx and 429.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Network(_) => true,
            Error::Api { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// The delay the server asked for (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
