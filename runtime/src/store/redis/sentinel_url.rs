//! What a `redis+sentinel://` URL names: the sentinels, the master name and the credentials
//! (never quoted in errors or debug output).

use std::fmt;

use tessera_actors::StoreError;

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
    pub(crate) fn parse(rest: &str, tls: bool) -> Result<Self, StoreError> {
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
