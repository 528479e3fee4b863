//! The one error of the credential services, and how the API answers it.

use crate::http::error::{ApiError, ErrorCode};
use crate::store::StoreError;

/// Why a credential operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// An argument is malformed or out of range.
    #[error("{field}: {message}")]
    Invalid {
        /// The field or flag.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No such operator.
    #[error("{0}")]
    OperatorNotFound(String),
    /// No such active admin key.
    #[error("{0}")]
    AdminKeyNotFound(String),
    /// It exists already.
    #[error("{0}")]
    Conflict(String),
    /// A login's challenge part is wrong (unknown, expired or reused nonce, bad encryption).
    #[error("{0}")]
    Challenge(String),
    /// A login failed: unknown user, wrong password, locked or disabled account, throttled
    /// address. One answer for all, so it tells nothing about the account.
    #[error("invalid username or password")]
    Credentials,
    /// A plaintext login while `enforce_login_payload_encryption` is on.
    #[error("this server accepts only encrypted login payloads (GET /api/auth/challenge first)")]
    EncryptionRequired,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Our bug or the platform's (key generation, hashing).
    #[error("{0}")]
    Internal(String),
}

impl AuthError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid { field, message } => ApiError::validation(field, message),
            AuthError::OperatorNotFound(m) => ApiError::new(ErrorCode::OperatorNotFound, m),
            AuthError::AdminKeyNotFound(m) => ApiError::new(ErrorCode::AdminKeyNotFound, m),
            AuthError::Conflict(m) => ApiError::new(ErrorCode::Conflict, m),
            AuthError::Challenge(m) => ApiError::new(ErrorCode::LoginChallengeInvalid, m),
            AuthError::Credentials => ErrorCode::InvalidCredentials.into(),
            AuthError::EncryptionRequired => ErrorCode::EncryptionRequired.into(),
            AuthError::Store(e) => e.into(),
            AuthError::Internal(m) => ApiError::internal(anyhow::anyhow!(m)),
        }
    }
}
