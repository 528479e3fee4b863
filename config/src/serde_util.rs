//! Deserializers turning config numbers and strings into typed values.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, de};

/// Longest duration any key accepts: 100 years. Every duration is added to an `Instant` or
/// converted to a `chrono` delta and added to the wall clock somewhere (deadlines, timers,
/// key overlaps); far beyond this those additions overflow and panic, so `config check`
/// refuses them here, once for every duration key.
pub(crate) const MAX_DURATION_SECS: u64 = 36_525 * 24 * 3600;

fn bounded<E: de::Error>(d: Duration, unit: &str, max_in_unit: u64) -> Result<Duration, E> {
    if d.as_secs() > MAX_DURATION_SECS {
        Err(E::custom(format!(
            "must be at most {max_in_unit} {unit} (100 years)"
        )))
    } else {
        Ok(d)
    }
}

fn from_millis<E: de::Error>(v: u64) -> Result<Duration, E> {
    bounded(Duration::from_millis(v), "ms", MAX_DURATION_SECS * 1000)
}

fn from_secs<E: de::Error>(v: u64) -> Result<Duration, E> {
    bounded(Duration::from_secs(v), "seconds", MAX_DURATION_SECS)
}

/// Whole milliseconds as a [`Duration`], at most [`MAX_DURATION_SECS`].
pub(crate) mod millis {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        from_millis(u64::deserialize(d)?)
    }
}

/// Whole seconds as a [`Duration`], at most [`MAX_DURATION_SECS`].
pub(crate) mod secs {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        from_secs(u64::deserialize(d)?)
    }
}

/// Optional whole milliseconds, at most [`MAX_DURATION_SECS`].
pub(crate) mod opt_millis {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        from_millis(u64::deserialize(d)?).map(Some)
    }
}

/// Optional whole seconds, at most [`MAX_DURATION_SECS`].
pub(crate) mod opt_secs {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        from_secs(u64::deserialize(d)?).map(Some)
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

/// An optional socket address; the empty string means "none".
pub(crate) mod opt_socket_addr {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::net::SocketAddr>, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Ok(None);
        }
        s.trim().parse().map(Some).map_err(|_| {
            de::Error::custom(format!(
                "`{s}` is not an address like 127.0.0.1:9090 or [::1]:9090 (empty: none)"
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
