//! machine-rules: refuse activations and session starts from machines by name, e.g. every
//! virtual machine whose name says so.
//!
//! ```toml
//! [plugins.config]
//! deny_machine_names = ["vm", "sandbox"]   # substrings, case-insensitive
//! ```
//!
//! The machine name is what the client sent: `machine_name` of `POST /api/license/activate`,
//! the fingerprint's `host_name` (else `name`) of seed 003's `register_instance`; a session
//! start carries the name its device was activated with. A match is refused with 403
//! `MACHINE_NOT_ALLOWED`; an event without a machine name is allowed.

use tessera_plugin_sdk::prelude::*;

/// The plugin's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Substrings (case-insensitive) of machine names to refuse.
    pub deny_machine_names: Vec<String>,
}

/// The plugin.
pub struct MachineRules {
    deny: Vec<String>,
}

impl MachineRules {
    fn check(&self, machine_name: Option<&str>) -> Decision {
        let Some(name) = machine_name else {
            return Decision::Allow;
        };
        let lower = name.to_lowercase();
        match self.deny.iter().find(|d| lower.contains(d.as_str())) {
            Some(d) => Decision::deny(
                "MACHINE_NOT_ALLOWED",
                format!("machines named like `{d}` may not use this license"),
            ),
            None => Decision::Allow,
        }
    }
}

impl Plugin for MachineRules {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        if config.deny_machine_names.iter().any(|d| d.trim().is_empty()) {
            return Err("deny_machine_names: entries must not be empty".into());
        }
        Ok(MachineRules {
            deny: config
                .deny_machine_names
                .iter()
                .map(|d| d.trim().to_lowercase())
                .collect(),
        })
    }

    fn on_activate(&self, ev: ActivateEvent) -> Decision {
        if ev.outcome != AttemptOutcome::Ok {
            return Decision::Allow;
        }
        self.check(ev.machine_name.as_deref())
    }

    fn on_session_start(&self, ev: SessionStartEvent) -> Decision {
        self.check(ev.machine_name.as_deref())
    }
}

export_plugin!(MachineRules, [on_activate, on_session_start]);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plugin() -> MachineRules {
        MachineRules::new(Config {
            deny_machine_names: vec!["VM".into()],
        })
        .unwrap()
    }

    fn activation(name: Option<&str>) -> ActivateEvent {
        ActivateEvent {
            license_key: "K".into(),
            machine_name: name.map(str::to_owned),
            ..ActivateEvent::default()
        }
    }

    #[test]
    fn machine_names_containing_vm_are_denied_whatever_their_case() {
        let p = plugin();
        assert!(!p.on_activate(activation(Some("build-vm-07"))).is_allow());
        assert!(!p.on_activate(activation(Some("WINVM"))).is_allow());
        assert!(p.on_activate(activation(Some("laptop"))).is_allow());
        assert!(p.on_activate(activation(None)).is_allow());
    }

    #[test]
    fn empty_entries_are_refused() {
        let err = MachineRules::new(Config {
            deny_machine_names: vec![" ".into()],
        });
        assert!(err.is_err());
    }
}
