//! The one fan-out point of administrative domain events. Every admin operation publishes
//! here after it took effect; consumers subscribe instead of being called by the operations.
//! Each event is logged, handed to in-process subscribers, and published to the server's
//! event fan-out (`crate::events`) as an `admin.*` event, from where the event log, the live
//! stream and webhooks take it.
//!
//! Publishing never blocks and never fails the operation: the channel is a bounded
//! broadcast, a subscriber that falls behind loses the oldest events (it learns how many
//! from `RecvError::Lagged`), and `tessera_admin_events_total{action}` counts every event.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tessera_actors::LicenseKey;
use tokio::sync::broadcast;

use crate::events::{Events, NewEvent, Severity};

/// Events kept for each subscriber that has not read them yet.
pub const EVENT_BUFFER: usize = 1_024;

/// Something an operator (or an admin key) changed.
#[derive(Debug, Clone, Serialize)]
pub struct AdminEvent {
    /// Dotted event type, e.g. `admin.license.edited`.
    pub event_type: &'static str,
    /// Who acted: `key:<name>`, `operator:<username>`, `cli` or `system`.
    pub actor: String,
    /// The license concerned, if one.
    pub license: Option<LicenseKey>,
    /// One line for people.
    pub summary: String,
    /// What changed, for machines.
    pub data: serde_json::Value,
    /// When it took effect.
    pub created_at: DateTime<Utc>,
}

/// The fan-out. Cheap to clone; clones publish to the same subscribers.
#[derive(Clone, Debug)]
pub struct AdminEvents {
    tx: broadcast::Sender<Arc<AdminEvent>>,
    bus: Option<Events>,
}

impl Default for AdminEvents {
    fn default() -> Self {
        Self::new(None)
    }
}

impl AdminEvents {
    /// A fan-out with no subscribers yet, publishing to `bus` too when given.
    pub fn new(bus: Option<Events>) -> Self {
        let (tx, _) = broadcast::channel(EVENT_BUFFER);
        Self { tx, bus }
    }

    /// Every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AdminEvent>> {
        self.tx.subscribe()
    }

    /// Publishes `event` to every subscriber and logs it (license keys masked in the log).
    pub fn publish(&self, event: AdminEvent) {
        metrics::counter!("tessera_admin_events_total", "action" => event.event_type).increment(1);
        let masked = event.license.as_ref().map(LicenseKey::masked);
        tracing::info!(
            event = event.event_type,
            actor = %event.actor,
            license = %masked.map_or_else(|| "-".to_string(), |m| m.to_string()),
            "{}",
            event.summary
        );
        if let Some(bus) = &self.bus {
            let severity = if event.event_type.ends_with(".deleted") {
                Severity::Warning
            } else {
                Severity::Info
            };
            let mut e = NewEvent::new(event.event_type, severity, event.summary.clone())
                .actor(event.actor.clone())
                .data(event.data.clone());
            e.created_at = event.created_at;
            if let Some(k) = &event.license {
                e = e.license(k);
            }
            bus.publish(e);
        }
        // No subscriber is not an error: the log above is the record.
        let _ = self.tx.send(Arc::new(event));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> AdminEvent {
        AdminEvent {
            event_type: "admin.test",
            actor: "cli".into(),
            license: None,
            summary: format!("event {n}"),
            data: serde_json::Value::Null,
            created_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event_in_order() {
        let events = AdminEvents::new(None);
        let mut a = events.subscribe();
        let mut b = events.subscribe();
        for n in 0..3 {
            events.publish(event(n));
        }
        for rx in [&mut a, &mut b] {
            for n in 0..3 {
                let got = rx.recv().await.map(|e| e.summary.clone()).ok();
                assert_eq!(got, Some(format!("event {n}")));
            }
        }
    }

    #[tokio::test]
    async fn a_slow_subscriber_loses_the_oldest_and_is_told_how_many() {
        let events = AdminEvents::new(None);
        let mut slow = events.subscribe();
        for n in 0..EVENT_BUFFER + 5 {
            events.publish(event(n));
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(5))
        ));
        assert_eq!(
            slow.recv().await.map(|e| e.summary.clone()).ok(),
            Some("event 5".to_string())
        );
    }
}
