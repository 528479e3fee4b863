//! The session WebSocket (`GET /api/license/session/ws`, `docs/api.md`): heartbeats as
//! frames, session ends and releases pushed by the server.
#![forbid(unsafe_code)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::{API_KEY_HEADER, LICENSE_KEY_HEADER};
use crate::error::Error;
use crate::session::{Ack, EndReason, Target};

/// The route.
pub(crate) const PATH: &str = "/api/license/session/ws";

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An open session WebSocket.
pub(crate) struct Ws {
    stream: Stream,
    next_id: u64,
}

/// How a connection attempt went.
pub(crate) enum Connect {
    /// Open (the handshake was a heartbeat of the session too).
    Open(Box<Ws>),
    /// The server has no session WebSocket (404): use HTTP for good.
    Unsupported,
    /// The server refused the session itself (the same error an HTTP heartbeat would get).
    Refused(Error),
    /// Not now (network, timeout, server error): try again later.
    Failed(String),
}

/// What the server said.
pub(crate) enum Incoming {
    /// A heartbeat's answer.
    Beat { id: u64, result: Result<Ack, Error> },
    /// The session ended on the server.
    Ended(EndReason),
    /// A newer release exists.
    Update {
        latest_version: String,
        download_url: String,
        release_notes: String,
    },
    /// The connection is gone.
    Closed(String),
}

#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    heartbeat_interval_secs: Option<u64>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    retry_after_secs: Option<u64>,
    #[serde(default)]
    latest_version: Option<String>,
    #[serde(default)]
    download_url: Option<String>,
    #[serde(default)]
    release_notes: Option<String>,
}

fn ws_url(base: &str) -> Option<String> {
    if let Some(rest) = base.strip_prefix("https://") {
        Some(format!("wss://{rest}{PATH}"))
    } else {
        base.strip_prefix("http://")
            .map(|rest| format!("ws://{rest}{PATH}"))
    }
}

fn header(v: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(v.trim()).map_err(|e| e.to_string())
}

/// Opens the session's WebSocket within `timeout`.
pub(crate) async fn connect(target: &Target, timeout: Duration) -> Connect {
    let Some(url) = ws_url(&target.client.base) else {
        return Connect::Unsupported;
    };
    let mut req = match url.into_client_request() {
        Ok(r) => r,
        Err(e) => return Connect::Failed(e.to_string()),
    };
    let headers = req.headers_mut();
    for (name, value) in [
        (API_KEY_HEADER, target.client.api_key.as_str()),
        ("X-Session-Token", target.token.as_str()),
        (LICENSE_KEY_HEADER, target.license_key.as_str()),
    ]
    .into_iter()
    .chain(target.version.as_deref().map(|v| ("X-App-Version", v)))
    {
        match header(value) {
            Ok(v) => {
                headers.insert(name, v);
            }
            Err(e) => return Connect::Failed(e),
        }
    }
    let attempt = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(req)).await;
    let mut ws = match attempt {
        Err(_) => return Connect::Failed("WebSocket handshake timed out".into()),
        Ok(Err(tungstenite::Error::Http(resp))) => {
            let status = resp.status().as_u16();
            if status == 404 || status == 405 {
                return Connect::Unsupported;
            }
            let body = resp.body().as_deref().unwrap_or_default();
            return match refusal(status, body) {
                Some(e) if !e.is_retryable() => Connect::Refused(e),
                Some(e) => Connect::Failed(e.to_string()),
                None => Connect::Failed(format!("WebSocket handshake answered HTTP {status}")),
            };
        }
        Ok(Err(e)) => return Connect::Failed(e.to_string()),
        Ok(Ok((stream, _))) => Ws { stream, next_id: 1 },
    };
    // The handshake's heartbeat_ok comes first.
    match tokio::time::timeout(timeout, ws.next()).await {
        Ok(Incoming::Beat { result: Ok(_), .. }) => Connect::Open(Box::new(ws)),
        Ok(Incoming::Beat { result: Err(e), .. }) => Connect::Refused(e),
        Ok(Incoming::Closed(why)) => Connect::Failed(why),
        Ok(_) => Connect::Failed("unexpected first frame".into()),
        Err(_) => Connect::Failed("no first frame".into()),
    }
}

fn refusal(status: u16, body: &[u8]) -> Option<Error> {
    #[derive(Deserialize)]
    struct Body {
        code: String,
        #[serde(default)]
        error: String,
    }
    let b: Body = serde_json::from_slice(body).ok()?;
    Some(Error::Api {
        status,
        code: b.code,
        message: b.error,
        retry_after: None,
    })
}

impl Ws {
    /// Sends a heartbeat frame; returns its id.
    pub(crate) async fn send_heartbeat(&mut self, target: &Target) -> Result<u64, String> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = serde_json::json!({
            "type": "heartbeat",
            "session_token": target.token,
            "license_key": target.license_key,
            "id": id,
        });
        self.stream
            .send(Message::text(frame.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        Ok(id)
    }

    /// The next meaningful frame.
    pub(crate) async fn next(&mut self) -> Incoming {
        loop {
            let msg = match self.stream.next().await {
                None => return Incoming::Closed("connection closed".into()),
                Some(Err(e)) => return Incoming::Closed(e.to_string()),
                Some(Ok(m)) => m,
            };
            let text = match msg {
                Message::Text(t) => t,
                Message::Close(c) => {
                    return Incoming::Closed(c.map_or_else(
                        || "closed by the server".to_owned(),
                        |c| format!("closed by the server: {} {}", u16::from(c.code), c.reason),
                    ));
                }
                // Pings are answered by tungstenite; nothing else is expected.
                _ => continue,
            };
            let Ok(f) = serde_json::from_str::<Frame>(text.as_str()) else {
                tracing::debug!("ignoring an unreadable frame");
                continue;
            };
            let id =
                f.id.as_ref()
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0);
            match f.kind.as_str() {
                "heartbeat_ok" => {
                    return Incoming::Beat {
                        id,
                        result: Ok(Ack {
                            interval: f.heartbeat_interval_secs.map(Duration::from_secs),
                            lifetime: None,
                        }),
                    };
                }
                "error" if f.id.is_some() => {
                    return Incoming::Beat {
                        id,
                        result: Err(Error::Api {
                            status: f.status.unwrap_or(0),
                            code: f.code.unwrap_or_default(),
                            message: f.error.unwrap_or_default(),
                            retry_after: f.retry_after_secs.map(Duration::from_secs),
                        }),
                    };
                }
                "session_ended" => {
                    return Incoming::Ended(EndReason::from_wire(
                        f.reason.as_deref().unwrap_or("unknown"),
                    ));
                }
                "update_available" => {
                    return Incoming::Update {
                        latest_version: f.latest_version.unwrap_or_default(),
                        download_url: f.download_url.unwrap_or_default(),
                        release_notes: f.release_notes.unwrap_or_default(),
                    };
                }
                other => tracing::debug!(frame = other, "ignoring a frame"),
            }
        }
    }
}
