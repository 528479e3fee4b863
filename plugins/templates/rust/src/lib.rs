//! {{name}}: a Tessera policy plugin. It refuses activations and session starts from
//! machines whose name contains one of the configured substrings, e.g. virtual machines
//! named so.
//!
//! ```toml
//! [plugins.config]
//! deny_machine_names = ["vm", "sandbox"]   # substrings, case-insensitive; none: allow all
//! ```
//!
//! The machine name is what the client sent (`machine_name` of `POST /api/license/activate`;
//! a session start carries the name its device was activated with). A match gets 403
//! `MACHINE_NOT_ALLOWED`; an event without a machine name, and an activation the server
//! already refused, are allowed.
//!
//! To make it yours: change `check`, implement more hooks of the `Plugin` trait and list
//! them in `export_plugin!` at the bottom, and update `tests/` (see README.md).

use tessera_plugin_sdk::prelude::*;

/// The plugin's config: the `[plugins.config]` table of its `[[plugins]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Substrings (case-insensitive) of machine names to refuse.
    #[serde(default)]
    pub deny_machine_names: Vec<String>,
}

/// The plugin: its parsed config (state that must outlive a call goes in `kv`, not here).
pub struct Policy {
    deny: Vec<String>,
}

impl Policy {
    fn check(&self, machine_name: Option<&str>) -> Decision {
        let Some(name) = machine_name.filter(|n| !n.is_empty()) else {
            return Decision::Allow;
        };
        let name = name.to_lowercase();
        match self.deny.iter().find(|d| name.contains(d.as_str())) {
            Some(d) => Decision::Deny {
                code: "MACHINE_NOT_ALLOWED".into(),
                message: format!("machines named like `{d}` may not use this license"),
                status: Some(403),
            },
            None => Decision::Allow,
        }
    }
}

impl Plugin for Policy {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let deny: Vec<String> = config
            .deny_machine_names
            .iter()
            .map(|d| d.trim().to_lowercase())
            .collect();
        if deny.iter().any(String::is_empty) {
            return Err("deny_machine_names: entries must be non-empty strings".into());
        }
        Ok(Policy { deny })
    }

    fn on_activate(&self, ev: ActivateEvent) -> Decision {
        // An activation the server already refused is its business.
        if ev.outcome != AttemptOutcome::Ok {
            return Decision::Allow;
        }
        self.check(ev.machine_name.as_deref())
    }

    fn on_session_start(&self, ev: SessionStartEvent) -> Decision {
        self.check(ev.machine_name.as_deref())
    }
}

// Exports ABI v1 and the hooks listed; the server calls only these.
export_plugin!(Policy, [on_activate, on_session_start]);

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(deny: &[&str]) -> Policy {
        let config = Config {
            deny_machine_names: deny.iter().map(|d| d.to_string()).collect(),
        };
        Policy::new(config).unwrap()
    }

    fn activation(machine_name: Option<&str>) -> ActivateEvent {
        ActivateEvent {
            license_key: "AAAA-AAAA-AAAA-AAAA".into(),
            device_hash: "d1".into(),
            machine_name: machine_name.map(str::to_owned),
            ..ActivateEvent::default()
        }
    }

    #[test]
    fn machine_names_containing_a_configured_substring_are_denied_whatever_their_case() {
        let p = policy(&["VM"]);
        assert!(!p.on_activate(activation(Some("build-vm-07"))).is_allow());
        assert!(!p.on_activate(activation(Some("WINVM"))).is_allow());
        assert!(p.on_activate(activation(Some("laptop"))).is_allow());
        assert!(p.on_activate(activation(None)).is_allow());
    }

    #[test]
    fn refused_activations_are_left_alone() {
        let mut ev = activation(Some("build-vm-07"));
        ev.outcome = AttemptOutcome::Failed;
        assert!(policy(&["vm"]).on_activate(ev).is_allow());
    }

    #[test]
    fn session_starts_are_checked_too() {
        let ev = SessionStartEvent {
            machine_name: Some("ci-sandbox-3".into()),
            ..SessionStartEvent::default()
        };
        assert!(!policy(&["sandbox"]).on_session_start(ev).is_allow());
    }

    #[test]
    fn empty_entries_are_refused() {
        let config = Config {
            deny_machine_names: vec![" ".into()],
        };
        assert!(Policy::new(config).is_err());
    }
}
