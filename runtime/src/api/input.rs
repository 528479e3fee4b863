//! Validation of client input shared by the license, session and instance endpoints.
//! Every failure is a 400 `VALIDATION_ERROR` naming the field.

use tessera_actors::{LicenseKey, TokenHash};
use uuid::Uuid;

use utoipa::openapi::schema::Schema;

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

/// The largest number the document's `int64` allows: ids and cursors past it are refused
/// before any lookup or arithmetic, as the document says.
pub(crate) const MAX_ID: u64 = i64::MAX as u64;

/// A client's id or sequence number, at most [`MAX_ID`].
pub(crate) fn id(field: &str, n: u64) -> Result<u64, ApiError> {
    if n > MAX_ID {
        return Err(ApiError::validation(
            field,
            format!("must be at most {MAX_ID}"),
        ));
    }
    Ok(n)
}

/// A numeric cursor the server gave (`next_cursor`): blank for none, else 1 to 19 ASCII
/// digits after trimming (no sign), as the document's pattern says.
pub(crate) fn numeric_cursor<'a>(
    field: &str,
    raw: Option<&'a str>,
) -> Result<Option<&'a str>, ApiError> {
    match raw.map(str::trim).filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(c) if digits(c, 19) => Ok(Some(c)),
        Some(_) => Err(ApiError::validation(
            field,
            "is not a cursor from a previous page",
        )),
    }
}

/// The document's schema of a date or time filter: blank (no filter), a date
/// (`YYYY-MM-DD`, midnight UTC) or an RFC 3339 time, as [`crate::admin::edit::parse_time`]
/// reads it.
pub(crate) fn time_filter_schema() -> Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^\\s*$")),
        )
        .item(date())
        .item(date_time())
        .description(Some(
            "A date (YYYY-MM-DD) or an RFC 3339 time; blank for none.",
        ))
        .build()
        .into()
}

/// The document's schema of a new end of validity: a date (`YYYY-MM-DD`, midnight UTC),
/// an RFC 3339 time, or `null` (perpetual).
pub(crate) fn valid_until_schema() -> Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
    AnyOfBuilder::new()
        .item(date())
        .item(date_time())
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "A date (YYYY-MM-DD) or an RFC 3339 time; `null` makes the license perpetual.",
        ))
        .build()
        .into()
}

/// The document's schema of a license named in a body: seed 000's numeric id (`int64`) or
/// the license key.
pub(crate) fn license_ref_schema() -> Schema {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0))
                .description(Some("Numeric id.")),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(KEY_PATTERN))
                .description(Some("License key (or a numeric id as text).")),
        )
        .description(Some("A license: its numeric id or its key."))
        .build()
        .into()
}

/// `license_ids` of the seed 000 bulk actions: 1 to 10000 licenses.
pub(crate) fn license_ids_schema() -> Schema {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(utoipa::openapi::RefOr::T(license_ref_schema()))
        .min_items(Some(1))
        .max_items(Some(crate::admin::bulk::MAX_BULK))
        .description(Some("Licenses: numeric ids or keys."))
        .build()
        .into()
}

/// `resource_ids` of an allocation or release: 1 to 1000 distinct ids.
pub(crate) fn resource_ids_schema() -> Schema {
    use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0)),
        )
        .min_items(Some(1))
        .max_items(Some(crate::resources::validate::MAX_IDS))
        .unique_items(true)
        .description(Some("1 to 1000 distinct resource ids."))
        .build()
        .into()
}

pub(crate) use crate::admin::edit::metadata_schema;

/// A license key as a pattern: trimmed, 1 to 64 of `A-Z a-z 0-9 _ -`.
pub(crate) const KEY_PATTERN: &str = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$";

fn date() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
        .build()
}

fn date_time() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .build()
}

/// 1 to `max` ASCII digits.
pub(crate) fn digits(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

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
