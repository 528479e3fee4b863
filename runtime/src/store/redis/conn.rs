//! The connection: one Redis through a reconnecting [`ConnectionManager`], a Redis Cluster
//! through [`ClusterConnection`], or the primary that Redis Sentinel names ([`SentinelConn`]),
//! behind one type; and where `store.redis_url` says to connect.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, RedisError, RedisFuture, Value};
use tessera_actors::StoreError;

use super::errors::unavailable;
pub(crate) use super::errors::{is_noscript, map_err};
pub(crate) use super::sentinel::SentinelConn;
pub(crate) use super::sentinel_url::SentinelTarget;
pub(crate) use super::tls::{Tls, install_crypto_provider};

/// Where the store connects, parsed from `store.redis_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// One server (`redis://`, `rediss://`, `unix://`, `redis+unix://`).
    Single(String),
    /// A cluster, given by one or more seed nodes.
    Cluster(Vec<String>),
    /// One primary (with replicas) that Redis Sentinel watches over.
    Sentinel(SentinelTarget),
}

impl Target {
    /// Parses a URL: `redis+sentinel://...` (or `rediss+sentinel://`, see [`SentinelTarget`])
    /// names a primary watched by Redis Sentinel; `redis+cluster://[user:pass@]h1:p1[,h2:p2...]`
    /// (or `rediss+cluster://`) or a comma-separated list of `redis://` URLs names a cluster;
    /// anything else is one server.
    pub(crate) fn parse(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        for (prefix, tls) in [("redis+sentinel://", false), ("rediss+sentinel://", true)] {
            if let Some(rest) = url.strip_prefix(prefix) {
                return SentinelTarget::parse(rest, tls).map(Self::Sentinel);
            }
        }
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
    /// The primary Redis Sentinel names, followed across failovers.
    Sentinel(Arc<SentinelConn>),
}

impl Conn {
    /// Tells the connection that a command or probe got no answer in time (its future was
    /// dropped, so the connection saw no error): on Sentinel the sentinels are asked again
    /// whether the primary moved; `replace` also swaps in a fresh connection to the primary
    /// when it has not moved (a half-open socket never errors, only times out).
    pub(crate) fn suspect(&self, replace: bool) {
        if let Conn::Sentinel(c) = self {
            c.follow(replace);
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
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
            Conn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(_) => 0,
        }
    }
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

    fn sentinel(url: &str) -> SentinelTarget {
        match Target::parse(url) {
            Ok(Target::Sentinel(s)) => s,
            other => panic!("{url}: {other:?}"),
        }
    }

    fn refusal(url: &str) -> String {
        match Target::parse(url) {
            Err(StoreError::Unavailable(why)) => why,
            other => panic!("{url} was not refused: {other:?}"),
        }
    }

    #[test]
    fn sentinel_urls_name_the_sentinels_and_the_master() {
        assert_eq!(
            sentinel("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380, sentinel-3/tessera"),
            SentinelTarget {
                sentinels: vec![
                    ("10.0.0.1".into(), 26379),
                    ("10.0.0.2".into(), 26380),
                    ("sentinel-3".into(), 26379),
                ],
                master: "tessera".into(),
                username: None,
                password: None,
                sentinel_password: None,
                tls: false,
            }
        );
        let s = sentinel("rediss+sentinel://app:p%40ss%2Fw@[::1]:5000,[fe80::1]/my%20master/");
        assert_eq!(
            s.sentinels,
            vec![("::1".into(), 5000), ("fe80::1".into(), 26379)]
        );
        assert_eq!(s.master, "my master");
        assert_eq!(s.username.as_deref(), Some("app"));
        assert_eq!(s.password.as_deref(), Some("p@ss/w"));
        assert!(s.tls);
        let s = sentinel("redis+sentinel://:pw@h:1/m?sentinel_password=s%26p");
        assert_eq!((s.username, s.password.as_deref()), (None, Some("pw")));
        assert_eq!(s.sentinel_password.as_deref(), Some("s&p"));
    }

    #[test]
    fn bad_sentinel_urls_are_refused_without_quoting_secrets() {
        assert!(refusal("redis+sentinel://h1:1,h2:2").contains("names no master"));
        assert!(refusal("redis+sentinel://h1:1/").contains("names no master"));
        assert!(refusal("redis+sentinel:///tessera").contains("no sentinel host"));
        assert!(refusal("redis+sentinel://:pw@/tessera").contains("no sentinel host"));
        assert!(refusal("redis+sentinel://h:1/tessera/0").contains("master name alone"));
        assert!(refusal("redis+sentinel://h:x/tessera").contains("no valid port"));
        assert!(refusal("redis+sentinel://h:0/tessera").contains("no valid port"));
        assert!(refusal("redis+sentinel://[::1/tessera").contains("closing ]"));
        assert!(refusal("redis+sentinel://h:1/m%zz").contains("two hex digits"));
        let why = refusal("redis+sentinel://:hunter2@h:1/m?password=hunter2");
        assert!(why.contains("unknown parameter `password`"), "{why}");
        assert!(!why.contains("hunter2"), "{why}");
        assert!(!format!("{:?}", sentinel("redis+sentinel://u:hunter2@h/m")).contains("hunter2"));
    }
}
