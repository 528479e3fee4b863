//! The fan-out: a bounded queue to the persister task, which stores events in batches and
//! then hands them to this server's local consumers; the live-stream tail; the trimmer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use parking_lot::Mutex;
use tessera_config::EventsConfig;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use super::stream::{Hub, Subscription};
use crate::store::events::{Event, EventStore, MAX_BATCH, NewEvent};

/// Events waiting for the persister. Past this, publishing drops (and counts) the event.
pub const EVENT_QUEUE: usize = 10_000;

/// Stored events kept for each local consumer that has not read them yet; one that falls
/// further behind loses the oldest (and counts them).
const LOCAL_BUFFER: usize = 4_096;

/// Events stored in one append.
const BATCH: usize = 256;

/// How often old events are trimmed.
const TRIM_EVERY: Duration = Duration::from_secs(60);

/// The event fan-out of one server. Cheap to clone.
#[derive(Clone)]
pub struct Events(Arc<Inner>);

struct Inner {
    tx: mpsc::Sender<NewEvent>,
    /// Published and not yet stored (or dropped by a failed append).
    pending: Arc<AtomicU64>,
    local: broadcast::Sender<Arc<Event>>,
    hub: Arc<Hub>,
    store: Arc<dyn EventStore>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    persister: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("pending", &self.0.pending.load(Ordering::Relaxed))
            .finish()
    }
}

impl Events {
    /// Starts the persister, the live-stream tail and the trimmer over `store`.
    pub async fn start(store: Arc<dyn EventStore>, config: &EventsConfig) -> Self {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let (local, _) = broadcast::channel(LOCAL_BUFFER);
        let hub = Hub::start(Arc::clone(&store)).await;
        let pending = Arc::new(AtomicU64::new(0));
        let persister = tokio::spawn(persist(
            rx,
            Arc::clone(&store),
            local.clone(),
            Arc::clone(&hub),
            Arc::clone(&pending),
        ));
        let trimmer = tokio::spawn(trim(Arc::clone(&store), config.clone()));
        let tail = Hub::spawn_tail(&hub);
        Self(Arc::new(Inner {
            tx,
            pending,
            local,
            hub,
            store,
            tasks: Mutex::new(vec![trimmer, tail]),
            persister: Mutex::new(Some(persister)),
        }))
    }

    /// Queues `event` for the log and the consumers. Never blocks; a full queue drops it.
    pub fn publish(&self, event: NewEvent) {
        let event_type = event.event_type.clone();
        self.0.pending.fetch_add(1, Ordering::Relaxed);
        match self.0.tx.try_send(event) {
            Ok(()) => metrics::counter!("tessera_events_total", "type" => event_type).increment(1),
            Err(_) => {
                self.0.pending.fetch_sub(1, Ordering::Relaxed);
                metrics::counter!("tessera_events_dropped_total", "sink" => "log", "type" => event_type)
                    .increment(1);
            }
        }
    }

    /// Every event this server stores from now on, once each (webhooks and statistics
    /// subscribe here, so each event is delivered and counted by the server it happened on).
    /// A receiver that falls [`LOCAL_BUFFER`] behind loses the oldest and learns how many.
    pub fn subscribe_local(&self) -> broadcast::Receiver<Arc<Event>> {
        self.0.local.subscribe()
    }

    /// Every server's events from now on, as the live stream sends them: at most `buffer`
    /// queued; a subscriber that falls further behind is cut off (its receiver ends and
    /// [`Subscription::was_dropped`] says so).
    pub fn stream(&self, buffer: usize) -> Subscription {
        self.0.hub.subscribe(buffer)
    }

    /// The event log.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.0.store
    }

    /// Stores what is queued, then stops the tasks (the server is shutting down).
    pub async fn shutdown(&self) {
        // Clones of `Events` hold senders, so the queue never closes by itself: wait until
        // every published event was stored (or its append failed), for at most 5 s.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.0.pending.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Some(p) = self.0.persister.lock().take() {
            p.abort();
        }
        for t in self.0.tasks.lock().drain(..) {
            t.abort();
        }
    }
}

async fn persist(
    mut rx: mpsc::Receiver<NewEvent>,
    store: Arc<dyn EventStore>,
    local: broadcast::Sender<Arc<Event>>,
    hub: Arc<Hub>,
    pending: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH.min(MAX_BATCH) {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let appended = store.append(std::mem::take(&mut batch)).await;
        pending.fetch_sub(n, Ordering::Release);
        match appended {
            Ok(stored) => {
                for e in stored {
                    // No local consumer is not an error.
                    let _ = local.send(Arc::new(e));
                }
                hub.wake();
            }
            Err(e) => {
                metrics::counter!("tessera_events_dropped_total", "sink" => "log", "type" => "any")
                    .increment(n);
                tracing::warn!(error = %e, events = n, "events not stored");
            }
        }
    }
}

async fn trim(store: Arc<dyn EventStore>, config: EventsConfig) {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let older_than = Utc::now() - chrono::Duration::days(i64::from(config.retention_days));
        match store.trim(older_than, config.max_events).await {
            Ok(n) => metrics::counter!("tessera_events_trimmed_total").increment(n),
            Err(e) => tracing::warn!(error = %e, "event log not trimmed"),
        }
    }
}
