//! What callers may send: types, identifiers, ids, counts, list parameters. Every number a
//! caller controls is bounded here, before any arithmetic on it.

use std::collections::HashSet;

use super::error::ResourceError;
use crate::store::resources::{MAX_TYPE_LEN, ResourceStatus, ResourceType};

/// Longest identifier.
pub const MAX_IDENTIFIER_LEN: usize = 128;
/// Most identifiers one import may carry.
pub const MAX_IMPORT: usize = 1_000;
/// Most resource ids one allocation or release may name.
pub const MAX_IDS: usize = 1_000;
/// Largest `count` of an availability check.
pub const MAX_COUNT: u64 = 1_000;
/// Default page size of the admin listing.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size of the admin listing.
pub const MAX_LIMIT: usize = 500;

/// A type name, trimmed and lower-cased: 1 to 32 characters of `a-z 0-9 _ -`.
pub fn resource_type(field: &'static str, raw: &str) -> Result<ResourceType, ResourceError> {
    let name = raw.trim().to_ascii_lowercase();
    ResourceType::new(&name).ok_or_else(|| {
        ResourceError::invalid(
            field,
            format!("must be 1 to {MAX_TYPE_LEN} characters of a-z, 0-9, '_' and '-'"),
        )
    })
}

/// One identifier, trimmed: 1 to [`MAX_IDENTIFIER_LEN`] printable ASCII characters without
/// spaces (server names, domains, addresses, seat names).
fn identifier(field: &'static str, raw: &str) -> Result<String, ResourceError> {
    let v = raw.trim();
    if v.is_empty() || v.len() > MAX_IDENTIFIER_LEN {
        return Err(ResourceError::invalid(
            field,
            format!("each must be 1 to {MAX_IDENTIFIER_LEN} characters"),
        ));
    }
    if !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ResourceError::invalid(
            field,
            "each may only hold printable ASCII characters without spaces",
        ));
    }
    Ok(v.to_owned())
}

/// 1 to [`MAX_IMPORT`] identifiers, each valid; repeats are dropped (first one kept).
pub fn identifiers(field: &'static str, raw: &[String]) -> Result<Vec<String>, ResourceError> {
    if raw.is_empty() || raw.len() > MAX_IMPORT {
        return Err(ResourceError::invalid(
            field,
            format!("must hold 1 to {MAX_IMPORT} identifiers"),
        ));
    }
    let mut seen = HashSet::with_capacity(raw.len());
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let v = identifier(field, r)?;
        if seen.insert(v.clone()) {
            out.push(v);
        }
    }
    Ok(out)
}

/// 1 to [`MAX_IDS`] distinct resource ids.
pub fn resource_ids(field: &'static str, ids: &[u64]) -> Result<Vec<u64>, ResourceError> {
    if ids.is_empty() || ids.len() > MAX_IDS {
        return Err(ResourceError::invalid(
            field,
            format!("must hold 1 to {MAX_IDS} ids"),
        ));
    }
    let mut seen = HashSet::with_capacity(ids.len());
    if let Some(dup) = ids.iter().find(|id| !seen.insert(**id)) {
        return Err(ResourceError::invalid(
            field,
            format!("names {dup} more than once"),
        ));
    }
    Ok(ids.to_vec())
}

/// A whole number in `min..=max`, or `default` when absent or blank.
fn bounded(
    field: &'static str,
    raw: Option<&str>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ResourceError> {
    let Some(text) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(default);
    };
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ResourceError::invalid(
            field,
            format!("must be a whole number from {min} to {max}"),
        )),
    }
}

/// An availability check's `count`: 1 to [`MAX_COUNT`], default 1.
pub fn count(raw: Option<&str>) -> Result<u64, ResourceError> {
    bounded("count", raw, 1, 1, MAX_COUNT)
}

/// A listing's `limit`: 1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
pub fn limit(raw: Option<&str>) -> Result<usize, ResourceError> {
    let n = bounded("limit", raw, DEFAULT_LIMIT as u64, 1, MAX_LIMIT as u64)?;
    usize::try_from(n).map_err(|_| ResourceError::invalid("limit", "out of range"))
}

/// A listing's `cursor` (the `next_cursor` of the previous page), if any.
pub fn cursor(raw: Option<&str>) -> Result<Option<u64>, ResourceError> {
    let Some(text) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    text.parse::<u64>()
        .map(Some)
        .map_err(|_| ResourceError::invalid("cursor", "is not a cursor this server gave"))
}

/// A listing's `status` filter: `free` or `allocated`.
pub fn status(raw: Option<&str>) -> Result<Option<ResourceStatus>, ResourceError> {
    match raw.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some("free") => Ok(Some(ResourceStatus::Free)),
        Some("allocated") => Ok(Some(ResourceStatus::Allocated)),
        Some(_) => Err(ResourceError::invalid(
            "status",
            "must be `free` or `allocated`",
        )),
    }
}

/// An id in a path.
pub fn id(field: &'static str, raw: &str) -> Result<u64, ResourceError> {
    raw.trim()
        .parse::<u64>()
        .map_err(|_| ResourceError::invalid(field, "must be a resource id (a whole number)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_lower_cased_and_bounded() {
        assert_eq!(
            resource_type("type", " Server ")
                .ok()
                .map(|t| t.to_string()),
            Some("server".into())
        );
        assert!(resource_type("type", "a:b").is_err());
        assert!(resource_type("type", "").is_err());
    }

    #[test]
    fn identifiers_are_bounded_printable_and_deduplicated() {
        let ok = identifiers("identifiers", &["a.example".into(), " a.example ".into()]);
        assert_eq!(ok.ok(), Some(vec!["a.example".to_owned()]));
        for bad in [
            "",
            "a b",
            "tab\there",
            "é",
            &"x".repeat(MAX_IDENTIFIER_LEN + 1),
        ] {
            assert!(
                identifiers("identifiers", &[bad.to_owned()]).is_err(),
                "{bad:?}"
            );
        }
        assert!(identifiers("identifiers", &[]).is_err());
        let too_many = vec!["a".to_owned(); MAX_IMPORT + 1];
        assert!(identifiers("identifiers", &too_many).is_err());
    }

    #[test]
    fn id_lists_are_bounded_and_distinct() {
        assert!(resource_ids("resource_ids", &[1, 2]).is_ok());
        assert!(resource_ids("resource_ids", &[]).is_err());
        assert!(resource_ids("resource_ids", &[3, 3]).is_err());
        let too_many: Vec<u64> = (0..=MAX_IDS as u64).collect();
        assert!(resource_ids("resource_ids", &too_many).is_err());
    }

    #[test]
    fn numbers_are_checked_before_use() {
        assert_eq!(count(None).ok(), Some(1));
        assert_eq!(count(Some("5")).ok(), Some(5));
        for bad in ["0", "-1", "1001", "1e3", "18446744073709551616", "x"] {
            assert!(count(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(limit(None).ok(), Some(DEFAULT_LIMIT));
        assert!(limit(Some("501")).is_err());
        assert_eq!(cursor(Some("42")).ok(), Some(Some(42)));
        assert!(cursor(Some("abc")).is_err());
        assert!(status(Some("busy")).is_err());
        assert!(id("id", "12x").is_err());
    }
}
