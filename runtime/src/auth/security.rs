//! Seed 001's security and emergency controls and public feature flags: one record in the
//! meta store (`security`), so a change made on one server holds on every server sharing
//! the store. Each server caches it for at most [`REFRESH`]; the server that made a change
//! sees it at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tessera_config::{ProtectionMode, SecurityConfig};

use super::error::AuthError;
use super::records;
use crate::store::MetaStore;

/// Meta-store key of the security record.
pub const SECURITY_RECORD: &str = "security";
/// Longest a server serves a cached security record.
pub const REFRESH: Duration = Duration::from_secs(1);
/// Most feature flags and features, and the longest name of one.
pub const MAX_FLAGS: usize = 200;
const MAX_FLAG_NAME: usize = 64;

/// The security controls (`GET|PUT /api/admin/security`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// Refuse plaintext logins.
    pub enforce_login_payload_encryption: bool,
    /// Failed logins of one account before it is locked (1..=1000).
    pub max_login_attempts: u32,
    /// Seconds a login challenge is good for (10..=86400).
    pub replay_window_secs: u64,
    /// `off`, `standard` or `strict`.
    #[schema(value_type = String)]
    pub ip_reputation_mode: ProtectionMode,
    /// `off`, `standard` or `strict`.
    #[schema(value_type = String)]
    pub network_protection_mode: ProtectionMode,
}

impl SecuritySettings {
    /// The defaults from `[security]`.
    pub fn from_config(c: &SecurityConfig) -> Self {
        Self {
            enforce_login_payload_encryption: c.enforce_login_payload_encryption,
            max_login_attempts: c.max_login_attempts,
            replay_window_secs: c.replay_window_secs,
            ip_reputation_mode: c.ip_reputation_mode,
            network_protection_mode: c.network_protection_mode,
        }
    }

    /// The same bounds `config check` applies.
    pub fn validate(&self) -> Result<(), AuthError> {
        if !(1..=1000).contains(&self.max_login_attempts) {
            return Err(AuthError::invalid(
                "max_login_attempts",
                "must be between 1 and 1000",
            ));
        }
        if !(10..=86_400).contains(&self.replay_window_secs) {
            return Err(AuthError::invalid(
                "replay_window_secs",
                "must be between 10 and 86400",
            ));
        }
        Ok(())
    }
}

/// Named features and enabled flags, as seed 001's public config shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Features {
    /// Named on/off features (`guest_login_enabled`, ...).
    #[serde(default)]
    #[schema(schema_with = features_schema)]
    pub features: BTreeMap<String, bool>,
    /// Flags that are on.
    #[serde(default)]
    #[schema(schema_with = flags_schema)]
    pub enabled_feature_flags: BTreeSet<String>,
}

/// A feature or flag name, as [`Features::validate`] takes it.
const FLAG_NAME_PATTERN: &str = "^[a-z0-9_.-]{1,64}$";

/// `features` in the document: names as [`Features::validate`] takes them, at most
/// [`MAX_FLAGS`] (with the flags: a sum no schema states).
fn features_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(FLAG_NAME_PATTERN)),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new().schema_type(Type::Boolean).into(),
        )))
        .max_properties(Some(MAX_FLAGS))
        .description(Some(
            "Named on/off features (`guest_login_enabled`, ...): names of 1 to 64 of \
             `a-z 0-9 _ . -`; at most 200 features and flags in all.",
        ))
        .build()
}

/// `enabled_feature_flags` in the document (repeats count once).
fn flags_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(FLAG_NAME_PATTERN)),
        )
        .max_items(Some(MAX_FLAGS))
        .description(Some(
            "Flags that are on: names of 1 to 64 of `a-z 0-9 _ . -` (repeats count once).",
        ))
        .build()
}

impl Features {
    /// Bounded count and names of `[a-z0-9_.-]`.
    pub fn validate(&self) -> Result<(), AuthError> {
        if self.features.len() + self.enabled_feature_flags.len() > MAX_FLAGS {
            return Err(AuthError::invalid(
                "features",
                format!("at most {MAX_FLAGS} in all"),
            ));
        }
        let bad = self
            .features
            .keys()
            .chain(self.enabled_feature_flags.iter())
            .find(|n| {
                n.is_empty()
                    || n.len() > MAX_FLAG_NAME
                    || !n.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b)
                    })
            });
        match bad {
            Some(name) => Err(AuthError::invalid(
                "features",
                format!("`{name}` is not a name of 1 to {MAX_FLAG_NAME} characters [a-z0-9_.-]"),
            )),
            None => Ok(()),
        }
    }
}

/// Everything stored under [`SECURITY_RECORD`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SecurityRecord {
    /// Stored controls; `None` until first changed (the config's defaults apply).
    #[serde(default)]
    pub settings: Option<SecuritySettings>,
    /// Unix milliseconds: operator tokens below super_admin issued before this stop working.
    #[serde(default)]
    pub reauth_epoch_ms: i64,
    /// New activations are refused while set.
    #[serde(default)]
    pub activations_frozen: bool,
    /// Public features and flags.
    #[serde(default)]
    pub features: Features,
}

/// The security record with the config's defaults applied.
#[derive(Clone, Debug)]
pub struct SecurityState {
    /// Effective controls.
    pub settings: SecuritySettings,
    /// See [`SecurityRecord::reauth_epoch_ms`].
    pub reauth_epoch_ms: i64,
    /// See [`SecurityRecord::activations_frozen`].
    pub activations_frozen: bool,
    /// Public features and flags.
    pub features: Features,
}

/// The cached security state of one server.
pub struct Security {
    meta: Arc<dyn MetaStore>,
    defaults: Mutex<SecuritySettings>,
    cached: Mutex<Option<(Instant, Arc<SecurityState>)>>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security").finish_non_exhaustive()
    }
}

impl Security {
    /// The controls over `meta`, defaulting to `[security]`.
    pub fn new(meta: Arc<dyn MetaStore>, config: &SecurityConfig) -> Self {
        Self {
            meta,
            defaults: Mutex::new(SecuritySettings::from_config(config)),
            cached: Mutex::new(None),
        }
    }

    /// New defaults from a reloaded `[security]`; they apply at once wherever no operator
    /// has stored controls of their own.
    pub fn set_defaults(&self, config: &SecurityConfig) {
        *self.defaults.lock() = SecuritySettings::from_config(config);
        *self.cached.lock() = None;
    }

    fn state_of(&self, record: SecurityRecord) -> Arc<SecurityState> {
        Arc::new(SecurityState {
            settings: record
                .settings
                .unwrap_or_else(|| self.defaults.lock().clone()),
            reauth_epoch_ms: record.reauth_epoch_ms,
            activations_frozen: record.activations_frozen,
            features: record.features,
        })
    }

    /// The current state: cached for at most [`REFRESH`], else read from the store.
    pub async fn current(&self) -> Result<Arc<SecurityState>, AuthError> {
        if let Some((at, state)) = self.cached.lock().as_ref()
            && at.elapsed() < REFRESH
        {
            return Ok(Arc::clone(state));
        }
        let record = records::read::<SecurityRecord>(self.meta.as_ref(), SECURITY_RECORD)
            .await?
            .unwrap_or_default();
        let state = self.state_of(record);
        *self.cached.lock() = Some((Instant::now(), Arc::clone(&state)));
        Ok(state)
    }

    /// Whether new activations are refused now; a store failure answers "not frozen" from
    /// the last known state rather than failing client traffic.
    pub async fn activations_frozen(&self) -> bool {
        match self.current().await {
            Ok(s) => s.activations_frozen,
            Err(_) => self
                .cached
                .lock()
                .as_ref()
                .is_some_and(|(_, s)| s.activations_frozen),
        }
    }

    /// Changes the record atomically and refreshes this server's cache.
    pub async fn change(
        &self,
        mut f: impl FnMut(&mut SecurityRecord),
    ) -> Result<Arc<SecurityState>, AuthError> {
        let record = records::update(
            self.meta.as_ref(),
            SECURITY_RECORD,
            |r: &mut SecurityRecord| {
                f(r);
                Ok::<_, AuthError>(r.clone())
            },
        )
        .await?;
        let state = self.state_of(record);
        *self.cached.lock() = Some((Instant::now(), Arc::clone(&state)));
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EmbeddedStore;

    #[tokio::test]
    async fn reloaded_defaults_apply_until_an_operator_stores_controls() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store =
            EmbeddedStore::open(&dir.path().join("t.redb")).unwrap_or_else(|e| panic!("{e}"));
        let security = Security::new(Arc::new(store), &SecurityConfig::default());
        let first = security.current().await.unwrap_or_else(|e| panic!("{e}"));
        let changed = SecurityConfig {
            max_login_attempts: first.settings.max_login_attempts + 1,
            ..SecurityConfig::default()
        };
        security.set_defaults(&changed);
        // At once, not after the cache's second.
        let now = security.current().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(now.settings.max_login_attempts, changed.max_login_attempts);

        // Stored controls win over any later default.
        let stored = security
            .change(|r| {
                r.settings = Some(SecuritySettings {
                    max_login_attempts: 3,
                    ..now.settings.clone()
                });
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored.settings.max_login_attempts, 3);
        security.set_defaults(&SecurityConfig::default());
        let after = security.current().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(after.settings.max_login_attempts, 3);
    }
}
