//! The SSRF guard: a webhook reaches only `http`/`https` URLs whose host is, and resolves
//! only to, public addresses, unless `webhooks.allow_private_targets` is set. Otherwise
//! anyone allowed to manage webhooks could make the server probe the operator's own network
//! (loopback services, the cloud metadata address, the LAN).
//!
//! Checked twice: when an endpoint is created or changed ([`check_target`], for a clear 400),
//! and at every attempt. At an attempt the delivery client resolves names through
//! [`GuardedResolver`], which refuses the whole answer when one address is internal, and
//! connects to exactly the addresses it returned: a name that changes its answer between the
//! check and the connection (DNS rebinding) cannot bypass it. Literal addresses in the URL do
//! not reach a resolver and are checked by [`refuse_literal`]. Redirects are not followed and
//! no proxy is used, so neither can take a request elsewhere.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderValue;

use super::error::WebhookError;

/// Longest endpoint URL.
pub const MAX_URL_LEN: usize = 2_048;

/// How long a check at create/update waits for DNS.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A target the guard refuses, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Parses an endpoint URL and checks its form: `http` or `https`, a host, no user name or
/// password (they would end up in logs and listings), no fragment, at most
/// [`MAX_URL_LEN`] bytes. No DNS here.
pub fn parse_url(raw: &str) -> Result<Url, WebhookError> {
    let raw = raw.trim();
    let bad = |m: &str| WebhookError::invalid("url", m);
    if raw.is_empty() {
        return Err(bad("is required"));
    }
    if raw.len() > MAX_URL_LEN {
        return Err(bad(&format!("is longer than {MAX_URL_LEN} bytes")));
    }
    let url = Url::parse(raw).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http or https URL"));
    }
    if url.host().is_none() {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry a user name or password"));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a #fragment"));
    }
    // reqwest sends it as the Host header and request target: it must be a valid header.
    if HeaderValue::from_str(url.as_str()).is_err() {
        return Err(bad("holds characters a request cannot carry"));
    }
    Ok(url)
}

/// Checks that `url`'s host is not, and does not resolve to, an internal address (unless
/// `allow_private`). A name that does not resolve is refused too: nothing could be
/// delivered to it.
pub async fn check_target(url: &Url, allow_private: bool) -> Result<(), WebhookError> {
    refuse_literal(url, allow_private).map_err(|r| WebhookError::TargetRefused(r.0))?;
    if allow_private || literal_ip(url).is_some() {
        return Ok(());
    }
    let Some(host) = url.host_str() else {
        return Ok(());
    };
    let addrs = match tokio::time::timeout(RESOLVE_TIMEOUT, resolve(host)).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            return Err(WebhookError::TargetRefused(format!(
                "url: host {host} does not resolve ({e})"
            )));
        }
        Err(_) => {
            return Err(WebhookError::TargetRefused(format!(
                "url: host {host} did not resolve within {} s",
                RESOLVE_TIMEOUT.as_secs()
            )));
        }
    };
    refuse_any(host, addrs.iter().map(SocketAddr::ip), allow_private)
        .map_err(|r| WebhookError::TargetRefused(r.0))
}

/// Refuses a URL whose host is a literal internal address (unless `allow_private`).
pub fn refuse_literal(url: &Url, allow_private: bool) -> Result<(), Refused> {
    match literal_ip(url) {
        Some(ip) => refuse_any(&ip.to_string(), [ip], allow_private),
        None => Ok(()),
    }
}

/// The host as an address, when the URL names one (the URL parser has already normalized
/// forms such as `2130706433` to `127.0.0.1`; IPv6 comes in brackets).
fn literal_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

fn refuse_any(
    host: &str,
    ips: impl IntoIterator<Item = IpAddr>,
    allow_private: bool,
) -> Result<(), Refused> {
    if allow_private {
        return Ok(());
    }
    match ips.into_iter().find(|ip| is_internal(*ip)) {
        Some(ip) if host == ip.to_string() => Err(Refused(format!(
            "url: {ip} is a loopback, private, link-local or otherwise internal address; \
             webhooks.allow_private_targets is off"
        ))),
        Some(ip) => Err(Refused(format!(
            "url: host {host} resolves to {ip}, a loopback, private, link-local or otherwise \
             internal address; webhooks.allow_private_targets is off"
        ))),
        None => Ok(()),
    }
}

async fn resolve(host: &str) -> std::io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
    if addrs.is_empty() {
        return Err(std::io::Error::other("no addresses"));
    }
    Ok(addrs)
}

/// Whether a webhook may not reach `ip` without `allow_private_targets`: every address that
/// is not globally routable unicast (loopback, private, shared, link-local, unique-local,
/// multicast, unspecified, reserved, documentation and benchmarking ranges), and the IPv6
/// forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4) when that one is.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => internal_v4(a),
        IpAddr::V6(a) => internal_v6(a),
    }
}

fn internal_v4(a: Ipv4Addr) -> bool {
    let [o0, o1, o2, _] = a.octets();
    a.is_unspecified()
        || a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_documentation()
        || o0 == 0 // "this network"
        || (o0 == 100 && (o1 & 0xc0) == 64) // 100.64.0.0/10, shared (carrier-grade NAT)
        || (o0 == 192 && o1 == 0 && o2 == 0) // 192.0.0.0/24, protocol assignments
        || (o0 == 198 && (o1 & 0xfe) == 18) // 198.18.0.0/15, benchmarking
        || o0 >= 240 // 240.0.0.0/4, reserved
}

fn internal_v6(a: Ipv6Addr) -> bool {
    if let Some(v4) = a.to_ipv4_mapped() {
        return internal_v4(v4);
    }
    let s = a.segments();
    let embedded = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if a.is_unspecified() || a.is_loopback() || a.is_multicast() {
        return true;
    }
    match s[0] {
        // ::/96, IPv4-compatible (deprecated): as its IPv4 address.
        0 if s[1..6].iter().all(|&x| x == 0) => internal_v4(embedded),
        // 64:ff9b::/96, NAT64: as its IPv4 address; 64:ff9b:1::/48, local NAT64.
        0x64 if s[1] == 0xff9b => s[2] == 1 || internal_v4(embedded),
        // 100::/64, discard only.
        0x100 => s[1..4].iter().all(|&x| x == 0),
        // 2001::/32 Teredo (tunnels to any IPv4 address) and 2001:db8::/32 documentation.
        0x2001 => s[1] == 0 || s[1] == 0xdb8,
        // 2002::/16, 6to4: as the IPv4 address in its next 32 bits.
        0x2002 => internal_v4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        )),
        // fc00::/7 unique-local, fe80::/10 link-local, fec0::/10 site-local (deprecated).
        x => (x & 0xfe00) == 0xfc00 || (x & 0xffc0) == 0xfe80 || (x & 0xffc0) == 0xfec0,
    }
}

/// The delivery client's resolver: the system's, with every answer checked by
/// [`is_internal`] (unless `allow_private`); a refused answer fails the connection with
/// [`Refused`].
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    /// `webhooks.allow_private_targets`.
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs = resolve(&host).await?;
            refuse_any(&host, addrs.iter().map(SocketAddr::ip), allow_private)?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn internal_addresses_are_refused_in_every_form() {
        for s in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "2001::1",
            "2001:db8::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "100::1",
        ] {
            assert!(is_internal(ip(s)), "{s} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "198.20.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!is_internal(ip(s)), "{s} must pass");
        }
    }

    #[test]
    fn urls_need_http_a_host_and_no_credentials() {
        assert!(parse_url("https://hooks.example.com/x?y=1").is_ok());
        assert!(parse_url("http://[2606:4700::1]:8080/").is_ok());
        for bad in [
            "",
            "hooks.example.com/x",
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "https://user:pw@example.com/",
            "https://example.com/#frag",
            "http://",
            "http://:80/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad:?} must be refused");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(parse_url(&long).is_err());
    }

    #[test]
    fn literal_internal_hosts_are_refused_unless_allowed() {
        for u in [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://[::ffff:7f00:1]/",
            "http://10.1.2.3/",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0/",
            "http://2130706433/",
        ] {
            let url = parse_url(u).unwrap_or_else(|e| panic!("{u}: {e}"));
            assert!(refuse_literal(&url, false).is_err(), "{u}");
            assert!(refuse_literal(&url, true).is_ok(), "{u}");
        }
        let public = parse_url("http://8.8.8.8/").unwrap_or_else(|e| panic!("{e}"));
        assert!(refuse_literal(&public, false).is_ok());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_at_check_and_by_the_resolver() {
        let url = parse_url("http://localhost:9/").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            check_target(&url, false).await,
            Err(WebhookError::TargetRefused(_))
        ));
        assert!(check_target(&url, true).await.is_ok());
        let name: Name = "localhost".parse().unwrap_or_else(|e| panic!("{e:?}"));
        let refused = GuardedResolver {
            allow_private: false,
        }
        .resolve(name)
        .await;
        let err = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("resolves to"), "{err}");
        let name: Name = "localhost".parse().unwrap_or_else(|e| panic!("{e:?}"));
        let allowed = GuardedResolver {
            allow_private: true,
        }
        .resolve(name)
        .await;
        assert!(allowed.is_ok_and(|mut a| a.next().is_some()));
    }
}
