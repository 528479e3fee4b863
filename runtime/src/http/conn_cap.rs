//! `server.max_connections_per_ip`: the open connections each client address holds.
//!
//! A connection's place is a [`ConnectionSlot`], held by the task that serves it and, when
//! the connection upgrades, by what it upgraded to (the session WebSocket), so a WebSocket
//! counts against the cap like the HTTP connection it started as. Its own module because
//! both the accept loop (`server.rs`) and a handler (`api::session_ws`) hold slots.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::http::rate_limit::client_bucket;

/// The cap and the open connections per client address.
pub(crate) struct ConnCap {
    max_per_ip: usize,
    trusted_proxies: Vec<ipnet::IpNet>,
    open: parking_lot::Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's place under the cap; the last clone to go gives it back.
#[derive(Clone)]
pub struct ConnectionSlot {
    _held: Arc<Admitted>,
}

/// One admitted connection; gives its place back when dropped.
struct Admitted {
    cap: Arc<ConnCap>,
    bucket: Option<IpAddr>,
}

impl ConnCap {
    /// `max_per_ip` connections per address; peers in `trusted_proxies` are exempt.
    pub(crate) fn new(max_per_ip: usize, trusted_proxies: Vec<ipnet::IpNet>) -> Self {
        Self {
            max_per_ip,
            trusted_proxies,
            open: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Takes a place for `peer`'s address (its /64 for IPv6), or `None` when it already
    /// holds `max_connections_per_ip`. A trusted proxy carries many clients: exempt.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<ConnectionSlot> {
        let peer = peer.to_canonical();
        let bucket = if self.trusted_proxies.iter().any(|n| n.contains(&peer)) {
            None
        } else {
            let bucket = client_bucket(peer);
            let mut open = self.open.lock();
            let n = open.entry(bucket).or_insert(0);
            if *n >= self.max_per_ip {
                return None;
            }
            *n += 1;
            Some(bucket)
        };
        Some(ConnectionSlot {
            _held: Arc::new(Admitted {
                cap: Arc::clone(self),
                bucket,
            }),
        })
    }

    #[cfg(test)]
    fn open_at(&self, ip: IpAddr) -> usize {
        self.open
            .lock()
            .get(&client_bucket(ip))
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let Some(bucket) = self.bucket else { return };
        let mut open = self.cap.open.lock();
        if let Some(n) = open.get_mut(&bucket) {
            *n -= 1;
            if *n == 0 {
                open.remove(&bucket);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_place_comes_back_when_its_last_holder_goes() {
        let cap = Arc::new(ConnCap::new(2, vec!["10.0.0.0/8".parse().unwrap()]));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = cap.admit(ip).unwrap();
        let second = cap.admit(ip).unwrap();
        assert!(cap.admit(ip).is_none(), "a third connection over the cap");
        assert!(cap.admit("192.0.2.2".parse().unwrap()).is_some());
        // An upgraded connection holds a clone: the place stays taken until both go.
        let upgraded = second.clone();
        drop(second);
        assert_eq!(cap.open_at(ip), 2);
        drop(upgraded);
        assert_eq!(cap.open_at(ip), 1);
        assert!(cap.admit(ip).is_some());
        drop(first);
        // IPv6 clients share their /64; trusted proxies are never counted.
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        let held = (cap.admit(a).unwrap(), cap.admit(b).unwrap());
        assert!(cap.admit(a).is_none());
        let proxies: Vec<_> = (0..5)
            .map(|_| cap.admit("10.1.2.3".parse().unwrap()))
            .collect();
        assert!(proxies.iter().all(Option::is_some));
        drop(held);
        assert_eq!(cap.open_at(a), 0);
    }
}
