//! ban-threshold: N warnings on a license within a sliding window ban it, for a while or
//! for good; thresholds per plan. The warning history lives in durable KV, so a restart
//! does not forget it.
//!
//! ```toml
//! [[plugins]]
//! name = "ban-threshold"
//! path = "plugins/examples/dist/ban-threshold.wasm"
//! [plugins.config]
//! warnings = 3          # warnings within the window that ban (0 = never ban)
//! window_secs = 86400   # sliding window
//! ban_secs = 0          # ban length; 0 = for good
//! [plugins.config.plans.trial]
//! warnings = 1
//! ban_secs = 604800
//! ```

use std::collections::HashMap;

use tessera_plugin_sdk::prelude::*;

/// Threshold overrides of one plan (unset fields fall back to the top level).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlanRule {
    /// Warnings within the window that ban.
    pub warnings: Option<u32>,
    /// Window length, seconds.
    pub window_secs: Option<u64>,
    /// Ban length, seconds (0 = for good).
    pub ban_secs: Option<u64>,
}

/// The plugin's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Warnings within the window that ban (0 = never).
    pub warnings: u32,
    /// Window length, seconds.
    pub window_secs: u64,
    /// Ban length, seconds (0 = for good).
    pub ban_secs: u64,
    /// Per-plan overrides.
    pub plans: HashMap<String, PlanRule>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            warnings: 3,
            window_secs: 86_400,
            ban_secs: 0,
            plans: HashMap::new(),
        }
    }
}

/// The effective rule for one license.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Warnings within the window that ban (0 = never).
    pub warnings: u32,
    /// Window, milliseconds.
    pub window_ms: i64,
    /// Ban length in seconds; `None` = for good.
    pub ban_secs: Option<u64>,
}

impl Config {
    /// The rule for `plan`.
    #[must_use]
    pub fn rule(&self, plan: Option<&str>) -> Rule {
        let o = plan
            .and_then(|p| self.plans.get(p))
            .cloned()
            .unwrap_or_default();
        let window_secs = o.window_secs.unwrap_or(self.window_secs);
        let ban_secs = o.ban_secs.unwrap_or(self.ban_secs);
        Rule {
            warnings: o.warnings.unwrap_or(self.warnings),
            window_ms: i64::try_from(window_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            ban_secs: (ban_secs > 0).then_some(ban_secs),
        }
    }
}

/// Adds a warning at `now_ms` to `history` (timestamps, oldest first), dropping those
/// outside the window. Returns the new history and whether the rule's threshold is
/// reached.
#[must_use]
pub fn record_warning(history: &[i64], now_ms: i64, rule: &Rule) -> (Vec<i64>, bool) {
    let since = now_ms.saturating_sub(rule.window_ms);
    let mut kept: Vec<i64> = history.iter().copied().filter(|t| *t > since).collect();
    kept.push(now_ms);
    let keep = usize::try_from(rule.warnings.max(1)).unwrap_or(usize::MAX);
    if kept.len() > keep {
        kept.drain(..kept.len() - keep);
    }
    let reached = rule.warnings > 0 && kept.len() >= keep;
    (kept, reached)
}

fn decode(bytes: &[u8]) -> Vec<i64> {
    bytes
        .chunks_exact(8)
        .filter_map(|c| <[u8; 8]>::try_from(c).ok())
        .map(i64::from_le_bytes)
        .collect()
}

fn encode(history: &[i64]) -> Vec<u8> {
    history.iter().flat_map(|t| t.to_le_bytes()).collect()
}

fn describe(secs: i64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s => format!("{s} s"),
    }
}

/// The plugin.
#[derive(Debug)]
pub struct BanThreshold {
    config: Config,
}

impl Plugin for BanThreshold {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        if config.window_secs == 0 {
            return Err("window_secs must be at least 1".into());
        }
        if let Some((plan, _)) = config.plans.iter().find(|(_, r)| r.window_secs == Some(0)) {
            return Err(format!("plans.{plan}.window_secs must be at least 1"));
        }
        Ok(BanThreshold { config })
    }

    fn on_warning(&self, ev: WarningEvent) -> Decision {
        let rule = self.config.rule(ev.plan.as_deref());
        if rule.warnings == 0 {
            return Decision::Allow;
        }
        let key = format!("warnings:{}", ev.license_key);
        let history = kv::durable::get(&key)
            .map(|b| decode(&b))
            .unwrap_or_default();
        let now = now_ms();
        let (history, reached) = record_warning(&history, now, &rule);
        if reached {
            // The ban is the server's to keep; start counting afresh once it ends.
            kv::durable::delete(&key);
            tessera_plugin_sdk::metric_incr("bans", 1);
            let reason = format!(
                "{} warnings within {} (last: {})",
                rule.warnings,
                describe(rule.window_ms / 1000),
                ev.note
            );
            return Decision::ban(reason, rule.ban_secs);
        }
        let ttl = u64::try_from(rule.window_ms).unwrap_or(u64::MAX);
        if kv::durable::set(&key, encode(&history), ttl).is_err() {
            log(
                tessera_plugin_sdk::Level::Warn,
                "warning history not stored: kv refused the write",
            );
        }
        Decision::Allow
    }
}

export_plugin!(BanThreshold, [on_warning]);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tessera_plugin_sdk::testing;

    fn rule(warnings: u32, window_secs: i64, ban: Option<u64>) -> Rule {
        Rule {
            warnings,
            window_ms: window_secs * 1000,
            ban_secs: ban,
        }
    }

    #[test]
    fn threshold_counts_only_warnings_inside_the_sliding_window() {
        let r = rule(3, 100, None);
        let (h, hit) = record_warning(&[], 0, &r);
        assert!(!hit);
        let (h, hit) = record_warning(&h, 50_000, &r);
        assert!(!hit);
        // the first warning (t=0) left the window at t=100 s
        let (h, hit) = record_warning(&h, 120_000, &r);
        assert!(!hit);
        assert_eq!(h, vec![50_000, 120_000]);
        let (_, hit) = record_warning(&h, 130_000, &r);
        assert!(hit);
    }

    #[test]
    fn plan_overrides_fall_back_to_defaults() {
        let mut c = Config::default();
        c.plans.insert(
            "trial".into(),
            PlanRule {
                warnings: Some(1),
                ban_secs: Some(60),
                ..PlanRule::default()
            },
        );
        assert_eq!(c.rule(Some("trial")), rule(1, 86_400, Some(60)));
        assert_eq!(c.rule(Some("pro")), rule(3, 86_400, None));
        assert_eq!(c.rule(None), rule(3, 86_400, None));
    }

    fn warning(plan: &str) -> WarningEvent {
        WarningEvent {
            ts_ms: 0,
            license_key: "ABCD-EFGH-JKMN-PQRS".into(),
            plan: Some(plan.into()),
            note: "license sharing violation".into(),
            ..WarningEvent::default()
        }
    }

    #[test]
    fn third_warning_bans_for_good_and_resets_the_history() {
        testing::reset();
        let p = BanThreshold::new(Config::default()).unwrap();
        assert!(p.on_warning(warning("pro")).is_allow());
        testing::advance_ms(1000);
        assert!(p.on_warning(warning("pro")).is_allow());
        let stored = testing::with(|s| {
            s.kv.get(b"warnings:ABCD-EFGH-JKMN-PQRS".as_slice())
                .cloned()
        })
        .unwrap();
        assert_eq!(stored.0.len(), 16, "two timestamps");
        assert!(stored.2, "kept in durable kv");
        testing::advance_ms(1000);
        match p.on_warning(warning("pro")) {
            Decision::Ban {
                reason,
                duration_secs,
            } => {
                assert_eq!(duration_secs, None);
                assert!(reason.starts_with("3 warnings within 1 d"), "{reason}");
            }
            other => panic!("expected a ban, got {other:?}"),
        }
        assert!(
            kv::durable::get("warnings:ABCD-EFGH-JKMN-PQRS").is_none(),
            "reset after the ban"
        );
    }

    #[test]
    fn per_plan_threshold_bans_for_a_duration() {
        testing::reset();
        let mut c = Config::default();
        c.plans.insert(
            "trial".into(),
            PlanRule {
                warnings: Some(1),
                ban_secs: Some(3600),
                ..PlanRule::default()
            },
        );
        let p = BanThreshold::new(c).unwrap();
        assert!(matches!(
            p.on_warning(warning("trial")),
            Decision::Ban {
                duration_secs: Some(3600),
                ..
            }
        ));
    }

    #[test]
    fn zero_warnings_never_bans_and_zero_window_is_rejected() {
        testing::reset();
        let p = BanThreshold::new(Config {
            warnings: 0,
            ..Config::default()
        })
        .unwrap();
        for _ in 0..10 {
            assert!(p.on_warning(warning("pro")).is_allow());
        }
        assert!(
            BanThreshold::new(Config {
                window_secs: 0,
                ..Config::default()
            })
            .is_err()
        );
    }
}
