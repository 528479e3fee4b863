//! A shard actor: hosts the license state machines whose keys hash to it.
//!
//! **Architecture Invariant:** a shard never awaits the store inside its message loop.
//! Loads and writes run as spawned tasks that report back with a message; a slow store
//! delays only the licenses waiting on it.
//!
//! Deadlines live in one coarse timing wheel per shard (a map from whole seconds to the
//! sessions due then). Heartbeats do not touch it: when an entry fires the machine checks
//! the session's real deadline and re-arms it if it moved (lazy expiry).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;

use crate::machine::LicenseMachine;
use crate::messages::{Effect, LicenseError, LicenseEvent, OpId, Reply, ReqId, Request};
use crate::model::{EndReason, LicenseKey, LicenseSnapshot, SessionRecord, TokenHash};
use crate::registry::EventSink;
use crate::settings::{Rules, SharedRules};
use crate::store::{Store, StoreError, StoreOutcome};
use crate::write_behind::WriteBehind;

/// How often a shard checks its timing wheel.
pub const TICK: Duration = Duration::from_millis(200);
/// A shard's housekeeping (passivating idle licenses, checking derived expiry, giving back
/// drained buffers) visits every license once per this many ticks, a slice per tick: one
/// pass over all of them at once held a shard of 500,000 licenses for 100-300 ms every 5 s,
/// and every request to that shard waited (p99 of 320 ms at 30,000 heartbeats/s with 1M
/// licenses in memory, bench/README.md).
const HOUSEKEEPING_TICKS: usize = 25;

/// Where a reply goes.
pub type ReplyTo = oneshot::Sender<Result<Reply, LicenseError>>;

/// Messages a shard handles.
pub enum ShardMsg {
    /// A request for one license.
    Request {
        /// License.
        key: LicenseKey,
        /// The request.
        req: Request,
        /// Reply channel.
        reply: ReplyTo,
    },
    /// A session the store reports overdue (recovery sweep): load its license and let it expire.
    Expire {
        /// License.
        key: LicenseKey,
        /// Session.
        token: TokenHash,
    },
    /// A load finished.
    Loaded {
        /// License.
        key: LicenseKey,
        /// What the store returned.
        result: Result<Option<LicenseSnapshot>, StoreError>,
    },
    /// A persist effect finished.
    Persisted {
        /// License.
        key: LicenseKey,
        /// Operation.
        op: OpId,
        /// What the store returned.
        result: Result<StoreOutcome, StoreError>,
    },
    /// Another node changed this license: reload it if it is in memory.
    Refresh {
        /// License.
        key: LicenseKey,
    },
    /// Reload every license in memory.
    RefreshAll,
    /// A refresh's load finished.
    Refreshed {
        /// License.
        key: LicenseKey,
        /// What the store returned.
        result: Result<Option<LicenseSnapshot>, StoreError>,
    },
    /// Timer tick.
    Tick,
    /// The keys of the licenses in this shard that have live sessions now.
    LiveLicenses(oneshot::Sender<Vec<LicenseKey>>),
    /// Test only: panic while handling this license.
    #[cfg(test)]
    PanicIn(LicenseKey),
    /// Test only: how many licenses this shard holds.
    #[cfg(test)]
    InMemory(oneshot::Sender<usize>),
    /// Test only: panic in the shard itself.
    #[cfg(test)]
    Crash,
}

/// What every shard shares.
pub struct ShardContext {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// Current rules.
    pub rules: SharedRules,
    /// Heartbeat write-behind.
    pub write_behind: Arc<WriteBehind>,
    /// Event consumer.
    pub events: Arc<dyn EventSink>,
    /// When this process started (restart grace counts from here).
    pub booted_at: DateTime<Utc>,
    /// Upper bound on one store call.
    pub op_timeout: Duration,
    /// Token → license cache for token-only callers.
    pub sessions: Arc<crate::session_index::SessionIndex>,
}

/// The shard actor.
pub struct Shard;

struct Slot {
    machine: LicenseMachine,
    /// The requests waiting for their reply: a few at most, so a list (24 bytes, where a
    /// map is 48 and its first insert allocates four buckets). With it a slot fits
    /// mimalloc's 512-byte size class (`slot_fits_512_bytes` below); 8 bytes more and
    /// every license in memory would take 640.
    replies: Vec<(ReqId, ReplyTo)>,
}

impl Slot {
    fn take_reply(&mut self, id: ReqId) -> Option<ReplyTo> {
        let i = self.replies.iter().position(|(r, _)| *r == id)?;
        Some(self.replies.swap_remove(i).1)
    }
}

/// State of one shard.
pub struct ShardState {
    ctx: Arc<ShardContext>,
    // Boxed: a slot is large and a shard holds hundreds of thousands; the map then only
    // over-allocates pointers when it grows.
    licenses: HashMap<LicenseKey, Box<Slot>>,
    loading: HashMap<LicenseKey, Vec<Option<(Request, ReplyTo)>>>,
    wheel: BTreeMap<i64, Vec<(LicenseKey, TokenHash)>>,
    /// Licenses being reloaded by a refresh, and those whose refresh waits for their
    /// in-flight changes to settle (retried each tick).
    /// For a refresh reading the store: the machine's [`LicenseMachine::changes_started`]
    /// when the read began, if it was settled then (else the read is taken as stale).
    refreshing: HashMap<LicenseKey, Option<crate::messages::OpId>>,
    refresh_later: HashSet<LicenseKey>,
    /// Requests the cached copy would have refused (see
    /// [`LicenseMachine::may_be_stale_for`]), waiting for the running refresh; and those that
    /// came while a refresh was already reading the store, waiting for the next one.
    confirming: HashMap<LicenseKey, Vec<(Request, ReplyTo)>>,
    confirm_next: HashMap<LicenseKey, Vec<(Request, ReplyTo)>>,
    rechecks: metrics::Counter,
    /// Requests answered by a license already in memory, and loads from the store:
    /// registered once, so counting costs an atomic add on the request path.
    cache_hits: metrics::Counter,
    cache_loads: metrics::Counter,
    next_req: ReqId,
    /// Where the next tick's housekeeping slice starts, in `licenses`' iteration order.
    housekeeping_at: usize,
}

impl Actor for Shard {
    type Msg = ShardMsg;
    type State = ShardState;
    type Arguments = Arc<ShardContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<ShardMsg>,
        ctx: Arc<ShardContext>,
    ) -> Result<ShardState, ActorProcessingErr> {
        myself.send_interval(TICK, || ShardMsg::Tick);
        Ok(ShardState {
            ctx,
            licenses: HashMap::new(),
            loading: HashMap::new(),
            wheel: BTreeMap::new(),
            refreshing: HashMap::new(),
            refresh_later: HashSet::new(),
            confirming: HashMap::new(),
            confirm_next: HashMap::new(),
            rechecks: metrics::counter!("tessera_license_rechecks_total"),
            cache_hits: metrics::counter!("tessera_license_cache_hits_total"),
            cache_loads: metrics::counter!("tessera_license_loads_total"),
            next_req: 0,
            housekeeping_at: 0,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ShardMsg>,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        let live: usize = state
            .licenses
            .values()
            .map(|s| s.machine.live_sessions())
            .sum();
        metrics::gauge!("tessera_sessions_live").decrement(live as f64);
        metrics::gauge!("tessera_licenses_in_memory").decrement(state.licenses.len() as f64);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ShardMsg>,
        msg: ShardMsg,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        let now = Utc::now();
        match msg {
            ShardMsg::Request { key, req, reply } => {
                state.request(&myself, now, key, req, reply, true);
            }
            ShardMsg::Expire { key, token } => {
                if state.licenses.contains_key(&key) {
                    state.with_machine(&myself, &key, |m, rules| m.on_deadline(now, rules, &token));
                } else {
                    state.load(&myself, key, None);
                }
            }
            ShardMsg::Loaded { key, result } => state.loaded(&myself, now, key, result),
            ShardMsg::Refresh { key } => state.refresh(&myself, key),
            ShardMsg::RefreshAll => {
                let keys: Vec<LicenseKey> = state.licenses.keys().cloned().collect();
                for key in keys {
                    state.refresh(&myself, key);
                }
            }
            ShardMsg::Refreshed { key, result } => state.refreshed(&myself, now, key, result),
            ShardMsg::Persisted { key, op, result } => {
                if result.is_ok() {
                    state.ctx.events.changed(&key);
                }
                state.with_machine(&myself, &key, |m, rules| {
                    m.on_persisted(now, rules, op, result)
                });
                // A refresh that waited for this change need not wait for the next tick.
                if state.refresh_later.contains(&key)
                    && state
                        .licenses
                        .get(&key)
                        .is_some_and(|slot| slot.replies.is_empty() && slot.machine.is_settled())
                {
                    state.refresh_later.remove(&key);
                    state.refresh(&myself, key);
                }
            }
            ShardMsg::Tick => state.tick(&myself, now),
            ShardMsg::LiveLicenses(reply) => {
                let keys = state
                    .licenses
                    .iter()
                    .filter(|(_, slot)| slot.machine.live_sessions() > 0)
                    .map(|(key, _)| key.clone())
                    .collect();
                let _ = reply.send(keys);
            }
            #[cfg(test)]
            ShardMsg::PanicIn(key) => {
                state.with_machine(&myself, &key, |_, _| panic!("injected panic"));
            }
            #[cfg(test)]
            ShardMsg::InMemory(reply) => {
                let _ = reply.send(state.licenses.len());
            }
            #[cfg(test)]
            ShardMsg::Crash => panic!("injected shard crash"),
        }
        Ok(())
    }
}

impl ShardState {
    /// Runs `req` on the license in memory, or loads it first. With `check`, a refusal the
    /// cached copy may owe to another node's recent change waits for a reload instead.
    fn request(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        now: DateTime<Utc>,
        key: LicenseKey,
        req: Request,
        reply: ReplyTo,
        check: bool,
    ) {
        if let Some(slot) = self.licenses.get_mut(&key) {
            self.cache_hits.increment(1);
            if check && slot.machine.may_be_stale_for(&self.ctx.rules, &req) {
                self.rechecks.increment(1);
                // A refresh already reading the store may have read it before this change.
                let queue = if self.refreshing.contains_key(&key) {
                    &mut self.confirm_next
                } else {
                    &mut self.confirming
                };
                queue.entry(key.clone()).or_default().push((req, reply));
                self.refresh(myself, key);
                return;
            }
            self.next_req += 1;
            let id = self.next_req;
            slot.replies.push((id, reply));
            self.with_machine(myself, &key, |m, rules| m.handle(now, rules, id, req));
        } else {
            self.load(myself, key, Some((req, reply)));
        }
    }

    /// Queues `waiter` behind a load of `key`, starting the load if none is running.
    fn load(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        key: LicenseKey,
        waiter: Option<(Request, ReplyTo)>,
    ) {
        if let Some(waiters) = self.loading.get_mut(&key) {
            waiters.push(waiter);
            return;
        }
        self.loading.insert(key.clone(), vec![waiter]);
        self.cache_loads.increment(1);
        let store = Arc::clone(&self.ctx.store);
        let timeout = self.ctx.op_timeout;
        let me = myself.clone();
        tokio::spawn(async move {
            let result = match tokio::time::timeout(timeout, store.load(&key)).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Unavailable("load timed out".into())),
            };
            if let Err(e) = &result {
                metrics::counter!("tessera_store_errors_total", "op" => "load").increment(1);
                tracing::warn!(license = %key.masked(), error = %e, "license load failed");
            }
            // The shard may have been restarted meanwhile; its successor reloads on demand.
            let _ = me.cast(ShardMsg::Loaded { key, result });
        });
    }

    /// Starts reloading `key` for a refresh, if it is in memory and not already reloading.
    /// Requests waiting for a refresh of a license no longer in memory load it afresh.
    fn refresh(&mut self, myself: &ActorRef<ShardMsg>, key: LicenseKey) {
        if !self.licenses.contains_key(&key) {
            self.answer_confirmed(myself, &key);
            return;
        }
        if self.refreshing.contains_key(&key) {
            return;
        }
        let began = self.licenses.get(&key).and_then(|slot| {
            (slot.replies.is_empty() && slot.machine.is_settled())
                .then(|| slot.machine.changes_started())
        });
        self.refreshing.insert(key.clone(), began);
        let store = Arc::clone(&self.ctx.store);
        let timeout = self.ctx.op_timeout;
        let me = myself.clone();
        tokio::spawn(async move {
            let result = match tokio::time::timeout(timeout, store.load(&key)).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Unavailable("load timed out".into())),
            };
            let _ = me.cast(ShardMsg::Refreshed { key, result });
        });
    }

    /// Replaces the machine of `key` with the store's copy; a license with a change in
    /// flight is retried on a later tick (its own change may be what the store lacks yet).
    fn refreshed(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        now: DateTime<Utc>,
        key: LicenseKey,
        result: Result<Option<LicenseSnapshot>, StoreError>,
    ) {
        let began = self.refreshing.remove(&key).flatten();
        // Settled now, and no change of this node's started since the read began: a read
        // that may predate one of them would undo it here.
        let settled = match self.licenses.get(&key) {
            None => return self.answer_confirmed(myself, &key),
            Some(slot) => {
                slot.replies.is_empty()
                    && slot.machine.is_settled()
                    && began == Some(slot.machine.changes_started())
            }
        };
        let snapshot = match result {
            Ok(snapshot) if settled => snapshot,
            Ok(_) => {
                // Waiting requests wait on: the refresh is retried once this node's own
                // change is stored.
                self.refresh_later.insert(key);
                return;
            }
            Err(e) => {
                // The store will answer again; until then the cached license serves.
                metrics::counter!("tessera_store_errors_total", "op" => "load").increment(1);
                tracing::warn!(license = %key.masked(), error = %e, "license refresh failed");
                self.refresh_later.insert(key.clone());
                // A refusal the store cannot confirm is not given: the caller may retry.
                for (_, reply) in self.take_confirming(&key) {
                    let _ = reply.send(Err(LicenseError::StoreUnavailable));
                }
                self.answer_confirmed(myself, &key);
                return;
            }
        };
        let Some(slot) = self.licenses.remove(&key) else {
            return;
        };
        metrics::counter!("tessera_license_refreshes_total").increment(1);
        let before = slot.machine.live_sessions();
        let Some(snapshot) = snapshot else {
            // Deleted on another node.
            metrics::gauge!("tessera_licenses_in_memory").decrement(1.0);
            metrics::gauge!("tessera_sessions_live").decrement(before as f64);
            let gone = slot
                .machine
                .sessions()
                .map(|s| (s.clone(), EndReason::Admin))
                .collect();
            self.tell_gone(&key, gone);
            for (_, reply) in self.take_confirming(&key) {
                let _ = reply.send(Err(LicenseError::NotFound));
            }
            return;
        };
        let rules = self.ctx.rules.current();
        let booted_at = self.ctx.booted_at;
        let machine = slot.machine;
        let refreshed = catch_unwind(AssertUnwindSafe(move || {
            machine.refreshed(snapshot, now, booted_at, &rules)
        }));
        let Ok((machine, gone)) = refreshed else {
            tracing::error!(license = %key.masked(), "panic while refreshing license; dropping it from memory");
            metrics::counter!("tessera_license_panics_total").increment(1);
            metrics::gauge!("tessera_licenses_in_memory").decrement(1.0);
            metrics::gauge!("tessera_sessions_live").decrement(before as f64);
            for (_, reply) in self.take_confirming(&key) {
                let _ = reply.send(Err(LicenseError::Internal));
            }
            return;
        };
        let after = machine.live_sessions();
        metrics::gauge!("tessera_sessions_live").increment(after as f64 - before as f64);
        self.licenses.insert(
            key.clone(),
            Box::new(Slot {
                machine,
                replies: slot.replies,
            }),
        );
        self.tell_gone(&key, gone);
        self.drain(myself, &key);
        self.answer_confirmed(myself, &key);
    }

    /// Takes the requests that waited for the refresh that just finished.
    fn take_confirming(&mut self, key: &LicenseKey) -> Vec<(Request, ReplyTo)> {
        self.confirming.remove(key).unwrap_or_default()
    }

    /// Answers the requests that waited for the refresh that just finished (from what is in
    /// memory now, or by loading the license afresh), then starts the refresh the later
    /// ones wait for.
    fn answer_confirmed(&mut self, myself: &ActorRef<ShardMsg>, key: &LicenseKey) {
        let now = Utc::now();
        for (req, reply) in self.take_confirming(key) {
            self.request(myself, now, key.clone(), req, reply, false);
        }
        if let Some(next) = self.confirm_next.remove(key) {
            self.confirming.insert(key.clone(), next);
            self.refresh(myself, key.clone());
        }
    }

    fn tell_gone(&self, key: &LicenseKey, gone: Vec<(SessionRecord, EndReason)>) {
        for (session, reason) in gone {
            self.ctx.sessions.remove(&session.token_hash);
            self.ctx.events.ended_elsewhere(key, &session, reason);
        }
    }

    fn loaded(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        now: DateTime<Utc>,
        key: LicenseKey,
        result: Result<Option<LicenseSnapshot>, StoreError>,
    ) {
        let waiters = self.loading.remove(&key).unwrap_or_default();
        let error = match result {
            Ok(Some(snapshot)) => {
                let rules = self.ctx.rules.current();
                let booted_at = self.ctx.booted_at;
                let loaded = catch_unwind(AssertUnwindSafe(|| {
                    LicenseMachine::load(snapshot, now, booted_at, &rules)
                }));
                match loaded {
                    Ok(machine) => {
                        metrics::gauge!("tessera_licenses_in_memory").increment(1.0);
                        metrics::gauge!("tessera_sessions_live")
                            .increment(machine.live_sessions() as f64);
                        self.licenses.insert(
                            key.clone(),
                            Box::new(Slot {
                                machine,
                                replies: Vec::new(),
                            }),
                        );
                        self.drain(myself, &key);
                        // Just read from the store: nothing to confirm.
                        for (req, reply) in waiters.into_iter().flatten() {
                            self.request(myself, now, key.clone(), req, reply, false);
                        }
                        return;
                    }
                    Err(_) => {
                        tracing::error!(license = %key.masked(), "panic while loading license");
                        metrics::counter!("tessera_license_panics_total").increment(1);
                        LicenseError::Internal
                    }
                }
            }
            Ok(None) => LicenseError::NotFound,
            Err(_) => LicenseError::StoreUnavailable,
        };
        for (_, reply) in waiters.into_iter().flatten() {
            let _ = reply.send(Err(error));
        }
    }

    /// Runs `f` on the machine of `key` and drains its effects. A panic drops that one
    /// license from memory (its waiting callers get an error; it reloads from the store
    /// on its next request) and leaves the shard and every other license running.
    fn with_machine(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        key: &LicenseKey,
        f: impl FnOnce(&mut LicenseMachine, &Rules),
    ) {
        let Some(slot) = self.licenses.get_mut(key) else {
            return;
        };
        let rules = self.ctx.rules.current();
        if catch_unwind(AssertUnwindSafe(|| f(&mut slot.machine, &rules))).is_err() {
            tracing::error!(license = %key.masked(), "panic while handling license; dropping it from memory");
            metrics::counter!("tessera_license_panics_total").increment(1);
            self.evict(key);
            return;
        }
        self.drain(myself, key);
    }

    fn evict(&mut self, key: &LicenseKey) {
        if let Some(slot) = self.licenses.remove(key) {
            metrics::gauge!("tessera_licenses_in_memory").decrement(1.0);
            metrics::gauge!("tessera_sessions_live").decrement(slot.machine.live_sessions() as f64);
            for (_, reply) in slot.replies {
                let _ = reply.send(Err(LicenseError::Internal));
            }
        }
    }

    fn drain(&mut self, myself: &ActorRef<ShardMsg>, key: &LicenseKey) {
        let Some(slot) = self.licenses.get_mut(key) else {
            return;
        };
        while let Some(effect) = slot.machine.poll_effect() {
            match effect {
                Effect::Reply(id, r) => {
                    if let Some(tx) = slot.take_reply(id) {
                        let _ = tx.send(r);
                    }
                }
                Effect::Persist(op_id, op) => {
                    let store = Arc::clone(&self.ctx.store);
                    let timeout = self.ctx.op_timeout;
                    let me = myself.clone();
                    let key = key.clone();
                    tokio::spawn(async move {
                        let name = op.name();
                        let started = std::time::Instant::now();
                        let result = match tokio::time::timeout(timeout, store.apply(op)).await {
                            Ok(r) => r,
                            Err(_) => Err(StoreError::Unavailable("store call timed out".into())),
                        };
                        metrics::histogram!("tessera_store_operation_duration_seconds", "op" => name)
                            .record(started.elapsed().as_secs_f64());
                        if let Err(e) = &result {
                            metrics::counter!("tessera_store_errors_total", "op" => name)
                                .increment(1);
                            tracing::warn!(license = %key.masked(), op = name, error = %e, "store operation failed");
                        }
                        let _ = me.cast(ShardMsg::Persisted {
                            key,
                            op: op_id,
                            result,
                        });
                    });
                }
                Effect::Arm(token, at) => {
                    self.wheel
                        .entry(at.timestamp())
                        .or_default()
                        .push((key.clone(), token));
                }
                Effect::WriteBehind(w) => self.ctx.write_behind.push(w),
                Effect::Event(event) => {
                    if let LicenseEvent::SessionEnded { session, .. } = &event {
                        self.ctx.sessions.remove(&session.token_hash);
                    }
                    record_event_metrics(&event);
                    self.ctx.events.emit(&event);
                }
            }
        }
        // A deleted license leaves memory as soon as its last answer is out, so its key can be
        // issued again and the store is asked afresh.
        if slot.machine.is_deleted()
            && slot.replies.is_empty()
            && slot
                .machine
                .is_idle(DateTime::<Utc>::MIN_UTC, std::time::Duration::ZERO)
        {
            self.licenses.remove(key);
            metrics::gauge!("tessera_licenses_in_memory").decrement(1.0);
        }
    }

    fn tick(&mut self, myself: &ActorRef<ShardMsg>, now: DateTime<Utc>) {
        for key in std::mem::take(&mut self.refresh_later) {
            self.refresh(myself, key);
        }
        let later = self.wheel.split_off(&(now.timestamp() + 1));
        let due = std::mem::replace(&mut self.wheel, later);
        for (key, token) in due.into_values().flatten() {
            self.with_machine(myself, &key, |m, rules| m.on_deadline(now, rules, &token));
        }
        self.housekeeping(myself, now);
    }

    /// One slice of the housekeeping: `1 / HOUSEKEEPING_TICKS` of the licenses, from where
    /// the last slice stopped. Skipping to the slice reads only the map's table, not the
    /// slots; a removal leaves the others where they are, and a growth of the map reorders
    /// it, after which a license may be visited twice or wait a round (harmless here).
    fn housekeeping(&mut self, myself: &ActorRef<ShardMsg>, now: DateTime<Utc>) {
        let len = self.licenses.len();
        if self.housekeeping_at >= len {
            self.housekeeping_at = 0;
        }
        let chunk = len.div_ceil(HOUSEKEEPING_TICKS);
        let rules = self.ctx.rules.current();
        let mut idle = Vec::new();
        let mut expiring = Vec::new();
        for (key, slot) in self
            .licenses
            .iter_mut()
            .skip(self.housekeeping_at)
            .take(chunk)
        {
            // Idle licenses vastly outnumber busy ones: give back their drained queue
            // memory here rather than per message on the heartbeat path.
            slot.machine.release_buffers();
            if slot.replies.is_empty() && slot.replies.capacity() > 0 {
                slot.replies = Vec::new();
            }
            if slot.replies.is_empty() && slot.machine.is_idle(now, rules.idle_passivate) {
                idle.push(key.clone());
            } else if slot.machine.has_expired_with_sessions(now) {
                expiring.push(key.clone());
            }
        }
        // The removed licenses were before the next slice's start.
        self.housekeeping_at = (self.housekeeping_at + chunk).saturating_sub(idle.len());
        for key in idle {
            self.licenses.remove(&key);
            metrics::gauge!("tessera_licenses_in_memory").decrement(1.0);
        }
        for key in expiring {
            self.with_machine(myself, &key, |m, rules| m.on_tick(now, rules));
        }
    }
}

fn record_event_metrics(event: &LicenseEvent) {
    match event {
        LicenseEvent::SessionStarted { .. } => {
            metrics::gauge!("tessera_sessions_live").increment(1.0);
            metrics::counter!("tessera_sessions_started_total").increment(1);
        }
        LicenseEvent::SessionEnded { reason, .. } => {
            metrics::gauge!("tessera_sessions_live").decrement(1.0);
            metrics::counter!("tessera_sessions_ended_total", "reason" => reason.as_str())
                .increment(1);
        }
        LicenseEvent::Activated { .. } => {
            metrics::counter!("tessera_activations_total").increment(1);
        }
        LicenseEvent::LimitReached { kind, .. } => {
            let kind = match kind {
                crate::store::LimitKind::Devices => "devices",
                crate::store::LimitKind::Activations => "activations",
                crate::store::LimitKind::Sessions => "sessions",
            };
            metrics::counter!("tessera_limit_refusals_total", "limit" => kind).increment(1);
        }
        LicenseEvent::StatusChanged { .. } => {}
    }
}

#[cfg(test)]
mod size_tests {
    use super::Slot;

    /// Every license in memory is one boxed slot; mimalloc rounds 513 bytes up to 640, so
    /// a field added here costs a node-locked fleet 128 bytes per license.
    #[test]
    fn slot_fits_512_bytes() {
        assert!(
            std::mem::size_of::<Slot>() <= 512,
            "Slot is {} bytes",
            std::mem::size_of::<Slot>()
        );
    }
}
