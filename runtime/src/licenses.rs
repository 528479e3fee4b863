//! Wiring between configuration, the license actors and the HTTP error shape:
//! rules from `tessera.toml`, license key generation, new-license defaults, and the
//! mapping of actor refusals to API error codes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::TryRngCore;
use rand::rngs::OsRng;
use tessera_actors::{
    EventSink, LicenseError, LicenseEvent, LicenseKey, LicenseRecord, Licenses, LimitOverrides,
    MatchStrategy, ProductRules, RegistryConfig, Rules, SessionLimitStrategy, SharedRules, Store,
    StoreError,
};
use tessera_config::{Config, FingerprintMatch, SessionLimitStrategy as CfgStrategy};

use crate::error::{ApiError, ErrorCode};

/// Characters of generated license keys: no 0/O, 1/I/L, so keys survive being read aloud.
pub const KEY_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A new license key `XXXX-XXXX-XXXX-XXXX` from the operating system's CSPRNG.
pub fn generate_license_key() -> String {
    let mut rng = OsRng.unwrap_err();
    let mut out = String::with_capacity(19);
    for group in 0..4 {
        if group > 0 {
            out.push('-');
        }
        for _ in 0..4 {
            let i = rng.random_range(0..KEY_ALPHABET.len());
            out.push(char::from(KEY_ALPHABET[i]));
        }
    }
    out
}

fn strategy(s: CfgStrategy) -> SessionLimitStrategy {
    match s {
        CfgStrategy::Reject => SessionLimitStrategy::Reject,
        CfgStrategy::ReplaceSameDevice => SessionLimitStrategy::ReplaceSameDevice,
        CfgStrategy::EvictOldest => SessionLimitStrategy::EvictOldest,
    }
}

/// The rules the actors enforce, from configuration.
pub fn rules_from_config(cfg: &Config) -> Rules {
    let l = &cfg.licenses;
    Rules {
        defaults: tessera_actors::Limits {
            max_devices: l.max_devices,
            max_activations: l.max_activations,
            max_sessions: l.max_sessions,
            on_session_limit: strategy(l.on_session_limit),
        },
        plans: cfg
            .plans
            .iter()
            .map(|(name, p)| {
                let o = LimitOverrides {
                    max_devices: p.max_devices,
                    max_activations: p.max_activations,
                    max_sessions: p.max_sessions,
                    on_session_limit: p.on_session_limit.map(strategy),
                };
                (name.clone(), o)
            })
            .collect(),
        products: cfg
            .products
            .iter()
            .map(|(id, p)| {
                let r = ProductRules {
                    heartbeat_interval: p.heartbeat_interval,
                    heartbeat_timeout: p.heartbeat_timeout,
                    grace: p.grace,
                    on_session_limit: p.on_session_limit.map(strategy),
                };
                (id.clone(), r)
            })
            .collect(),
        timing: tessera_actors::SessionTiming {
            heartbeat_interval: cfg.sessions.heartbeat_interval,
            heartbeat_timeout: cfg.sessions.heartbeat_timeout,
            grace: cfg.sessions.grace,
        },
        fingerprint_match: match l.fingerprint_match {
            FingerprintMatch::MatchAll => MatchStrategy::MatchAll,
            FingerprintMatch::MatchMost => MatchStrategy::MatchMost,
            FingerprintMatch::MatchAny => MatchStrategy::MatchAny,
        },
        restart_grace: cfg.store.restart_grace,
        idle_passivate: l.idle_passivate,
    }
}

/// Starts the license actors over `store`.
pub async fn start(
    cfg: &Config,
    store: Arc<dyn Store>,
    events: Arc<dyn EventSink>,
) -> Result<Licenses, ractor::SpawnErr> {
    Licenses::start(
        store,
        SharedRules::new(rules_from_config(cfg)),
        events,
        RegistryConfig {
            shards: cfg.licenses.effective_shards(),
            op_timeout: cfg.store.op_timeout,
            flush_interval: cfg.store.flush_interval,
            sweep_interval: Duration::from_secs(30),
        },
    )
    .await
}

/// When a status given for `secs` seconds lapses; `None` (until changed) for 0 or for a
/// duration past the calendar's end.
pub fn lapse_after(secs: Option<u64>) -> Option<DateTime<Utc>> {
    let secs = i64::try_from(secs.filter(|s| *s > 0)?).ok()?;
    Utc::now().checked_add_signed(chrono::TimeDelta::try_seconds(secs)?)
}

/// What a new license gets when the caller does not say.
#[derive(Debug, Clone, Default)]
pub struct NewLicense {
    /// Plan (default: none → `default`).
    pub plan: Option<String>,
    /// Product (default: `licenses.default_product`).
    pub product: Option<String>,
    /// Customer name.
    pub customer_name: Option<String>,
    /// Per-license overrides.
    pub overrides: LimitOverrides,
    /// Validity in days (default: the plan's `valid_days`, else perpetual).
    pub days: Option<u32>,
}

/// Why a license could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The product is not configured.
    #[error("unknown product `{0}`")]
    UnknownProduct(String),
    /// The plan is not configured.
    #[error("unknown plan `{0}`")]
    UnknownPlan(String),
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Issues a new license with a fresh key (retrying on the astronomically unlikely collision).
pub async fn issue(
    cfg: &Config,
    store: &dyn Store,
    new: NewLicense,
    now: DateTime<Utc>,
) -> Result<LicenseRecord, IssueError> {
    let product = new
        .product
        .unwrap_or_else(|| cfg.licenses.default_product.clone());
    if !cfg.products.contains_key(&product) {
        return Err(IssueError::UnknownProduct(product));
    }
    if let Some(plan) = &new.plan
        && !cfg.plans.contains_key(plan)
    {
        return Err(IssueError::UnknownPlan(plan.clone()));
    }
    let plan = new.plan.unwrap_or_else(|| "default".to_string());
    let days = new
        .days
        .or_else(|| cfg.plans.get(&plan).and_then(|p| p.valid_days));
    for _ in 0..8 {
        let key = LicenseKey::parse(&generate_license_key())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut record = LicenseRecord::new(key, &product, &plan, now);
        record.customer_name = new.customer_name.clone();
        record.overrides = new.overrides.clone();
        if let Some(days) = days {
            record.valid_until = Some(now + chrono::Duration::days(i64::from(days)));
            record.license_type = "subscription".to_string();
        }
        match store.create_license(record).await {
            Err(StoreError::AlreadyExists) => continue,
            other => return Ok(other?),
        }
    }
    Err(IssueError::Store(StoreError::AlreadyExists))
}

impl From<LicenseError> for ApiError {
    fn from(e: LicenseError) -> Self {
        let code = match e {
            LicenseError::NotFound => ErrorCode::LicenseNotFound,
            LicenseError::Suspended => ErrorCode::LicenseSuspended,
            LicenseError::Revoked => ErrorCode::LicenseRevoked,
            LicenseError::Banned => ErrorCode::LicenseBanned,
            LicenseError::Expired => ErrorCode::LicenseExpired,
            LicenseError::DeviceLimit => ErrorCode::DeviceLimitReached,
            LicenseError::ActivationLimit => ErrorCode::ActivationLimitReached,
            LicenseError::SessionLimit => ErrorCode::SessionLimitReached,
            LicenseError::SessionNotFound => ErrorCode::SessionNotFound,
            LicenseError::SessionExpired => ErrorCode::SessionExpired,
            LicenseError::NotActivated => ErrorCode::NotActivated,
            LicenseError::StoreUnavailable | LicenseError::Busy => ErrorCode::StoreUnavailable,
            LicenseError::Internal => ErrorCode::InternalError,
        };
        ApiError::from(code)
    }
}

/// Logs license events; the plugin host and webhooks subscribe here as they land.
pub struct LogEvents;

impl EventSink for LogEvents {
    fn emit(&self, event: &LicenseEvent) {
        match event {
            LicenseEvent::SessionEnded {
                key,
                session,
                reason,
                ..
            } => {
                tracing::debug!(license = %key, session = %session.token_hash, reason = reason.as_str(), "session ended")
            }
            LicenseEvent::StatusChanged { key, status } => {
                tracing::info!(license = %key, status = status.as_str(), "license status changed")
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape_and_alphabet() {
        for _ in 0..200 {
            let k = generate_license_key();
            assert_eq!(k.len(), 19);
            for (i, c) in k.chars().enumerate() {
                if i % 5 == 4 {
                    assert_eq!(c, '-');
                } else {
                    assert!(KEY_ALPHABET.contains(&(c as u8)), "{c} in {k}");
                }
            }
        }
        assert_ne!(generate_license_key(), generate_license_key());
    }
}
