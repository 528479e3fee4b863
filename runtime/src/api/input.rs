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

/// A version as clients and operators write it, read as semver: a leading `v` is dropped and
/// missing minor or patch parts count as 0 (`2` is `2.0.0`, `1.4-beta` is `1.4.0-beta`).
fn semver_of(v: &str) -> Option<semver::Version> {
    let v = v.trim().trim_start_matches(['v', 'V']);
    let split = v.find(['-', '+']).unwrap_or(v.len());
    let (core, rest) = v.split_at(split);
    let parts = core.split('.').count();
    if parts == 0 || parts > 3 {
        return None;
    }
    let padded = format!("{core}{}{rest}", ".0".repeat(3 - parts));
    semver::Version::parse(&padded).ok()
}

/// Whether `latest` is a newer version than `current`, by semver precedence (so
/// `1.0.0-rc1` is older than `1.0.0`; build metadata is ignored). Versions that are not
/// semver even after padding are compared part by part, numbers as numbers.
pub(crate) fn is_newer(latest: &str, current: &str) -> bool {
    if let (Some(a), Some(b)) = (semver_of(latest), semver_of(current)) {
        return a.cmp_precedence(&b) == std::cmp::Ordering::Greater;
    }
    let parts = |v: &str| -> Vec<String> {
        v.trim()
            .trim_start_matches(['v', 'V'])
            .split(['.', '-', '+'])
            .map(str::to_string)
            .collect()
    };
    let (a, b) = (parts(latest), parts(current));
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).map_or("0", String::as_str);
        let y = b.get(i).map_or("0", String::as_str);
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if ord != std::cmp::Ordering::Equal {
            return ord == std::cmp::Ordering::Greater;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_comparison_is_numeric_per_part() {
        assert!(is_newer("1.10.0", "1.9.3"));
        assert!(is_newer("2", "1.99"));
        assert!(!is_newer("1.0.0", "1.0"));
        assert!(!is_newer("1.0.0", "1.0.1"));
        assert!(is_newer("v1.2.0", "1.1.9"));
    }

    #[test]
    fn pre_releases_precede_their_release() {
        assert!(is_newer("1.0.0", "1.0.0-rc1"));
        assert!(!is_newer("1.0.0-rc1", "1.0.0"));
        assert!(is_newer("1.0.0-rc.10", "1.0.0-rc.9"));
        assert!(is_newer("1.4", "1.4-beta"));
        assert!(
            !is_newer("1.0.0+build.5", "1.0.0+build.4"),
            "build metadata is ignored"
        );
        // Not semver: compared part by part.
        assert!(is_newer("2024.10.01.3", "2024.10.01.2"));
    }

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
