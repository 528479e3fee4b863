//! The Redis adapter of the [`Store`] port and of [`MetaStore`]: `store.backend = "redis"`.
//!
//! **Atomicity.** Every [`StoreOp`] is one Lua script (`scripts/*.lua`, invoked by
//! `EVALSHA`) over the keys of one license, which share the hash tag `{lic:KEY}` (see
//! [`keys`]): the script re-checks the limit against what is stored and writes in one step, so
//! any number of Tessera processes sharing a Redis (or a Redis Cluster: one slot per license)
//! can never exceed a limit together. The scripts mirror
//! [`apply_to_snapshot`](tessera_actors::memory_store::apply_to_snapshot) and
//! [`apply_heartbeat`](tessera_actors::memory_store::apply_heartbeat); the conformance suite
//! (`tests/tests/store_conformance.rs`) runs the same tests on both.
//!
//! **Cross-slot indexes.** Four things are global and so live outside any license's slot:
//! the id counters, the license list, the token → license index and the deadline index used
//! by [`Store::overdue_sessions`] (on a single Redis with two siblings, the last-heartbeat
//! sets). On a cluster they are written in separate commands, never inside a script, so they
//! are not atomic with it; on a single Redis a session start writes its entries inside its
//! script. Each separate write is ordered so that a crash between it and the script leaves
//! something harmless, and readers verify against the license's own keys:
//! - index entries for a session are written *before* the script that starts it (on a
//!   cluster; inside it on a single Redis) and removed after the script that ends it (in the
//!   background, or in the same pipeline for unconfirmed ends); an entry whose
//!   session does not exist is ignored by [`Store::find_session`] and removed by
//!   [`Store::overdue_sessions`], which also corrects a stale deadline score;
//! - the license list is written before the script that creates the license;
//! - ids are taken with `INCR` before the script, so a refused or failed operation leaves a
//!   gap: ids are unique and increasing, not dense.
//!
//! **Heartbeats.** On a single Redis [`Store::flush_heartbeats`] sends the whole batch as one
//! pipeline of three commands, `ZADD GT` of session deadlines, session last heartbeats and
//! device last heartbeats into three global sorted sets, however many heartbeats and licenses
//! the batch holds. Every per-license script also gets those sets as keys and reads a
//! session's times as the later of its license's `t` hash (the times it started with) and
//! the sets, atomically with its limit check; a device's only while it is active, and
//! deactivating folds the set's time into the device's state. On a cluster a script may touch
//! one slot only, so there the batch is split by slot: per slot one `EVALSHA` of
//! `heartbeats.lua` per ≤ [`HEARTBEATS_PER_SCRIPT`] writes, which costs one `HMGET` and at
//! most one `HSET` of each license's `t` hash (2 × licenses commands executed), plus one
//! `ZADD GT` of the deadline index.
//!
//! **Durability.** `Ok` means Redis applied the change. That it survives a Redis crash is
//! Redis' configuration: `appendonly yes` with `appendfsync always` for "durable before the
//! reply" (the fault tests run so); `everysec` may lose up to a second of acknowledged writes.
//!
//! **Outages.** Every call is bounded by `op_timeout`. A connection failure or timeout turns
//! [`Store::health`] to `Degraded`; while degraded, calls fail at once with
//! [`StoreError::Unavailable`] instead of waiting, and a background probe (`PING` every
//! second, every 200 ms while degraded) turns it back to `Ok`. The [`ConnectionManager`]
//! reconnects by itself; a connection whose probes keep timing out (a half-open socket) is
//! replaced. After a Redis restart the script cache is empty: a `NOSCRIPT` reply loads every
//! script again and the command is retried once.
//!
//! **Secrets.** Session tokens appear only as their SHA-256 hex ([`TokenHash`]); API keys reach
//! this adapter only as [`MetaStore`] blobs that already hold SHA-256 digests.
//!
//! [`ConnectionManager`]: redis::aio::ConnectionManager

mod conn;
mod keys;
mod scripts;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use redis::cluster_routing::Slot;
use redis::{Cmd, RedisError, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_actors::{
    Activation, EndReason, HeartbeatWrite, LicenseKey, LicenseRecord, LicenseSnapshot, LimitKind,
    SessionRecord, Store, StoreError, StoreHealth, StoreOp, StoreOutcome, TokenHash,
};
use tokio::sync::Notify;

use self::conn::{Conn, Target};
use self::keys::{LicenseKeys, t};
use self::scripts::{Scripts, evalsha, on_license};
use super::meta::MetaStore;

/// Most heartbeat writes handled by one `heartbeats.lua` call (bounds how long one script
/// blocks Redis, and Lua's `unpack` limit).
pub const HEARTBEATS_PER_SCRIPT: usize = 1_000;

/// Probe period while healthy.
const PROBE_OK: Duration = Duration::from_secs(1);
/// Probe period while degraded.
const PROBE_DEGRADED: Duration = Duration::from_millis(200);
/// Consecutive failed probes after which a single-server connection is rebuilt.
const REBUILD_AFTER_FAILED_PROBES: u32 = 5;
/// Most rounds of [`Store::overdue_sessions`] spent skipping stale index entries.
const OVERDUE_ROUNDS: usize = 8;

/// The Redis store. Cheap to clone: clones share the connection and the health flag.
///
/// Construct with [`RedisStore::connect`]; it implements both [`Store`] (licenses,
/// activations, sessions) and [`MetaStore`].
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    conn: RwLock<Conn>,
    scripts: Scripts,
    op_timeout: Duration,
    healthy: AtomicBool,
    probe_now: Notify,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only say which kind of deployment this is.
        f.debug_struct("RedisStore")
            .field("cluster", &self.is_cluster())
            .field("op_timeout", &self.inner.op_timeout)
            .field("health", &Store::health(self))
            .finish()
    }
}

/// One ended session as recorded in a license's capped `ended` log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedEntry {
    /// The session.
    pub token_hash: TokenHash,
    /// Why it ended.
    pub reason: EndReason,
    /// When (the `at` of the operation that ended it).
    pub ended_at: DateTime<Utc>,
}

impl RedisStore {
    /// Connects to `url` and loads the scripts; every later call is bounded by `op_timeout`.
    ///
    /// `url` is `redis://[user:pass@]host:port[/db]` (also `unix://` and `redis+unix://`) for
    /// one server, or names a Redis Cluster either as `redis+cluster://[user:pass@]h1:p1,h2:p2`
    /// (`rediss+cluster://` with TLS) or as a comma-separated list of `redis://` node URLs;
    /// the nodes are seeds, the rest of the cluster is discovered.
    ///
    /// Fails with [`StoreError::Unavailable`] if the URL is invalid or Redis does not answer
    /// within `op_timeout`. Must be called inside a Tokio runtime (it spawns the health probe,
    /// which stops when the last clone is dropped).
    pub async fn connect(url: &str, op_timeout: Duration) -> Result<Self, StoreError> {
        let target = Target::parse(url)?;
        let conn = match &target {
            Target::Single(url) => conn::single_lazy(url, op_timeout)?,
            Target::Cluster(nodes) => {
                tokio::time::timeout(op_timeout, conn::cluster(nodes, op_timeout))
                    .await
                    .map_err(|_| {
                        StoreError::Unavailable("redis cluster: connect timed out".into())
                    })??
            }
        };
        let store = Self {
            inner: Arc::new(Inner {
                target,
                conn: RwLock::new(conn),
                scripts: Scripts::new(),
                op_timeout,
                healthy: AtomicBool::new(true),
                probe_now: Notify::new(),
            }),
        };
        let loaded = tokio::time::timeout(op_timeout, store.inner.load_scripts()).await;
        match loaded {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(conn::map_err(&e)),
            Err(_) => return Err(StoreError::Unavailable("redis: connect timed out".into())),
        }
        tokio::spawn(probe(Arc::downgrade(&store.inner)));
        Ok(store)
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.target, Target::Cluster(_))
    }

    /// The most recent ended sessions of a license (newest first, at most 1000 kept), for
    /// audit and tests.
    pub async fn ended_sessions(&self, key: &LicenseKey) -> Result<Vec<EndedEntry>, StoreError> {
        let keys = LicenseKeys::of(key);
        let inner = &self.inner;
        self.guarded(async {
            let mut cmd = redis::cmd("LRANGE");
            cmd.arg(&keys.ended).arg(0).arg(-1);
            let lines: Vec<String> = decode_value(inner.query(&cmd).await?)?;
            lines.iter().map(|l| parse_ended(l)).collect()
        })
        .await
    }

    /// Runs `body` if the store is not known to be down, bounded by `op_timeout`, and keeps
    /// the health flag in step with the outcome.
    async fn guarded<T>(
        &self,
        body: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let inner = &self.inner;
        if !inner.healthy.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable(
                "redis is unreachable (waiting for it to answer again)".into(),
            ));
        }
        match tokio::time::timeout(inner.op_timeout, body).await {
            Ok(Err(StoreError::Unavailable(reason))) => {
                inner.mark_down();
                Err(StoreError::Unavailable(reason))
            }
            Ok(result) => result,
            Err(_) => {
                inner.mark_down();
                Err(StoreError::Timeout(
                    u64::try_from(inner.op_timeout.as_millis()).unwrap_or(u64::MAX),
                ))
            }
        }
    }
}

impl Inner {
    fn conn(&self) -> Conn {
        self.conn.read().clone()
    }

    fn cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// `EVALSHA` of a per-license script, with the global heartbeat sets on a single Redis.
    fn on_license(&self, script: &redis::Script, keys: &LicenseKeys, args: &[String]) -> Cmd {
        on_license(script, keys, args, !self.cluster())
    }

    fn mark_down(&self) {
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!("redis store degraded: requests needing it fail until it answers");
        }
        self.probe_now.notify_one();
    }

    async fn load_scripts(&self) -> Result<(), RedisError> {
        let mut conn = self.conn();
        for script in self.scripts.all() {
            script.load_async(&mut conn).await?;
        }
        Ok(())
    }

    /// One command; after `NOSCRIPT` the scripts are loaded and it is retried once.
    async fn query(&self, cmd: &Cmd) -> Result<Value, StoreError> {
        let mut conn = self.conn();
        match cmd.query_async::<Value>(&mut conn).await {
            Err(e) if conn::is_noscript(&e) => {
                self.load_scripts().await.map_err(|e| conn::map_err(&e))?;
                cmd.query_async(&mut conn)
                    .await
                    .map_err(|e| conn::map_err(&e))
            }
            other => other.map_err(|e| conn::map_err(&e)),
        }
    }

    /// Commands in one round trip (on a cluster they must share a slot); one reply each.
    /// Every command in such a pipeline is idempotent, so after `NOSCRIPT` it is resent whole.
    async fn pipeline(&self, cmds: &[Cmd]) -> Result<Vec<Value>, StoreError> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for c in cmds {
            pipe.add_command(c.clone());
        }
        let mut conn = self.conn();
        match pipe.query_async::<Vec<Value>>(&mut conn).await {
            Err(e) if conn::is_noscript(&e) => {
                self.load_scripts().await.map_err(|e| conn::map_err(&e))?;
                pipe.query_async(&mut conn)
                    .await
                    .map_err(|e| conn::map_err(&e))
            }
            other => other.map_err(|e| conn::map_err(&e)),
        }
    }

    /// Commands on keys of any slots: one pipeline on a single server, concurrent single
    /// commands on a cluster. One reply each, in order.
    async fn spread(&self, cmds: &[Cmd]) -> Result<Vec<Value>, StoreError> {
        if !self.cluster() {
            return self.pipeline(cmds).await;
        }
        futures::future::try_join_all(cmds.iter().map(|c| self.query(c))).await
    }

    /// `pre` (other slots), then `main` (one license's script), then `post` (other slots):
    /// one round trip on a single server. Returns `main`'s reply.
    async fn around(&self, pre: &[Cmd], main: &Cmd, post: &[Cmd]) -> Result<Value, StoreError> {
        if self.cluster() {
            self.spread(pre).await?;
            let reply = self.query(main).await?;
            self.spread(post).await?;
            return Ok(reply);
        }
        let mut cmds = Vec::with_capacity(pre.len() + 1 + post.len());
        cmds.extend_from_slice(pre);
        cmds.push(main.clone());
        cmds.extend_from_slice(post);
        let mut replies = self.pipeline(&cmds).await?;
        if replies.len() != cmds.len() {
            return Err(StoreError::Corrupt("redis: short pipeline reply".into()));
        }
        Ok(replies.swap_remove(pre.len()))
    }

    /// Removes the index entries of sessions a script ended (or refused), in the background:
    /// the operation's result does not depend on it and its reply does not wait for it.
    /// Best effort: a leftover entry is ignored by readers and removed by the deadline sweep.
    fn forget_sessions(self: &Arc<Self>, key: &LicenseKey, tokens: Vec<TokenHash>) {
        if tokens.is_empty() {
            return;
        }
        let (inner, key) = (Arc::clone(self), key.clone());
        tokio::spawn(async move {
            let cmds = forget_commands(&key, &tokens);
            match tokio::time::timeout(inner.op_timeout, inner.spread(&cmds)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(license = %key.masked(), error = %e, "could not clean the session index");
                }
                Err(_) => {
                    tracing::warn!(license = %key.masked(), "cleaning the session index timed out");
                }
            }
        });
    }

    /// Rebuilds a single-server connection (a half-open socket never errors, only times out).
    fn rebuild(&self) {
        if let Target::Single(url) = &self.target {
            match conn::single_lazy(url, self.op_timeout) {
                Ok(fresh) => {
                    *self.conn.write() = fresh;
                    tracing::info!("redis connection replaced after failed probes");
                }
                Err(e) => tracing::warn!(error = %e, "could not rebuild the redis connection"),
            }
        }
    }
}

/// Keeps the health flag fresh: `PING` every second, every 200 ms while degraded, and at once
/// when a call reports a failure. Ends when the store is dropped.
async fn probe(inner: Weak<Inner>) {
    let mut failed: u32 = 0;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let period = if strong.healthy.load(Ordering::Relaxed) {
            PROBE_OK
        } else {
            PROBE_DEGRADED
        };
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = strong.probe_now.notified() => {}
        }
        let mut conn = strong.conn();
        let ping = tokio::time::timeout(
            strong.op_timeout,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        match ping {
            Ok(Ok(_)) => {
                failed = 0;
                if !strong.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("redis store answers again");
                }
            }
            Ok(Err(e)) => {
                failed += 1;
                strong.healthy.store(false, Ordering::Relaxed);
                tracing::debug!(error = %e, "redis probe failed");
            }
            Err(_) => {
                failed += 1;
                strong.healthy.store(false, Ordering::Relaxed);
                if failed.is_multiple_of(REBUILD_AFTER_FAILED_PROBES) {
                    strong.rebuild();
                }
            }
        }
        drop(strong);
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("redis: {what}"))
}

fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(corrupt)
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(corrupt)
}

fn decode_value<T: redis::FromRedisValue>(v: Value) -> Result<T, StoreError> {
    redis::from_redis_value(v).map_err(corrupt)
}

/// A license record as `field, json value` pairs (the `rec` hash).
fn record_fields(record: &LicenseRecord) -> Result<Vec<String>, StoreError> {
    let serde_json::Value::Object(map) = serde_json::to_value(record).map_err(corrupt)? else {
        return Err(corrupt("a license record must serialize to an object"));
    };
    let mut out = Vec::with_capacity(map.len() * 2);
    for (field, value) in map {
        out.push(field);
        out.push(value.to_string());
    }
    Ok(out)
}

/// The inverse of [`record_fields`].
fn record_from_pairs(pairs: &[String]) -> Result<LicenseRecord, StoreError> {
    let mut map = serde_json::Map::new();
    for pair in pairs.chunks_exact(2) {
        map.insert(pair[0].clone(), from_json(&pair[1])?);
    }
    serde_json::from_value(serde_json::Value::Object(map)).map_err(corrupt)
}

/// Session times as stored in the `t` hash: deadline then last heartbeat.
fn session_times(deadline: DateTime<Utc>, last_heartbeat: DateTime<Utc>) -> String {
    let mut s = t(deadline);
    s.push_str(&t(last_heartbeat));
    s
}

fn parse_session_times(text: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), StoreError> {
    let bad = || corrupt("malformed session times");
    let deadline = text
        .get(..keys::T_LEN)
        .and_then(keys::parse_t)
        .ok_or_else(bad)?;
    let beat = text
        .get(keys::T_LEN..2 * keys::T_LEN)
        .and_then(keys::parse_t)
        .ok_or_else(bad)?;
    Ok((deadline, beat))
}

/// An activation's state in the `t` hash: active flag, then last heartbeat.
fn parse_activation_state(text: &str) -> Result<(bool, DateTime<Utc>), StoreError> {
    let bad = || corrupt("malformed activation state");
    let active = match text.get(..1) {
        Some("1") => true,
        Some("0") => false,
        _ => return Err(bad()),
    };
    let beat = text.get(1..).and_then(keys::parse_t).ok_or_else(bad)?;
    Ok((active, beat))
}

fn activation_with_state(json: &str, state: &str) -> Result<Activation, StoreError> {
    let mut activation: Activation = from_json(json)?;
    let (active, beat) = parse_activation_state(state)?;
    activation.is_active = active;
    activation.last_heartbeat = beat;
    Ok(activation)
}

fn pairs_to_map(pairs: Vec<String>) -> HashMap<String, String> {
    let mut map = HashMap::with_capacity(pairs.len() / 2);
    let mut it = pairs.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        map.insert(k, v);
    }
    map
}

fn token(hex: &str) -> Result<TokenHash, StoreError> {
    TokenHash::from_hex(hex).ok_or_else(|| corrupt("malformed token hash"))
}

fn parse_ended(line: &str) -> Result<EndedEntry, StoreError> {
    let mut parts = line.splitn(3, ' ');
    let (Some(reason), Some(at), Some(tok)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(corrupt("malformed ended entry"));
    };
    let reason: EndReason = from_json(&format!("\"{reason}\""))?;
    Ok(EndedEntry {
        token_hash: token(tok)?,
        reason,
        ended_at: keys::parse_t(at).ok_or_else(|| corrupt("malformed ended time"))?,
    })
}

/// Decodes the `{status, ...}` reply of a per-license script.
fn reply_parts(v: Value) -> Result<(String, Vec<Value>), StoreError> {
    let mut items: Vec<Value> = decode_value(v)?;
    if items.is_empty() {
        return Err(corrupt("empty script reply"));
    }
    let status: String = decode_value(items.remove(0))?;
    Ok((status, items))
}

fn tokens_of(values: Vec<Value>) -> Result<Vec<TokenHash>, StoreError> {
    values
        .into_iter()
        .map(|v| token(&decode_value::<String>(v)?))
        .collect()
}

/// `DEL` of the token index and `ZREM` of the session's entries in the global heartbeat sets
/// for `tokens`.
fn forget_commands(key: &LicenseKey, tokens: &[TokenHash]) -> Vec<Cmd> {
    let mut cmds = Vec::with_capacity(tokens.len() + 2);
    let members: Vec<String> = tokens
        .iter()
        .map(|tok| keys::deadline_member(key, tok))
        .collect();
    for tok in tokens {
        let mut del = redis::cmd("DEL");
        del.arg(keys::token_index(tok));
        cmds.push(del);
    }
    cmds.extend(zrem_sessions(&members));
    cmds
}

/// `ZREM` of session members from [`keys::DEADLINES`] and [`keys::BEATS`].
fn zrem_sessions(members: &[String]) -> [Cmd; 2] {
    [keys::DEADLINES, keys::BEATS].map(|set| {
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(set).arg(members);
        zrem
    })
}

fn limit_kind(name: &str) -> Result<LimitKind, StoreError> {
    match name {
        "devices" => Ok(LimitKind::Devices),
        "activations" => Ok(LimitKind::Activations),
        "sessions" => Ok(LimitKind::Sessions),
        other => Err(corrupt(format!("unknown limit `{other}`"))),
    }
}

fn unexpected(status: &str) -> StoreError {
    corrupt(format!("unexpected script reply `{status}`"))
}

// ---------------------------------------------------------------------------------------------
// The Store port

impl RedisStore {
    async fn load_inner(&self, key: &LicenseKey) -> Result<Option<LicenseSnapshot>, StoreError> {
        let keys = LicenseKeys::of(key);
        let inner = &self.inner;
        let reply = inner
            .query(&inner.on_license(&inner.scripts.load, &keys, &[]))
            .await?;
        let mut parts: Vec<Vec<String>> = decode_value(reply)?;
        if parts.is_empty() {
            return Ok(None);
        }
        if parts.len() != 4 {
            return Err(corrupt("load reply has the wrong shape"));
        }
        let times = pairs_to_map(parts.pop().unwrap_or_default());
        let ses = parts.pop().unwrap_or_default();
        let act = parts.pop().unwrap_or_default();
        let record = record_from_pairs(&parts.pop().unwrap_or_default())?;

        let mut activations = Vec::with_capacity(act.len() / 2);
        for pair in act.chunks_exact(2) {
            let state = times
                .get(&format!("a:{}", pair[0]))
                .ok_or_else(|| corrupt("activation without state"))?;
            activations.push(activation_with_state(&pair[1], state)?);
        }
        activations.sort_by_key(|a| a.id);

        let mut sessions = Vec::with_capacity(ses.len() / 2);
        for pair in ses.chunks_exact(2) {
            let mut session: SessionRecord = from_json(&pair[1])?;
            let stored = times
                .get(&format!("s:{}", pair[0]))
                .ok_or_else(|| corrupt("session without times"))?;
            let (deadline, beat) = parse_session_times(stored)?;
            session.deadline = deadline;
            session.last_heartbeat = beat;
            sessions.push(session);
        }
        sessions.sort_by(|a, b| {
            (a.started_at, a.token_hash.as_bytes()).cmp(&(b.started_at, b.token_hash.as_bytes()))
        });
        Ok(Some(LicenseSnapshot {
            record,
            activations,
            sessions,
        }))
    }

    async fn create_inner(&self, mut record: LicenseRecord) -> Result<LicenseRecord, StoreError> {
        let inner = &self.inner;
        let keys = LicenseKeys::of(&record.key);
        let mut incr = redis::cmd("INCR");
        incr.arg(keys::LICENSE_ID);
        record.id = decode_value(inner.query(&incr).await?)?;
        let fields = record_fields(&record)?;
        let mut list = redis::cmd("ZADD");
        list.arg(keys::LICENSES).arg(0).arg(record.key.as_str());
        let reply = inner
            .around(
                &[list],
                &inner.on_license(&inner.scripts.create_license, &keys, &fields),
                &[],
            )
            .await?;
        let (status, _) = reply_parts(reply)?;
        match status.as_str() {
            "done" => Ok(record),
            "exists" => Err(StoreError::AlreadyExists),
            other => Err(unexpected(other)),
        }
    }

    async fn apply_inner(&self, op: StoreOp) -> Result<StoreOutcome, StoreError> {
        let inner = &self.inner;
        let scripts = &inner.scripts;
        let key = op.key().clone();
        let keys = LicenseKeys::of(&key);
        match op {
            StoreOp::Activate {
                activation,
                max_devices,
                max_activations,
                ..
            } => {
                let mut incr = redis::cmd("INCR");
                incr.arg(keys::ACTIVATION_ID);
                let id: u64 = decode_value(inner.query(&incr).await?)?;
                let stored = Activation {
                    id,
                    hardware_hash: activation.hardware_hash,
                    machine_name: activation.machine_name,
                    app_version: activation.app_version,
                    fingerprint: activation.fingerprint.map(Box::new),
                    activated_at: activation.at,
                    last_heartbeat: activation.at,
                    is_active: true,
                };
                let args = [
                    stored.hardware_hash.clone(),
                    to_json(&stored)?,
                    max_devices.to_string(),
                    max_activations.to_string(),
                    t(activation.at),
                ];
                let reply = inner
                    .query(&inner.on_license(&scripts.activate, &keys, &args))
                    .await?;
                let (status, mut rest) = reply_parts(reply)?;
                match status.as_str() {
                    "new" => Ok(StoreOutcome::Activated {
                        activation: stored,
                        existing: false,
                    }),
                    "existing" if rest.len() == 2 => {
                        let state: String = decode_value(rest.remove(1))?;
                        let json: String = decode_value(rest.remove(0))?;
                        Ok(StoreOutcome::Activated {
                            activation: activation_with_state(&json, &state)?,
                            existing: true,
                        })
                    }
                    "limit" if rest.len() == 1 => {
                        Ok(StoreOutcome::LimitReached(limit_kind(&decode_value::<
                            String,
                        >(
                            rest.remove(0)
                        )?)?))
                    }
                    "not_found" => Err(StoreError::LicenseNotFound),
                    other => Err(unexpected(other)),
                }
            }
            StoreOp::Deactivate {
                hardware_hash, at, ..
            } => {
                let args = [hardware_hash, t(at)];
                let reply = inner
                    .query(&inner.on_license(&scripts.deactivate, &keys, &args))
                    .await?;
                self.finish_ending(&key, reply)
            }
            StoreOp::StartSession {
                session,
                max_sessions,
                end,
                at,
                ..
            } => {
                let tok = session.token_hash;
                let mut args = vec![
                    tok.to_hex(),
                    to_json(&session)?,
                    session_times(session.deadline, session.last_heartbeat),
                    max_sessions.to_string(),
                    t(at),
                ];
                for (t_end, reason) in &end {
                    args.push(t_end.to_hex());
                    args.push(reason.as_str().to_owned());
                }
                let index = keys::token_index(&tok);
                let reply = if inner.cluster() {
                    // The indexes first: an acknowledged session is always findable.
                    let mut set = redis::cmd("SET");
                    set.arg(&index).arg(key.as_str());
                    let member = keys::deadline_member(&key, &tok);
                    let pre = [set, zadd(keys::DEADLINES, session.deadline, &member)];
                    let script = on_license(&scripts.start_session, &keys, &args, false);
                    inner.around(&pre, &script, &[]).await?
                } else {
                    // One script writes the session and its index entries together.
                    let mut all: Vec<&str> = keys.all().to_vec();
                    all.extend(keys::HEARTBEAT_SETS);
                    all.push(&index);
                    inner
                        .query(&evalsha(&scripts.start_session, &all, &args))
                        .await?
                };
                // On a cluster a refused start leaves index entries to remove.
                let written_before = |tok| if inner.cluster() { vec![tok] } else { vec![] };
                let (status, rest) = reply_parts(reply)?;
                match status.as_str() {
                    "done" => {
                        inner.forget_sessions(&key, tokens_of(rest)?);
                        Ok(StoreOutcome::Done)
                    }
                    "limit" => {
                        inner.forget_sessions(&key, written_before(tok));
                        Ok(StoreOutcome::LimitReached(LimitKind::Sessions))
                    }
                    "not_found" => {
                        inner.forget_sessions(&key, written_before(tok));
                        Err(StoreError::LicenseNotFound)
                    }
                    other => Err(unexpected(other)),
                }
            }
            StoreOp::EndSessions {
                ends,
                at,
                confirm_deadline,
                ..
            } => {
                let mut args = vec![t(at), if confirm_deadline { "1" } else { "0" }.to_owned()];
                let mut listed = Vec::with_capacity(ends.len());
                for (tok, reason) in &ends {
                    args.push(tok.to_hex());
                    args.push(reason.as_str().to_owned());
                    listed.push(*tok);
                }
                // Without confirmation every listed session that exists ends: its index
                // entries can go in the same round trip.
                let post = if confirm_deadline {
                    Vec::new()
                } else {
                    forget_commands(&key, &listed)
                };
                let reply = inner
                    .around(
                        &[],
                        &inner.on_license(&scripts.end_sessions, &keys, &args),
                        &post,
                    )
                    .await?;
                let (status, mut rest) = reply_parts(reply)?;
                match status.as_str() {
                    "done" if rest.len() == 2 => {
                        let alive: Vec<String> = decode_value(rest.remove(1))?;
                        let ended = tokens_of(decode_value(rest.remove(0))?)?;
                        let mut still_alive = Vec::with_capacity(alive.len() / 2);
                        for pair in alive.chunks_exact(2) {
                            let deadline = keys::parse_t(&pair[1])
                                .ok_or_else(|| corrupt("malformed deadline"))?;
                            still_alive.push((token(&pair[0])?, deadline));
                        }
                        if confirm_deadline {
                            inner.forget_sessions(&key, ended.clone());
                        }
                        Ok(StoreOutcome::Ended { ended, still_alive })
                    }
                    "not_found" => Err(StoreError::LicenseNotFound),
                    other => Err(unexpected(other)),
                }
            }
            StoreOp::SetStatus {
                status, reason, at, ..
            } => {
                let args = [
                    to_json(&status)?,
                    to_json(&reason)?,
                    status
                        .end_reason()
                        .map(EndReason::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    t(at),
                ];
                let reply = inner
                    .query(&inner.on_license(&scripts.set_status, &keys, &args))
                    .await?;
                self.finish_ending(&key, reply)
            }
            StoreOp::UpdateLicense { record } => {
                let mut args = vec![to_json(&record.id)?, to_json(&record.key)?];
                args.extend(record_fields(&record)?);
                let reply = inner
                    .query(&inner.on_license(&scripts.update_license, &keys, &args))
                    .await?;
                let (status, _) = reply_parts(reply)?;
                match status.as_str() {
                    "done" => Ok(StoreOutcome::Done),
                    "mismatch" => Err(StoreError::Corrupt("license id mismatch".into())),
                    "not_found" => Err(StoreError::LicenseNotFound),
                    other => Err(unexpected(other)),
                }
            }
        }
    }

    /// Handles the `{'done', ended token...}` reply of deactivate and set_status.
    fn finish_ending(&self, key: &LicenseKey, reply: Value) -> Result<StoreOutcome, StoreError> {
        let (status, rest) = reply_parts(reply)?;
        match status.as_str() {
            "done" => {
                self.inner.forget_sessions(key, tokens_of(rest)?);
                Ok(StoreOutcome::Done)
            }
            "not_found" => Err(StoreError::LicenseNotFound),
            other => Err(unexpected(other)),
        }
    }

    async fn flush_inner(&self, batch: &[HeartbeatWrite]) -> Result<(), StoreError> {
        let inner = &self.inner;
        let sessions: Vec<String> = batch
            .iter()
            .map(|hb| keys::deadline_member(&hb.key, &hb.token_hash))
            .collect();
        let deadlines = heartbeat_zadd(
            keys::DEADLINES,
            batch.iter().map(|hb| hb.deadline).zip(&sessions),
        );
        if !inner.cluster() {
            let beats = heartbeat_zadd(
                keys::BEATS,
                batch.iter().map(|hb| hb.last_heartbeat).zip(&sessions),
            );
            let devices = heartbeat_zadd(
                keys::DEVICE_BEATS,
                batch.iter().map(|hb| {
                    (
                        hb.last_heartbeat,
                        keys::device_member(&hb.key, &hb.hardware_hash),
                    )
                }),
            );
            inner.pipeline(&[deadlines, beats, devices]).await?;
            return Ok(());
        }
        // Writes per license, in batch order (later writes are applied after earlier ones).
        let mut by_license: BTreeMap<&LicenseKey, Vec<&HeartbeatWrite>> = BTreeMap::new();
        for hb in batch {
            by_license.entry(&hb.key).or_default().push(hb);
        }
        // One group per slot (a script may only touch one slot).
        let mut groups: HashMap<Slot, Vec<(&LicenseKey, Vec<&HeartbeatWrite>)>> = HashMap::new();
        for (key, writes) in by_license {
            let slot = Slot::for_key(LicenseKeys::of(key).rec);
            groups.entry(slot).or_default().push((key, writes));
        }
        let per_group: Vec<Vec<Cmd>> = groups
            .into_values()
            .map(|licenses| heartbeat_scripts(&inner.scripts, licenses))
            .collect();
        futures::future::try_join_all(per_group.iter().map(|cmds| inner.pipeline(cmds))).await?;
        inner.query(&deadlines).await?;
        Ok(())
    }

    async fn find_inner(&self, tok: &TokenHash) -> Result<Option<LicenseKey>, StoreError> {
        let inner = &self.inner;
        let mut get = redis::cmd("GET");
        get.arg(keys::token_index(tok));
        let Some(raw) = decode_value::<Option<String>>(inner.query(&get).await?)? else {
            return Ok(None);
        };
        let key = LicenseKey::parse(&raw).map_err(corrupt)?;
        // The index may name a session that was refused or has ended: confirm it.
        let mut exists = redis::cmd("HEXISTS");
        exists
            .arg(LicenseKeys::of(&key).times)
            .arg(keys::session_field(tok));
        let live: bool = decode_value(inner.query(&exists).await?)?;
        Ok(live.then_some(key))
    }

    async fn overdue_inner(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(LicenseKey, TokenHash)>, StoreError> {
        let inner = &self.inner;
        let mut out: Vec<(LicenseKey, TokenHash)> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let max = format!("({}", keys::time_score(before));
        for _ in 0..OVERDUE_ROUNDS {
            if out.len() >= limit {
                break;
            }
            let want = limit - out.len();
            let mut range = redis::cmd("ZRANGEBYSCORE");
            range
                .arg(keys::DEADLINES)
                .arg("-inf")
                .arg(&max)
                .arg("LIMIT")
                .arg(out.len())
                .arg(want);
            let members: Vec<String> = decode_value(inner.query(&range).await?)?;
            let candidates: Vec<(String, LicenseKey, TokenHash)> = members
                .iter()
                .filter(|m| !seen.contains(*m))
                .filter_map(|m| keys::parse_deadline_member(m).map(|(k, tok)| (m.clone(), k, tok)))
                .collect();
            let checks: Vec<Cmd> = candidates
                .iter()
                .map(|(_, k, tok)| {
                    let mut c = redis::cmd("HGET");
                    c.arg(LicenseKeys::of(k).times)
                        .arg(keys::session_field(tok));
                    c
                })
                .collect();
            let times = inner.spread(&checks).await?;
            let mut fixes = Vec::new();
            for ((member, k, tok), stored) in candidates.into_iter().zip(times) {
                seen.insert(member.clone());
                match decode_value::<Option<String>>(stored)? {
                    None => fixes.extend(zrem_sessions(std::slice::from_ref(&member))),
                    Some(times) => {
                        let (deadline, _) = parse_session_times(&times)?;
                        if deadline < before {
                            out.push((k, tok));
                        } else {
                            // Only raised: on a single Redis the set, not the hash,
                            // holds the latest deadline.
                            let mut zadd = redis::cmd("ZADD");
                            zadd.arg(keys::DEADLINES)
                                .arg("XX")
                                .arg("GT")
                                .arg(keys::time_score(deadline))
                                .arg(&member);
                            fixes.push(zadd);
                        }
                    }
                }
            }
            // Malformed members are dropped from the index too.
            for m in members
                .iter()
                .filter(|m| keys::parse_deadline_member(m).is_none())
            {
                let mut zrem = redis::cmd("ZREM");
                zrem.arg(keys::DEADLINES).arg(m);
                fixes.push(zrem);
            }
            let exhausted = members.len() < want;
            if fixes.is_empty() || exhausted {
                inner.repair_index(&fixes).await;
                break;
            }
            inner.repair_index(&fixes).await;
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn list_inner(
        &self,
        after: Option<&LicenseKey>,
        limit: usize,
    ) -> Result<Vec<LicenseKey>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut range = redis::cmd("ZRANGEBYLEX");
        range
            .arg(keys::LICENSES)
            .arg(after.map_or_else(|| "-".to_owned(), |a| format!("({}", a.as_str())))
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(limit);
        let names: Vec<String> = decode_value(self.inner.query(&range).await?)?;
        names
            .iter()
            .map(|n| LicenseKey::parse(n).map_err(corrupt))
            .collect()
    }
}

impl Inner {
    /// Index repairs: failures only delay them to the next sweep.
    async fn repair_index(&self, cmds: &[Cmd]) {
        if cmds.is_empty() {
            return;
        }
        if let Err(e) = self.spread(cmds).await {
            tracing::warn!(error = %e, "could not repair the session deadline index");
        }
    }
}

/// `ZADD key` of one member at `at`.
fn zadd(key: &str, at: DateTime<Utc>, member: &str) -> Cmd {
    let mut cmd = redis::cmd("ZADD");
    cmd.arg(key).arg(keys::time_score(at)).arg(member);
    cmd
}

/// `ZADD key GT` of one (time, member) per entry, one entry per heartbeat write: times only move forward. Not
/// `XX`: a member an index repair removed while its session lives comes back. A session
/// entry an ended session revives is removed by the next [`Store::overdue_sessions`] that
/// reaches it; a device entry revived after its deactivation is never read (only active
/// devices read the set) and is removed when the device is activated again.
fn heartbeat_zadd<M: redis::ToRedisArgs>(
    key: &str,
    entries: impl Iterator<Item = (DateTime<Utc>, M)>,
) -> Cmd {
    let mut zadd = redis::cmd("ZADD");
    zadd.arg(key).arg("GT");
    for (at, member) in entries {
        zadd.arg(keys::time_score(at)).arg(member);
    }
    zadd
}

/// `heartbeats.lua` calls for the licenses of one group, each covering at most
/// [`HEARTBEATS_PER_SCRIPT`] writes (a license with more is split across calls, which is
/// equivalent because every write only moves times forward).
fn heartbeat_scripts(
    scripts: &Scripts,
    licenses: Vec<(&LicenseKey, Vec<&HeartbeatWrite>)>,
) -> Vec<Cmd> {
    let mut cmds = Vec::new();
    let mut keys_acc: Vec<String> = Vec::new();
    let mut args_acc: Vec<String> = Vec::new();
    let mut count = 0;
    for (key, writes) in licenses {
        let lk = LicenseKeys::of(key);
        for chunk in writes.chunks(HEARTBEATS_PER_SCRIPT) {
            if count + chunk.len() > HEARTBEATS_PER_SCRIPT && count > 0 {
                cmds.push(evalsha(&scripts.heartbeats, &keys_acc, &args_acc));
                keys_acc.clear();
                args_acc.clear();
                count = 0;
            }
            keys_acc.push(lk.times.clone());
            args_acc.push(chunk.len().to_string());
            for hb in chunk {
                let (last_heartbeat, deadline) = hb.kept_times();
                args_acc.push(hb.token_hash.to_hex());
                args_acc.push(t(deadline));
                args_acc.push(t(last_heartbeat));
                args_acc.push(hb.hardware_hash.clone());
            }
            count += chunk.len();
        }
    }
    if count > 0 {
        cmds.push(evalsha(&scripts.heartbeats, &keys_acc, &args_acc));
    }
    cmds
}

#[async_trait]
impl Store for RedisStore {
    async fn load(&self, key: &LicenseKey) -> Result<Option<LicenseSnapshot>, StoreError> {
        self.guarded(self.load_inner(key)).await
    }

    async fn create_license(&self, record: LicenseRecord) -> Result<LicenseRecord, StoreError> {
        self.guarded(self.create_inner(record)).await
    }

    async fn apply(&self, op: StoreOp) -> Result<StoreOutcome, StoreError> {
        self.guarded(self.apply_inner(op)).await
    }

    async fn flush_heartbeats(&self, batch: &[HeartbeatWrite]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.guarded(self.flush_inner(batch)).await
    }

    async fn find_session(&self, token: &TokenHash) -> Result<Option<LicenseKey>, StoreError> {
        self.guarded(self.find_inner(token)).await
    }

    async fn overdue_sessions(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(LicenseKey, TokenHash)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.guarded(self.overdue_inner(before, limit)).await
    }

    async fn list_licenses(
        &self,
        after: Option<&LicenseKey>,
        limit: usize,
    ) -> Result<Vec<LicenseKey>, StoreError> {
        self.guarded(self.list_inner(after, limit)).await
    }

    fn health(&self) -> StoreHealth {
        if self.inner.healthy.load(Ordering::Relaxed) {
            StoreHealth::Ok
        } else {
            StoreHealth::Degraded
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The metadata port

#[async_trait]
impl MetaStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut get = redis::cmd("GET");
        get.arg(keys::meta(key));
        let inner = &self.inner;
        self.guarded(async { decode_value::<Option<Vec<u8>>>(inner.query(&get).await?) })
            .await
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut set = redis::cmd("SET");
        set.arg(keys::meta(key)).arg(value);
        let inner = &self.inner;
        self.guarded(async { inner.query(&set).await.map(drop) })
            .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        // One script, so the comparison and the write are atomic on the server.
        const CAS: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if cur then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
if ARGV[3] == '1' then redis.call('SET', KEYS[1], ARGV[4]) else redis.call('DEL', KEYS[1]) end
return 1";
        let mut eval = redis::cmd("EVAL");
        eval.arg(CAS)
            .arg(1)
            .arg(keys::meta(key))
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(if new.is_some() { "1" } else { "0" })
            .arg(new.unwrap_or_default());
        let inner = &self.inner;
        self.guarded(async { decode_value::<i64>(inner.query(&eval).await?) })
            .await
            .map(|swapped| swapped == 1)
    }

    async fn health(&self) -> StoreHealth {
        Store::health(self)
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
