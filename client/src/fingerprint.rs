//! Device identification: seed 003's hardware components, gathered the same way by every
//! client, and the seed-000 `hardware_hash` derived from them exactly as the server derives
//! a device id from a fingerprint.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Hardware components of this machine, as seed 003 names them. Every component is
/// optional; the server judges two fingerprints to be one device by
/// `licenses.fingerprint_match` (by default more than half of the shared components agree).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// CPU identifier: vendor, family, model and stepping (x86; `None` elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_id: Option<String>,
    /// Stands in for the mainboard serial, which needs root to read: a SHA-256 of the
    /// operating system's machine id (`machine-uid`: `/etc/machine-id`, the Windows
    /// `MachineGuid`, the macOS platform UUID), so the id itself never leaves the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mb_serial: Option<String>,
    /// MAC addresses of physical interfaces (globally administered, unicast), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mac_addresses: Vec<String>,
    /// A SHA-256 of the system volume's filesystem UUID (Unix; `None` elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_hash: Option<String>,
    /// The host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
}

fn present(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_ascii_lowercase)
}

impl Fingerprint {
    /// Whether no component is present.
    pub fn is_empty(&self) -> bool {
        [
            &self.cpu_id,
            &self.mb_serial,
            &self.volume_hash,
            &self.host_name,
        ]
        .iter()
        .all(|c| present(c).is_none())
            && self.mac_addresses.iter().all(|m| m.trim().is_empty())
    }

    /// The device id for seed 000's `hardware_hash`: `fp:` + SHA-256 hex over the
    /// normalised components, the same value the server uses for a seed-003 instance with
    /// these components, so both APIs see one device.
    pub fn hardware_hash(&self) -> String {
        let mut h = Sha256::new();
        for c in [
            &self.cpu_id,
            &self.mb_serial,
            &self.volume_hash,
            &self.host_name,
        ] {
            h.update(present(c).unwrap_or_default().as_bytes());
            h.update([0u8]);
        }
        let mut macs: Vec<String> = self
            .mac_addresses
            .iter()
            .map(|m| m.trim().to_ascii_lowercase().replace('-', ":"))
            .filter(|m| !m.is_empty())
            .collect();
        macs.sort();
        macs.dedup();
        for m in macs {
            h.update(m.as_bytes());
            h.update([1u8]);
        }
        format!("fp:{}", hex::encode(h.finalize()))
    }
}

fn short_hash(domain: &str, value: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    h.update([0u8]);
    h.update(value);
    hex::encode(&h.finalize()[..16])
}

/// This machine's [`Fingerprint`]. Components that cannot be read are `None`; nothing here
/// needs privileges.
pub fn fingerprint() -> Fingerprint {
    Fingerprint {
        cpu_id: cpu_id(),
        mb_serial: machine_uid::get()
            .ok()
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty())
            .map(|id| short_hash("tessera-machine-id", id.as_bytes())),
        mac_addresses: mac_addresses(),
        volume_hash: volume_id().map(|v| short_hash("tessera-volume", v.as_bytes())),
        host_name: gethostname::gethostname()
            .into_string()
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty()),
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn cpu_id() -> Option<String> {
    let cpuid = raw_cpuid::CpuId::new();
    let vendor = cpuid.get_vendor_info()?;
    let f = cpuid.get_feature_info()?;
    Some(format!(
        "{}-{:02x}-{:02x}-{:x}",
        vendor.as_str(),
        f.family_id(),
        f.model_id(),
        f.stepping_id()
    ))
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
fn cpu_id() -> Option<String> {
    None
}

fn mac_addresses() -> Vec<String> {
    let Ok(iter) = mac_address::MacAddressIterator::new() else {
        return Vec::new();
    };
    let mut macs: Vec<String> = iter
        .map(|m| m.bytes())
        // Locally administered (bit 1) addresses are virtual interfaces (bridges, VPNs,
        // containers) that come and go; multicast (bit 0) and zero are no hardware.
        .filter(|b| b[0] & 0b11 == 0 && b.iter().any(|x| *x != 0))
        .map(|b| {
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .collect();
    macs.sort();
    macs.dedup();
    macs.truncate(8);
    macs
}

/// The filesystem UUID of the volume holding `/` (from `/dev/disk/by-uuid`), else its
/// device number.
#[cfg(unix)]
fn volume_id() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/").ok()?.dev();
    if let Ok(dir) = std::fs::read_dir("/dev/disk/by-uuid") {
        for entry in dir.flatten() {
            if std::fs::metadata(entry.path()).is_ok_and(|m| m.rdev() == root) {
                return Some(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    Some(format!("dev:{root}"))
}

#[cfg(not(unix))]
fn volume_id() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_has_a_stable_non_empty_fingerprint() {
        let a = fingerprint();
        assert!(!a.is_empty(), "{a:?}");
        assert_eq!(a, fingerprint());
        assert_eq!(a.hardware_hash(), fingerprint().hardware_hash());
        assert!(a.hardware_hash().starts_with("fp:") && a.hardware_hash().len() == 67);
    }

    /// The value the server's `Fingerprint::device_hash` computes for these components
    /// (actors/src/fingerprint.rs): case and MAC order do not matter.
    #[test]
    fn hardware_hash_normalises_like_the_server() {
        let fp = |cpu: &str, macs: &[&str], host: &str| Fingerprint {
            cpu_id: Some(cpu.into()),
            mb_serial: Some("mb".into()),
            mac_addresses: macs.iter().map(|m| m.to_string()).collect(),
            volume_hash: Some("v".into()),
            host_name: Some(host.into()),
        };
        let a = fp("CPU", &["AA-BB", "cc:dd"], "h");
        let b = fp("cpu", &["cc:dd", "aa:bb"], "H");
        assert_eq!(a.hardware_hash(), b.hardware_hash());
        assert_ne!(
            a.hardware_hash(),
            fp("cpu2", &["aa:bb"], "h").hardware_hash()
        );
    }
}
