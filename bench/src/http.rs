//! Keep-alive HTTP/1.1 client connections (hyper), one request in flight per connection.
//!
//! The generator owns a bounded set of these (see [`crate::engine`]); a connection that
//! fails is re-established on its next call, and the failure is reported, never retried.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where requests go and with which credentials.
#[derive(Debug, Clone)]
pub struct Target {
    /// Server address.
    pub addr: SocketAddr,
    /// `X-API-Key` sent with every client request (none for the baseline).
    pub api_key: Option<String>,
    /// Admin key (`tsa_...`) sent as a bearer token on `/api/admin/*` requests: the system
    /// key cannot administer.
    pub admin_key: Option<String>,
    /// Per-request timeout; a request slower than this is a transport error `timeout`.
    pub timeout: Duration,
}

impl Target {
    /// A target at `addr` with `api_key` and a 10 s timeout.
    pub fn new(addr: SocketAddr, api_key: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            addr,
            api_key,
            admin_key: None,
            timeout: Duration::from_secs(10),
        })
    }

    /// A target with a system key for client routes and an admin key for admin routes.
    pub fn with_admin_key(addr: SocketAddr, api_key: String, admin_key: String) -> Arc<Self> {
        Arc::new(Self {
            addr,
            api_key: Some(api_key),
            admin_key: Some(admin_key),
            timeout: Duration::from_secs(10),
        })
    }
}

/// What one call produced.
#[derive(Debug, Clone)]
pub enum CallResult {
    /// An HTTP response (any status).
    Http {
        /// Status code.
        status: u16,
        /// The whole body.
        body: Bytes,
    },
    /// No response: connect failure, reset, timeout. The string is a bounded category.
    Transport(&'static str),
}

impl CallResult {
    /// True for a 2xx response.
    pub fn is_success(&self) -> bool {
        matches!(self, CallResult::Http { status, .. } if (200..300).contains(status))
    }

    /// A bounded label for error tables: `"409 SESSION_LIMIT_REACHED"`, `"transport timeout"`.
    pub fn label(&self) -> String {
        match self {
            CallResult::Http { status, body } => match error_code(body) {
                Some(code) => format!("{status} {code}"),
                None => status.to_string(),
            },
            CallResult::Transport(kind) => format!("transport {kind}"),
        }
    }
}

/// The `code` of a JSON error body, if it has one.
pub fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Err {
        code: String,
    }
    serde_json::from_slice::<Err>(body).ok().map(|e| e.code)
}

/// One keep-alive connection.
pub struct Conn {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
    host: HeaderValue,
    api_key: Option<HeaderValue>,
    admin: Option<HeaderValue>,
    /// Connections opened so far (1 + reconnects).
    pub connects: u64,
}

impl Conn {
    /// A connection to `target`, opened lazily on the first call.
    pub fn new(target: Arc<Target>) -> Self {
        let host = HeaderValue::from_str(&target.addr.to_string())
            .unwrap_or(HeaderValue::from_static("localhost"));
        let api_key = target
            .api_key
            .as_deref()
            .and_then(|k| HeaderValue::from_str(k).ok());
        let admin = target
            .admin_key
            .as_deref()
            .and_then(|k| HeaderValue::from_str(&format!("Bearer {k}")).ok());
        Self {
            target,
            sender: None,
            host,
            api_key,
            admin,
            connects: 0,
        }
    }

    async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, &'static str> {
        if let Some(s) = &mut self.sender
            && s.ready().await.is_ok()
        {
            // Reborrow through the option so the borrow checker sees one path.
            return self.sender.as_mut().ok_or("closed");
        }
        self.sender = None;
        let stream = TcpStream::connect(self.target.addr)
            .await
            .map_err(|_| "connect")?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| "handshake")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.connects += 1;
        Ok(self.sender.insert(sender))
    }

    /// Sends one request and reads the whole response.
    pub async fn call(&mut self, method: Method, path: &str, body: Bytes) -> CallResult {
        let timeout = self.target.timeout;
        match tokio::time::timeout(timeout, self.call_inner(method, path, body)).await {
            Ok(r) => r,
            Err(_) => {
                // The connection may still carry the late response: drop it.
                self.sender = None;
                CallResult::Transport("timeout")
            }
        }
    }

    async fn call_inner(&mut self, method: Method, path: &str, body: Bytes) -> CallResult {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone());
        if !body.is_empty() {
            builder = builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        match (&self.admin, &self.api_key) {
            (Some(a), _) if path.starts_with("/api/admin/") => {
                builder = builder.header("authorization", a.clone());
            }
            (_, Some(k)) => builder = builder.header("x-api-key", k.clone()),
            _ => {}
        }
        let Ok(req) = builder.body(Full::new(body)) else {
            return CallResult::Transport("bad request");
        };
        let sender = match self.ready().await {
            Ok(s) => s,
            Err(kind) => return CallResult::Transport(kind),
        };
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(_) => {
                self.sender = None;
                return CallResult::Transport("request");
            }
        };
        let status = resp.status().as_u16();
        match resp.into_body().collect().await {
            Ok(b) => CallResult::Http {
                status,
                body: b.to_bytes(),
            },
            Err(_) => {
                self.sender = None;
                CallResult::Transport("body")
            }
        }
    }
}
