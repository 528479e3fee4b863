//! The connection: one Redis through a reconnecting [`ConnectionManager`], or a Redis Cluster
//! through [`ClusterConnection`], behind one type; and how Redis errors map to [`StoreError`].

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, RedisError, RedisFuture, ServerErrorKind, TlsCertificates, Value};
use tessera_actors::StoreError;

/// Where the store connects, parsed from `store.redis_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// One server (`redis://`, `rediss://`, `unix://`, `redis+unix://`).
    Single(String),
    /// A cluster, given by one or more seed nodes.
    Cluster(Vec<String>),
}

impl Target {
    /// Parses a URL: `redis+cluster://[user:pass@]h1:p1[,h2:p2...]` (or `rediss+cluster://`)
    /// or a comma-separated list of `redis://` URLs names a cluster; anything else is one
    /// server.
    pub(crate) fn parse(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        for (prefix, scheme) in [
            ("redis+cluster://", "redis://"),
            ("rediss+cluster://", "rediss://"),
        ] {
            if let Some(rest) = url.strip_prefix(prefix) {
                let (auth, hosts) = match rest.rsplit_once('@') {
                    Some((auth, hosts)) => (format!("{auth}@"), hosts),
                    None => (String::new(), rest),
                };
                let nodes: Vec<String> = hosts
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(|h| format!("{scheme}{auth}{h}"))
                    .collect();
                if nodes.is_empty() {
                    return Err(StoreError::Unavailable(
                        "redis cluster url names no node".into(),
                    ));
                }
                return Ok(Self::Cluster(nodes));
            }
        }
        if url.contains(',') {
            let nodes: Vec<String> = url
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect();
            return Ok(Self::Cluster(nodes));
        }
        Ok(Self::Single(url.to_owned()))
    }
}

/// A live connection; cheap to clone (clones share the underlying socket(s)).
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server.
    Single(ConnectionManager),
    /// A cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// How `rediss://` connections check the server's certificate.
#[derive(Clone)]
pub(crate) struct Tls {
    /// PEM certificates the server's must chain to (`store.redis_ca_file`); `None`: the
    /// system's trust store.
    pub(crate) ca_pem: Option<Vec<u8>>,
}

impl Tls {
    fn certificates(&self) -> Option<TlsCertificates> {
        self.ca_pem.as_ref().map(|pem| TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        })
    }
}

/// rustls needs one process-wide crypto provider for the clients the redis crate builds;
/// ring is the one this build carries (rustls deprecates it for lacking post-quantum key
/// exchange, which needs aws-lc-rs and its C build). Installing twice is harmless (the
/// first one stays).
#[expect(deprecated, reason = "ring is the provider this build carries")]
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn uses_tls(url: &str) -> bool {
    url.trim_start().starts_with("rediss")
}

/// The client of one server at `url`.
pub(crate) fn single_client(url: &str, tls: &Tls) -> Result<redis::Client, StoreError> {
    let invalid = |e: RedisError| StoreError::Unavailable(format!("invalid redis url: {e}"));
    if !uses_tls(url) {
        return redis::Client::open(url).map_err(invalid);
    }
    install_crypto_provider();
    match tls.certificates() {
        Some(certs) => redis::Client::build_with_tls(url, certs)
            .map_err(|e| StoreError::Unavailable(format!("redis TLS (store.redis_ca_file): {e}"))),
        None => redis::Client::open(url).map_err(invalid),
    }
}

/// Connects once to a `rediss://` server and lets the connection go, so a certificate that
/// does not verify is reported as such at start-up rather than as the timeout of a
/// connection manager that keeps retrying. Plain URLs are not probed.
pub(crate) async fn probe_tls(
    url: &str,
    op_timeout: Duration,
    tls: &Tls,
) -> Result<(), StoreError> {
    if !uses_tls(url) {
        return Ok(());
    }
    let client = single_client(url, tls)?;
    match tokio::time::timeout(op_timeout, client.get_multiplexed_async_connection()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unavailable(&e)),
        Err(_) => Err(StoreError::Unavailable("redis: connect timed out".into())),
    }
}

/// Builds a connection manager for one server without connecting yet.
pub(crate) fn single_lazy(url: &str, op_timeout: Duration, tls: &Tls) -> Result<Conn, StoreError> {
    let client = single_client(url, tls)?;
    // Reconnect attempts stay at most a second apart, so a returning Redis is used quickly;
    // after the last attempt the next command starts a new round.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(op_timeout))
        .set_response_timeout(Some(op_timeout))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1))
        .set_number_of_retries(6);
    ConnectionManager::new_lazy_with_config(client, config)
        .map(Conn::Single)
        .map_err(|e| unavailable(&e))
}

/// Connects to a cluster (reads its slot map).
pub(crate) async fn cluster(
    nodes: &[String],
    op_timeout: Duration,
    tls: &Tls,
) -> Result<Conn, StoreError> {
    let mut builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
        .connection_timeout(op_timeout)
        .response_timeout(op_timeout);
    if nodes.iter().any(|n| uses_tls(n)) {
        install_crypto_provider();
        if let Some(certs) = tls.certificates() {
            builder = builder.certs(certs);
        }
    }
    let client = builder
        .build()
        .map_err(|e| StoreError::Unavailable(format!("invalid redis cluster url: {e}")))?;
    client
        .get_async_connection()
        .await
        .map(Conn::Cluster)
        .map_err(|e| unavailable(&e))
}

/// Whether `e` means "the store is not reachable or not serving" (so the change was not made
/// and health turns degraded), as opposed to data the scripts could not handle.
pub(crate) fn is_outage(e: &RedisError) -> bool {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_cluster_error() {
        return true;
    }
    match e.kind() {
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly
            | ServerErrorKind::NoPerm,
        )
        | ErrorKind::AuthenticationFailed
        | ErrorKind::ClusterConnectionNotFound
        | ErrorKind::InvalidClientConfig
        | ErrorKind::Client => true,
        _ => matches!(
            e.code(),
            Some("OOM" | "BUSY" | "MISCONF" | "NOREPLICAS" | "LOADING" | "NOAUTH" | "WRONGPASS")
        ),
    }
}

/// A Redis error as the port's error: outages are `Unavailable`, anything else (a type
/// mismatch, a script error on malformed data) is `Corrupt`.
pub(crate) fn map_err(e: &RedisError) -> StoreError {
    if is_outage(e) {
        unavailable(e)
    } else {
        StoreError::Corrupt(format!("redis: {e}"))
    }
}

fn unavailable(e: &RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

/// Whether `e` is a `NOSCRIPT` reply (the server's script cache is empty).
pub(crate) fn is_noscript(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) || e.code() == Some("NOSCRIPT")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_are_recognised() {
        assert_eq!(
            Target::parse("redis://127.0.0.1:6379/0"),
            Ok(Target::Single("redis://127.0.0.1:6379/0".into()))
        );
        assert_eq!(
            Target::parse("redis+cluster://:pw@a:1,b:2"),
            Ok(Target::Cluster(vec![
                "redis://:pw@a:1".into(),
                "redis://:pw@b:2".into()
            ]))
        );
        assert_eq!(
            Target::parse("redis://a:1, redis://b:2"),
            Ok(Target::Cluster(vec![
                "redis://a:1".into(),
                "redis://b:2".into()
            ]))
        );
        assert!(Target::parse("redis+cluster://").is_err());
    }
}
