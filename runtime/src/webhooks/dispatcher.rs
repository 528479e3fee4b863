//! The delivery engine, on tasks of its own (nothing here runs on a request's path):
//!
//! - the **consumer** takes every event this server stores (`Events::subscribe_local`, so
//!   with several servers on one store each event is delivered by the server it happened on)
//!   and writes one pending delivery per active endpoint that wants it, then starts its first
//!   attempt at once if there is room;
//! - the **sweeper** (each second, and whenever an attempt ends) reads the due queue from
//!   the store and starts the due deliveries there is room for: retries, deliveries that
//!   found no room, and those a restart or another server left behind;
//! - the **refresher** re-reads the endpoints every 2 s (other servers' changes);
//! - the **maintainer** sets `tessera_webhook_pending` every 10 s and, each minute, trims
//!   every endpoint's log to its newest `webhooks.max_deliveries_per_endpoint` and removes
//!   deleted endpoints with their deliveries.
//!
//! At most `webhooks.concurrency` attempts run at once, one endpoint at most half of them, each
//! bounded by `webhooks.timeout_ms`: a receiver that hangs holds a few slots, never a
//! request. An attempt claims its delivery by compare-and-swap first (see `delivery.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use serde_json::json;
use tessera_config::WebhooksConfig;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast};
use tokio::task::{JoinHandle, JoinSet};

use super::attempt::{Outcome, Sender};
use super::delivery::{
    DUE_PREFIX, Delivery, Status, backoff, endpoint_of, endpoint_term, store_id,
};
use super::endpoint::{Endpoint, MAX_ENDPOINTS};
use super::error::WebhookError;
use super::payload;
use crate::events::{Event, Events, NewEvent, Severity};
use crate::store::catalog::{CatalogKind, CatalogStore, Entry, numeric_id};

const ENDPOINTS: CatalogKind = CatalogKind::WebhookEndpoint;
const DELIVERIES: CatalogKind = CatalogKind::WebhookDelivery;

/// A claimed attempt's lease lasts its timeout plus this.
pub(crate) const LEASE_MARGIN: Duration = Duration::from_secs(10);
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Queue entries one sweep reads (ids only).
const SWEEP_READ: usize = 1_000;
const REFRESH_EVERY: Duration = Duration::from_secs(2);
const GAUGE_EVERY: Duration = Duration::from_secs(10);
/// Maintainer ticks between trims (one minute).
const TRIM_EVERY_TICKS: u32 = 6;
/// `tessera_webhook_pending` counts up to this many.
const PENDING_COUNTED: usize = 10_000;
/// Ids read per page when trimming an endpoint's log.
const TRIM_PAGE: usize = 500;
/// Tries of a compare-and-swap that lost to another writer.
pub(crate) const CAS_TRIES: usize = 8;
/// How long shutdown waits for queued events to become deliveries.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// Why a delivery was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dispatch {
    /// Its attempt runs now.
    Started,
    /// It (or too many of its endpoint's) is running already.
    Busy,
    /// Every slot is taken, or the server is stopping.
    Full,
}

/// A running attempt's place: a permit and its entry among the running deliveries, both
/// given back when it drops.
pub(crate) struct Slot {
    owner: Arc<Dispatcher>,
    id: String,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.owner.in_flight.lock().remove(&self.id);
        self.owner.wake.notify_one();
    }
}

/// The engine. One per server.
pub(crate) struct Dispatcher {
    store: Arc<dyn CatalogStore>,
    events: Events,
    config: WebhooksConfig,
    sender: Sender,
    permits: Arc<Semaphore>,
    per_endpoint: usize,
    /// Store id → endpoint of every attempt running here.
    in_flight: Mutex<HashMap<String, u64>>,
    /// The low digits of delivery numbers.
    counter: AtomicU64,
    endpoints: RwLock<Arc<Vec<Endpoint>>>,
    wake: Notify,
    draining: Notify,
    closed: AtomicBool,
    attempts: Mutex<JoinSet<()>>,
    loops: Mutex<Vec<JoinHandle<()>>>,
    consumer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("in_flight", &self.in_flight.lock().len())
            .finish()
    }
}

impl Dispatcher {
    /// Subscribes to `events` and starts the loops.
    pub(crate) async fn start(
        store: Arc<dyn CatalogStore>,
        events: Events,
        config: &WebhooksConfig,
    ) -> Arc<Self> {
        // First, so no event stored from here on is missed.
        let rx = events.subscribe_local();
        let concurrency = config.concurrency.max(1);
        let me = Arc::new(Self {
            store,
            events,
            config: config.clone(),
            sender: Sender::new(config),
            permits: Arc::new(Semaphore::new(concurrency)),
            per_endpoint: concurrency.div_ceil(2),
            in_flight: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(rand::rng().random_range(0..1_000)),
            endpoints: RwLock::new(Arc::new(Vec::new())),
            wake: Notify::new(),
            draining: Notify::new(),
            closed: AtomicBool::new(false),
            attempts: Mutex::new(JoinSet::new()),
            loops: Mutex::new(Vec::new()),
            consumer: Mutex::new(None),
        });
        me.refresh().await;
        *me.consumer.lock() = Some(tokio::spawn(Arc::clone(&me).consume(rx)));
        let loops = vec![
            tokio::spawn(Arc::clone(&me).sweeper()),
            tokio::spawn(Arc::clone(&me).refresher()),
            tokio::spawn(Arc::clone(&me).maintainer()),
        ];
        *me.loops.lock() = loops;
        me
    }

    /// Turns the events already queued into deliveries (for the next start), lets running
    /// attempts end (at most the attempt timeout, at most 5 s), then stops every task.
    pub(crate) async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        self.draining.notify_one();
        let consumer = self.consumer.lock().take();
        if let Some(c) = consumer {
            let abort = c.abort_handle();
            if tokio::time::timeout(DRAIN_WAIT, c).await.is_err() {
                abort.abort();
            }
        }
        for l in self.loops.lock().drain(..) {
            l.abort();
        }
        let mut running = std::mem::take(&mut *self.attempts.lock());
        let grace = self.config.timeout.min(Duration::from_secs(5));
        let _ = tokio::time::timeout(grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        running.abort_all();
        while running.join_next().await.is_some() {}
    }

    /// Re-reads the endpoints (after a change here; other servers' every 2 s).
    pub(crate) async fn refresh(&self) {
        match self.store.list(ENDPOINTS, None, MAX_ENDPOINTS * 2).await {
            Ok(rows) => {
                let endpoints: Vec<Endpoint> = rows
                    .iter()
                    .filter_map(|(_, bytes)| Endpoint::decode(bytes).ok())
                    .collect();
                *self.endpoints.write() = Arc::new(endpoints);
            }
            Err(e) => tracing::debug!(error = %e, "webhook endpoints not re-read"),
        }
    }

    async fn consume(self: Arc<Self>, mut rx: broadcast::Receiver<Arc<Event>>) {
        loop {
            let next = tokio::select! {
                next = rx.recv() => next,
                () = self.draining.notified() => {
                    loop {
                        match rx.try_recv() {
                            Ok(event) => self.on_event(&event, false).await,
                            Err(TryRecvError::Lagged(n)) => lagged(n),
                            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
                        }
                    }
                }
            };
            match next {
                Ok(event) => self.on_event(&event, true).await,
                Err(RecvError::Lagged(n)) => lagged(n),
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// One delivery per active endpoint that wants `event`. When `start` and there is room,
    /// it is written already claimed and its first attempt starts at once (one write fewer);
    /// else it is written due now and the sweeper starts it.
    async fn on_event(self: &Arc<Self>, event: &Event, start: bool) {
        let endpoints = Arc::clone(&self.endpoints.read());
        for ep in endpoints
            .iter()
            .filter(|e| e.active() && e.wants(&event.event_type))
        {
            let mut outcome = Err(WebhookError::Conflict("no free delivery id".into()));
            for _ in 0..3 {
                let seq = self.next_seq();
                let slot = if start {
                    self.reserve(&store_id(ep.id, seq), ep.id).ok()
                } else {
                    None
                };
                outcome = match self.create(ep, event, seq, slot.is_some()).await {
                    Ok((d, bytes)) => {
                        if let Some(slot) = slot {
                            self.spawn(slot, d, bytes, true);
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                // Only a taken id is worth another try.
                if !matches!(outcome, Err(WebhookError::Conflict(_))) {
                    break;
                }
            }
            if let Err(e) = outcome {
                metrics::counter!("tessera_webhook_deliveries_total", "endpoint" => ep.id.to_string(), "outcome" => "dropped")
                    .increment(1);
                tracing::warn!(webhook = ep.id, event = %event.id, error = %e, "webhook delivery not recorded; it is lost");
            }
        }
    }

    /// A delivery number: unix ms × 1000 plus a counter, so ids grow with time (newest
    /// first in the log) without a store round trip, and stay below 2^53 (exact in
    /// JavaScript). A clash with another server's is caught by the create's swap.
    fn next_seq(&self) -> u64 {
        let ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
        ms.saturating_mul(1_000) + self.counter.fetch_add(1, Ordering::Relaxed) % 1_000
    }

    async fn create(
        &self,
        ep: &Endpoint,
        event: &Event,
        seq: u64,
        claimed: bool,
    ) -> Result<(Delivery, Vec<u8>), WebhookError> {
        let now = Utc::now();
        let d = Delivery {
            seq,
            endpoint: ep.id,
            webhook_id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            body: payload::render(ep.format, event),
            status: Status::Pending,
            attempts: 0,
            step: 0,
            created_at: now,
            next_attempt_at: Some(if claimed { self.lease_end(now) } else { now }),
            in_flight: claimed,
            last_attempt_at: claimed.then_some(now),
            last_status_code: None,
            last_latency_ms: None,
            last_error: None,
        };
        let bytes = d.encode();
        let terms = d.terms();
        let entry = Entry {
            value: &bytes,
            terms: &terms,
        };
        if !self
            .store
            .swap(DELIVERIES, &d.store_id(), None, Some(entry))
            .await?
        {
            return Err(WebhookError::Conflict(format!(
                "delivery {} exists already",
                d.store_id()
            )));
        }
        Ok((d, bytes))
    }

    /// When a lease taken at `now` ends: the attempt's timeout and a margin.
    fn lease_end(&self, now: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
        now + self.config.timeout + LEASE_MARGIN
    }

    /// Takes a slot for delivery `id` of `endpoint`: a permit, and a place among the
    /// endpoint's running attempts.
    fn reserve(self: &Arc<Self>, id: &str, endpoint: u64) -> Result<Slot, Dispatch> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Dispatch::Full);
        }
        let mut running = self.in_flight.lock();
        if running.contains_key(id)
            || running.values().filter(|&&e| e == endpoint).count() >= self.per_endpoint
        {
            return Err(Dispatch::Busy);
        }
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            return Err(Dispatch::Full);
        };
        running.insert(id.to_owned(), endpoint);
        Ok(Slot {
            owner: Arc::clone(self),
            id: id.to_owned(),
            _permit: permit,
        })
    }

    /// Runs the attempt of `d` (stored as `bytes`; `claimed` when that is already a claim)
    /// on a task of its own, holding `slot`.
    fn spawn(self: &Arc<Self>, slot: Slot, d: Delivery, bytes: Vec<u8>, claimed: bool) {
        let me = Arc::clone(self);
        let mut set = self.attempts.lock();
        while set.try_join_next().is_some() {}
        set.spawn(async move {
            me.attempt(d, bytes, claimed).await;
            drop(slot);
        });
    }

    /// Starts an attempt of `d` (stored as `bytes`) if there is room.
    pub(crate) fn try_dispatch(self: &Arc<Self>, d: Delivery, bytes: Vec<u8>) -> Dispatch {
        match self.reserve(&d.store_id(), d.endpoint) {
            Ok(slot) => {
                self.spawn(slot, d, bytes, false);
                Dispatch::Started
            }
            Err(why) => why,
        }
    }

    fn busy(&self, store_id: &str) -> bool {
        let running = self.in_flight.lock();
        running.contains_key(store_id)
            || endpoint_of(store_id).is_some_and(|ep| {
                running.values().filter(|&&e| e == ep).count() >= self.per_endpoint
            })
    }

    async fn endpoint(&self, id: u64) -> Result<Option<(Endpoint, Vec<u8>)>, WebhookError> {
        match self.store.get(ENDPOINTS, &numeric_id(id)).await? {
            Some(bytes) => Ok(Some((Endpoint::decode(&bytes)?, bytes))),
            None => Ok(None),
        }
    }

    async fn put(&self, old: &[u8], new: &Delivery) -> Result<(bool, Vec<u8>), WebhookError> {
        let bytes = new.encode();
        let terms = new.terms();
        let entry = Entry {
            value: &bytes,
            terms: &terms,
        };
        let done = self
            .store
            .swap(DELIVERIES, &new.store_id(), Some(old), Some(entry))
            .await?;
        Ok((done, bytes))
    }

    /// Claims `d`, sends it, records what happened and how the endpoint fares.
    async fn attempt(self: &Arc<Self>, d: Delivery, bytes: Vec<u8>, claimed: bool) {
        if let Err(e) = self.try_attempt(d, bytes, claimed).await {
            tracing::warn!(error = %e, "webhook attempt not recorded; it is retried when its lease ends");
        }
    }

    async fn try_attempt(
        self: &Arc<Self>,
        d: Delivery,
        bytes: Vec<u8>,
        claimed: bool,
    ) -> Result<(), WebhookError> {
        let now = Utc::now();
        if !claimed && !d.is_due(now) {
            return Ok(());
        }
        let label = d.endpoint.to_string();
        let ep = match self.endpoint(d.endpoint).await? {
            Some((ep, _)) if !ep.deleted => ep,
            _ => {
                // Its endpoint is gone: so is the delivery.
                self.store
                    .swap(DELIVERIES, &d.store_id(), Some(&bytes), None)
                    .await?;
                return Ok(());
            }
        };
        if !ep.enabled {
            let mut failed = d.clone();
            failed.status = Status::Failed;
            failed.next_attempt_at = None;
            failed.last_error = Some("endpoint disabled; enable it and redeliver".to_owned());
            if self.put(&bytes, &failed).await?.0 {
                metrics::counter!("tessera_webhook_deliveries_total", "endpoint" => label, "outcome" => "failed")
                    .increment(1);
            }
            return Ok(());
        }
        let (claimed, claimed_bytes) = if claimed {
            (d, bytes)
        } else {
            let mut c = d;
            c.in_flight = true;
            c.last_attempt_at = Some(now);
            c.next_attempt_at = Some(self.lease_end(now));
            let (won, c_bytes) = self.put(&bytes, &c).await?;
            if !won {
                return Ok(());
            }
            (c, c_bytes)
        };

        let outcome = self
            .sender
            .send(&ep.url, &claimed, &ep.secrets.signing(now))
            .await;

        metrics::histogram!("tessera_webhook_delivery_seconds", "endpoint" => label.clone())
            .record(outcome.latency.as_secs_f64());
        let mut done = claimed;
        done.in_flight = false;
        done.attempts = done.attempts.saturating_add(1);
        done.step = done.step.saturating_add(1);
        done.last_status_code = outcome.status;
        done.last_latency_ms = Some(u64::try_from(outcome.latency.as_millis()).unwrap_or(u64::MAX));
        done.last_error = outcome.error.clone();
        let result = if outcome.delivered() {
            done.status = Status::Delivered;
            done.next_attempt_at = None;
            "delivered"
        } else {
            let jitter = rand::rng().random_range(-1.0..=1.0);
            match backoff(done.step, self.config.retry_base, jitter) {
                Some(delay) => {
                    done.next_attempt_at = Some(Utc::now() + delay);
                    "retrying"
                }
                None => {
                    done.status = Status::Failed;
                    done.next_attempt_at = None;
                    "failed"
                }
            }
        };
        if !self.put(&claimed_bytes, &done).await?.0 {
            tracing::debug!(
                webhook = ep.id,
                delivery = done.seq,
                "delivery changed during its attempt; the change stands"
            );
        }
        metrics::counter!("tessera_webhook_deliveries_total", "endpoint" => label, "outcome" => result)
            .increment(1);
        if let Some(error) = &outcome.error {
            tracing::debug!(webhook = ep.id, delivery = done.seq, attempt = done.attempts, error = %error, "webhook attempt failed");
        }
        self.health(&ep, &outcome).await
    }

    /// Keeps the endpoint's failure streak: started by a failure, ended by a success; a
    /// streak of `webhooks.disable_after_secs` disables the endpoint, with a critical event.
    async fn health(&self, seen: &Endpoint, outcome: &Outcome) -> Result<(), WebhookError> {
        let ok = outcome.delivered();
        let overdue = |ep: &Endpoint| {
            ep.failing_since.is_some_and(|since| {
                (Utc::now() - since).to_std().unwrap_or_default() >= self.config.disable_after
            })
        };
        // Most attempts change nothing: no write then.
        let needs_write = if ok {
            seen.failing_since.is_some()
        } else {
            seen.failing_since.is_none() || (seen.enabled && overdue(seen))
        };
        if !needs_write {
            return Ok(());
        }
        for _ in 0..CAS_TRIES {
            let Some((mut ep, bytes)) = self.endpoint(seen.id).await? else {
                return Ok(());
            };
            if ep.deleted {
                return Ok(());
            }
            let since = ep.failing_since;
            let mut disabled = false;
            if ok {
                if ep.failing_since.is_none() {
                    return Ok(());
                }
                ep.failing_since = None;
            } else if ep.failing_since.is_none() {
                ep.failing_since = Some(Utc::now());
            } else if ep.enabled && overdue(&ep) {
                ep.enabled = false;
                ep.disabled_reason = Some(format!(
                    "every delivery failed for {} s (webhooks.disable_after_secs) since {}",
                    self.config.disable_after.as_secs(),
                    since.map(|s| s.to_rfc3339()).unwrap_or_default()
                ));
                disabled = true;
            } else {
                return Ok(());
            }
            let new = ep.encode();
            let entry = Entry {
                value: &new,
                terms: &[],
            };
            if self
                .store
                .swap(ENDPOINTS, &numeric_id(ep.id), Some(&bytes), Some(entry))
                .await?
            {
                if disabled {
                    self.announce_disabled(&ep, outcome);
                    self.refresh().await;
                }
                return Ok(());
            }
        }
        Ok(())
    }

    fn announce_disabled(&self, ep: &Endpoint, outcome: &Outcome) {
        let host = reqwest::Url::parse(&ep.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        tracing::error!(webhook = ep.id, host = %host, "webhook endpoint disabled: its deliveries failed for webhooks.disable_after_secs");
        self.events.publish(
            NewEvent::new(
                "webhook.endpoint_disabled",
                Severity::Critical,
                format!(
                    "webhook {} ({host}) disabled: its deliveries failed for {} s",
                    ep.id,
                    self.config.disable_after.as_secs()
                ),
            )
            .actor("system")
            .data(json!({
                "webhook_id": ep.id,
                "host": host,
                "failing_since": ep.failing_since,
                "last_error": outcome.error,
                "last_status_code": outcome.status,
            })),
        );
    }

    async fn sweeper(self: Arc<Self>) {
        loop {
            let _ = tokio::time::timeout(SWEEP_EVERY, self.wake.notified()).await;
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            if let Err(e) = self.sweep().await {
                tracing::debug!(error = %e, "webhook queue not read");
            }
        }
    }

    /// Starts due deliveries, earliest first, while there is room.
    async fn sweep(self: &Arc<Self>) -> Result<(), WebhookError> {
        if self.permits.available_permits() == 0 {
            return Ok(());
        }
        let ids = self
            .store
            .search(DELIVERIES, DUE_PREFIX, false, None, SWEEP_READ)
            .await?;
        let now = Utc::now();
        for id in ids {
            if self.permits.available_permits() == 0 {
                break;
            }
            if self.busy(&id) {
                continue;
            }
            let Some(bytes) = self.store.get(DELIVERIES, &id).await? else {
                continue;
            };
            let d = match Delivery::decode(&bytes) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(delivery = %id, error = %e, "webhook delivery skipped");
                    continue;
                }
            };
            if d.status != Status::Pending {
                continue;
            }
            // The queue is in due order: nothing after this one is due either.
            if !d.is_due(now) {
                break;
            }
            if self.try_dispatch(d, bytes) == Dispatch::Full {
                break;
            }
        }
        Ok(())
    }

    async fn refresher(self: Arc<Self>) {
        let mut tick = tokio::time::interval(REFRESH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.refresh().await;
        }
    }

    async fn maintainer(self: Arc<Self>) {
        let mut tick = tokio::time::interval(GAUGE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u32 = 0;
        loop {
            tick.tick().await;
            match self
                .store
                .search(DELIVERIES, DUE_PREFIX, false, None, PENDING_COUNTED)
                .await
            {
                Ok(ids) => metrics::gauge!("tessera_webhook_pending").set(ids.len() as f64),
                Err(e) => tracing::debug!(error = %e, "pending webhook deliveries not counted"),
            }
            n = n.wrapping_add(1);
            if n.is_multiple_of(TRIM_EVERY_TICKS)
                && let Err(e) = self.trim().await
            {
                tracing::warn!(error = %e, "webhook delivery logs not trimmed");
            }
        }
    }

    /// Trims every endpoint's log; removes deleted endpoints' deliveries, then the endpoint.
    pub(crate) async fn trim(&self) -> Result<(), WebhookError> {
        let rows = self.store.list(ENDPOINTS, None, MAX_ENDPOINTS * 2).await?;
        for (id, bytes) in rows {
            let Ok(ep) = Endpoint::decode(&bytes) else {
                continue;
            };
            if ep.deleted {
                if self.keep_newest(ep.id, 0).await? == 0 {
                    self.store.swap(ENDPOINTS, &id, Some(&bytes), None).await?;
                }
            } else {
                self.keep_newest(ep.id, self.config.max_deliveries_per_endpoint)
                    .await?;
            }
        }
        Ok(())
    }

    /// Removes all but `endpoint`'s newest `keep` deliveries (not one with an attempt
    /// running); returns how many are left.
    pub(crate) async fn keep_newest(
        &self,
        endpoint: u64,
        keep: usize,
    ) -> Result<usize, WebhookError> {
        let term = endpoint_term(endpoint);
        let (mut after, mut seen, mut left) = (None::<String>, 0usize, 0usize);
        loop {
            let ids = self
                .store
                .search(DELIVERIES, &term, true, after.as_deref(), TRIM_PAGE)
                .await?;
            for id in &ids {
                seen += 1;
                if seen <= keep || !self.remove(id, endpoint).await? {
                    left += 1;
                }
            }
            if ids.len() < TRIM_PAGE {
                return Ok(left);
            }
            after = ids.last().cloned();
        }
    }

    /// Removes one delivery unless an attempt of it runs; whether it went.
    async fn remove(&self, id: &str, endpoint: u64) -> Result<bool, WebhookError> {
        let Some(bytes) = self.store.get(DELIVERIES, id).await? else {
            return Ok(true);
        };
        let d = Delivery::decode(&bytes)?;
        if d.in_flight && !d.is_due(Utc::now()) {
            return Ok(false);
        }
        let gone = self.store.swap(DELIVERIES, id, Some(&bytes), None).await?;
        if gone && d.status == Status::Pending {
            metrics::counter!("tessera_webhook_deliveries_total", "endpoint" => endpoint.to_string(), "outcome" => "dropped")
                .increment(1);
        }
        Ok(gone)
    }

    /// Removes a deleted endpoint's deliveries and then its record, on a task of its own.
    pub(crate) fn purge_later(self: &Arc<Self>) {
        let me = Arc::clone(self);
        let mut set = self.attempts.lock();
        set.spawn(async move {
            if let Err(e) = me.trim().await {
                tracing::debug!(error = %e, "deleted webhook not purged yet; the next trim retries");
            }
        });
    }
}

fn lagged(n: u64) {
    metrics::counter!("tessera_events_dropped_total", "sink" => "webhooks", "type" => "any")
        .increment(n);
    tracing::warn!(
        events = n,
        "webhooks fell behind the event fan-out; these events get no delivery"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EmbeddedStore;
    use crate::webhooks::endpoint::Format;
    use crate::webhooks::secret::Secrets;
    use tessera_config::EventsConfig;

    async fn put_endpoint(store: &Arc<dyn CatalogStore>, ep: &Endpoint) -> Endpoint {
        let id = numeric_id(ep.id);
        let old = store.get(ENDPOINTS, &id).await.unwrap_or(None);
        let bytes = ep.encode();
        let entry = Entry {
            value: &bytes,
            terms: &[],
        };
        assert_eq!(
            store
                .swap(ENDPOINTS, &id, old.as_deref(), Some(entry))
                .await
                .ok(),
            Some(true)
        );
        ep.clone()
    }

    async fn get_endpoint(store: &Arc<dyn CatalogStore>) -> Endpoint {
        let bytes = store.get(ENDPOINTS, &numeric_id(1)).await.ok().flatten();
        Endpoint::decode(&bytes.unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_endpoint_failing_for_disable_after_is_disabled_with_a_critical_event() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let embedded =
            EmbeddedStore::open(&dir.path().join("t.redb")).unwrap_or_else(|e| panic!("{e}"));
        let events = Events::start(Arc::new(embedded.clone()), &EventsConfig::default()).await;
        let mut seen = events.subscribe_local();
        let config = WebhooksConfig {
            disable_after: Duration::from_secs(60),
            ..WebhooksConfig::default()
        };
        let store: Arc<dyn CatalogStore> = Arc::new(embedded);
        let d = Dispatcher::start(Arc::clone(&store), events.clone(), &config).await;
        let now = Utc::now();
        // No event matches it, so nothing is ever sent to the (unreachable) URL.
        let ep = put_endpoint(
            &store,
            &Endpoint {
                id: 1,
                url: "https://hooks.example.com/x".into(),
                event_types: vec!["never.matches.".into()],
                format: Format::Json,
                enabled: true,
                created_at: now,
                updated_at: now,
                secrets: Secrets::generate(),
                failing_since: None,
                disabled_reason: None,
                deleted: false,
            },
        )
        .await;
        let failed = Outcome {
            status: Some(500),
            latency: Duration::from_millis(3),
            error: Some("HTTP 500".into()),
        };
        let ok = Outcome {
            status: Some(204),
            latency: Duration::from_millis(3),
            error: None,
        };

        // A failure starts the streak, a success ends it.
        assert!(d.health(&ep, &failed).await.is_ok());
        let streak = get_endpoint(&store).await;
        assert!(streak.failing_since.is_some() && streak.enabled);
        assert!(d.health(&streak, &ok).await.is_ok());
        assert_eq!(get_endpoint(&store).await.failing_since, None);

        // Failing for less than disable_after changes nothing; for longer, disables.
        let mut young = streak.clone();
        young.failing_since = Some(Utc::now() - chrono::Duration::seconds(30));
        let young = put_endpoint(&store, &young).await;
        assert!(d.health(&young, &failed).await.is_ok());
        assert!(get_endpoint(&store).await.enabled);
        let mut old = young;
        old.failing_since = Some(Utc::now() - chrono::Duration::seconds(61));
        let old = put_endpoint(&store, &old).await;
        assert!(d.health(&old, &failed).await.is_ok());
        let disabled = get_endpoint(&store).await;
        assert!(!disabled.enabled);
        assert!(disabled.disabled_reason.is_some_and(|r| r.contains("60 s")));

        let event = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match seen.recv().await {
                    Ok(e) if e.event_type == "webhook.endpoint_disabled" => return Some(e),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
        })
        .await
        .ok()
        .flatten();
        let event = event.unwrap_or_else(|| panic!("no webhook.endpoint_disabled event"));
        assert_eq!(event.severity, Severity::Critical);
        assert_eq!(event.data["webhook_id"], 1);
        assert_eq!(event.data["host"], "hooks.example.com");
        assert!(
            !event.summary.contains("/x"),
            "the URL's path may hold a token"
        );
        d.shutdown().await;
        events.shutdown().await;
    }
}
