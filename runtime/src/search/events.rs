//! Devices enter the index from the license actors' activation events, on a task of their
//! own: an activation never waits for the index. A full queue drops the entry, counted in
//! `tessera_search_index_dropped_total`; the device stays listed with its license, and a
//! forced re-index (`backfill` with `force`) puts it back in search.

use std::sync::Arc;

use tessera_actors::{EventSink, LicenseEvent};
use tokio::sync::mpsc;

use super::index::{DeviceRef, SearchIndex};

/// Activations waiting for the index.
const QUEUE: usize = 4_096;

struct Pending {
    device: DeviceRef,
    hardware_hash: String,
    machine_name: String,
}

/// Forwards every event to `inner` and queues activations for the index.
pub struct IndexEvents {
    inner: Arc<dyn EventSink>,
    tx: mpsc::Sender<Pending>,
}

impl IndexEvents {
    /// The sink over `inner`, and the task that writes the queued devices into `index`
    /// (it ends when the sink is dropped).
    pub fn start(
        inner: Arc<dyn EventSink>,
        index: SearchIndex,
    ) -> (Arc<dyn EventSink>, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Pending>(QUEUE);
        let task = tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                if let Err(e) = index
                    .index_device(p.device, &p.hardware_hash, &p.machine_name)
                    .await
                {
                    metrics::counter!("tessera_search_index_failures_total").increment(1);
                    tracing::warn!(error = %e, "a device could not be indexed for search");
                }
            }
        });
        (Arc::new(Self { inner, tx }), task)
    }
}

impl EventSink for IndexEvents {
    fn emit(&self, event: &LicenseEvent) {
        self.inner.emit(event);
        if let LicenseEvent::Activated {
            license_id,
            device_id,
            hardware_hash,
            machine_name,
            ..
        } = event
        {
            let pending = Pending {
                device: DeviceRef {
                    license_id: *license_id,
                    device_id: *device_id,
                },
                hardware_hash: hardware_hash.clone(),
                machine_name: machine_name.clone(),
            };
            if self.tx.try_send(pending).is_err() {
                metrics::counter!("tessera_search_index_dropped_total").increment(1);
            }
        }
    }
    fn changed(&self, key: &tessera_actors::LicenseKey) {
        self.inner.changed(key);
    }

    fn ended_elsewhere(
        &self,
        key: &tessera_actors::LicenseKey,
        session: &tessera_actors::SessionRecord,
        reason: tessera_actors::EndReason,
    ) {
        self.inner.ended_elsewhere(key, session, reason);
    }
}
