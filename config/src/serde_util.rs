//! Deserializers turning config numbers and strings into typed values.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, de};

/// Whole milliseconds as a [`Duration`].
pub(crate) mod millis {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Whole seconds as a [`Duration`].
pub(crate) mod secs {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Optional whole milliseconds.
pub(crate) mod opt_millis {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        u64::deserialize(d).map(|v| Some(Duration::from_millis(v)))
    }
}

/// Optional whole seconds.
pub(crate) mod opt_secs {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        u64::deserialize(d).map(|v| Some(Duration::from_secs(v)))
    }
}

/// A path where the empty string means "none".
pub(crate) mod opt_path {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<PathBuf>, D::Error> {
        let s = String::deserialize(d)?;
        Ok((!s.is_empty()).then(|| PathBuf::from(s)))
    }
}

/// A socket address with a message that shows the expected form.
pub(crate) mod socket_addr {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<std::net::SocketAddr, D::Error> {
        let s = String::deserialize(d)?;
        s.trim().parse().map_err(|_| {
            de::Error::custom(format!(
                "`{s}` is not an address like 127.0.0.1:8080 or [::1]:8080"
            ))
        })
    }
}

/// A list of CIDRs; a plain address means a single-host network.
pub(crate) mod nets {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        let raw = Vec::<String>::deserialize(d)?;
        raw.iter()
            .map(|s| {
                let s = s.trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        de::Error::custom(format!(
                            "`{s}` is not a CIDR (like 10.0.0.0/8) or an IP address"
                        ))
                    })
            })
            .collect()
    }
}
