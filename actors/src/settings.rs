//! The rules the actors enforce, resolved from defaults, plan, product and license.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::fingerprint::MatchStrategy;
use crate::model::{LicenseRecord, LimitOverrides, SessionLimitStrategy};

/// Effective limits of one license.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Devices active at once.
    pub max_devices: u32,
    /// Lifetime activations; 0 = unlimited.
    pub max_activations: u32,
    /// Live sessions at once.
    pub max_sessions: u32,
    /// Strategy when `max_sessions` is reached.
    pub on_session_limit: SessionLimitStrategy,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_devices: 1,
            max_activations: 10,
            max_sessions: 1,
            on_session_limit: SessionLimitStrategy::Reject,
        }
    }
}

impl Limits {
    /// Applies overrides on top of `self`.
    pub fn with(mut self, o: &LimitOverrides) -> Self {
        if let Some(v) = o.max_devices {
            self.max_devices = v;
        }
        if let Some(v) = o.max_activations {
            self.max_activations = v;
        }
        if let Some(v) = o.max_sessions {
            self.max_sessions = v;
        }
        if let Some(v) = o.on_session_limit {
            self.on_session_limit = v;
        }
        self
    }
}

/// Heartbeat timing of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionTiming {
    /// How often clients are told to heartbeat.
    pub heartbeat_interval: Duration,
    /// Silence after which a session is considered gone ...
    pub heartbeat_timeout: Duration,
    /// ... plus this much slack (seed 003's `validation_grace_period`).
    pub grace: Duration,
}

impl SessionTiming {
    /// Time from a heartbeat to the session's deadline.
    pub fn lifetime(&self) -> Duration {
        self.heartbeat_timeout + self.grace
    }
}

impl Default for SessionTiming {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(90),
            grace: Duration::from_secs(30),
        }
    }
}

/// Session settings a product may override.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProductRules {
    /// Heartbeat interval override.
    pub heartbeat_interval: Option<Duration>,
    /// Heartbeat timeout override.
    pub heartbeat_timeout: Option<Duration>,
    /// Grace override.
    pub grace: Option<Duration>,
    /// Session-limit strategy override.
    pub on_session_limit: Option<SessionLimitStrategy>,
}

/// Everything the license state machines need to know from configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Limits when neither plan nor license says otherwise.
    pub defaults: Limits,
    /// Per-plan overrides, by plan name.
    pub plans: HashMap<String, LimitOverrides>,
    /// Per-product session settings, by product id.
    pub products: HashMap<String, ProductRules>,
    /// Timing when the product says nothing.
    pub timing: SessionTiming,
    /// How fingerprints are compared.
    pub fingerprint_match: MatchStrategy,
    /// After a restart, sessions whose deadline passed during the downtime live at
    /// least this long, so the server's own downtime evicts nobody.
    pub restart_grace: Duration,
    /// A license with no live session and no message for this long leaves memory.
    pub idle_passivate: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            defaults: Limits::default(),
            plans: HashMap::new(),
            products: HashMap::new(),
            timing: SessionTiming::default(),
            fingerprint_match: MatchStrategy::default(),
            restart_grace: Duration::from_secs(60),
            idle_passivate: Duration::from_secs(600),
        }
    }
}

impl Rules {
    /// Limits of `license`: defaults, then its product's strategy, then its plan, then its own overrides.
    pub fn limits_for(&self, license: &LicenseRecord) -> Limits {
        let mut limits = self.defaults;
        if let Some(strategy) = self
            .products
            .get(&license.product)
            .and_then(|p| p.on_session_limit)
        {
            limits.on_session_limit = strategy;
        }
        if let Some(plan) = self.plans.get(&license.plan) {
            limits = limits.with(plan);
        }
        limits.with(&license.overrides)
    }

    /// Heartbeat timing of sessions of `license`'s product.
    pub fn timing_for(&self, license: &LicenseRecord) -> SessionTiming {
        let mut t = self.timing;
        if let Some(p) = self.products.get(&license.product) {
            t.heartbeat_interval = p.heartbeat_interval.unwrap_or(t.heartbeat_interval);
            t.heartbeat_timeout = p.heartbeat_timeout.unwrap_or(t.heartbeat_timeout);
            t.grace = p.grace.unwrap_or(t.grace);
        }
        t
    }
}

/// Shared, hot-swappable rules: readers take a cheap snapshot per message.
#[derive(Clone, Debug, Default)]
pub struct SharedRules(Arc<RwLock<Arc<Rules>>>);

impl SharedRules {
    /// Wraps initial rules.
    pub fn new(rules: Rules) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(rules))))
    }

    /// The current rules.
    pub fn current(&self) -> Arc<Rules> {
        self.0.read().clone()
    }

    /// Replaces the rules; live sessions keep running and see the new rules on their next message.
    pub fn replace(&self, rules: Rules) {
        *self.0.write() = Arc::new(rules);
    }
}
