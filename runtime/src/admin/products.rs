//! Products, plans and releases at run time: the admin side of `crate::catalog` (it checks
//! the caller's input and publishes the events; the catalog stores and spreads the change).

use serde::{Deserialize, Serialize};
use serde_json::json;
use tessera_config::SessionLimitStrategy;
use utoipa::ToSchema;

use super::edit::double_option;
use super::error::AdminError;
use super::service::Admin;
use crate::catalog::{PlanDef, ProductDef, Release};

/// A new product, or what an edit changes (absent fields stay; `null` clears a setting so
/// the server default applies).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// Display name: 1 to 100 characters after trimming, no control characters (it cannot
    /// be cleared, so not `null`).
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = String, max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub name: Option<String>,
    /// Heartbeat interval in seconds (1 to 86400).
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 86400)]
    pub heartbeat_interval_secs: Option<Option<u64>>,
    /// Heartbeat timeout in seconds (at most 86400, at least the interval).
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u64>, maximum = 86400)]
    pub heartbeat_timeout_secs: Option<Option<u64>>,
    /// Grace in seconds (at most 86400).
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u64>, maximum = 86400)]
    pub grace_secs: Option<Option<u64>>,
    /// Strategy at the session limit.
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, pattern = "^(reject|replace_same_device|evict_oldest)$")]
    pub on_session_limit: Option<Option<SessionLimitStrategy>>,
}

/// A field that may be left out but not sent as `null`.
fn not_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

impl ProductInput {
    fn apply(&self, p: &mut ProductDef) {
        if let Some(n) = &self.name {
            p.name = n.trim().to_owned();
        }
        if let Some(v) = self.heartbeat_interval_secs {
            p.heartbeat_interval_secs = v;
        }
        if let Some(v) = self.heartbeat_timeout_secs {
            p.heartbeat_timeout_secs = v;
        }
        if let Some(v) = self.grace_secs {
            p.grace_secs = v;
        }
        if let Some(v) = self.on_session_limit {
            p.on_session_limit = v;
        }
    }
}

/// A new plan, or what an edit changes (absent fields stay; `null` clears a limit so the
/// `[licenses]` default applies).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// Devices per license (1 to 1000000).
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 1_000_000)]
    pub max_devices: Option<Option<u32>>,
    /// Lifetime activations per license (0 = unlimited; at most 1000000).
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>, maximum = 1_000_000)]
    pub max_activations: Option<Option<u32>>,
    /// Live sessions per license (1 to 1000000).
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 1_000_000)]
    pub max_sessions: Option<Option<u32>>,
    /// Strategy at the session limit.
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, pattern = "^(reject|replace_same_device|evict_oldest)$")]
    pub on_session_limit: Option<Option<SessionLimitStrategy>>,
    /// Validity of a newly issued license, in days (1 to 36525).
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 36525)]
    pub valid_days: Option<Option<u32>>,
}

impl PlanInput {
    fn apply(&self, p: &mut PlanDef) {
        if let Some(v) = self.max_devices {
            p.max_devices = v;
        }
        if let Some(v) = self.max_activations {
            p.max_activations = v;
        }
        if let Some(v) = self.max_sessions {
            p.max_sessions = v;
        }
        if let Some(v) = self.on_session_limit {
            p.on_session_limit = v;
        }
        if let Some(v) = self.valid_days {
            p.valid_days = v;
        }
    }
}

/// `POST /api/admin/products/{id}/releases` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRelease {
    /// The version (`1.2.0`, `1.3.0-rc.1`): 1 to 4 numbers, then an optional pre-release
    /// and build, at most 64 characters (white space around it is trimmed).
    #[schema(
        max_length = 64,
        pattern = "^\\s*[0-9]+(\\.[0-9]+){0,3}(-[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?\\s*$"
    )]
    pub version: String,
    /// Release date `YYYY-MM-DD` (default: today, UTC; blank counts as absent).
    #[serde(default)]
    #[schema(pattern = "^\\s*([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]))?\\s*$")]
    pub release_date: Option<String>,
    /// Download URL (`http://` or `https://`), at most 2048 characters.
    #[serde(default)]
    #[schema(
        max_length = 2048,
        pattern = "^\\s*(https?://[^\\s\\x00-\\x1f\\x7f-\\x9f]*)?\\s*$"
    )]
    pub download_url: Option<String>,
    /// Release notes, at most 10000 characters.
    #[serde(default)]
    #[schema(max_length = 10000)]
    pub release_notes: Option<String>,
}

impl Admin {
    /// Every product in force, with its releases.
    pub fn products(&self) -> Vec<ProductDef> {
        self.catalog
            .snapshot()
            .product_defs
            .values()
            .cloned()
            .collect()
    }

    /// One product with its releases.
    pub fn product(&self, id: &str) -> Result<ProductDef, AdminError> {
        self.catalog
            .snapshot()
            .product_defs
            .get(id)
            .cloned()
            .ok_or_else(|| AdminError::ProductNotFound(id.to_owned()))
    }

    /// Creates product `id` (no release yet: its channel reports `0.0.0` until one is
    /// published).
    pub async fn create_product(
        &self,
        id: &str,
        input: &ProductInput,
    ) -> Result<ProductDef, AdminError> {
        let p = self
            .catalog
            .change_product(id, true, |p| {
                input.apply(p);
                Ok(())
            })
            .await?;
        self.emit(
            "admin.product.created",
            None,
            format!("product `{id}` created"),
            json!({ "product": id }),
        )
        .await?;
        Ok(p)
    }

    /// Changes product `id`'s settings; every server applies them within a second.
    pub async fn edit_product(
        &self,
        id: &str,
        input: &ProductInput,
    ) -> Result<ProductDef, AdminError> {
        if *input == ProductInput::default() {
            return Err(AdminError::invalid("body", "names nothing to change"));
        }
        let p = self
            .catalog
            .change_product(id, false, |p| {
                input.apply(p);
                Ok(())
            })
            .await?;
        self.emit(
            "admin.product.edited",
            None,
            format!("product `{id}` edited"),
            json!({ "product": id, "edit": input }),
        )
        .await?;
        Ok(p)
    }

    /// Publishes a release of product `id`: `version/check` and session start report it at
    /// once on this server and within a second on the others.
    pub async fn publish_release(
        &self,
        id: &str,
        new: &NewRelease,
    ) -> Result<ProductDef, AdminError> {
        // The document bounds the text as sent (white space around it included).
        if new.version.chars().count() > 64 {
            return Err(AdminError::invalid("version", "at most 64 characters"));
        }
        let release = Release {
            version: new.version.trim().to_owned(),
            release_date: new
                .release_date
                .as_deref()
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map_or_else(
                    || chrono::Utc::now().format("%Y-%m-%d").to_string(),
                    str::to_owned,
                ),
            download_url: new.download_url.as_deref().unwrap_or("").trim().to_owned(),
            release_notes: new.release_notes.clone().unwrap_or_default(),
            published_at: Some(chrono::Utc::now()),
        };
        let p = self.catalog.publish_release(id, release).await?;
        let latest = p.latest().map(|r| r.version.clone()).unwrap_or_default();
        self.emit(
            "admin.release.published",
            None,
            format!("{id} {} published", new.version.trim()),
            json!({ "product": id, "version": new.version.trim(), "latest_version": latest }),
        )
        .await?;
        Ok(p)
    }

    /// Every plan in force.
    pub fn plans(&self) -> Vec<PlanDef> {
        self.catalog
            .snapshot()
            .plans
            .iter()
            .map(|(name, p)| PlanDef::from_config(name, p))
            .collect()
    }

    /// Creates plan `name`.
    pub async fn create_plan(&self, name: &str, input: &PlanInput) -> Result<PlanDef, AdminError> {
        if name == "default" {
            return Err(AdminError::Conflict(
                "plan `default` always exists; change it with PATCH".into(),
            ));
        }
        let p = self
            .catalog
            .change_plan(name, true, |p| {
                input.apply(p);
                Ok(())
            })
            .await?;
        self.emit(
            "admin.plan.created",
            None,
            format!("plan `{name}` created"),
            json!({ "plan": name }),
        )
        .await?;
        Ok(p)
    }

    /// Changes plan `name`'s limits; licenses on it follow at once (this server) or within
    /// a second (the others). A lowered session limit ends excess sessions at the next
    /// start on each license, not at once.
    pub async fn edit_plan(&self, name: &str, input: &PlanInput) -> Result<PlanDef, AdminError> {
        if *input == PlanInput::default() {
            return Err(AdminError::invalid("body", "names nothing to change"));
        }
        // `default` has no config entry but always exists: its first edit creates it.
        let create = name == "default" && !self.catalog.snapshot().plans.contains_key(name);
        let p = self
            .catalog
            .change_plan(name, create, |p| {
                input.apply(p);
                Ok(())
            })
            .await?;
        self.emit(
            "admin.plan.edited",
            None,
            format!("plan `{name}` edited"),
            json!({ "plan": name, "edit": input }),
        )
        .await?;
        Ok(p)
    }
}
