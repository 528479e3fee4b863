//! Products and plans as stored at run time, their checks, and their translation to and
//! from the config's types (which the rest of the server reads).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_config::{PlanConfig, ProductConfig, SessionLimitStrategy};
use utoipa::ToSchema;

use super::error::CatalogError;
use super::version::{is_newer, is_prerelease};

/// Most releases a product keeps (the oldest are dropped first).
pub const MAX_RELEASES: usize = 100;
/// Longest display name of a product.
pub const MAX_NAME_LEN: usize = 100;
/// Longest download URL.
pub const MAX_URL_LEN: usize = 2_048;
/// Longest release notes, in characters.
pub const MAX_NOTES_LEN: usize = 10_000;
/// Longest heartbeat interval, timeout or grace a product may set, in seconds (one day).
pub const MAX_TIMING_SECS: u64 = 86_400;
/// Longest validity a plan may give a new license, in days (about 100 years, as the config).
pub const MAX_VALID_DAYS: u32 = 36_525;
/// Largest limit a plan may set.
pub const MAX_LIMIT: u32 = 1_000_000;

/// One published version of a product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Release {
    /// The version (`1.2.0`, `1.3.0-rc.1`); compared by semver precedence.
    pub version: String,
    /// Release date, `YYYY-MM-DD` (empty when the config gave none).
    pub release_date: String,
    /// Where it is downloaded (`http://` or `https://`, or empty).
    pub download_url: String,
    /// Release notes.
    pub release_notes: String,
    /// When it was published through the API (`None` for the config's release).
    #[serde(default)]
    pub published_at: Option<DateTime<Utc>>,
}

/// A product as stored: its session settings and its releases.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductDef {
    /// Product id (what licenses name).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Heartbeat interval in seconds (unset: `[sessions]`).
    pub heartbeat_interval_secs: Option<u64>,
    /// Heartbeat timeout in seconds (unset: `[sessions]`).
    pub heartbeat_timeout_secs: Option<u64>,
    /// Grace in seconds (unset: `[sessions]`).
    pub grace_secs: Option<u64>,
    /// Strategy at the session limit (unset: `[licenses]`): `reject`,
    /// `replace_same_device` or `evict_oldest`.
    #[schema(value_type = Option<String>, pattern = "^(reject|replace_same_device|evict_oldest)$")]
    pub on_session_limit: Option<SessionLimitStrategy>,
    /// Releases in the order they were published (the latest version is the highest by
    /// semver precedence, not the last published).
    pub releases: Vec<Release>,
}

/// A plan as stored: overrides of the `[licenses]` limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanDef {
    /// Plan name (what licenses name).
    pub name: String,
    /// Devices per license.
    pub max_devices: Option<u32>,
    /// Lifetime activations per license (0 = unlimited).
    pub max_activations: Option<u32>,
    /// Live sessions per license.
    pub max_sessions: Option<u32>,
    /// Strategy at the session limit.
    #[schema(value_type = Option<String>, pattern = "^(reject|replace_same_device|evict_oldest)$")]
    pub on_session_limit: Option<SessionLimitStrategy>,
    /// Validity of a newly issued license, in days (unset: perpetual).
    pub valid_days: Option<u32>,
}

/// Checks a product id or plan name: 1 to 64 of letters, digits, `_ . : -`.
pub fn check_id(field: &'static str, id: &str) -> Result<(), CatalogError> {
    if tessera_config::valid_feature(id) {
        Ok(())
    } else {
        Err(CatalogError::invalid(
            field,
            format!("`{id}` must be 1 to 64 of letters, digits, `_`, `.`, `:`, `-`"),
        ))
    }
}

fn secs(d: Option<Duration>) -> Option<u64> {
    d.map(|d| d.as_secs())
}

impl Release {
    /// Checks a release before it is published.
    pub fn check(&self) -> Result<(), CatalogError> {
        if !tessera_config::valid_version(&self.version) {
            return Err(CatalogError::invalid(
                "version",
                format!(
                    "`{}` is not a version like 1.2.0 or 1.3.0-rc.1 (at most 64 characters)",
                    self.version
                ),
            ));
        }
        if !self.release_date.is_empty() && !tessera_config::valid_release_date(&self.release_date)
        {
            return Err(CatalogError::invalid(
                "release_date",
                "must be a date like 2025-06-20",
            ));
        }
        let url = &self.download_url;
        if url.chars().count() > MAX_URL_LEN
            || !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://"))
            || url.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(CatalogError::invalid(
                "download_url",
                format!("must be an http:// or https:// URL of at most {MAX_URL_LEN} characters"),
            ));
        }
        if self.release_notes.chars().count() > MAX_NOTES_LEN {
            return Err(CatalogError::invalid(
                "release_notes",
                format!("at most {MAX_NOTES_LEN} characters"),
            ));
        }
        Ok(())
    }
}

impl ProductDef {
    /// The stored form of a product defined in the config: its one release is the config's.
    pub fn from_config(id: &str, p: &ProductConfig) -> Self {
        Self {
            id: id.to_owned(),
            name: p.name.clone(),
            heartbeat_interval_secs: secs(p.heartbeat_interval),
            heartbeat_timeout_secs: secs(p.heartbeat_timeout),
            grace_secs: secs(p.grace),
            on_session_limit: p.on_session_limit,
            releases: vec![Release {
                version: p.latest_version.clone(),
                release_date: p.release_date.clone(),
                download_url: p.download_url.clone(),
                release_notes: p.release_notes.clone(),
                published_at: None,
            }],
        }
    }

    /// The release clients are offered: the highest stable version (by semver precedence);
    /// a pre-release (`2.0.0-rc.1`) only while no stable release exists, so publishing a
    /// release candidate does not push it to every client on a stable version.
    pub fn latest(&self) -> Option<&Release> {
        let highest = |only_stable: bool| {
            self.releases
                .iter()
                .filter(|r| !only_stable || !is_prerelease(&r.version))
                .reduce(|best, r| {
                    if is_newer(&r.version, &best.version) {
                        r
                    } else {
                        best
                    }
                })
        };
        highest(true).or_else(|| highest(false))
    }

    /// The config form the rest of the server reads: settings, and the latest release as
    /// the release channel (`0.0.0` when there is none yet).
    pub fn to_config(&self) -> ProductConfig {
        let latest = self.latest();
        ProductConfig {
            name: self.name.clone(),
            latest_version: latest.map_or_else(|| "0.0.0".to_owned(), |r| r.version.clone()),
            release_date: latest.map(|r| r.release_date.clone()).unwrap_or_default(),
            download_url: latest.map(|r| r.download_url.clone()).unwrap_or_default(),
            release_notes: latest.map(|r| r.release_notes.clone()).unwrap_or_default(),
            heartbeat_interval: self.heartbeat_interval_secs.map(Duration::from_secs),
            heartbeat_timeout: self.heartbeat_timeout_secs.map(Duration::from_secs),
            grace: self.grace_secs.map(Duration::from_secs),
            on_session_limit: self.on_session_limit,
        }
    }

    /// Checks the settings against the server's defaults (`interval` and `timeout` of
    /// `[sessions]`), as the config checks `[products.*]`.
    pub fn check(&self, interval: Duration, timeout: Duration) -> Result<(), CatalogError> {
        check_id("id", &self.id)?;
        let name_len = self.name.chars().count();
        if name_len == 0 || name_len > MAX_NAME_LEN || self.name.chars().any(char::is_control) {
            return Err(CatalogError::invalid(
                "name",
                format!("1 to {MAX_NAME_LEN} characters, no control characters"),
            ));
        }
        for (field, v) in [
            ("heartbeat_interval_secs", self.heartbeat_interval_secs),
            ("heartbeat_timeout_secs", self.heartbeat_timeout_secs),
            ("grace_secs", self.grace_secs),
        ] {
            if v.is_some_and(|v| v > MAX_TIMING_SECS) {
                return Err(CatalogError::invalid(
                    field,
                    format!("at most {MAX_TIMING_SECS}"),
                ));
            }
        }
        if self.heartbeat_interval_secs == Some(0) {
            return Err(CatalogError::invalid(
                "heartbeat_interval_secs",
                "must be at least 1",
            ));
        }
        let i = self.heartbeat_interval_secs.unwrap_or(interval.as_secs());
        let t = self.heartbeat_timeout_secs.unwrap_or(timeout.as_secs());
        if t < i {
            return Err(CatalogError::invalid(
                "heartbeat_timeout_secs",
                format!("({t}) must be >= heartbeat_interval_secs ({i})"),
            ));
        }
        if self.releases.len() > MAX_RELEASES {
            return Err(CatalogError::invalid(
                "releases",
                format!("at most {MAX_RELEASES}"),
            ));
        }
        self.releases.iter().try_for_each(Release::check)
    }
}

impl PlanDef {
    /// The stored form of a plan defined in the config.
    pub fn from_config(name: &str, p: &PlanConfig) -> Self {
        Self {
            name: name.to_owned(),
            max_devices: p.max_devices,
            max_activations: p.max_activations,
            max_sessions: p.max_sessions,
            on_session_limit: p.on_session_limit,
            valid_days: p.valid_days,
        }
    }

    /// The config form the rest of the server reads.
    pub fn to_config(&self) -> PlanConfig {
        PlanConfig {
            max_devices: self.max_devices,
            max_activations: self.max_activations,
            max_sessions: self.max_sessions,
            on_session_limit: self.on_session_limit,
            valid_days: self.valid_days,
        }
    }

    /// Checks the limits as the config checks `[plans.*]`.
    pub fn check(&self) -> Result<(), CatalogError> {
        check_id("name", &self.name)?;
        for (field, v) in [
            ("max_devices", self.max_devices),
            ("max_sessions", self.max_sessions),
            ("valid_days", self.valid_days),
        ] {
            if v == Some(0) {
                return Err(CatalogError::invalid(field, "must be at least 1"));
            }
        }
        for (field, v) in [
            ("max_devices", self.max_devices),
            ("max_activations", self.max_activations),
            ("max_sessions", self.max_sessions),
        ] {
            if v.is_some_and(|v| v > MAX_LIMIT) {
                return Err(CatalogError::invalid(field, format!("at most {MAX_LIMIT}")));
            }
        }
        if self.valid_days.is_some_and(|d| d > MAX_VALID_DAYS) {
            return Err(CatalogError::invalid(
                "valid_days",
                format!("at most {}", MAX_VALID_DAYS),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(v: &str) -> Release {
        Release {
            version: v.into(),
            release_date: String::new(),
            download_url: String::new(),
            release_notes: String::new(),
            published_at: None,
        }
    }

    #[test]
    fn the_latest_release_is_the_highest_version_not_the_last_published() {
        let mut p = ProductDef::from_config("app", &ProductConfig::named("App"));
        p.releases = vec![release("1.0.0"), release("2.0.0"), release("1.9.9")];
        assert_eq!(p.to_config().latest_version, "2.0.0");
        p.releases.push(release("2.0.0-rc.1"));
        assert_eq!(p.to_config().latest_version, "2.0.0");
        p.releases.push(release("3.0.0-rc.1"));
        assert_eq!(
            p.to_config().latest_version,
            "2.0.0",
            "a release candidate is not offered over a stable release"
        );
        p.releases.push(release("2.0.1"));
        assert_eq!(p.to_config().latest_version, "2.0.1");
        p.releases.retain(|r| r.version.contains("rc"));
        assert_eq!(
            p.to_config().latest_version,
            "3.0.0-rc.1",
            "only candidates: the highest"
        );
        p.releases.clear();
        assert_eq!(p.to_config().latest_version, "0.0.0");
    }

    #[test]
    fn a_config_product_round_trips() {
        let mut c = ProductConfig::named("App");
        c.heartbeat_interval = Some(Duration::from_secs(20));
        c.latest_version = "1.4.0".into();
        assert_eq!(ProductDef::from_config("app", &c).to_config(), c);
    }

    #[test]
    fn releases_are_checked() {
        assert!(release("1.2.0").check().is_ok());
        assert!(release("1.2.0-rc.1").check().is_ok());
        assert!(release("latest").check().is_err());
        let mut r = release("1.0.0");
        r.download_url = "ftp://x".into();
        assert!(r.check().is_err());
        r.download_url = "https://example.com/a b".into();
        assert!(r.check().is_err());
        r.download_url = "https://example.com/app-1.0.0.zip".into();
        assert!(r.check().is_ok());
        r.release_date = "2025-02-30x".into();
        assert!(r.check().is_err());
    }

    #[test]
    fn product_timing_is_checked_against_the_defaults() {
        let mut p = ProductDef::from_config("app", &ProductConfig::named("App"));
        let (i, t) = (Duration::from_secs(30), Duration::from_secs(90));
        assert!(p.check(i, t).is_ok());
        p.heartbeat_interval_secs = Some(120);
        assert!(p.check(i, t).is_err());
        p.heartbeat_timeout_secs = Some(300);
        assert!(p.check(i, t).is_ok());
        p.grace_secs = Some(MAX_TIMING_SECS + 1);
        assert!(p.check(i, t).is_err());
    }
}
