//! The connection: one Redis through a reconnecting [`ConnectionManager`], a Redis Cluster
//! through [`ClusterConnection`], or the primary that Redis Sentinel names ([`SentinelConn`]),
//! behind one type; and how Redis errors map to [`StoreError`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, RedisError, RedisFuture, ServerErrorKind, TlsCertificates, Value};
use tessera_actors::StoreError;

pub(crate) use super::sentinel::SentinelConn;

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

/// `redis+sentinel://[user:pass@]h1:p1[,h2:p2...]/MASTER_NAME[?sentinel_password=PW]`
/// (`rediss+sentinel://` with TLS).
///
/// The sentinels are asked which server is the primary of `MASTER_NAME` (the name of their
/// `sentinel monitor` line); the store then talks to that server as to a single Redis.
/// `user:pass` is for the primary only and is never sent to the sentinels, which usually run
/// without a password; sentinels with `requirepass` get `sentinel_password` (no user name).
/// Both are percent-encoded as in any URL. A port left out is Sentinel's 26379; the data is
/// in database 0. With TLS both the sentinels and the primary are reached over TLS and their
/// certificates checked (against `store.redis_ca_file` if set), the primary's against the
/// address the sentinels announce for it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SentinelTarget {
    /// The sentinels' host and port.
    pub(crate) sentinels: Vec<(String, u16)>,
    /// The name the sentinels monitor the primary under.
    pub(crate) master: String,
    /// The primary's ACL user, if any.
    pub(crate) username: Option<String>,
    /// The primary's password, if any.
    pub(crate) password: Option<String>,
    /// The sentinels' password, if any.
    pub(crate) sentinel_password: Option<String>,
    /// `rediss+sentinel://`.
    pub(crate) tls: bool,
}

impl fmt::Debug for SentinelTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |p: &Option<String>| p.as_ref().map(|_| "***");
        f.debug_struct("SentinelTarget")
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .field("username", &self.username)
            .field("password", &hidden(&self.password))
            .field("sentinel_password", &hidden(&self.sentinel_password))
            .field("tls", &self.tls)
            .finish()
    }
}

/// Sentinel's own port, for a sentinel named without one.
const SENTINEL_PORT: u16 = 26379;

impl SentinelTarget {
    /// Parses what follows `redis+sentinel://`. Errors never quote the credentials.
    fn parse(rest: &str, tls: bool) -> Result<Self, StoreError> {
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, query),
            None => (rest, ""),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (auth, hosts) = match authority.rsplit_once('@') {
            Some((auth, hosts)) => (Some(auth), hosts),
            None => (None, authority),
        };
        let sentinels = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(host_port)
            .collect::<Result<Vec<_>, _>>()?;
        if sentinels.is_empty() {
            return Err(bad_sentinel_url("it names no sentinel host"));
        }
        let path = path.strip_suffix('/').unwrap_or(path);
        if path.contains('/') {
            return Err(bad_sentinel_url(
                "the path must be the master name alone (the data is in database 0)",
            ));
        }
        let master = percent_decode(path)?;
        if master.is_empty() {
            return Err(bad_sentinel_url(
                "it names no master: put the name of the sentinels' `sentinel monitor` line after the hosts",
            ));
        }
        let (mut username, mut password) = (None, None);
        if let Some(auth) = auth {
            let (user, pass) = match auth.split_once(':') {
                Some((user, pass)) => (user, Some(pass)),
                None => (auth, None),
            };
            username = Some(percent_decode(user)?).filter(|u| !u.is_empty());
            password = pass
                .map(percent_decode)
                .transpose()?
                .filter(|p| !p.is_empty());
        }
        let mut sentinel_password = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "sentinel_password" => {
                    sentinel_password = Some(percent_decode(value)?).filter(|p| !p.is_empty());
                }
                _ => {
                    return Err(bad_sentinel_url(&format!(
                        "unknown parameter `{}` (only sentinel_password is known)",
                        name.chars().take(40).collect::<String>()
                    )));
                }
            }
        }
        Ok(Self {
            sentinels,
            master,
            username,
            password,
            sentinel_password,
            tls,
        })
    }
}

fn bad_sentinel_url(why: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "invalid redis sentinel url: {why} (expected redis+sentinel://[user:pass@]host:port[,host:port...]/MASTER_NAME)"
    ))
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn host_port(text: &str) -> Result<(String, u16), StoreError> {
    let (host, port) = match text.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad_sentinel_url(&format!("`{text}` lacks its closing ]")))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => {
                        return Err(bad_sentinel_url(&format!("`{text}` is not [address]:port")));
                    }
                },
            }
        }
        None => match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        },
    };
    if host.is_empty() {
        return Err(bad_sentinel_url(&format!("`{text}` has no host")));
    }
    let port = match port {
        None => SENTINEL_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad_sentinel_url(&format!("`{text}` has no valid port")))?,
    };
    Ok((host.to_owned(), port))
}

/// Decodes `%XX` escapes (a `+` stays a `+`).
fn percent_decode(text: &str) -> Result<String, StoreError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let byte = bytes
                .get(i + 1..i + 3)
                .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| bad_sentinel_url("a % is not followed by two hex digits"))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad_sentinel_url("a %-escape does not decode to UTF-8"))
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

/// How `rediss://` connections check the server's certificate.
#[derive(Clone)]
pub(crate) struct Tls {
    /// PEM certificates the server's must chain to (`store.redis_ca_file`); `None`: the
    /// system's trust store.
    pub(crate) ca_pem: Option<Vec<u8>>,
}

impl Tls {
    pub(crate) fn certificates(&self) -> Option<TlsCertificates> {
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
pub(crate) fn install_crypto_provider() {
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
