//! `tessera.toml` → the rules the license actors enforce. The merge of plan, product and
//! license overrides happens once, in `tessera_actors::Rules`; this only translates types.

use std::collections::BTreeMap;
use tessera_actors::{LimitOverrides, MatchStrategy, ProductRules, Rules, SessionLimitStrategy};

use tessera_config::{
    Config, FingerprintMatch, PlanConfig, ProductConfig, SessionLimitStrategy as CfgStrategy,
};

fn strategy(s: CfgStrategy) -> SessionLimitStrategy {
    match s {
        CfgStrategy::Reject => SessionLimitStrategy::Reject,
        CfgStrategy::ReplaceSameDevice => SessionLimitStrategy::ReplaceSameDevice,
        CfgStrategy::EvictOldest => SessionLimitStrategy::EvictOldest,
    }
}

/// The rules the actors enforce, from configuration alone (before the catalog is open).
pub fn rules_from_config(cfg: &Config) -> Rules {
    rules_from(cfg, &cfg.plans, &cfg.products)
}

/// The rules the actors enforce: defaults from `cfg`, plans and products as the catalog holds
/// them now (the config's, changed at run time).
pub fn rules_from(
    cfg: &Config,
    plans: &BTreeMap<String, PlanConfig>,
    products: &BTreeMap<String, ProductConfig>,
) -> Rules {
    let l = &cfg.licenses;
    Rules {
        defaults: tessera_actors::Limits {
            max_devices: l.max_devices,
            max_activations: l.max_activations,
            max_sessions: l.max_sessions,
            on_session_limit: strategy(l.on_session_limit),
        },
        plans: plans
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
        products: products
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
