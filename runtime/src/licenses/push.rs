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
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tessera_actors::{EndReason, EventSink, LicenseEvent, LicenseKey, SessionRecord, TokenHash};
use tessera_config::{Config, ProductConfig};
use tokio::sync::{Notify, watch};

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

/// One connection's queue of pushes. The queue allocates only when something is pushed
/// (a Tokio channel would allocate a 32-slot block per connection up front, and a
/// connection is mostly idle: at 100k connections that block alone was ~80 MB).
#[derive(Debug, Default)]
struct Inbox {
    queue: Mutex<VecDeque<Pushed>>,
    ready: Notify,
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
        // Stores a permit when the connection is not waiting: nothing is missed.
        self.ready.notify_one();
        true
    }

    /// The next push. Cancel-safe: a push stays queued until it is returned.
    async fn take(&self) -> Pushed {
        loop {
            {
                let mut queue = self.queue.lock();
                if let Some(p) = queue.pop_front() {
                    if queue.is_empty() {
                        // Give the buffer back: a push (a release reaching every
                        // connection) must not leave each idle connection holding one.
                        *queue = VecDeque::new();
                    }
                    return p;
                }
            }
            self.ready.notified().await;
        }
    }
}

#[derive(Debug)]
struct Hub {
    subs: Mutex<Subscribers>,
    conns: Mutex<HashMap<u64, Arc<Inbox>>>,
    releases: Mutex<HashMap<String, Release>>,
    next_conn: AtomicU64,
    closing: watch::Sender<bool>,
    idle: Notify,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            subs: Mutex::default(),
            conns: Mutex::default(),
            releases: Mutex::default(),
            next_conn: AtomicU64::new(1),
            closing: watch::channel(false).0,
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

    /// Becomes `true` when the server shuts down: connections close.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.hub.closing.subscribe()
    }

    /// Tells every connection to close and waits until they have (they hold the state,
    /// and with it the store, which a restart needs free).
    pub async fn close(&self) {
        self.hub.closing.send_replace(true);
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
    /// Pushes to this connection arrive here (always `Some`: the connection holds its own
    /// queue). Cancel-safe.
    pub async fn next(&mut self) -> Option<Pushed> {
        let pushed = self.inbox.take().await;
        if let Pushed::SessionEnded(end) = &pushed {
            self.forget(&end.token_hash);
        }
        Some(pushed)
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
                hash_of(&inbox.take().await),
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
        assert_eq!(hash_of(&inbox.take().await), TokenHash::of("1"));
        // Offered while a taker waits.
        let waiting = tokio::spawn({
            let inbox = Arc::clone(&inbox);
            async move { hash_of(&inbox.take().await) }
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
        assert_eq!(hash_of(&inbox.take().await), TokenHash::of("3"));
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
