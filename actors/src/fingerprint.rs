//! Hardware fingerprints (seed 003) and how two of them are judged to be the same device.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How many fingerprint components must agree for two fingerprints to be one device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchStrategy {
    /// Every component both sides have must agree.
    MatchAll,
    /// More than half of the components both sides have must agree, so one
    /// replaced part (a network card) does not make a new device.
    #[default]
    MatchMost,
    /// One agreeing component is enough.
    MatchAny,
}

/// Hardware components a client reports. Empty strings count as absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// CPU identifier.
    pub cpu_id: Option<String>,
    /// Mainboard serial.
    pub mb_serial: Option<String>,
    /// MAC addresses (any overlap counts as agreement).
    pub mac_addresses: Vec<String>,
    /// System volume hash.
    pub volume_hash: Option<String>,
    /// Host name.
    pub host_name: Option<String>,
}

fn present(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_ascii_lowercase)
}

impl Fingerprint {
    fn scalar_components(&self) -> [Option<String>; 4] {
        [
            present(&self.cpu_id),
            present(&self.mb_serial),
            present(&self.volume_hash),
            present(&self.host_name),
        ]
    }

    fn macs(&self) -> Vec<String> {
        let mut macs: Vec<String> = self
            .mac_addresses
            .iter()
            .map(|m| m.trim().to_ascii_lowercase().replace('-', ":"))
            .filter(|m| !m.is_empty())
            .collect();
        macs.sort();
        macs.dedup();
        macs
    }

    /// Whether no component is present.
    pub fn is_empty(&self) -> bool {
        self.scalar_components().iter().all(Option::is_none) && self.macs().is_empty()
    }

    /// A stable device id derived from the components (SHA-256 hex, prefixed `fp:`).
    pub fn device_hash(&self) -> String {
        let mut h = Sha256::new();
        for c in self.scalar_components() {
            h.update(c.unwrap_or_default().as_bytes());
            h.update([0u8]);
        }
        for m in self.macs() {
            h.update(m.as_bytes());
            h.update([1u8]);
        }
        format!("fp:{}", hex::encode(h.finalize()))
    }

    /// Whether `self` and `other` describe the same device under `strategy`.
    /// Only components both sides report are compared; with none in common they never match.
    pub fn matches(&self, other: &Fingerprint, strategy: MatchStrategy) -> bool {
        let mut compared = 0u32;
        let mut agreed = 0u32;
        for (a, b) in self
            .scalar_components()
            .into_iter()
            .zip(other.scalar_components())
        {
            if let (Some(a), Some(b)) = (a, b) {
                compared += 1;
                agreed += u32::from(a == b);
            }
        }
        let (ma, mb) = (self.macs(), other.macs());
        if !ma.is_empty() && !mb.is_empty() {
            compared += 1;
            agreed += u32::from(ma.iter().any(|m| mb.contains(m)));
        }
        if compared == 0 {
            return false;
        }
        match strategy {
            MatchStrategy::MatchAll => agreed == compared,
            MatchStrategy::MatchMost => agreed * 2 > compared,
            MatchStrategy::MatchAny => agreed > 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(cpu: &str, mb: &str, macs: &[&str], vol: &str, host: &str) -> Fingerprint {
        Fingerprint {
            cpu_id: Some(cpu.into()),
            mb_serial: Some(mb.into()),
            mac_addresses: macs.iter().map(|m| m.to_string()).collect(),
            volume_hash: Some(vol.into()),
            host_name: Some(host.into()),
        }
    }

    #[test]
    fn replaced_network_card_is_same_device_under_match_most() {
        let a = fp("cpu1", "mb1", &["aa:bb"], "vol1", "host");
        let b = fp("cpu1", "mb1", &["cc:dd"], "vol1", "host");
        assert!(a.matches(&b, MatchStrategy::MatchMost));
        assert!(!a.matches(&b, MatchStrategy::MatchAll));
        assert!(a.matches(&b, MatchStrategy::MatchAny));
    }

    #[test]
    fn different_machine_does_not_match_most() {
        let a = fp("cpu1", "mb1", &["aa:bb"], "vol1", "host");
        let b = fp("cpu2", "mb2", &["aa:bb"], "vol2", "host");
        assert!(!a.matches(&b, MatchStrategy::MatchMost));
        assert!(a.matches(&b, MatchStrategy::MatchAny));
    }

    #[test]
    fn nothing_in_common_never_matches() {
        let a = Fingerprint {
            cpu_id: Some("x".into()),
            ..Fingerprint::default()
        };
        let b = Fingerprint {
            host_name: Some("x".into()),
            ..Fingerprint::default()
        };
        assert!(!a.matches(&b, MatchStrategy::MatchAny));
        assert!(Fingerprint::default().is_empty());
    }

    #[test]
    fn device_hash_ignores_case_and_mac_order() {
        let a = fp("CPU", "mb", &["AA-BB", "cc:dd"], "v", "h");
        let b = fp("cpu", "MB", &["cc:dd", "aa:bb"], "v", "H");
        assert_eq!(a.device_hash(), b.device_hash());
    }
}
