//! [`Session`]: a live session that heartbeats by itself, and its events.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{ClientInner, Idempotence};
use crate::error::Error;
use crate::retry::{Backoff, RetryPolicy};
use crate::schedule::Schedule;
use crate::ws::{self, Connect, Incoming, Ws};

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndReason {
    /// The application ended it ([`Session::end`], drop, process shutdown).
    ClientEnd,
    /// The server heard no heartbeat within timeout + grace.
    Timeout,
    /// Evicted to make room for a newer session (`evict_oldest`).
    Evicted,
    /// Replaced by a new session on the same device (`replace_same_device`).
    Replaced,
    /// The license was revoked.
    Revoked,
    /// The license was suspended.
    Suspended,
    /// The license was banned.
    Banned,
    /// The license passed its `valid_until`.
    Expired,
    /// An operator forced everyone to authenticate again.
    ForceReauth,
    /// An operator ended it (or deactivated its device).
    Admin,
    /// No heartbeat reached the server for the server's timeout + grace (client side: the
    /// network or the server was unreachable that long).
    Offline,
    /// The server refused the heartbeat with this error code (e.g. `INVALID_API_KEY`).
    Rejected(String),
    /// A reason the server sent that this version of the SDK does not know.
    Other(String),
}

impl EndReason {
    /// Parses the server's wire name (`revoked`, `timeout`, ...).
    pub fn from_wire(s: &str) -> Self {
        match s {
            "client_end" => Self::ClientEnd,
            "timeout" => Self::Timeout,
            "evicted" => Self::Evicted,
            "replaced" => Self::Replaced,
            "revoked" => Self::Revoked,
            "suspended" => Self::Suspended,
            "banned" => Self::Banned,
            "expired" => Self::Expired,
            "force_reauth" => Self::ForceReauth,
            "admin" => Self::Admin,
            "offline" => Self::Offline,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire name (`offline` and `rejected` are the SDK's own).
    pub fn as_str(&self) -> &str {
        match self {
            Self::ClientEnd => "client_end",
            Self::Timeout => "timeout",
            Self::Evicted => "evicted",
            Self::Replaced => "replaced",
            Self::Revoked => "revoked",
            Self::Suspended => "suspended",
            Self::Banned => "banned",
            Self::Expired => "expired",
            Self::ForceReauth => "force_reauth",
            Self::Admin => "admin",
            Self::Offline => "offline",
            Self::Rejected(_) => "rejected",
            Self::Other(s) => s,
        }
    }

    /// The reason a license error code implies, if any.
    pub(crate) fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "LICENSE_REVOKED" => Self::Revoked,
            "LICENSE_SUSPENDED" => Self::Suspended,
            "LICENSE_BANNED" => Self::Banned,
            "LICENSE_EXPIRED" => Self::Expired,
            _ => return None,
        })
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected(code) => write!(f, "rejected: {code}"),
            Self::Offline => {
                f.write_str("offline: no heartbeat reached the server for timeout + grace")
            }
            other => f.write_str(other.as_str()),
        }
    }
}

/// What happens to a session, as the application hears of it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The session ended and stopped heartbeating; this is always the last event.
    Ended {
        /// Why.
        reason: EndReason,
    },
    /// A heartbeat failed (network error, 5xx, 429); the session stays valid while retries
    /// go on, until the server's timeout + grace after the last acknowledged heartbeat.
    Degraded {
        /// The last error.
        error: String,
    },
    /// A heartbeat got through again after [`Event::Degraded`].
    Recovered,
    /// A newer version of the application is published.
    UpdateAvailable {
        /// The latest version.
        latest_version: String,
        /// Where to download it.
        download_url: String,
        /// Its release notes.
        release_notes: String,
    },
}

/// A callback for [`Event`]s. It runs on the session's task: return quickly.
pub type EventCallback = Arc<dyn Fn(&Event) + Send + Sync>;

/// Options of a new session.
#[derive(Clone, Default)]
pub struct SessionOptions {
    pub(crate) on_event: Option<EventCallback>,
}

impl fmt::Debug for SessionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionOptions")
            .field("on_event", &self.on_event.is_some())
            .finish()
    }
}

impl SessionOptions {
    /// Calls `f` with every event (besides [`Session::events`]). `f` runs on the session's
    /// task; a panic in it is caught and logged.
    pub fn on_event(mut self, f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(f));
        self
    }
}

/// The state of a session right now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionState {
    /// Heartbeats are getting through.
    Active,
    /// Heartbeats are failing and being retried; still valid.
    Degraded,
    /// Ended; no more heartbeats.
    Ended(EndReason),
}

/// The protocol a session heartbeats with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Seed 000: `/api/license/session/*`.
    Seed000,
    /// Seed 003: `/api/v2/extend_session` with the envelope.
    V2,
}

/// A heartbeat's acknowledgement.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ack {
    pub(crate) interval: Option<Duration>,
    pub(crate) lifetime: Option<Duration>,
}

/// What a session needs to talk to the server.
pub(crate) struct Target {
    pub(crate) client: Arc<ClientInner>,
    pub(crate) token: String,
    pub(crate) license_key: String,
    pub(crate) protocol: Protocol,
    /// The application's version, told to the WebSocket for `update_available`.
    pub(crate) version: Option<String>,
}

#[derive(Serialize)]
struct HeartbeatBody<'a> {
    session_token: &'a str,
    license_key: &'a str,
}

#[derive(Deserialize)]
struct HeartbeatReply {
    #[serde(default)]
    heartbeat_interval_secs: Option<u64>,
}

#[derive(Serialize)]
struct EndBody<'a> {
    session_token: &'a str,
    license_key: &'a str,
}

#[derive(Deserialize)]
struct EndReply {
    end_reason: String,
}

impl Target {
    pub(crate) fn seed000(client: Arc<ClientInner>, token: String, license_key: String) -> Self {
        Self {
            client,
            token,
            license_key,
            protocol: Protocol::Seed000,
            version: None,
        }
    }

    /// One heartbeat, no retries.
    pub(crate) async fn heartbeat(&self, timeout: Duration) -> Result<Ack, Error> {
        match self.protocol {
            Protocol::Seed000 => {
                let body = HeartbeatBody {
                    session_token: &self.token,
                    license_key: &self.license_key,
                };
                let reply: HeartbeatReply = self
                    .client
                    .post_once(
                        "/api/license/session/heartbeat",
                        Some(&self.license_key),
                        &body,
                        timeout,
                    )
                    .await
                    .map_err(|(e, _)| e)?;
                Ok(Ack {
                    interval: reply.heartbeat_interval_secs.map(Duration::from_secs),
                    lifetime: None,
                })
            }
            Protocol::V2 => crate::v2::extend(self, timeout).await,
        }
    }

    /// Ends the session on the server with `client`'s retries.
    pub(crate) async fn end(&self, client: &ClientInner) -> Result<EndReason, Error> {
        match self.protocol {
            Protocol::Seed000 => self.end_seed000(client).await,
            Protocol::V2 => crate::v2::end(self, client).await,
        }
    }

    /// Seed 000's end, for either protocol (both reach the same session). Idempotent: an
    /// ended session answers with its original reason.
    pub(crate) async fn end_seed000(&self, client: &ClientInner) -> Result<EndReason, Error> {
        let body = EndBody {
            session_token: &self.token,
            license_key: &self.license_key,
        };
        let reply: EndReply = client
            .post(
                "/api/license/session/end",
                Some(&self.license_key),
                &body,
                Idempotence::Idempotent,
            )
            .await?;
        Ok(EndReason::from_wire(&reply.end_reason))
    }
}

/// State shared by the handle, the heartbeat task and the shutdown registry.
pub(crate) struct Shared {
    pub(crate) target: Target,
    id: u64,
    interval: Duration,
    heartbeats: AtomicU64,
    state: Mutex<Live>,
    ended_tx: watch::Sender<Option<EndReason>>,
    events_tx: mpsc::Sender<Event>,
    on_event: Option<EventCallback>,
    websocket: AtomicBool,
    told_version: Mutex<Option<String>>,
}

struct Live {
    degraded: bool,
    valid_until: Instant,
    ended: Option<EndReason>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn emit(&self, event: Event) {
        if let Some(cb) = &self.on_event
            && std::panic::catch_unwind(AssertUnwindSafe(|| cb(&event))).is_err()
        {
            tracing::error!("a session event callback panicked");
        }
        // Bounded: an application that never reads events loses them, not memory.
        let _ = self.events_tx.try_send(event);
    }

    /// Marks the session ended; only the first call wins and reports `true`.
    pub(crate) fn finish(&self, reason: EndReason) -> bool {
        {
            let mut live = self.lock();
            if live.ended.is_some() {
                return false;
            }
            live.ended = Some(reason.clone());
        }
        registry_remove(self.id);
        tracing::info!(reason = %reason, "session ended");
        self.emit(Event::Ended {
            reason: reason.clone(),
        });
        self.ended_tx.send_replace(Some(reason));
        true
    }

    pub(crate) fn ended(&self) -> Option<EndReason> {
        self.lock().ended.clone()
    }

    /// Emits [`Event::UpdateAvailable`] once per version.
    fn emit_update(&self, latest_version: String, download_url: String, release_notes: String) {
        {
            let mut told = self.told_version.lock().unwrap_or_else(|p| p.into_inner());
            if told.as_deref() == Some(latest_version.as_str()) {
                return;
            }
            *told = Some(latest_version.clone());
        }
        self.emit(Event::UpdateAvailable {
            latest_version,
            download_url,
            release_notes,
        });
    }

    fn set_degraded(&self, degraded: bool) -> bool {
        let mut live = self.lock();
        std::mem::replace(&mut live.degraded, degraded) != degraded
    }

    fn set_valid_until(&self, t: Instant) {
        self.lock().valid_until = t;
    }
}

/// A live session. It heartbeats on its own task until it ends; [`Session::end`], dropping
/// it, or process shutdown (see [`crate::end_sessions_on_shutdown`]) end it on the server.
///
/// Needs a Tokio runtime: it is created inside one and its task runs there.
pub struct Session {
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
    events: Option<mpsc::Receiver<Event>>,
    ended_rx: watch::Receiver<Option<EndReason>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state())
            .field("heartbeats", &self.heartbeats())
            .finish_non_exhaustive()
    }
}

/// Capacity of a session's event channel.
const EVENT_BUFFER: usize = 64;

impl Session {
    pub(crate) async fn spawn(
        target: Target,
        interval: Duration,
        lifetime: Duration,
        options: SessionOptions,
        update: Option<Event>,
    ) -> Result<Self, Error> {
        static IDS: AtomicU64 = AtomicU64::new(1);
        let now = Instant::now();
        let schedule = Schedule::new(now, SystemTime::now(), interval, lifetime);
        let (events_tx, events_rx) = mpsc::channel(EVENT_BUFFER);
        let (ended_tx, ended_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            target,
            id: IDS.fetch_add(1, Ordering::Relaxed),
            interval: schedule.interval(),
            heartbeats: AtomicU64::new(0),
            state: Mutex::new(Live {
                degraded: false,
                valid_until: schedule.valid_until(),
                ended: None,
            }),
            ended_tx,
            events_tx,
            on_event: options.on_event,
            websocket: AtomicBool::new(false),
            told_version: Mutex::new(None),
        });
        registry_add(&shared);
        if let Some(Event::UpdateAvailable {
            latest_version,
            download_url,
            release_notes,
        }) = update
        {
            shared.emit_update(latest_version, download_url, release_notes);
        }
        let task = tokio::spawn(drive(Arc::clone(&shared), schedule));
        Ok(Self {
            shared,
            task: Some(task),
            events: Some(events_rx),
            ended_rx,
        })
    }

    /// The session token.
    pub fn token(&self) -> &str {
        &self.shared.target.token
    }

    /// The license key.
    pub fn license_key(&self) -> &str {
        &self.shared.target.license_key
    }

    /// The heartbeat interval the server announced at start.
    pub fn heartbeat_interval(&self) -> Duration {
        self.shared.interval
    }

    /// Whether heartbeats currently go over the server's session WebSocket (else HTTP).
    pub fn uses_websocket(&self) -> bool {
        self.shared.websocket.load(Ordering::Relaxed)
    }

    /// Heartbeats the server acknowledged so far.
    pub fn heartbeats(&self) -> u64 {
        self.shared.heartbeats.load(Ordering::Relaxed)
    }

    /// Active, degraded or ended.
    pub fn state(&self) -> SessionState {
        let live = self.shared.lock();
        match &live.ended {
            Some(r) => SessionState::Ended(r.clone()),
            None if live.degraded => SessionState::Degraded,
            None => SessionState::Active,
        }
    }

    /// Whether the session may be used now: not ended, and within the server's timeout +
    /// grace of the last acknowledged heartbeat.
    pub fn is_valid(&self) -> bool {
        let live = self.shared.lock();
        live.ended.is_none() && Instant::now() < live.valid_until
    }

    /// The event channel (once; later calls return `None`). Events are also given to the
    /// [`SessionOptions::on_event`] callback. Events beyond 64 unread ones are dropped.
    pub fn events(&mut self) -> Option<mpsc::Receiver<Event>> {
        self.events.take()
    }

    /// Waits until the session ends by itself (revoked, offline, ...) and returns why.
    pub async fn ended(&self) -> EndReason {
        let mut rx = self.ended_rx.clone();
        loop {
            if let Some(r) = rx.borrow_and_update().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                return self.shared.ended().unwrap_or(EndReason::ClientEnd);
            }
        }
    }

    /// Ends the session: stops heartbeating and tells the server. Returns the server's end
    /// reason (`client_end`, or the earlier one if the session had already ended).
    pub async fn end(mut self) -> Result<EndReason, Error> {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(reason) = self.shared.ended() {
            return Ok(reason);
        }
        let result = self.shared.target.end(&self.shared.target.client).await;
        let reason = result.as_ref().cloned().unwrap_or(EndReason::ClientEnd);
        self.shared.finish(reason);
        result
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if self.shared.ended().is_none() {
            end_blocking(vec![Arc::clone(&self.shared)], Duration::from_secs(3));
        }
    }
}

/// Ends `sessions` on the server from a thread of its own (the caller may be inside a
/// runtime that cannot make progress while it waits), waiting at most `wait`.
pub(crate) fn end_blocking(sessions: Vec<Arc<Shared>>, wait: Duration) {
    if sessions.is_empty() {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("tessera-end".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let ends = sessions.iter().map(|s| async move {
                        // A fresh client: the session's pooled connections belong to a
                        // runtime that may be blocked or gone.
                        let fresh = s.target.client.fresh(wait);
                        let reason = match fresh {
                            Some(c) => s.target.end(&c).await.unwrap_or(EndReason::ClientEnd),
                            None => EndReason::ClientEnd,
                        };
                        s.finish(reason);
                    });
                    futures::future::join_all(ends).await;
                });
            }
            let _ = tx.send(());
        });
    if spawned.is_ok() {
        let _ = rx.recv_timeout(wait + Duration::from_millis(500));
    }
}

/// The heartbeat loop of one session.
async fn drive(shared: Arc<Shared>, mut schedule: Schedule) {
    let mut failures: Option<Backoff> = None;
    let mut retry_at: Option<Instant> = None;
    let mut link = Link::new(&shared);
    link.open(&shared, &schedule).await;
    loop {
        let wake = retry_at
            .unwrap_or_else(|| schedule.next_due())
            .min(schedule.valid_until());
        schedule.arm(Instant::now(), SystemTime::now(), wake);
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            incoming = link.next() => {
                match incoming {
                    Incoming::Ended(reason) => {
                        shared.finish(reason);
                        return;
                    }
                    Incoming::Update { latest_version, download_url, release_notes } => {
                        shared.emit_update(latest_version, download_url, release_notes);
                    }
                    Incoming::Closed(why) => link.lost(&shared, &why),
                    Incoming::Beat { .. } => {}
                }
                continue;
            }
        }
        let now = Instant::now();
        if schedule.wake(now, SystemTime::now()) {
            tracing::debug!("time jumped (suspend or stall): heartbeat now, re-anchored");
        } else if retry_at.is_none() && now < schedule.next_due() {
            continue;
        } else if failures.is_some() && now >= schedule.valid_until() {
            shared.finish(EndReason::Offline);
            return;
        }
        shared.set_valid_until(schedule.valid_until());
        let sent_at = Instant::now();
        let timeout = request_timeout(&shared, &schedule, sent_at);
        let result = match link.heartbeat(&shared, timeout).await {
            LinkBeat::Done(r) => r,
            LinkBeat::Ended(reason) => {
                shared.finish(reason);
                return;
            }
            LinkBeat::NoLink => shared.target.heartbeat(timeout).await,
        };
        match result {
            Ok(ack) => {
                let now = Instant::now();
                schedule.acked(sent_at, now, ack.interval, ack.lifetime);
                shared.set_valid_until(schedule.valid_until());
                shared.heartbeats.fetch_add(1, Ordering::Relaxed);
                retry_at = None;
                if failures.take().is_some() && shared.set_degraded(false) {
                    shared.emit(Event::Recovered);
                }
                link.reopen_if_due(&shared, &schedule).await;
            }
            Err(e) if e.is_retryable() => {
                let backoff = failures.get_or_insert_with(|| {
                    Backoff::new(RetryPolicy {
                        max_attempts: u32::MAX,
                        base_delay: shared.target.client.retry.base_delay,
                        // Never wait longer than an interval: recovery is noticed quickly.
                        max_delay: schedule.interval(),
                    })
                });
                if shared.set_degraded(true) {
                    tracing::warn!(error = %e, "heartbeat failed; retrying");
                    shared.emit(Event::Degraded {
                        error: e.to_string(),
                    });
                }
                let now = Instant::now();
                if now >= schedule.valid_until() {
                    shared.finish(EndReason::Offline);
                    return;
                }
                retry_at = Some(now + backoff.next_delay(e.retry_after()));
            }
            Err(e) => {
                let reason = reason_for(&shared, &e).await;
                tracing::warn!(error = %e, "heartbeat refused");
                shared.finish(reason);
                return;
            }
        }
    }
}

/// The session's WebSocket, when the server offers one: opened at start, lost and
/// reopened (after a successful HTTP heartbeat, with a growing pause) as the network goes.
struct Link {
    ws: Option<Box<Ws>>,
    enabled: bool,
    next_attempt: Instant,
    failures: u32,
}

/// A heartbeat over the link.
enum LinkBeat {
    /// Answered.
    Done(Result<Ack, Error>),
    /// The session ended (pushed while waiting).
    Ended(EndReason),
    /// No link (or it broke): use HTTP.
    NoLink,
}

impl Link {
    fn new(shared: &Shared) -> Self {
        Self {
            ws: None,
            enabled: shared.target.client.websocket && shared.target.protocol == Protocol::Seed000,
            next_attempt: Instant::now(),
            failures: 0,
        }
    }

    async fn next(&mut self) -> Incoming {
        match self.ws.as_mut() {
            Some(ws) => ws.next().await,
            None => std::future::pending().await,
        }
    }

    fn lost(&mut self, shared: &Shared, why: &str) {
        if self.ws.take().is_some() {
            tracing::debug!(why, "session WebSocket lost; heartbeats go over HTTP");
        }
        shared.websocket.store(false, Ordering::Relaxed);
        self.failures = self.failures.saturating_add(1);
        let pause = Duration::from_secs(1u64 << self.failures.min(6));
        self.next_attempt = Instant::now() + pause;
    }

    async fn open(&mut self, shared: &Shared, schedule: &Schedule) {
        if !self.enabled || self.ws.is_some() {
            return;
        }
        let timeout = schedule
            .interval()
            .clamp(Duration::from_secs(1), Duration::from_secs(5));
        match ws::connect(&shared.target, timeout).await {
            Connect::Open(ws) => {
                tracing::debug!("session WebSocket open");
                self.ws = Some(ws);
                self.failures = 0;
                shared.websocket.store(true, Ordering::Relaxed);
            }
            Connect::Unsupported => {
                tracing::debug!("the server offers no session WebSocket; using HTTP");
                self.enabled = false;
            }
            Connect::Refused(e) => self.lost(shared, &e.to_string()),
            Connect::Failed(why) => self.lost(shared, &why),
        }
    }

    async fn reopen_if_due(&mut self, shared: &Shared, schedule: &Schedule) {
        if self.enabled && self.ws.is_none() && Instant::now() >= self.next_attempt {
            self.open(shared, schedule).await;
        }
    }

    async fn heartbeat(&mut self, shared: &Shared, timeout: Duration) -> LinkBeat {
        let Some(ws) = self.ws.as_mut() else {
            return LinkBeat::NoLink;
        };
        let id = match ws.send_heartbeat(&shared.target).await {
            Ok(id) => id,
            Err(why) => {
                self.lost(shared, &why);
                return LinkBeat::NoLink;
            }
        };
        let deadline = Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => {
                    self.lost(shared, "no answer to a heartbeat frame");
                    return LinkBeat::NoLink;
                }
                Ok(Incoming::Beat { id: got, result }) if got == id => {
                    return LinkBeat::Done(result);
                }
                Ok(Incoming::Beat { .. }) => {}
                Ok(Incoming::Ended(reason)) => return LinkBeat::Ended(reason),
                Ok(Incoming::Update {
                    latest_version,
                    download_url,
                    release_notes,
                }) => shared.emit_update(latest_version, download_url, release_notes),
                Ok(Incoming::Closed(why)) => {
                    self.lost(shared, &why);
                    return LinkBeat::NoLink;
                }
            }
        }
    }
}

/// A heartbeat may take at most the configured request timeout, an interval, and what is
/// left of the session's validity (but at least a second).
fn request_timeout(shared: &Shared, schedule: &Schedule, now: Instant) -> Duration {
    shared
        .target
        .client
        .request_timeout
        .min(schedule.interval())
        .min(schedule.valid_until().saturating_duration_since(now))
        .max(Duration::from_secs(1))
}

/// Why the server refused a heartbeat: the session's own end reason when it ended (asked
/// of the server, which answers an ended session's end with its original reason).
async fn reason_for(shared: &Shared, e: &Error) -> EndReason {
    let code = e.code().unwrap_or("PROTOCOL_ERROR");
    if let Some(r) = EndReason::from_code(code) {
        return r;
    }
    if matches!(code, "SESSION_EXPIRED" | "SESSION_NOT_FOUND") {
        let client = &shared.target.client;
        if let Ok(reason) = shared.target.end_seed000(client).await {
            return reason;
        }
        if code == "SESSION_EXPIRED" {
            return EndReason::Timeout;
        }
    }
    EndReason::Rejected(code.to_owned())
}

type Registry = Mutex<HashMap<u64, Weak<Shared>>>;

fn registry() -> &'static Registry {
    static LIVE: OnceLock<Registry> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn registry_add(shared: &Arc<Shared>) {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(shared.id, Arc::downgrade(shared));
}

fn registry_remove(id: u64) {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
}

/// Every session of this process that has not ended.
pub(crate) fn live_sessions() -> Vec<Arc<Shared>> {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .filter_map(Weak::upgrade)
        .collect()
}

/// Ends every live session of this process on the server, waiting at most `wait`.
pub fn end_all_sessions(wait: Duration) {
    end_blocking(live_sessions(), wait);
}
