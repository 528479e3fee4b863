//! What a chain of plugins decided about one event.

use std::sync::Arc;

use tessera_plugin_abi::Decision;

use crate::error::FailureKind;
use crate::spec::FailMode;

/// Error code of the deny a fail-closed plugin's failure turns into.
pub const PLUGIN_FAILURE_CODE: &str = "PLUGIN_FAILURE";
/// HTTP status of a `PLUGIN_FAILURE` deny (a dependency of the request is down).
pub const PLUGIN_FAILURE_STATUS: u16 = 503;
/// Error code of the deny the host makes when the chain's risk reaches the threshold.
pub const RISK_THRESHOLD_CODE: &str = "RISK_THRESHOLD";

/// A failed plugin call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginFailure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// Details for logs and events (trap message, decode error); never shown to clients.
    pub message: String,
    /// The fail mode that was applied.
    pub fail_mode: FailMode,
}

/// One plugin's non-allow decision (or failure) about an event: the runtime records an
/// event for each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginReport {
    /// The plugin's name.
    pub plugin: Arc<str>,
    /// The decision as applied: the plugin's own, or for a failure `allow` (fail open) or
    /// the `PLUGIN_FAILURE` deny (fail closed).
    pub decision: Decision,
    /// Set when the call failed.
    pub failure: Option<PluginFailure>,
}

/// What the chain decided about one event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The verdict to apply: `allow`, `deny` or `ban` (never `flag` or `risk`): the most
    /// severe decision of the chain (the first plugin in order wins a tie), or the host's
    /// `RISK_THRESHOLD` deny when the chain allowed but its risk reached the threshold.
    pub decision: Decision,
    /// The plugin whose decision `decision` is; `None` for allow and for a risk deny.
    pub decided_by: Option<Arc<str>>,
    /// Sum of the chain's risk deltas (saturating).
    pub risk: i64,
    /// Every non-allow decision and every failure, in chain order. Empty (no allocation)
    /// when all plugins allowed.
    pub reports: Vec<PluginReport>,
}

impl Outcome {
    /// The outcome of a hook nobody listens to.
    #[must_use]
    pub fn allow() -> Outcome {
        Outcome::default()
    }

    /// Whether the verdict is `allow`.
    #[must_use]
    pub fn is_allow(&self) -> bool {
        self.decision.is_allow()
    }

    /// The tags of all `flag` decisions.
    pub fn flags(&self) -> impl Iterator<Item = &str> {
        self.reports.iter().filter_map(|r| match &r.decision {
            Decision::Flag { tag } => Some(tag.as_str()),
            _ => None,
        })
    }

    /// The failures, with the plugin that failed.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &PluginFailure)> {
        self.reports
            .iter()
            .filter_map(|r| r.failure.as_ref().map(|f| (&*r.plugin, f)))
    }

    pub(crate) fn absorb(
        &mut self,
        plugin: &Arc<str>,
        decision: Decision,
        failure: Option<PluginFailure>,
    ) {
        if let Decision::Risk { delta } = decision {
            self.risk = self.risk.saturating_add(delta);
        }
        if matches!(decision, Decision::Deny { .. } | Decision::Ban { .. })
            && decision.severity() > self.decision.severity()
        {
            self.decision = decision.clone();
            self.decided_by = Some(Arc::clone(plugin));
        }
        if !decision.is_allow() || failure.is_some() {
            self.reports.push(PluginReport {
                plugin: Arc::clone(plugin),
                decision,
                failure,
            });
        }
    }

    pub(crate) fn finish(&mut self, risk_threshold: i64) {
        if self.decision.is_allow() && risk_threshold > 0 && self.risk >= risk_threshold {
            self.decision = Decision::Deny {
                code: RISK_THRESHOLD_CODE.into(),
                message: "request refused by policy".into(),
                status: None,
            };
        }
    }
}

/// The deny a fail-closed failure turns into.
pub(crate) fn plugin_failure_deny() -> Decision {
    Decision::Deny {
        code: PLUGIN_FAILURE_CODE.into(),
        message: "a policy check could not be completed; try again later".into(),
        status: Some(PLUGIN_FAILURE_STATUS),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn most_severe_wins_and_first_wins_ties() {
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        let mut o = Outcome::allow();
        o.absorb(&a, Decision::deny("FIRST", ""), None);
        o.absorb(&b, Decision::deny("SECOND", ""), None);
        o.absorb(&c, Decision::flag("x"), None);
        o.finish(100);
        assert_eq!(o.decision, Decision::deny("FIRST", ""));
        assert_eq!(o.decided_by.as_deref(), Some("a"));
        o.absorb(&c, Decision::ban("r", None), None);
        assert_eq!(o.decided_by.as_deref(), Some("c"));
        assert_eq!(o.reports.len(), 4);
        assert_eq!(o.flags().collect::<Vec<_>>(), vec!["x"]);
    }

    #[test]
    fn risk_adds_up_to_a_deny() {
        let p: Arc<str> = "p".into();
        let mut o = Outcome::allow();
        o.absorb(&p, Decision::risk(60), None);
        o.absorb(&p, Decision::risk(40), None);
        o.finish(100);
        assert_eq!(o.risk, 100);
        assert!(matches!(&o.decision, Decision::Deny { code, .. } if code == RISK_THRESHOLD_CODE));
        assert!(o.decided_by.is_none());

        let mut off = Outcome::allow();
        off.absorb(&p, Decision::risk(1000), None);
        off.finish(0);
        assert!(off.is_allow());
    }
}
