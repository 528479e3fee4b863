//! One day's counters and how an event changes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::events::Event;

/// Counters of one product on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductStats {
    /// Devices activated.
    pub activations: u64,
    /// Sessions started.
    pub session_starts: u64,
    /// Sessions ended, by reason.
    pub session_ends: BTreeMap<String, u64>,
    /// Requests refused by a limit or a policy, by code.
    pub rejections: BTreeMap<String, u64>,
    /// Licenses banned.
    pub bans: u64,
}

/// Counters of one day (UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DayStats {
    /// Per product (the license's product; `-` when an event names none).
    pub products: BTreeMap<String, ProductStats>,
    /// Operator logins.
    pub logins: u64,
    /// Failed operator logins.
    pub login_failures: u64,
    /// The most live sessions one server held at once that day.
    pub peak_live_sessions: u64,
}

impl ProductStats {
    fn add(&mut self, other: &ProductStats) {
        self.activations += other.activations;
        self.session_starts += other.session_starts;
        for (k, v) in &other.session_ends {
            *self.session_ends.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.rejections {
            *self.rejections.entry(k.clone()).or_default() += v;
        }
        self.bans += other.bans;
    }
}

/// Most distinct codes or reasons kept per product and day: they are label-like, and a
/// plugin may invent codes, so the set is bounded (the rest count under `other`).
const MAX_KEYS: usize = 64;

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    let key = if map.contains_key(key) || map.len() < MAX_KEYS {
        key
    } else {
        "other"
    };
    *map.entry(key.to_owned()).or_default() += 1;
}

impl DayStats {
    /// Adds `other` (a server's counts since its last flush) to these.
    pub fn add(&mut self, other: &DayStats) {
        for (p, s) in &other.products {
            self.products.entry(p.clone()).or_default().add(s);
        }
        self.logins += other.logins;
        self.login_failures += other.login_failures;
        self.peak_live_sessions = self.peak_live_sessions.max(other.peak_live_sessions);
    }

    /// Counts `event`. Returns whether it counted anything.
    pub fn count(&mut self, event: &Event) -> bool {
        let product = || event.app_id.clone().unwrap_or_else(|| "-".to_owned());
        let code = || event.data["code"].as_str().unwrap_or("UNKNOWN").to_owned();
        match event.event_type.as_str() {
            "license.activated" => self.products.entry(product()).or_default().activations += 1,
            "session.started" => self.products.entry(product()).or_default().session_starts += 1,
            "session.ended" => {
                let reason = event.data["reason"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_owned();
                bump(
                    &mut self.products.entry(product()).or_default().session_ends,
                    &reason,
                );
            }
            "session.rejected" | "license.activation_rejected" | "policy.denied" => {
                bump(
                    &mut self.products.entry(product()).or_default().rejections,
                    &code(),
                );
            }
            "license.banned" => self.products.entry(product()).or_default().bans += 1,
            "login.succeeded" => self.logins += 1,
            "login.failed" => self.login_failures += 1,
            _ => return false,
        }
        true
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == DayStats::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::events::{EventId, NewEvent, Severity};

    fn ev(t: &str, product: Option<&str>, data: serde_json::Value) -> Event {
        let mut e = NewEvent::new(t, Severity::Info, "x").data(data);
        if let Some(p) = product {
            e = e.app_id(p);
        }
        e.stored(EventId { ms: 1, seq: 0 })
    }

    #[test]
    fn events_count_per_product_and_days_add_up() {
        let mut a = DayStats::default();
        assert!(a.count(&ev("session.started", Some("cad"), json!({}))));
        assert!(a.count(&ev(
            "session.rejected",
            Some("cad"),
            json!({"code": "SESSION_LIMIT_REACHED"})
        )));
        assert!(a.count(&ev(
            "session.ended",
            Some("cad"),
            json!({"reason": "admin"})
        )));
        assert!(a.count(&ev("login.failed", None, json!({}))));
        assert!(!a.count(&ev("admin.license.edited", None, json!({}))));
        let mut b = DayStats::default();
        b.count(&ev("session.started", Some("cad"), json!({})));
        b.count(&ev("license.activated", None, json!({})));
        b.peak_live_sessions = 7;
        a.add(&b);
        let cad = &a.products["cad"];
        assert_eq!(
            (cad.session_starts, cad.rejections["SESSION_LIMIT_REACHED"]),
            (2, 1)
        );
        assert_eq!(cad.session_ends["admin"], 1);
        assert_eq!(a.products["-"].activations, 1);
        assert_eq!((a.login_failures, a.peak_live_sessions), (1, 7));
    }

    #[test]
    fn invented_codes_are_bounded() {
        let mut a = DayStats::default();
        for i in 0..MAX_KEYS + 10 {
            a.count(&ev(
                "policy.denied",
                Some("p"),
                json!({"code": format!("CODE_{i}")}),
            ));
        }
        let r = &a.products["p"].rejections;
        assert_eq!(r.len(), MAX_KEYS + 1);
        assert_eq!(r["other"], 10);
    }
}
