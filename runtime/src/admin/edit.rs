//! Changing one license: quick-edit (seed 000), renewal, toggle, delete and new keys. Each
//! goes through the license's actor, so live sessions see the change at once; lowering
//! `max_sessions` below what is live ends the excess (the actor does, by the license's
//! strategy, with reason `admin`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tessera_actors::{
    LicenseKey, LicensePatch, LicenseStatus, LicenseView, LimitOverrides, Reply, Request,
    SessionLimitStrategy,
};

use super::error::AdminError;
pub use super::issue::MAX_LIMIT;
use super::issue::{MAX_VALID_DAYS, limit};
use super::service::{Admin, StatusChange};
use crate::licenses::generate_license_key;

/// Most metadata entries on one license.
pub const MAX_METADATA: usize = 32;
/// Most features on one license.
pub const MAX_FEATURES: usize = 64;
/// Longest metadata key or feature name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest metadata value.
pub const MAX_VALUE_LEN: usize = 256;
/// Longest note.
pub const MAX_NOTE_LEN: usize = 2_000;

/// What an edit changes; fields left `None` stay as they are. `Some(None)` clears an
/// optional field (`valid_until: Some(None)` makes the license perpetual).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenseEdit {
    /// End of validity (RFC 3339); `null` makes the license perpetual.
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub valid_until: Option<Option<DateTime<Utc>>>,
    /// Plan (configured, or `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// Devices at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_devices: Option<u32>,
    /// Lifetime activations (0 = unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_activations: Option<u32>,
    /// Live sessions at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u32>,
    /// What happens at the session limit: `reject`, `evict_oldest` or `replace_same_device`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^(reject|replace_same_device|evict_oldest)$")]
    pub on_session_limit: Option<SessionLimitStrategy>,
    /// Customer name.
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub customer_name: Option<Option<String>>,
    /// The customer the license belongs to (`null`: none). Setting it without
    /// `customer_name` also sets the customer name to the customer's.
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u64>)]
    pub customer_id: Option<Option<u64>>,
    /// Operator note.
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub note: Option<Option<String>>,
    /// Metadata (replaces the whole map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Features (replaces the list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
}

impl LicenseEdit {
    /// Whether the edit changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `Option<Option<T>>` on the wire: absent → `None`, `null` → `Some(None)`.
pub mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes the inner option (`Some(None)` as `null`).
    pub fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    /// A present field is `Some`, whatever its value.
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// A name (metadata key, feature): 1..=64 of `[A-Za-z0-9_.:-]`.
pub(crate) fn name(field: &'static str, n: &str) -> Result<(), AdminError> {
    let ok = !n.is_empty()
        && n.len() <= MAX_NAME_LEN
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AdminError::invalid(
            field,
            format!("`{n}` must be 1 to {MAX_NAME_LEN} of letters, digits, `_`, `.`, `:`, `-`"),
        ))
    }
}

/// Free text: trimmed, at most `max` characters, no control characters; blank is `None`.
pub(crate) fn text(
    field: &'static str,
    v: Option<&str>,
    max: usize,
) -> Result<Option<String>, AdminError> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > max {
        return Err(AdminError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AdminError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(Some(v.to_string()))
}

/// A date or time as admin inputs take it: RFC 3339, or `YYYY-MM-DD` (midnight UTC).
pub fn parse_time(field: &'static str, raw: &str) -> Result<DateTime<Utc>, AdminError> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            AdminError::invalid(field, "must be a date (YYYY-MM-DD) or an RFC 3339 time")
        })
}

impl Admin {
    /// Checks `edit` and turns it into the actor's patch (a customer named by id must exist).
    async fn patch_of(&self, edit: &LicenseEdit) -> Result<LicensePatch, AdminError> {
        if edit.is_empty() {
            return Err(AdminError::invalid("body", "names nothing to change"));
        }
        if let Some(plan) = &edit.plan
            && !self.catalog.snapshot().has_plan(plan)
        {
            return Err(AdminError::invalid(
                "plan",
                format!("unknown plan `{plan}`"),
            ));
        }
        let overrides = LimitOverrides {
            max_devices: limit("max_devices", edit.max_devices)?,
            max_activations: limit("max_activations", edit.max_activations)?,
            max_sessions: limit("max_sessions", edit.max_sessions)?,
            on_session_limit: edit.on_session_limit,
        };
        let any_limit = overrides != LimitOverrides::default();
        if let Some(m) = &edit.metadata {
            if m.len() > MAX_METADATA {
                return Err(AdminError::invalid(
                    "metadata",
                    format!("at most {MAX_METADATA} entries"),
                ));
            }
            for (k, v) in m {
                name("metadata", k)?;
                text("metadata", Some(v), MAX_VALUE_LEN)?;
            }
        }
        if let Some(f) = &edit.features {
            if f.len() > MAX_FEATURES {
                return Err(AdminError::invalid(
                    "features",
                    format!("at most {MAX_FEATURES} features"),
                ));
            }
            for n in f {
                name("features", n)?;
            }
        }
        let mut customer_name = match &edit.customer_name {
            Some(c) => Some(text("customer_name", c.as_deref(), 256)?),
            None => None,
        };
        if let Some(Some(id)) = edit.customer_id {
            let customer = self.customer(id).await?;
            customer_name.get_or_insert(Some(customer.name));
        }
        let note = match &edit.note {
            Some(n) => Some(text("note", n.as_deref(), MAX_NOTE_LEN)?),
            None => None,
        };
        let mut features = edit.features.clone();
        if let Some(f) = &mut features {
            f.sort();
            f.dedup();
        }
        Ok(LicensePatch {
            valid_until: edit.valid_until,
            plan: edit.plan.clone(),
            overrides: any_limit.then_some(overrides),
            customer_name,
            customer_id: edit.customer_id,
            note,
            metadata: edit.metadata.clone(),
            features,
            ..LicensePatch::default()
        })
    }

    async fn update(
        &self,
        key: &LicenseKey,
        patch: LicensePatch,
    ) -> Result<LicenseView, AdminError> {
        match self.licenses.call(key, Request::Update(patch)).await? {
            Reply::Updated { license } => Ok(license),
            _ => Err(AdminError::Unexpected),
        }
    }

    /// Applies `edit` (seed 000's quick-edit, `tessera license edit`).
    pub async fn edit(
        &self,
        key: &LicenseKey,
        edit: &LicenseEdit,
    ) -> Result<LicenseView, AdminError> {
        let patch = self.patch_of(edit).await?;
        let before = self.show(key).await?.license.record;
        let license = self.update(key, patch).await?;
        self.reindex(&license.record).await;
        // The audit record keeps the previous values of the fields the edit named.
        let changed = serde_json::to_value(edit).unwrap_or_default();
        let previous = serde_json::to_value(&before).unwrap_or_default();
        let mut was = serde_json::Map::new();
        if let Some(fields) = changed.as_object() {
            for field in fields.keys() {
                let old = match field.as_str() {
                    "max_devices" | "max_activations" | "max_sessions" | "on_session_limit" => {
                        previous["overrides"][field].clone()
                    }
                    other => previous[other].clone(),
                };
                was.insert(field.clone(), old);
            }
        }
        self.emit_change(
            "admin.license.edited",
            Some(key),
            "license edited".to_string(),
            Some(serde_json::Value::Object(was)),
            changed,
        )
        .await?;
        Ok(license)
    }

    /// Extends validity by `days` (1..=[`MAX_VALID_DAYS`]) past the later of `valid_until`
    /// and now; a perpetual license stays perpetual.
    pub async fn renew(&self, key: &LicenseKey, days: u32) -> Result<LicenseView, AdminError> {
        if !(1..=MAX_VALID_DAYS).contains(&days) {
            return Err(AdminError::invalid(
                "days",
                format!("must be between 1 and {MAX_VALID_DAYS}"),
            ));
        }
        let patch = LicensePatch {
            extend_validity: Some(chrono::Duration::days(i64::from(days))),
            ..LicensePatch::default()
        };
        let license = self.update(key, patch).await?;
        self.emit(
            "admin.license.renewed",
            Some(key),
            format!("license renewed by {days} days"),
            json!({ "days": days, "valid_until": license.record.valid_until }),
        )
        .await?;
        Ok(license)
    }

    /// Seed 000's toggle: an active license becomes suspended (ending its sessions), any
    /// other status becomes active.
    pub async fn toggle(&self, key: &LicenseKey) -> Result<StatusChange, AdminError> {
        let current = self.show(key).await?.license.record;
        let next = if current.effective_status(Utc::now()) == LicenseStatus::Active {
            LicenseStatus::Suspended
        } else {
            LicenseStatus::Active
        };
        self.set_status(key, next, Some("toggled by an operator".into()), None)
            .await
    }

    /// Deletes the license with its devices and sessions (live ones end with `admin` first)
    /// and returns its resources to their pools. `confirm` must be the license key itself.
    pub async fn delete(&self, key: &LicenseKey, confirm: Option<&str>) -> Result<u32, AdminError> {
        if confirm.map(str::trim) != Some(key.as_str()) {
            return Err(AdminError::ConfirmationRequired);
        }
        let detail = self.show(key).await?;
        let ended = match self.licenses.call(key, Request::Delete).await? {
            Reply::Deleted { ended_sessions } => ended_sessions,
            _ => return Err(AdminError::Unexpected),
        };
        let id = detail.license.record.id;
        let unindexed = match self.search.unindex_license(id).await {
            Ok(()) => self.search.unindex_devices(id, &detail.activations).await,
            Err(e) => Err(e),
        };
        if let Err(e) = unindexed {
            // Search checks every hit against the license, so a deleted one never shows.
            tracing::warn!(license = %key.masked(), error = %e, "deleted license left in the search index");
        }
        // The license is gone; resources it held go back (a failure here leaves them
        // allocated to a key no license has, which the pool listing shows).
        let released = match self.resources.release_all(key).await {
            Ok(ids) => ids.len(),
            Err(e) => {
                tracing::warn!(license = %key.masked(), error = %e, "deleted license's resources not released");
                0
            }
        };
        self.emit(
            "admin.license.deleted",
            Some(key),
            format!("license deleted ({ended} live sessions ended)"),
            json!({ "ended_sessions": ended, "released_resources": released }),
        )
        .await?;
        Ok(ended)
    }

    /// A fresh license key no license has (seed 000's generate-license-key); it is not
    /// reserved.
    pub async fn generate_key(&self) -> Result<LicenseKey, AdminError> {
        for _ in 0..8 {
            let key = LicenseKey::parse(&generate_license_key())
                .map_err(|e| AdminError::invalid("license_key", e.to_string()))?;
            if self.licenses.store().load(&key).await?.is_none() {
                return Ok(key);
            }
        }
        Err(AdminError::Unexpected)
    }
}

/// License metadata in an edit: up to 32 entries, keys of 1 to 64 of `A-Z a-z 0-9 _ . : -`,
/// values of at most 256 characters without control characters other than a line feed
/// (white space around a value is trimmed), or `null`.
pub(crate) fn metadata_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Object,
            Type::Null,
        ]))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[A-Za-z0-9_.:-]{1,64}$")),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[^\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f]*$"))
                .max_length(Some(MAX_VALUE_LEN))
                .into(),
        )))
        .max_properties(Some(MAX_METADATA))
        .description(Some("Metadata (replaces the map)."))
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_on_the_wire_tells_absent_from_null() {
        let e: LicenseEdit = serde_json::from_str(r#"{"note":null,"max_sessions":3}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.note, Some(None));
        assert_eq!(e.customer_name, None);
        assert_eq!(e.max_sessions, Some(3));
        let back: LicenseEdit =
            serde_json::from_value(serde_json::to_value(&e).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, e);
        assert!(serde_json::from_str::<LicenseEdit>(r#"{"colour":"red"}"#).is_err());
    }

    #[test]
    fn names_and_texts_are_bounded() {
        assert!(name("features", "export.pdf").is_ok());
        assert!(name("features", "").is_err());
        assert!(name("features", "has space").is_err());
        assert!(name("features", &"x".repeat(MAX_NAME_LEN + 1)).is_err());
        assert_eq!(text("note", Some("  "), 10).ok(), Some(None));
        assert!(text("note", Some("a\u{7}b"), 10).is_err());
        assert!(text("note", Some("abcdefghijk"), 10).is_err());
        assert!(limit("max_devices", Some(MAX_LIMIT + 1)).is_err());
        assert_eq!(limit("max_devices", Some(5)).ok(), Some(Some(5)));
    }
}
