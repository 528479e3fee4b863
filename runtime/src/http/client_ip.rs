//! The client's address, believing `X-Forwarded-For` only from trusted proxies.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client address of a request, as resolved by [`resolve`]. Handlers take it as an
/// extractor (`ClientIp(ip): ClientIp`); it is also in the request extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

/// The client address: the TCP peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
///
/// Walking from the right matters: the left part of the header is whatever the client sent
/// and can be forged; only entries appended by our own proxies are believed.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // An unparsable entry ends what we can believe.
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// `1.2.3.4`, `1.2.3.4:5678`, `[::1]:80` or `::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = xff.parse() {
            h.insert("x-forwarded-for", v);
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn untrusted_peer_header_is_ignored() {
        let trusted: Vec<IpNet> = vec![];
        assert_eq!(
            resolve(ip("9.9.9.9"), &headers("1.1.1.1"), &trusted),
            ip("9.9.9.9")
        );
    }

    #[test]
    fn trusted_chain_yields_first_untrusted_from_the_right() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap_or_else(|_| unreachable!())];
        // Client forged "6.6.6.6"; real client 2.2.2.2 appended by our proxy 10.0.0.2.
        let h = headers("6.6.6.6, 2.2.2.2, 10.0.0.2");
        assert_eq!(resolve(ip("10.0.0.1"), &h, &trusted), ip("2.2.2.2"));
        assert_eq!(
            resolve(ip("10.0.0.1"), &headers(""), &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(
            resolve(ip("10.0.0.1"), &headers("[::1]:80"), &trusted),
            ip("::1")
        );
    }
}
