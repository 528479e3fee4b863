//! ip-reputation: CIDR allow and deny lists, and per-address failure counting with decay.
//! Repeated failures from one address (rejected credentials, failed activations, requests
//! to routes that do not exist) block it for a while. Modes follow the security control
//! `ip_reputation_mode`: `off` (allow everything), `standard`, `strict` (lower thresholds,
//! longer blocks, and heartbeats are checked too).
//!
//! ```toml
//! [[plugins]]
//! name = "ip-reputation"
//! path = "plugins/examples/dist/ip-reputation.wasm"
//! [plugins.config]
//! mode = "standard"
//! allow = ["10.0.0.0/8"]        # never blocked, never counted
//! deny = ["203.0.113.0/24"]     # always denied (unless mode = "off")
//! [plugins.config.standard]
//! max_failures = 20
//! window_secs = 600
//! block_secs = 900
//! [plugins.config.strict]
//! max_failures = 5
//! window_secs = 600
//! block_secs = 3600
//! ```
//!
//! Decay: failures are counted in fixed buckets of `window_secs`; the score is the current
//! bucket's count plus the previous bucket's count weighted by how much of it still
//! overlaps the sliding window. IPv6 addresses are counted per /64.
//!
//! Several servers: failure counts and blocks are durable keys, so on a Redis store every
//! server adds to the same counts and sees the same blocks. Failures are rare and pay a
//! store round trip each; the per-request check reads memory first, asking the store at
//! most once per address per second ([`RECHECK_MS`]), so a block made on another server
//! applies here within a second.

use std::net::IpAddr;

use ipnet::IpNet;
use tessera_plugin_sdk::prelude::*;

/// How hard the plugin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Allow everything.
    Off,
    /// Lists and the `standard` limits.
    #[default]
    Standard,
    /// Lists, the `strict` limits, and heartbeats are checked too.
    Strict,
}

/// Limits of one mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Failure score at which an address is blocked.
    pub max_failures: u32,
    /// Decay window, seconds.
    pub window_secs: u64,
    /// Block length, seconds.
    pub block_secs: u64,
}

/// The plugin's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Mode.
    pub mode: Mode,
    /// Networks never blocked or counted.
    pub allow: Vec<String>,
    /// Networks always denied.
    pub deny: Vec<String>,
    /// Limits in `standard` mode.
    pub standard: Limits,
    /// Limits in `strict` mode.
    pub strict: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Standard,
            allow: Vec::new(),
            deny: Vec::new(),
            standard: Limits {
                max_failures: 20,
                window_secs: 600,
                block_secs: 900,
            },
            strict: Limits {
                max_failures: 5,
                window_secs: 600,
                block_secs: 3600,
            },
        }
    }
}

/// Parses CIDRs (a bare address counts as /32 or /128).
///
/// # Errors
/// The first entry that is neither a network nor an address.
pub fn parse_nets(list: &[String], field: &str) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{field}: `{s}` is not a CIDR network or an IP address"))
        })
        .collect()
}

/// How long a "not blocked" answer from the store is trusted before asking again.
pub const RECHECK_MS: u64 = 1000;

/// The counting key of an address: IPv4 as is, IPv6 by its /64.
#[must_use]
pub fn subject(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Sliding-window estimate from two fixed buckets: `current` plus `previous` weighted by
/// the share of the previous bucket still inside the window ending at `now_ms`.
#[must_use]
pub fn decayed_score(current: i64, previous: i64, now_ms: i64, window_ms: i64) -> f64 {
    let into_bucket = now_ms.rem_euclid(window_ms) as f64;
    let weight = 1.0 - into_bucket / window_ms as f64;
    current as f64 + previous as f64 * weight
}

/// The plugin.
#[derive(Debug)]
pub struct IpReputation {
    mode: Mode,
    limits: Limits,
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

enum Verdict {
    Trusted,
    Denied,
    Blocked,
    Unknown,
}

impl IpReputation {
    fn window_ms(&self) -> i64 {
        i64::try_from(self.limits.window_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    fn classify(&self, ip: Option<&str>) -> (Verdict, Option<String>) {
        let Some(ip) = ip else {
            return (Verdict::Unknown, None);
        };
        let Ok(addr) = ip.parse::<IpAddr>() else {
            return (Verdict::Unknown, Some(ip.to_owned()));
        };
        if self.allow.iter().any(|n| n.contains(&addr)) {
            return (Verdict::Trusted, None);
        }
        if self.deny.iter().any(|n| n.contains(&addr)) {
            return (Verdict::Denied, None);
        }
        let subject = subject(&addr);
        if is_blocked(&subject) {
            return (Verdict::Blocked, Some(subject));
        }
        (Verdict::Unknown, Some(subject))
    }

    /// Counts one failure of `subject`; returns whether it is now blocked.
    fn fail(&self, subject: &str) -> bool {
        let window = self.window_ms();
        let now = now_ms();
        let bucket = now.div_euclid(window);
        let ttl = u64::try_from(window.saturating_mul(2)).unwrap_or(u64::MAX);
        let current = kv::durable::incr(format!("fail:{subject}:{bucket}"), 1, ttl);
        let previous = kv::durable::get(format!("fail:{subject}:{}", bucket - 1))
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, i64::from_le_bytes);
        if decayed_score(current, previous, now, window) >= f64::from(self.limits.max_failures) {
            let ttl = self.limits.block_secs.saturating_mul(1000);
            kv::delete(format!("clear:{subject}"));
            // The memory copy answers this server's next requests without a round trip.
            let _ = kv::set(format!("blocked-here:{subject}"), b"1", ttl);
            if kv::durable::set(format!("blocked:{subject}"), b"1", ttl).is_ok() {
                tessera_plugin_sdk::metric_incr("blocks", 1);
                log(
                    tessera_plugin_sdk::Level::Info,
                    &format!("blocking {subject} for {} s", self.limits.block_secs),
                );
            }
            return true;
        }
        false
    }

    fn check(&self, ip: Option<&str>, failed: bool) -> Decision {
        if self.mode == Mode::Off {
            return Decision::Allow;
        }
        match self.classify(ip) {
            (Verdict::Trusted, _) => Decision::Allow,
            (Verdict::Denied, _) => {
                Decision::deny("IP_DENIED", "requests from this address are not allowed")
            }
            (Verdict::Blocked, _) => blocked(),
            (Verdict::Unknown, Some(subject)) if failed => {
                if self.fail(&subject) {
                    blocked()
                } else {
                    Decision::Allow
                }
            }
            (Verdict::Unknown, _) => Decision::Allow,
        }
    }
}

/// Whether `subject` is blocked: memory first (a block seen here, or the store's "no" of
/// the last second), then the store, which every server writes.
fn is_blocked(subject: &str) -> bool {
    // Memory and durable keys share one namespace: the memory notes have names of their own.
    let local = format!("blocked-here:{subject}");
    if kv::get(&local).is_some() {
        return true;
    }
    let clear = format!("clear:{subject}");
    if kv::get(&clear).is_some() {
        return false;
    }
    if kv::durable::get(format!("blocked:{subject}")).is_some() {
        let _ = kv::set(&local, b"1", RECHECK_MS);
        return true;
    }
    // A full namespace refuses the note; the store is then asked every time.
    let _ = kv::set(&clear, b"1", RECHECK_MS);
    false
}

fn blocked() -> Decision {
    Decision::deny(
        "IP_BLOCKED",
        "too many failed attempts from this address; try again later",
    )
}

impl Plugin for IpReputation {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let limits = match config.mode {
            Mode::Strict => config.strict,
            _ => config.standard,
        };
        if limits.window_secs == 0 || limits.max_failures == 0 {
            return Err("window_secs and max_failures must be at least 1".into());
        }
        Ok(IpReputation {
            mode: config.mode,
            limits,
            allow: parse_nets(&config.allow, "allow")?,
            deny: parse_nets(&config.deny, "deny")?,
        })
    }

    fn on_request(&self, ev: RequestEvent) -> Decision {
        // A request to a route that does not exist is probing: count it.
        self.check(Some(&ev.ip), ev.route.is_none())
    }

    fn on_activate(&self, ev: ActivateEvent) -> Decision {
        self.check(ev.ip.as_deref(), ev.outcome == AttemptOutcome::Failed)
    }

    fn on_session_start(&self, ev: SessionStartEvent) -> Decision {
        self.check(ev.ip.as_deref(), false)
    }

    fn on_login_failure(&self, ev: LoginFailureEvent) -> Decision {
        self.check(ev.ip.as_deref(), true)
    }

    fn on_heartbeat(&self, ev: HeartbeatEvent) -> Decision {
        if self.mode != Mode::Strict {
            return Decision::Allow;
        }
        self.check(ev.ip.as_deref(), false)
    }
}

export_plugin!(
    IpReputation,
    [
        on_request,
        on_activate,
        on_session_start,
        on_login_failure,
        on_heartbeat
    ]
);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tessera_plugin_sdk::testing;

    fn plugin(mode: Mode) -> IpReputation {
        IpReputation::new(Config {
            mode,
            allow: vec!["10.0.0.0/8".into()],
            deny: vec!["203.0.113.0/24".into(), "2001:db8:dead::1".into()],
            ..Config::default()
        })
        .unwrap()
    }

    fn login_failure(ip: &str) -> LoginFailureEvent {
        LoginFailureEvent {
            ip: Some(ip.into()),
            kind: CredentialKind::LicenseKey,
            error_code: "INVALID_LICENSE".into(),
            ..LoginFailureEvent::default()
        }
    }

    fn request(ip: &str, route: Option<&str>) -> RequestEvent {
        RequestEvent {
            ip: ip.into(),
            method: "POST".into(),
            route: route.map(Into::into),
            ..RequestEvent::default()
        }
    }

    fn is_code(d: &Decision, want: &str) -> bool {
        matches!(d, Decision::Deny { code, .. } if code == want)
    }

    #[test]
    fn strict_blocks_after_five_failures_and_unblocks_later() {
        testing::reset();
        testing::set_now_ms(1_000_000);
        let p = plugin(Mode::Strict);
        for _ in 0..4 {
            assert!(p.on_login_failure(login_failure("198.51.100.7")).is_allow());
        }
        assert!(is_code(
            &p.on_login_failure(login_failure("198.51.100.7")),
            "IP_BLOCKED"
        ));
        assert!(is_code(
            &p.on_request(request("198.51.100.7", Some("/api/v1/verify"))),
            "IP_BLOCKED"
        ));
        // another address is unaffected
        assert!(
            p.on_request(request("198.51.100.8", Some("/api/v1/verify")))
                .is_allow()
        );
        // the block ends after block_secs (3600 s); the failures have decayed by then
        testing::advance_ms(3_600_001);
        assert!(
            p.on_request(request("198.51.100.7", Some("/api/v1/verify")))
                .is_allow()
        );
    }

    #[test]
    fn a_block_made_by_another_server_applies_within_a_second() {
        testing::reset();
        testing::set_now_ms(5_000_000);
        let p = plugin(Mode::Standard);
        let ip = "198.51.100.9";
        assert!(p.on_request(request(ip, Some("/api/v1/verify"))).is_allow());
        // Another server blocks the address in the shared store (the native test host has
        // one store, so its "not blocked" note is what the second waits out).
        kv::durable::set(format!("blocked:{ip}"), b"1", 60_000).unwrap();
        testing::advance_ms(1001);
        assert!(is_code(
            &p.on_request(request(ip, Some("/api/v1/verify"))),
            "IP_BLOCKED"
        ));
    }

    #[test]
    fn failures_are_counted_in_durable_keys() {
        testing::reset();
        testing::set_now_ms(1_000_000);
        let p = plugin(Mode::Strict);
        // Four failures counted by another server already.
        let bucket = 1_000_000 / (600 * 1000);
        kv::durable::incr(format!("fail:198.51.100.7:{bucket}"), 4, 1_200_000);
        assert!(is_code(
            &p.on_login_failure(login_failure("198.51.100.7")),
            "IP_BLOCKED"
        ));
        assert!(kv::durable::get("blocked:198.51.100.7").is_some());
    }

    #[test]
    fn failures_decay_across_windows() {
        testing::reset();
        let p = plugin(Mode::Strict);
        // 4 failures at the very start of a bucket, then a full window later 4 more: the
        // old ones no longer count, so no block.
        testing::set_now_ms(600_000);
        for _ in 0..4 {
            assert!(p.on_login_failure(login_failure("198.51.100.9")).is_allow());
        }
        testing::advance_ms(1_199_000);
        for _ in 0..4 {
            assert!(p.on_login_failure(login_failure("198.51.100.9")).is_allow());
        }
        assert!((decayed_score(4, 4, 1_200_000 + 599_999, 600_000) - 4.0).abs() < 0.01);
        assert!((decayed_score(1, 4, 1_200_000, 600_000) - 5.0).abs() < 0.01);
    }

    #[test]
    fn unknown_routes_and_failed_activations_count() {
        testing::reset();
        testing::set_now_ms(5_000);
        let p = plugin(Mode::Strict);
        for _ in 0..3 {
            assert!(p.on_request(request("198.51.100.20", None)).is_allow());
        }
        let failed = ActivateEvent {
            ip: Some("198.51.100.20".into()),
            outcome: AttemptOutcome::Failed,
            error_code: Some("INVALID_LICENSE".into()),
            ..ActivateEvent::default()
        };
        assert!(p.on_activate(failed.clone()).is_allow());
        assert!(is_code(&p.on_activate(failed), "IP_BLOCKED"));
        // a successful activation from a clean address is not counted
        let ok = ActivateEvent {
            ip: Some("198.51.100.21".into()),
            ..ActivateEvent::default()
        };
        for _ in 0..10 {
            assert!(p.on_activate(ok.clone()).is_allow());
        }
    }

    #[test]
    fn lists_apply_and_allow_list_is_never_counted() {
        testing::reset();
        let p = plugin(Mode::Standard);
        assert!(is_code(
            &p.on_request(request("203.0.113.50", Some("/"))),
            "IP_DENIED"
        ));
        assert!(is_code(
            &p.on_request(request("2001:db8:dead::1", Some("/"))),
            "IP_DENIED"
        ));
        for _ in 0..100 {
            assert!(p.on_login_failure(login_failure("10.1.2.3")).is_allow());
        }
        testing::with(|s| assert!(s.kv.is_empty()));
    }

    #[test]
    fn standard_mode_skips_heartbeats_and_off_mode_allows_everything() {
        testing::reset();
        let hb = HeartbeatEvent {
            ip: Some("203.0.113.1".into()),
            ..HeartbeatEvent::default()
        };
        assert!(plugin(Mode::Standard).on_heartbeat(hb.clone()).is_allow());
        assert!(is_code(&plugin(Mode::Strict).on_heartbeat(hb), "IP_DENIED"));
        let off = plugin(Mode::Off);
        assert!(off.on_request(request("203.0.113.50", None)).is_allow());
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(subject(&a), subject(&b));
        assert_eq!(subject(&a), "2001:db8:1:2::/64");
    }

    #[test]
    fn bad_cidr_is_rejected_with_its_field() {
        let err = IpReputation::new(Config {
            deny: vec!["nope".into()],
            ..Config::default()
        })
        .unwrap_err();
        assert!(err.contains("deny: `nope`"), "{err}");
    }
}
