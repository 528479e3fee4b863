//! Validation of client input shared by the license, session and instance endpoints.
//! Every failure is a 400 `VALIDATION_ERROR` naming the field.

use tessera_actors::{LicenseKey, TokenHash};
use uuid::Uuid;

use crate::http::error::ApiError;

/// Longest free-text field we accept (machine names, versions, hardware hashes).
pub(crate) const MAX_TEXT_LEN: usize = 256;

/// A required, non-blank text field of at most [`MAX_TEXT_LEN`] characters, trimmed.
pub(crate) fn text(field: &str, value: &str) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::validation(field, "must not be empty"));
    }
    optional_text(field, Some(v)).map(Option::unwrap_or_default)
}

/// An optional text field; blank counts as absent.
pub(crate) fn optional_text(field: &str, value: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > MAX_TEXT_LEN {
        return Err(ApiError::validation(
            field,
            format!("must be at most {MAX_TEXT_LEN} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(ApiError::validation(
            field,
            "must not contain control characters",
        ));
    }
    Ok(Some(v.to_string()))
}

/// A license key.
pub(crate) fn license_key(field: &str, value: &str) -> Result<LicenseKey, ApiError> {
    LicenseKey::parse(value).map_err(|e| ApiError::validation(field, e))
}

/// A session token (a UUID, seed 000), returned as its hash.
pub(crate) fn session_token(field: &str, value: &str) -> Result<TokenHash, ApiError> {
    let uuid =
        Uuid::parse_str(value.trim()).map_err(|_| ApiError::validation(field, "must be a UUID"))?;
    Ok(TokenHash::of(&uuid.hyphenated().to_string()))
}

pub(crate) use crate::catalog::version::is_newer;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_are_trimmed_bounded_and_required() {
        assert_eq!(text("f", "  a ").ok(), Some("a".to_string()));
        assert!(text("f", "   ").is_err());
        assert!(text("f", &"x".repeat(MAX_TEXT_LEN + 1)).is_err());
        assert!(text("f", "a\u{0}b").is_err());
        assert_eq!(optional_text("f", Some(" ")).ok(), Some(None));
    }

    #[test]
    fn session_tokens_must_be_uuids_and_hash_canonically() {
        let lower = session_token("t", "550e8400-e29b-41d4-a716-446655440000").ok();
        let upper = session_token("t", "550E8400-E29B-41D4-A716-446655440000").ok();
        assert!(lower.is_some());
        assert_eq!(lower, upper);
        assert!(session_token("t", "nope").is_err());
    }
}
