//! Token buckets per route class (seed 000: API 100/min, login 5/min).
//!
//! Never keyed by API key alone: a whole client fleet shares one key. `api` and `login` are
//! keyed by client address (trusted-proxy aware, see [`crate::http::client_ip`]; IPv6 by /64,
//! see [`client_bucket`]); `heartbeat` by
//! session token or license key, because a whole office may share one address.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tessera_actors::{LicenseKey, TokenHash};
use tessera_config::RateLimitConfig;

use crate::http::error::ApiError;

/// A route class with its own buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateClass {
    /// Authenticated API calls, per client address.
    Api,
    /// Login attempts, per client address.
    Login,
    /// Heartbeats, per session token or license key.
    Heartbeat,
    /// The session routes (start, heartbeat, end), per client address.
    Sessions,
}

impl RateClass {
    /// The `class` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Login => "login",
            Self::Heartbeat => "heartbeat",
            Self::Sessions => "sessions",
        }
    }
}

/// The keyed limiters of every class; a reload swaps them all for new full ones.
pub struct RateLimits {
    current: arc_swap::ArcSwap<Buckets>,
}

/// The limiters sized from one `[rate_limit]`.
struct Buckets {
    enabled: bool,
    clock: DefaultClock,
    api: DefaultKeyedRateLimiter<IpAddr>,
    login: DefaultKeyedRateLimiter<IpAddr>,
    sessions: DefaultKeyedRateLimiter<IpAddr>,
    // Keyed by a salted 64-bit hash: no tokens kept in memory, a fixed size per entry.
    heartbeat: DefaultKeyedRateLimiter<u64>,
    hasher: RandomState,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("enabled", &self.current.load().enabled)
            .finish_non_exhaustive()
    }
}

/// The address a client is limited by: an IPv4 address as is (also when it arrives
/// IPv4-mapped), an IPv6 address by its /64. One host usually gets a whole /64, so keying by
/// /128 would give it 2^64 buckets.
pub(crate) fn client_bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl RateLimits {
    /// Limiters sized from `[rate_limit]`.
    pub fn new(cfg: &RateLimitConfig) -> Self {
        Self {
            current: arc_swap::ArcSwap::from_pointee(Buckets::new(cfg)),
        }
    }

    /// Replaces every limiter with new ones sized from `cfg` (a config reload). Buckets
    /// start full: a client limited a moment ago may send again at once.
    pub fn reconfigure(&self, cfg: &RateLimitConfig) {
        self.current.store(std::sync::Arc::new(Buckets::new(cfg)));
    }

    /// Takes one token of the `api` class for `ip`; 429 with `Retry-After` when empty.
    pub fn check_api(&self, ip: IpAddr) -> Result<(), ApiError> {
        let b = self.current.load();
        b.outcome(RateClass::Api, &b.api, &client_bucket(ip))
    }

    /// Takes one token of the `login` class for `ip`.
    pub fn check_login(&self, ip: IpAddr) -> Result<(), ApiError> {
        let b = self.current.load();
        b.outcome(RateClass::Login, &b.login, &client_bucket(ip))
    }

    /// Takes one token of the `sessions` class for `ip`.
    pub fn check_sessions(&self, ip: IpAddr) -> Result<(), ApiError> {
        let b = self.current.load();
        b.outcome(RateClass::Sessions, &b.sessions, &client_bucket(ip))
    }

    /// Takes one token of the `heartbeat` class for a session. Keyed by the canonical token
    /// hash, never the token as sent: `ABC…`, `abc…` and `{abc…}` are one session and share
    /// one bucket.
    pub fn check_heartbeat(&self, token: &TokenHash) -> Result<(), ApiError> {
        let b = self.current.load();
        let hashed = b.hasher.hash_one(token);
        b.outcome(RateClass::Heartbeat, &b.heartbeat, &hashed)
    }

    /// Takes one token of the `heartbeat` class for a session start on `key` (normalized,
    /// so spellings of one key share the bucket).
    pub fn check_session_start(&self, key: &LicenseKey) -> Result<(), ApiError> {
        let b = self.current.load();
        let hashed = b.hasher.hash_one(key.as_str());
        b.outcome(RateClass::Heartbeat, &b.heartbeat, &hashed)
    }

    /// Drops buckets that are full again and frees their memory; run periodically.
    pub fn housekeep(&self) {
        let b = self.current.load();
        for l in [&b.api, &b.login, &b.sessions] {
            l.retain_recent();
            l.shrink_to_fit();
        }
        b.heartbeat.retain_recent();
        b.heartbeat.shrink_to_fit();
    }
}

impl Buckets {
    fn new(cfg: &RateLimitConfig) -> Self {
        Self {
            enabled: cfg.enabled,
            clock: DefaultClock::default(),
            api: RateLimiter::dashmap(per_minute(cfg.api_per_minute)),
            login: RateLimiter::dashmap(per_minute(cfg.login_per_minute)),
            sessions: RateLimiter::dashmap(per_minute(cfg.sessions_per_minute)),
            heartbeat: RateLimiter::dashmap(per_minute(cfg.heartbeat_per_minute)),
            hasher: RandomState::new(),
        }
    }

    fn outcome<K>(
        &self,
        class: RateClass,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
    ) -> Result<(), ApiError>
    where
        K: std::hash::Hash + Eq + Clone,
    {
        if !self.enabled {
            return Ok(());
        }
        limiter.check_key(key).map_err(|not_until| {
            metrics::counter!("tessera_rate_limited_total", "class" => class.as_str()).increment(1);
            let wait = not_until.wait_time_from(self.clock.now());
            // Round up: retrying after the advertised seconds must succeed.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::rate_limited(secs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::ErrorCode;

    #[test]
    fn bucket_empties_then_429_with_retry_after() {
        let rl = RateLimits::new(&RateLimitConfig {
            heartbeat_per_minute: 2,
            ..RateLimitConfig::default()
        });
        let (a, b) = (TokenHash::of("tok-a"), TokenHash::of("tok-b"));
        assert!(rl.check_heartbeat(&a).is_ok());
        assert!(rl.check_heartbeat(&a).is_ok());
        match rl.check_heartbeat(&a) {
            Err(ApiError::RateLimited { retry_after_secs }) => {
                assert!((1..=30).contains(&retry_after_secs), "{retry_after_secs}");
            }
            other => panic!("expected 429, got {other:?}"),
        }
        // Another session has its own bucket.
        assert!(rl.check_heartbeat(&b).is_ok());
        assert_eq!(
            rl.check_heartbeat(&a).err().map(|e| e.code()),
            Some(ErrorCode::RateLimited)
        );
        rl.housekeep();
    }

    #[test]
    fn reconfigure_swaps_every_class_for_new_limits() {
        let rl = RateLimits::new(&RateLimitConfig {
            login_per_minute: 1,
            ..RateLimitConfig::default()
        });
        let ip: IpAddr = [192, 0, 2, 1].into();
        assert!(rl.check_login(ip).is_ok());
        assert!(rl.check_login(ip).is_err());
        rl.reconfigure(&RateLimitConfig {
            login_per_minute: 3,
            ..RateLimitConfig::default()
        });
        for _ in 0..3 {
            assert!(rl.check_login(ip).is_ok(), "new buckets start full");
        }
        assert!(rl.check_login(ip).is_err());
        rl.reconfigure(&RateLimitConfig {
            enabled: false,
            ..RateLimitConfig::default()
        });
        assert!(rl.check_login(ip).is_ok(), "limits switched off");
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_and_mapped_ipv4_is_ipv4() {
        let rl = RateLimits::new(&RateLimitConfig {
            api_per_minute: 1,
            ..RateLimitConfig::default()
        });
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap_or_else(|_| unreachable!());
        let same_64: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:fffe"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap_or_else(|_| unreachable!());
        assert!(rl.check_api(a).is_ok());
        assert!(
            rl.check_api(same_64).is_err(),
            "same /64 must share the bucket"
        );
        assert!(rl.check_api(other_64).is_ok());
        let v4 = IpAddr::from([192, 0, 2, 7]);
        let mapped: IpAddr = "::ffff:192.0.2.7"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert!(rl.check_api(v4).is_ok());
        assert!(
            rl.check_api(mapped).is_err(),
            "an IPv4-mapped address is that IPv4"
        );
        // IPv4 stays per address.
        assert!(rl.check_api(IpAddr::from([192, 0, 2, 8])).is_ok());
    }

    #[test]
    fn sessions_class_is_per_address() {
        let rl = RateLimits::new(&RateLimitConfig {
            sessions_per_minute: 2,
            ..RateLimitConfig::default()
        });
        let ip = IpAddr::from([10, 0, 0, 1]);
        assert!(rl.check_sessions(ip).is_ok());
        assert!(rl.check_sessions(ip).is_ok());
        assert!(rl.check_sessions(ip).is_err());
        assert!(rl.check_sessions(IpAddr::from([10, 0, 0, 2])).is_ok());
    }

    #[test]
    fn disabled_never_limits() {
        let rl = RateLimits::new(&RateLimitConfig {
            enabled: false,
            login_per_minute: 1,
            ..RateLimitConfig::default()
        });
        let ip = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..10 {
            assert!(rl.check_login(ip).is_ok());
        }
    }
}
