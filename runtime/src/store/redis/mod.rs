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
//! the id counters, the license list and id index, the token → license index and the deadline index used
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
//! replaced. On Sentinel a failing command or probe also makes the store ask the sentinels
//! for the primary again and move to the one they name (`sentinel.rs`); the calls that failed
//! meanwhile stay failed. After a Redis restart the script cache is empty: a `NOSCRIPT` reply loads every
//! script again and the command is retried once.
//!
//! **Secrets.** Session tokens appear only as their SHA-256 hex ([`TokenHash`]); API keys reach
//! this adapter only as [`MetaStore`] blobs that already hold SHA-256 digests.
//!
//! [`ConnectionManager`]: redis::aio::ConnectionManager

pub mod audit;
mod catalog;
mod changes;
mod codec;
mod conn;
mod errors;
mod events;
mod keys;
mod licenses;
mod meta;
mod plugin_kv;
mod resources;
mod scripts;
mod sentinel;
mod sentinel_url;
mod tls;
mod transfer;

pub use self::codec::EndedEntry;

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
use tessera_actors::{
    Activation, EndReason, HeartbeatWrite, LicenseKey, LicenseRecord, LicenseSnapshot, LimitKind,
    SessionRecord, Store, StoreError, StoreHealth, StoreOp, StoreOutcome, TokenHash,
};
use tokio::sync::Notify;

use self::codec::{decode_value, forget_commands, parse_ended};
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
    tls: conn::Tls,
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

impl RedisStore {
    /// Connects to `url` and loads the scripts; every later call is bounded by `op_timeout`.
    ///
    /// `url` is `redis://[user:pass@]host:port[/db]` (also `unix://` and `redis+unix://`) for
    /// one server, or names a Redis Cluster either as `redis+cluster://[user:pass@]h1:p1,h2:p2`
    /// (`rediss+cluster://` with TLS) or as a comma-separated list of `redis://` node URLs;
    /// the nodes are seeds, the rest of the cluster is discovered. A primary watched by Redis
    /// Sentinel is `redis+sentinel://[user:pass@]s1:p1,s2:p2/MASTER_NAME` (the sentinels'
    /// addresses; `rediss+sentinel://` with TLS; `user:pass` is the primary's, the sentinels'
    /// password is `?sentinel_password=`): the store follows the primary across failovers.
    ///
    /// Fails with [`StoreError::Unavailable`] if the URL is invalid or Redis does not answer
    /// within `op_timeout`. Must be called inside a Tokio runtime (it spawns the health probe,
    /// which stops when the last clone is dropped).
    pub async fn connect(url: &str, op_timeout: Duration) -> Result<Self, StoreError> {
        Self::connect_with_ca(url, op_timeout, None).await
    }

    /// [`RedisStore::connect`], where a `rediss://` server's certificate must chain to one
    /// of the PEM certificates `ca_pem` (`store.redis_ca_file`) rather than to the system's
    /// trust store (with `None`).
    ///
    /// # Errors
    /// As [`RedisStore::connect`]; a certificate that does not verify is
    /// [`StoreError::Unavailable`] naming the reason.
    pub async fn connect_with_ca(
        url: &str,
        op_timeout: Duration,
        ca_pem: Option<Vec<u8>>,
    ) -> Result<Self, StoreError> {
        let target = Target::parse(url)?;
        let tls = conn::Tls { ca_pem };
        let conn = match &target {
            Target::Single(url) => {
                conn::probe_tls(url, op_timeout, &tls).await?;
                conn::single_lazy(url, op_timeout, &tls)?
            }
            Target::Cluster(nodes) => {
                tokio::time::timeout(op_timeout, conn::cluster(nodes, op_timeout, &tls))
                    .await
                    .map_err(|_| {
                        StoreError::Unavailable("redis cluster: connect timed out".into())
                    })??
            }
            Target::Sentinel(sentinels) => {
                Conn::Sentinel(sentinel::connect(sentinels, op_timeout, &tls).await?)
            }
        };
        let store = Self {
            inner: Arc::new(Inner {
                target,
                tls,
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
        match tokio::time::timeout(op_timeout * 10, store.backfill_license_ids()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not fill the license id index"),
            Err(_) => tracing::warn!("filling the license id index timed out"),
        }
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

    /// Rebuilds a single-server connection (a half-open socket never errors, only times out);
    /// on Sentinel, connects afresh to the primary the sentinels name.
    fn rebuild(&self) {
        if let Target::Sentinel(_) = &self.target {
            self.conn().suspect(true);
        }
        if let Target::Single(url) = &self.target {
            match conn::single_lazy(url, self.op_timeout, &self.tls) {
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
                } else {
                    // The timed-out PING was dropped before its connection saw an error.
                    conn.suspect(false);
                }
            }
        }
        drop(strong);
    }
}
