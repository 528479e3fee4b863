//! Recording hook events from the running server, for plugin authors: each event a hook is
//! called with, as one line of the events file `tessera plugin run --events` reads
//! (`{"hook": "on_activate", "event": {...}}`), so a plugin can be developed and tested
//! against real traffic.
//!
//! Secrets are removed before a line leaves: a license key becomes a stable pseudonym
//! (`REC-` and 16 hex digits of its SHA-256), so per-license logic still sees one license
//! as one, but a recording cannot activate anything. Session tokens and API keys never reach
//! hook events in the first place (sessions appear as `session_hash`).
//!
//! Nothing is serialized while no one records: the request path pays one atomic load.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};
use tessera_plugins::{Event, Hook};
use tokio::sync::broadcast;

/// Lines buffered per recorder; a recorder that falls further behind loses the oldest.
const BUFFER: usize = 4096;

/// The tap on the hook calls.
pub struct Recorder {
    tx: broadcast::Sender<(Hook, Arc<str>)>,
    listeners: Arc<AtomicUsize>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(BUFFER).0,
            listeners: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Recorder {
    /// Whether anyone records now.
    pub fn active(&self) -> bool {
        self.listeners.load(Ordering::Relaxed) > 0
    }

    /// Offers one hook call's event to the recorders (cheap when there are none).
    pub fn offer(&self, event: &Event) {
        if !self.active() {
            return;
        }
        if let Some(line) = line(event) {
            let _ = self.tx.send((event.hook(), line.into()));
        }
    }

    /// Starts recording the events of `hooks` (every hook when empty).
    pub fn subscribe(&self, hooks: BTreeSet<Hook>) -> Recording {
        self.listeners.fetch_add(1, Ordering::Relaxed);
        Recording {
            rx: self.tx.subscribe(),
            hooks,
            listeners: Arc::clone(&self.listeners),
        }
    }
}

/// One recorder's lines; recording stops when it is dropped.
pub struct Recording {
    rx: broadcast::Receiver<(Hook, Arc<str>)>,
    hooks: BTreeSet<Hook>,
    listeners: Arc<AtomicUsize>,
}

impl Recording {
    /// The next recorded line (without its newline), or `None` once the server stops.
    /// Lines lost because this recorder fell behind are counted and skipped.
    pub async fn next(&mut self) -> Option<Arc<str>> {
        loop {
            match self.rx.recv().await {
                Ok((hook, line)) => {
                    if self.hooks.is_empty() || self.hooks.contains(&hook) {
                        return Some(line);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    metrics::counter!("tessera_plugin_record_dropped_total").increment(n);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A license key's pseudonym in recordings.
pub fn pseudonym(license_key: &str) -> String {
    let digest = Sha256::digest(license_key.as_bytes());
    format!("REC-{}", hex::encode_upper(&digest[..8]))
}

/// The events-file line of `event`, its license key replaced by [`pseudonym`].
pub fn line(event: &Event) -> Option<String> {
    let mut payload = serde_json::to_value(event).ok()?;
    if let Some(key) = payload.get_mut("license_key")
        && let Some(k) = key.as_str()
    {
        *key = serde_json::Value::String(pseudonym(k));
    }
    serde_json::to_string(&serde_json::json!({
        "hook": event.hook().name(),
        "event": payload,
    }))
    .ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tessera_plugins::abi::{ActivateEvent, TickEvent};

    fn activate(key: &str) -> Event {
        Event::Activate(ActivateEvent {
            ts_ms: 1,
            license_key: key.into(),
            device_hash: "d".into(),
            machine_name: Some("build-vm-01".into()),
            ..ActivateEvent::default()
        })
    }

    #[test]
    fn lines_hide_the_license_key_and_read_back_as_events() {
        let text = line(&activate("ABCD-EFGH-JKMN-PQRS")).unwrap();
        assert!(!text.contains("ABCD-EFGH-JKMN-PQRS"), "{text}");
        let parsed: tessera_plugins::EventLine = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.hook, "on_activate");
        assert_eq!(parsed.event["machine_name"], "build-vm-01");
        assert_eq!(
            parsed.event["license_key"],
            pseudonym("ABCD-EFGH-JKMN-PQRS")
        );
        // One license, one pseudonym; two licenses, two.
        assert_eq!(pseudonym("A"), pseudonym("A"));
        assert_ne!(pseudonym("A"), pseudonym("B"));
    }

    #[tokio::test]
    async fn only_subscribed_hooks_are_recorded_and_nothing_without_a_recorder() {
        let recorder = Recorder::default();
        assert!(!recorder.active());
        recorder.offer(&activate("K"));
        let mut rec = recorder.subscribe([Hook::Activate].into());
        assert!(recorder.active());
        recorder.offer(&Event::Tick(TickEvent {
            ts_ms: 1,
            interval_ms: 10,
        }));
        recorder.offer(&activate("K"));
        let got = rec.next().await.unwrap();
        assert!(got.contains("on_activate"), "{got}");
        drop(rec);
        assert!(!recorder.active());
    }
}
