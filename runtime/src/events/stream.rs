//! The live stream's source: one tail per server reads the event log after the last id it
//! saw (woken at once by this server's appends, and every 250 ms for other servers' on a
//! shared Redis) and hands each event to every subscriber's bounded queue. A subscriber
//! whose queue is full is cut off instead of growing memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use crate::store::events::{Event, EventId, EventStore, Severity};

/// How often the tail reads the log without being woken (other servers' events).
const POLL: Duration = Duration::from_millis(250);

/// Events read per log read.
const READ: usize = 500;

/// Which events a reader wants. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Types or prefixes (`session.` matches `session.ended`); any of them.
    pub types: Vec<String>,
    /// The license (its key).
    pub license: Option<String>,
    /// At least this severity.
    pub severity: Option<Severity>,
    /// At or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Before this time.
    pub until: Option<DateTime<Utc>>,
}

impl EventFilter {
    /// Whether `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        let type_ok = self.types.is_empty()
            || self.types.iter().any(|t| {
                event.event_type == *t
                    || (t.ends_with('.') && event.event_type.starts_with(t.as_str()))
            });
        type_ok
            && self
                .license
                .as_ref()
                .is_none_or(|l| event.license.as_deref() == Some(l.as_str()))
            && self.severity.is_none_or(|s| event.severity >= s)
            && self.since.is_none_or(|t| event.created_at >= t)
            && self.until.is_none_or(|t| event.created_at < t)
    }
}

struct Subscriber {
    tx: mpsc::Sender<Arc<Event>>,
    dropped: Arc<AtomicBool>,
}

/// The tail and its subscribers.
pub(super) struct Hub {
    store: Arc<dyn EventStore>,
    cursor: Mutex<Option<EventId>>,
    subscribers: Mutex<Vec<Subscriber>>,
    wake: Notify,
}

/// One live-stream reader: every event stored after it subscribed, in id order.
pub struct Subscription {
    rx: mpsc::Receiver<Arc<Event>>,
    dropped: Arc<AtomicBool>,
}

impl Subscription {
    /// The next event; `None` once cut off (see [`Subscription::was_dropped`]) or at
    /// shutdown.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        self.rx.recv().await
    }

    /// Whether the tail cut this subscriber off for falling behind.
    pub fn was_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }
}

impl Hub {
    /// A hub whose tail starts after the newest stored event.
    pub(super) async fn start(store: Arc<dyn EventStore>) -> Arc<Self> {
        let newest = match store.before(None, 1).await {
            Ok(v) => v.first().and_then(Event::event_id),
            Err(e) => {
                tracing::warn!(error = %e, "event log not readable; the live stream starts from its next event");
                None
            }
        };
        Arc::new(Self {
            store,
            cursor: Mutex::new(newest),
            subscribers: Mutex::new(Vec::new()),
            wake: Notify::new(),
        })
    }

    /// Reads the log now (this server just stored events).
    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(super) fn subscribe(&self, buffer: usize) -> Subscription {
        let (tx, rx) = mpsc::channel(buffer.max(1));
        let dropped = Arc::new(AtomicBool::new(false));
        let mut subs = self.subscribers.lock();
        subs.push(Subscriber {
            tx,
            dropped: Arc::clone(&dropped),
        });
        metrics::gauge!("tessera_sse_subscribers").set(subs.len() as f64);
        Subscription { rx, dropped }
    }

    /// The tail task: runs until aborted.
    pub(super) fn spawn_tail(hub: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let hub = Arc::clone(hub);
        tokio::spawn(async move {
            loop {
                let _ = tokio::time::timeout(POLL, hub.wake.notified()).await;
                hub.read_new().await;
            }
        })
    }

    async fn read_new(&self) {
        loop {
            let after = *self.cursor.lock();
            let events = match self.store.after(after, READ).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(error = %e, "live stream: event log not readable");
                    return;
                }
            };
            // A full read may have more behind it.
            let more = events.len() == READ;
            let Some(last) = events.last().and_then(Event::event_id) else {
                return;
            };
            *self.cursor.lock() = Some(last);
            self.hand_out(events);
            if !more {
                return;
            }
        }
    }

    fn hand_out(&self, events: Vec<Event>) {
        let mut subs = self.subscribers.lock();
        if subs.is_empty() {
            return;
        }
        let events: Vec<Arc<Event>> = events.into_iter().map(Arc::new).collect();
        subs.retain(|s| {
            for e in &events {
                match s.tx.try_send(Arc::clone(e)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        s.dropped.store(true, Ordering::Release);
                        metrics::counter!("tessera_events_dropped_total", "sink" => "stream", "type" => "any")
                            .increment(1);
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
        metrics::gauge!("tessera_sse_subscribers").set(subs.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::events::NewEvent;

    fn event(t: &str, sev: Severity) -> Event {
        NewEvent::new(t, sev, "x").stored(EventId { ms: 1, seq: 0 })
    }

    #[test]
    fn filters_match_types_prefixes_license_and_severity() {
        let e = event("session.ended", Severity::Warning);
        let f = |types: &[&str]| EventFilter {
            types: types.iter().map(|s| s.to_string()).collect(),
            ..EventFilter::default()
        };
        assert!(f(&[]).matches(&e));
        assert!(f(&["session."]).matches(&e));
        assert!(f(&["session.ended"]).matches(&e));
        assert!(!f(&["session"]).matches(&e), "a prefix ends with a dot");
        assert!(!f(&["license."]).matches(&e));
        let sev = |s| EventFilter {
            severity: Some(s),
            ..EventFilter::default()
        };
        assert!(sev(Severity::Info).matches(&e));
        assert!(!sev(Severity::Critical).matches(&e));
        let lic = EventFilter {
            license: Some("K".into()),
            ..EventFilter::default()
        };
        assert!(!lic.matches(&e));
    }
}
