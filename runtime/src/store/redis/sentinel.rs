//! The primary that Redis Sentinel names (`redis+sentinel://`), followed across failovers.
//!
//! The sentinels are asked for the primary of the master name; the crate checks with `ROLE`
//! that the server they name considers itself a primary (step 3 of the Sentinel client
//! specification) and skips one they flag down. A [`ConnectionManager`] talks to it. When a
//! command fails the way a dead or unreachable server does ([`is_outage`]), or the server
//! answers `READONLY` (it was demoted to a replica), the sentinels are asked again in the
//! background and, if they name another server, a manager to it is swapped in: the command
//! that failed still fails (the store answers `STORE_UNAVAILABLE`), the next ones go to the
//! new primary. Lookups start at most once per [`LOOKUP_EVERY`], however many commands fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Cmd, ConnectionAddr, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult,
    ServerErrorKind, TlsMode, Value,
};
use tessera_actors::StoreError;
use tokio::sync::{Mutex, watch};

use super::errors::is_outage;
use super::sentinel_url::SentinelTarget;
use super::tls::{Tls, install_crypto_provider};

/// Least time between the starts of two lookups of the primary.
const LOOKUP_EVERY: Duration = Duration::from_millis(200);

/// A connection to whichever server the sentinels name as the primary.
pub(crate) struct SentinelConn {
    /// Asks the sentinels; a lookup needs it exclusively.
    sentinels: Mutex<SentinelClient>,
    master: ArcSwap<Primary>,
    config: ConnectionManagerConfig,
    op_timeout: Duration,
    /// When the last background lookup started.
    last_lookup: parking_lot::Mutex<Option<Instant>>,
    /// A background lookup is running.
    looking: AtomicBool,
    /// Counts the switches to another primary; a subscription ends on the next one.
    switched: watch::Sender<u64>,
}

/// The current primary.
struct Primary {
    /// `host:port` as the sentinels announce it.
    addr: String,
    manager: ConnectionManager,
}

/// Asks the sentinels of `target` for the primary (bounded by `op_timeout`) and connects to
/// it lazily.
pub(crate) async fn connect(
    target: &SentinelTarget,
    op_timeout: Duration,
    tls: &Tls,
) -> Result<Arc<SentinelConn>, StoreError> {
    let invalid =
        |e: RedisError| StoreError::Unavailable(format!("invalid redis sentinel url: {e}"));
    let addrs = target.sentinels.iter().map(|(host, port)| {
        if target.tls {
            ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.clone(), *port)
        }
    });
    let mut builder = SentinelClientBuilder::new(addrs, &target.master, SentinelServerType::Master)
        .map_err(invalid)?;
    if let Some(password) = &target.sentinel_password {
        builder = builder.set_client_to_sentinel_password(password);
    }
    if let Some(username) = &target.username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = &target.password {
        builder = builder.set_client_to_redis_password(password);
    }
    if target.tls {
        install_crypto_provider();
        builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
        if let Some(certs) = tls.certificates() {
            builder = builder.set_client_to_redis_certificates(certs);
        }
        if let Some(certs) = tls.certificates() {
            builder = builder.set_client_to_sentinel_certificates(certs);
        }
    }
    let mut sentinels = builder.build().map_err(invalid)?;
    let (addr, client) = tokio::time::timeout(op_timeout, ask(&mut sentinels))
        .await
        .map_err(|_| StoreError::Unavailable("redis sentinel: no answer in time".into()))?
        .map_err(|e| {
            StoreError::Unavailable(format!(
                "redis sentinel: no sentinel named a reachable primary for `{}`: {e}",
                target.master
            ))
        })?;
    // The sentinels, not a long retry loop, decide where to go after a failure: a manager
    // gives up on its server quickly so that the next command asks them again.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(op_timeout))
        .set_response_timeout(Some(op_timeout))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
        .set_number_of_retries(2);
    let manager = ConnectionManager::new_lazy_with_config(client, config.clone())
        .map_err(|e| StoreError::Unavailable(format!("redis sentinel: {e}")))?;
    tracing::info!(primary = %addr, "redis sentinel: connecting to the primary");
    Ok(Arc::new(SentinelConn {
        sentinels: Mutex::new(sentinels),
        master: ArcSwap::from_pointee(Primary { addr, manager }),
        config,
        op_timeout,
        last_lookup: parking_lot::Mutex::new(None),
        looking: AtomicBool::new(false),
        switched: watch::Sender::new(0),
    }))
}

/// Asks the sentinels for the primary: its address and a client for it.
async fn ask(sentinels: &mut SentinelClient) -> RedisResult<(String, redis::Client)> {
    let client = sentinels.async_get_client().await?;
    Ok((client.get_connection_info().addr().to_string(), client))
}

impl SentinelConn {
    async fn lookup(&self) -> RedisResult<(String, redis::Client)> {
        ask(&mut *self.sentinels.lock().await).await
    }

    /// Makes `addr` the primary, unless it already is and `replace` is false.
    fn adopt(&self, addr: String, client: redis::Client, replace: bool) -> RedisResult<()> {
        let moved = self.master.load().addr != addr;
        if !moved && !replace {
            return Ok(());
        }
        let manager = ConnectionManager::new_lazy_with_config(client, self.config.clone())?;
        let old = self.master.swap(Arc::new(Primary {
            addr: addr.clone(),
            manager,
        }));
        if moved {
            tracing::warn!(primary = %addr, previous = %old.addr, "redis sentinel: following the new primary");
            self.switched.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    /// Asks the sentinels again in the background, unless a lookup started less than
    /// [`LOOKUP_EVERY`] ago or is still running. `replace`: see [`super::conn::Conn::suspect`].
    pub(crate) fn follow(self: &Arc<Self>, replace: bool) {
        {
            let mut last = self.last_lookup.lock();
            if last.is_some_and(|at| at.elapsed() < LOOKUP_EVERY)
                || self.looking.swap(true, Ordering::AcqRel)
            {
                return;
            }
            *last = Some(Instant::now());
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            match tokio::time::timeout(this.op_timeout, this.lookup()).await {
                Ok(Ok((addr, client))) => {
                    if let Err(e) = this.adopt(addr, client, replace) {
                        tracing::warn!(error = %e, "redis sentinel: cannot connect to the primary");
                    }
                }
                // During a failover the sentinels name no primary for a few seconds; the
                // next failure asks again.
                Ok(Err(e)) => tracing::debug!(error = %e, "redis sentinel: no primary yet"),
                Err(_) => tracing::debug!("redis sentinel: lookup timed out"),
            }
            this.looking.store(false, Ordering::Release);
        });
    }

    /// A client for the primary the sentinels name now (asked at once, whatever the rate
    /// limit: the subscriber backs off by itself), and a receiver that sees the store switch
    /// to another primary after this one.
    pub(crate) async fn primary_now(
        &self,
    ) -> Result<(redis::Client, watch::Receiver<u64>), StoreError> {
        let (addr, client) = tokio::time::timeout(self.op_timeout, self.lookup())
            .await
            .map_err(|_| StoreError::Unavailable("redis sentinel: no answer in time".into()))?
            .map_err(|e| StoreError::Unavailable(format!("redis sentinel: {e}")))?;
        self.adopt(addr, client.clone(), false)
            .map_err(|e| StoreError::Unavailable(format!("redis sentinel: {e}")))?;
        Ok((client, self.switched.subscribe()))
    }

    /// Whether the reply of one command (or of each command of a pipeline) says the primary
    /// is gone or no longer a primary; if so, asks the sentinels again.
    fn check(
        self: &Arc<Self>,
        sent_to: &Arc<Primary>,
        error: Option<&RedisError>,
        values: &[Value],
    ) {
        let gone = error.is_some_and(is_outage)
            || values.iter().any(|v| match v {
                Value::ServerError(e) => is_readonly(&RedisError::from(e.clone())),
                _ => false,
            });
        // A reply from a primary already replaced says nothing about the current one.
        if gone && Arc::ptr_eq(sent_to, &self.master.load()) {
            self.follow(false);
        }
    }

    pub(crate) fn req_packed_command<'a>(self: &Arc<Self>, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let this = Arc::clone(self);
        Box::pin(async move {
            let primary = this.master.load_full();
            let mut manager = primary.manager.clone();
            let result = manager.req_packed_command(cmd).await;
            match &result {
                Ok(value) => this.check(&primary, None, std::slice::from_ref(value)),
                Err(e) => this.check(&primary, Some(e), &[]),
            }
            result
        })
    }

    pub(crate) fn req_packed_commands<'a>(
        self: &Arc<Self>,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let this = Arc::clone(self);
        Box::pin(async move {
            let primary = this.master.load_full();
            let mut manager = primary.manager.clone();
            let result = manager.req_packed_commands(pipeline, offset, count).await;
            match &result {
                Ok(values) => this.check(&primary, None, values),
                Err(e) => this.check(&primary, Some(e), &[]),
            }
            result
        })
    }
}

/// `READONLY`: the server is a replica now.
fn is_readonly(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly) || e.code() == Some("READONLY")
}
