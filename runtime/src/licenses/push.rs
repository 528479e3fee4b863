//! Session-end pushes: a WebSocket connection (`api/session_ws.rs`) subscribes to the
//! sessions it carries, and the license actors' events reach it through [`SessionPush::sink`]
//! the moment a session ends (revoked, suspended, banned, evicted, replaced, admin, expired,
//! timed out). Release channel changes (SIGHUP reload) reach every connection too.
//!
//! The sink runs on a shard's message loop, so it never blocks: one map lookup and a
//! queue append per subscriber; a full connection queue drops the push and counts it
//! (`tessera_ws_pushes_dropped_total`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use futures::task::AtomicWaker;
use parking_lot::Mutex;
use tessera_actors::{EndReason, EventSink, LicenseEvent, LicenseKey, SessionRecord, TokenHash};
use tessera_config::{Config, ProductConfig};
use tokio::sync::Notify;

/// Pushes queued per connection before further ones are dropped.
const QUEUE: usize = 256;

/// Something a connection must tell its client. Boxed payloads keep the queue's slots
/// small: every connection has one.
#[derive(Debug, Clone)]
pub enum Pushed {
    /// A subscribed session ended.
    SessionEnded(Box<SessionEnd>),
    /// The release channel of this product changed.
    ReleasePublished(Arc<str>),
}

/// A session's end, as pushed.
#[derive(Debug, Clone)]
pub struct SessionEnd {
    /// The session.
    pub token_hash: TokenHash,
    /// Why.
    pub reason: EndReason,
    /// When.
    pub ended_at: DateTime<Utc>,
}

/// A product's release channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Latest version.
    pub latest_version: String,
    /// Where to download it.
    pub download_url: String,
    /// Its notes.
    pub release_notes: String,
}

/// The subscriptions of live connections. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct SessionPush {
    hub: Arc<Hub>,
}

/// Per session token: the connections (id, inbox) subscribed to it.
type Subscribers = HashMap<TokenHash, Vec<(u64, Arc<Inbox>)>>;

/// One connection's queue of pushes, and whether the server is closing. The queue
/// allocates only when something is pushed (a Tokio channel would allocate a 32-slot block
/// per connection up front, and a connection is mostly idle: at 100k connections that block
/// alone was ~80 MB). It is polled, not awaited through a stored future, so a waiting
/// connection keeps one waker here and nothing in its task (see [`Connection::poll_next`]).
#[derive(Debug, Default)]
struct Inbox {
    queue: Mutex<VecDeque<Pushed>>,
    /// The connection's task, while it waits (one consumer per inbox).
    waker: AtomicWaker,
    /// Set once when the server shuts down.
    closing: AtomicBool,
}

impl Inbox {
    /// Queues `pushed` unless [`QUEUE`] pushes wait already; never blocks (the sink runs on
    /// a shard's message loop).
    fn offer(&self, pushed: Pushed) -> bool {
        {
            let mut queue = self.queue.lock();
            if queue.len() >= QUEUE {
                return false;
            }
            queue.push_back(pushed);
        }
        // Queued before the wake: a connection that registered its waker after our push
        // finds the push when it looks again (see `poll_take`).
        self.waker.wake();
        true
    }

    /// Tells the connection to close (after what is queued).
    fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn pop(&self) -> Option<Pushed> {
        let mut queue = self.queue.lock();
        let p = queue.pop_front()?;
        if queue.is_empty() {
            // Give the buffer back: a push (a release reaching every connection) must not
            // leave each idle connection holding one.
            *queue = VecDeque::new();
        }
        Some(p)
    }

    /// The next push, or `None` once the server is closing and nothing is queued. A push
    /// stays queued until it is returned.
    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<Pushed>> {
        for attempt in 0..2 {
            if let Some(p) = self.pop() {
                return Poll::Ready(Some(p));
            }
            if self.closing.load(Ordering::Acquire) {
                return Poll::Ready(None);
            }
            if attempt == 0 {
                // Look once more after registering: a push or close between the first look
                // and the registration woke no one.
                self.waker.register(cx.waker());
            }
        }
        Poll::Pending
    }

    /// [`Self::poll_take`] as a future. Cancel-safe.
    #[cfg(test)]
    async fn take(&self) -> Option<Pushed> {
        std::future::poll_fn(|cx| self.poll_take(cx)).await
    }
}

#[derive(Debug)]
struct Hub {
    subs: Mutex<Subscribers>,
    conns: Mutex<HashMap<u64, Arc<Inbox>>>,
    releases: Mutex<HashMap<String, Release>>,
    next_conn: AtomicU64,
    /// Set by [`SessionPush::close`] (under the `conns` lock, so a connection made after it
    /// starts closed).
    closing: AtomicBool,
    idle: Notify,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            subs: Mutex::default(),
            conns: Mutex::default(),
            releases: Mutex::default(),
            next_conn: AtomicU64::new(1),
            closing: AtomicBool::new(false),
            idle: Notify::new(),
        }
    }
}

/// Forwards every event to `inner` and session ends to the subscribed connections.
struct PushSink {
    inner: Arc<dyn EventSink>,
    hub: Arc<Hub>,
}

impl Hub {
    /// Tells the connections carrying `session` that it ended, and forgets them.
    fn ended(&self, session: TokenHash, reason: EndReason, ended_at: DateTime<Utc>) {
        let subs = self.subs.lock().remove(&session);
        for (_, inbox) in subs.into_iter().flatten() {
            let pushed = Pushed::SessionEnded(Box::new(SessionEnd {
                token_hash: session,
                reason,
                ended_at,
            }));
            if !inbox.offer(pushed) {
                metrics::counter!("tessera_ws_pushes_dropped_total").increment(1);
            }
        }
    }
}

impl EventSink for PushSink {
    fn emit(&self, event: &LicenseEvent) {
        self.inner.emit(event);
        if let LicenseEvent::SessionEnded {
            session,
            reason,
            ended_at,
            ..
        } = event
        {
            self.hub.ended(session.token_hash, *reason, *ended_at);
        }
    }

    fn changed(&self, key: &LicenseKey) {
        self.inner.changed(key);
    }

    fn ended_elsewhere(&self, key: &LicenseKey, session: &SessionRecord, reason: EndReason) {
        self.inner.ended_elsewhere(key, session, reason);
        self.hub.ended(session.token_hash, reason, Utc::now());
    }
}

impl SessionPush {
    /// A push hub whose release channels are those of `config`.
    pub fn new(config: &Config) -> Self {
        let push = Self::default();
        *push.hub.releases.lock() = releases_of(&config.products);
        push
    }

    /// The event sink for the license actors: `inner` gets every event first.
    pub fn sink(&self, inner: Arc<dyn EventSink>) -> Arc<dyn EventSink> {
        Arc::new(PushSink {
            inner,
            hub: Arc::clone(&self.hub),
        })
    }

    /// Registers a connection; dropping the [`Connection`] unsubscribes everything.
    pub fn connect(&self) -> Connection {
        let id = self.hub.next_conn.fetch_add(1, Ordering::Relaxed);
        let inbox = Arc::new(Inbox::default());
        let live = {
            let mut conns = self.hub.conns.lock();
            if self.hub.closing.load(Ordering::Acquire) {
                inbox.close();
            }
            conns.insert(id, Arc::clone(&inbox));
            conns.len()
        };
        metrics::gauge!("tessera_ws_connections").set(live as f64);
        Connection {
            id,
            inbox,
            sessions: Vec::new(),
            hub: Arc::clone(&self.hub),
        }
    }

    /// Live connections.
    pub fn connections(&self) -> usize {
        self.hub.conns.lock().len()
    }

    /// Tells every connection to close ([`Connection::poll_next`] answers `None`) and waits
    /// until they have (they hold the state, and with it the store, which a restart needs
    /// free).
    pub async fn close(&self) {
        {
            let conns = self.hub.conns.lock();
            self.hub.closing.store(true, Ordering::Release);
            for inbox in conns.values() {
                inbox.close();
            }
        }
        loop {
            let idle = self.hub.idle.notified();
            if self.connections() == 0 {
                return;
            }
            idle.await;
        }
    }

    /// The release channel of `product`.
    pub fn release(&self, product: &str) -> Option<Release> {
        self.hub.releases.lock().get(product).cloned()
    }

    /// Takes the release channels of the products in force now (after a reload or a release
    /// published on any server); every connection hears of the products whose latest version
    /// changed.
    pub fn set_releases(&self, products: &BTreeMap<String, ProductConfig>) {
        let new = releases_of(products);
        let changed: Vec<String> = {
            let mut releases = self.hub.releases.lock();
            let changed = new
                .iter()
                .filter(|(p, r)| {
                    releases.get(*p).map(|o| &o.latest_version) != Some(&r.latest_version)
                })
                .map(|(p, _)| p.clone())
                .collect();
            *releases = new;
            changed
        };
        if changed.is_empty() {
            return;
        }
        let conns: Vec<Arc<Inbox>> = self.hub.conns.lock().values().cloned().collect();
        for product in changed {
            let product: Arc<str> = product.into();
            for inbox in &conns {
                let pushed = Pushed::ReleasePublished(Arc::clone(&product));
                if !inbox.offer(pushed) {
                    metrics::counter!("tessera_ws_pushes_dropped_total").increment(1);
                }
            }
        }
    }
}

fn releases_of(products: &BTreeMap<String, ProductConfig>) -> HashMap<String, Release> {
    products
        .iter()
        .map(|(id, p)| {
            (
                id.clone(),
                Release {
                    latest_version: p.latest_version.clone(),
                    download_url: p.download_url.clone(),
                    release_notes: p.release_notes.clone(),
                },
            )
        })
        .collect()
}

/// One connection's subscriptions and its queue of pushes.
#[derive(Debug)]
pub struct Connection {
    id: u64,
    inbox: Arc<Inbox>,
    /// A list, not a set: at most 64, and an empty set's first insert allocates four
    /// buckets where a list allocates one slot.
    sessions: Vec<TokenHash>,
    hub: Arc<Hub>,
}

impl Connection {
    /// The next push to this connection, or `None` when the server is closing: the
    /// connection should close. Polled rather than awaited so a connection's task holds no
    /// waiting future between frames.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Pushed>> {
        let pushed = std::task::ready!(self.inbox.poll_take(cx));
        if let Some(Pushed::SessionEnded(end)) = &pushed {
            self.forget(&end.token_hash);
        }
        Poll::Ready(pushed)
    }

    /// [`Self::poll_next`] as a future. Cancel-safe.
    #[cfg(test)]
    pub async fn next(&mut self) -> Option<Pushed> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Drops `session` from the list; whether it was there.
    fn forget(&mut self, session: &TokenHash) -> bool {
        match self.sessions.iter().position(|s| s == session) {
            Some(i) => {
                self.sessions.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Whether `session` is subscribed here.
    pub fn carries(&self, session: &TokenHash) -> bool {
        self.sessions.contains(session)
    }

    /// Sessions subscribed here.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is subscribed.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Subscribes to `session`'s end.
    pub fn subscribe(&mut self, session: TokenHash) {
        if self.sessions.contains(&session) {
            return;
        }
        if self.sessions.capacity() == 0 {
            self.sessions.reserve_exact(1);
        }
        self.sessions.push(session);
        let mut subs = self.hub.subs.lock();
        let list = subs.entry(session).or_default();
        if list.capacity() == 0 {
            list.reserve_exact(1);
        }
        list.push((self.id, Arc::clone(&self.inbox)));
    }

    /// Stops hearing of `session`.
    pub fn unsubscribe(&mut self, session: &TokenHash) {
        if self.forget(session) {
            remove_sub(&self.hub, session, self.id);
        }
    }
}

fn remove_sub(hub: &Hub, session: &TokenHash, conn: u64) {
    let mut subs = hub.subs.lock();
    if let Some(list) = subs.get_mut(session) {
        list.retain(|(id, _)| *id != conn);
        if list.is_empty() {
            subs.remove(session);
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for s in std::mem::take(&mut self.sessions) {
            remove_sub(&self.hub, &s, self.id);
        }
        let live = {
            let mut conns = self.hub.conns.lock();
            conns.remove(&self.id);
            conns.len()
        };
        metrics::gauge!("tessera_ws_connections").set(live as f64);
        self.hub.idle.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn ended(n: u8) -> Pushed {
        Pushed::SessionEnded(Box::new(SessionEnd {
            token_hash: TokenHash::of(&n.to_string()),
            reason: EndReason::Revoked,
            ended_at: Utc::now(),
        }))
    }

    fn hash_of(p: &Pushed) -> TokenHash {
        match p {
            Pushed::SessionEnded(e) => e.token_hash,
            Pushed::ReleasePublished(_) => panic!("not a session end"),
        }
    }

    #[tokio::test]
    async fn an_inbox_keeps_order_and_drops_past_its_bound() {
        let inbox = Inbox::default();
        for n in 0..QUEUE {
            assert!(inbox.offer(ended((n % 250) as u8)), "push {n} fits");
        }
        assert!(!inbox.offer(ended(251)), "the queue is full");
        for n in 0..QUEUE {
            assert_eq!(
                hash_of(&inbox.take().await.unwrap()),
                TokenHash::of(&((n % 250) as u8).to_string())
            );
        }
        assert!(inbox.queue.lock().is_empty());
        assert_eq!(
            inbox.queue.lock().capacity(),
            0,
            "an empty queue holds no buffer"
        );
    }

    #[tokio::test]
    async fn a_push_offered_before_or_while_waiting_is_taken() {
        let inbox = Arc::new(Inbox::default());
        // Offered before anyone waits: the permit is kept.
        assert!(inbox.offer(ended(1)));
        assert_eq!(hash_of(&inbox.take().await.unwrap()), TokenHash::of("1"));
        // Offered while a taker waits.
        let waiting = tokio::spawn({
            let inbox = Arc::clone(&inbox);
            async move { hash_of(&inbox.take().await.unwrap()) }
        });
        tokio::task::yield_now().await;
        assert!(inbox.offer(ended(2)));
        assert_eq!(waiting.await.unwrap(), TokenHash::of("2"));
    }

    #[tokio::test]
    async fn a_cancelled_take_loses_nothing() {
        let inbox = Inbox::default();
        // A take dropped while waiting (as `select!` drops it when a frame arrives first).
        let cancelled =
            tokio::time::timeout(std::time::Duration::from_millis(10), inbox.take()).await;
        assert!(cancelled.is_err());
        assert!(inbox.offer(ended(3)));
        assert_eq!(hash_of(&inbox.take().await.unwrap()), TokenHash::of("3"));
    }

    #[tokio::test]
    async fn closing_ends_every_connection_after_what_it_has_queued() {
        let push = SessionPush::default();
        let mut waiting = push.connect();
        let mut queued = push.connect();
        let a = TokenHash::of("a");
        queued.subscribe(a);
        push.hub.ended(a, EndReason::Revoked, Utc::now());
        let waiter = tokio::spawn(async move {
            let next = waiting.next().await;
            (next.is_none(), waiting)
        });
        tokio::task::yield_now().await;
        let closing = tokio::spawn({
            let push = push.clone();
            async move { push.close().await }
        });
        let (closed, waiting) = waiter.await.unwrap();
        assert!(closed, "a waiting connection is told to close");
        assert!(matches!(queued.next().await, Some(Pushed::SessionEnded(_))));
        assert!(queued.next().await.is_none(), "then it closes");
        let mut late = push.connect();
        assert!(
            late.next().await.is_none(),
            "a connection made while closing closes"
        );
        assert!(!closing.is_finished(), "close waits for the connections");
        drop((waiting, queued, late));
        closing.await.unwrap();
        assert_eq!(push.connections(), 0);
    }

    #[tokio::test]
    async fn a_connection_hears_of_its_sessions_only_and_unsubscribes_on_drop() {
        let push = SessionPush::default();
        let mut conn = push.connect();
        let (a, b) = (TokenHash::of("a"), TokenHash::of("b"));
        conn.subscribe(a);
        conn.subscribe(a);
        assert_eq!(conn.len(), 1);
        push.hub.ended(b, EndReason::Revoked, Utc::now());
        push.hub.ended(a, EndReason::Suspended, Utc::now());
        let Some(Pushed::SessionEnded(end)) = conn.next().await else {
            panic!("a session end");
        };
        assert_eq!(end.token_hash, a);
        assert_eq!(end.reason, EndReason::Suspended);
        assert!(conn.is_empty(), "an ended session is no longer carried");
        conn.subscribe(b);
        assert_eq!(push.connections(), 1);
        drop(conn);
        assert_eq!(push.connections(), 0);
        assert!(push.hub.subs.lock().is_empty(), "dropping unsubscribes");
    }
}
