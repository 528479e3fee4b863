//! `GET /api/license/session/ws`: heartbeats over one WebSocket, and the server's pushes.
//!
//! The handshake is authenticated like every session route (`X-API-Key`, by the
//! `sessions` group's gate) and names one live session (`X-Session-Token`,
//! `X-License-Key`): the upgrade only happens after a heartbeat of that session succeeded,
//! so a bad key, token or license is a normal JSON error and no socket. Afterwards the
//! client sends `heartbeat` frames for that session and any other (each session whose
//! heartbeat succeeded on the connection is carried by it), and the server pushes
//! `session_ended` the moment a carried session ends, and `update_available`. A heartbeat
//! frame goes through the same steps as `POST /api/license/session/heartbeat`: validation,
//! the per-session rate limit, the license actor, `tessera_heartbeats_total`, the policy
//! plugins' `on_heartbeat`, and the same error codes. `docs/api.md` ("Session WebSocket")
//! is the protocol for client authors.

use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_actors::{LicenseKey, Reply, Request, TokenHash};

use super::input;
use super::license::{rfc3339, unexpected};
use crate::http::client_ip::ClientIp;
use crate::http::conn_cap::ConnectionSlot;
use crate::http::error::{ApiError, ErrorCode};
use crate::licenses::push::{Connection, Pushed};
use crate::policy::HookClient;
use crate::state::AppState;

/// The path.
pub const PATH: &str = "/api/license/session/ws";
/// Sessions one connection may carry.
pub const MAX_SESSIONS: usize = 64;
/// Largest frame a client may send.
const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Read in chunks this size: a `heartbeat` frame is 80 to 200 bytes, so one read takes it
/// whole; a `heartbeats` frame takes several reads, paid once for all its entries. The
/// buffer stays allocated per connection: tungstenite's default (128 KiB) would make an
/// idle connection cost 130 KiB.
const READ_BUFFER_BYTES: usize = 256;

/// The route, for a router assembled by hand (the server's route table registers
/// [`PATH`] with [`upgrade`] in the session routes: API key required).
pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, get(upgrade))
}

/// A frame from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    Heartbeat(Item),
    /// Several sessions' heartbeats in one frame, answered by one `heartbeat_results`
    /// frame: a client carrying many sessions pays one read and one write for all of them.
    Heartbeats {
        heartbeats: Vec<Item>,
    },
}

/// One heartbeat: a `heartbeat` frame's fields, or one entry of a `heartbeats` frame.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    session_token: String,
    #[serde(default)]
    license_key: Option<String>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    version: Option<String>,
}

/// A frame from the server.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerFrame<'a> {
    HeartbeatOk {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a Value>,
        session_token: &'a str,
        last_heartbeat: &'a str,
        expires_at: &'a str,
        heartbeat_interval_secs: u64,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        session_token: Option<&'a str>,
        error: &'a str,
        code: &'a str,
        status: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
    /// The answers to a `heartbeats` frame, in its order.
    HeartbeatResults { results: Vec<ServerFrame<'a>> },
    SessionEnded {
        session_token: &'a str,
        reason: &'a str,
        ended_at: String,
    },
    UpdateAvailable {
        session_token: &'a str,
        latest_version: String,
        download_url: String,
        release_notes: String,
    },
}

/// A session carried by a connection: 40 bytes, the rarely used part boxed.
#[derive(Debug)]
struct Carried {
    token: Box<str>,
    key: LicenseKey,
    /// When the client told its version.
    version: Option<Box<ClientVersion>>,
}

/// A client's version, for `update_available`.
#[derive(Debug)]
struct ClientVersion {
    version: String,
    /// Its license's product.
    product: String,
    /// The latest version it was told of.
    told: Option<String>,
}

/// The sessions a connection carries, at most [`MAX_SESSIONS`], searched linearly. A list,
/// not a map: a map's first insert allocates four buckets, and most connections carry one
/// session (a connected session's memory is a bench target).
#[derive(Debug, Default)]
struct Carrying(Vec<(TokenHash, Carried)>);

impl Carrying {
    fn get(&self, hash: &TokenHash) -> Option<&Carried> {
        self.0.iter().find(|(h, _)| h == hash).map(|(_, c)| c)
    }

    fn get_mut(&mut self, hash: &TokenHash) -> Option<&mut Carried> {
        self.0.iter_mut().find(|(h, _)| h == hash).map(|(_, c)| c)
    }

    fn contains_key(&self, hash: &TokenHash) -> bool {
        self.get(hash).is_some()
    }

    fn insert(&mut self, hash: TokenHash, carried: Carried) {
        if let Some(c) = self.get_mut(&hash) {
            *c = carried;
            return;
        }
        if self.0.capacity() == 0 {
            self.0.reserve_exact(1);
        }
        self.0.push((hash, carried));
    }

    fn remove(&mut self, hash: &TokenHash) -> Option<Carried> {
        let i = self.0.iter().position(|(h, _)| h == hash)?;
        Some(self.0.swap_remove(i).1)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = (&TokenHash, &Carried)> {
        self.0.iter().map(|(h, c)| (h, c))
    }
}

/// What a heartbeat answered.
struct Beat {
    last_heartbeat: String,
    expires_at: String,
    interval_secs: u64,
}

/// The steps of `POST /api/license/session/heartbeat` (`api/session.rs`), in its order:
/// validation, the per-session rate limit on the canonical token hash (before the shard, so
/// a 429 records nothing), the license actor, `tessera_heartbeats_total`, the plugins'
/// `on_heartbeat`. Keep the two in step.
async fn heartbeat(
    state: &AppState,
    ip: ClientIp,
    client: &HookClient,
    token_hash: TokenHash,
    key: &LicenseKey,
) -> Result<Beat, ApiError> {
    state.rate_limits.check_heartbeat(&token_hash)?;
    let reply = state
        .licenses
        .call(key, Request::Heartbeat { token_hash })
        .await?;
    let Reply::Heartbeat { session, timing } = reply else {
        return Err(unexpected(&reply));
    };
    metrics::counter!("tessera_heartbeats_total").increment(1);
    state
        .policy
        .after_heartbeat(key, &session, ip, client)
        .await?;
    Ok(Beat {
        last_heartbeat: rfc3339(session.last_heartbeat),
        expires_at: rfc3339(session.deadline),
        interval_secs: timing.heartbeat_interval.as_secs(),
    })
}

/// A heartbeat that passed the checks and is about to run.
struct Ready {
    id: Option<Value>,
    token: String,
    hash: TokenHash,
    key: LicenseKey,
    version: Option<String>,
}

/// How one heartbeat went, kept until its frame (alone, or in `heartbeat_results`) is sent.
enum Answer {
    Ok {
        id: Option<Value>,
        token: String,
        hash: TokenHash,
        beat: Beat,
    },
    Failed {
        id: Option<Value>,
        token: Option<String>,
        code: String,
        status: u16,
        message: String,
        retry_after_secs: Option<u64>,
    },
}

impl Answer {
    /// A refusal, with the code, status and message the HTTP heartbeat would answer
    /// (counted in `tessera_api_errors_total` as over HTTP).
    fn failed(id: Option<Value>, token: Option<String>, e: ApiError) -> Self {
        metrics::counter!("tessera_api_errors_total", "code" => e.code().as_str()).increment(1);
        let (code, status, message, retry_after_secs) = match e {
            ApiError::Code { code, message } => (
                code.as_str().to_owned(),
                code.status().as_u16(),
                message.to_string(),
                None,
            ),
            ApiError::RateLimited { retry_after_secs } => (
                ErrorCode::RateLimited.as_str().to_owned(),
                429,
                format!("Too many requests; retry in {retry_after_secs} s"),
                Some(retry_after_secs),
            ),
            ApiError::Policy {
                code,
                message,
                status,
            } => (code, status.as_u16(), message, None),
            other => {
                let code = other.code();
                tracing::warn!(code = code.as_str(), error = %other, "websocket heartbeat failed");
                (
                    code.as_str().to_owned(),
                    code.status().as_u16(),
                    code.default_message().to_owned(),
                    None,
                )
            }
        };
        Answer::Failed {
            id,
            token,
            code,
            status,
            message,
            retry_after_secs,
        }
    }

    fn frame(&self) -> ServerFrame<'_> {
        match self {
            Answer::Ok {
                id, token, beat, ..
            } => ServerFrame::HeartbeatOk {
                id: id.as_ref(),
                session_token: token,
                last_heartbeat: &beat.last_heartbeat,
                expires_at: &beat.expires_at,
                heartbeat_interval_secs: beat.interval_secs,
            },
            Answer::Failed {
                id,
                token,
                code,
                status,
                message,
                retry_after_secs,
            } => ServerFrame::Error {
                id: id.as_ref(),
                session_token: token.as_deref(),
                error: message,
                code,
                status: *status,
                retry_after_secs: *retry_after_secs,
            },
        }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A WebSocket upgrade, or why not: a plain GET without `Upgrade: websocket` is a 400
/// `VALIDATION_ERROR` in the API's error shape.
pub struct Upgrade(WebSocketUpgrade);

impl FromRequestParts<AppState> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map(Upgrade)
            .map_err(|e| {
                ApiError::validation(
                    "upgrade",
                    format!("a WebSocket handshake is required ({e})"),
                )
            })
    }
}

/// Session WebSocket: heartbeats as frames, session ends pushed (see `docs/api.md`).
#[utoipa::path(get, path = "/api/license/session/ws", tag = "session",
    params(
        ("X-Session-Token" = String, Header, description = "A live session's token"),
        ("X-License-Key" = String, Header, description = "Its license key"),
        ("X-App-Version" = Option<String>, Header, description = "The client's version, for update_available"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; frames as in docs/api.md"),
        (status = 400, description = "VALIDATION_ERROR (no WebSocket handshake, missing header)", body = crate::http::error::ErrorSchema),
        (status = 401, description = "INVALID_API_KEY", body = crate::http::error::ErrorSchema),
        (status = 404, description = "SESSION_NOT_FOUND, LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 410, description = "SESSION_EXPIRED", body = crate::http::error::ErrorSchema),
        (status = 429, description = "RATE_LIMITED", body = crate::http::error::ErrorSchema),
    ),
    security(("api_key" = [])))]
pub async fn upgrade(
    State(state): State<AppState>,
    ip: ClientIp,
    client: HookClient,
    headers: HeaderMap,
    slot: Option<Extension<ConnectionSlot>>,
    Upgrade(ws): Upgrade,
) -> Result<Response, ApiError> {
    let token = header(&headers, "x-session-token")
        .ok_or_else(|| ApiError::validation("X-Session-Token", "header is required"))?
        .to_owned();
    let key = input::license_key(
        "X-License-Key",
        header(&headers, "x-license-key")
            .ok_or_else(|| ApiError::validation("X-License-Key", "header is required"))?,
    )?;
    let version = input::optional_text("X-App-Version", header(&headers, "x-app-version"))?;
    let hash = input::session_token("X-Session-Token", &token)?;
    let beat = heartbeat(&state, ip, &client, hash, &key).await?;
    // One box for all the connection needs, unpacked once the socket is there (an idle
    // connection's memory is a bench target, see bench/README.md).
    let hello = Box::new(Handshake {
        first: hash,
        token,
        key,
        version,
        beat,
    });
    let setup = Box::new((state, ip, client, hello, slot.map(|Extension(s)| s)));
    Ok(ws
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        // Frames go out as they are made (no 128 KiB write buffer per connection).
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            let (state, ip, client, hello, slot) = *setup;
            let conn = Box::new(Conn {
                state,
                ip,
                client,
                socket,
                carried: Carrying::default(),
                _slot: slot,
            });
            // The connection runs on a task of its own and Axum's upgrade task ends here:
            // that task's future is as large as its largest step (the handshake's), and it
            // would stay allocated at that size for the connection's whole life.
            tokio::spawn(conn.run(hello));
            std::future::ready(())
        }))
}

/// What the handshake's heartbeat established, handed to the connection once.
struct Handshake {
    first: TokenHash,
    token: String,
    key: LicenseKey,
    version: Option<String>,
    beat: Beat,
}

struct Conn {
    state: AppState,
    ip: ClientIp,
    client: HookClient,
    socket: WebSocket,
    carried: Carrying,
    /// The TCP connection's place under `server.max_connections_per_ip`, held until the
    /// socket closes (absent when the app is called without the server, in tests).
    _slot: Option<ConnectionSlot>,
}

/// What woke an idle connection.
enum Event {
    /// A frame from the client (`None`: the socket closed).
    Frame(Option<Result<Message, axum::Error>>),
    /// A push (`None`: the server is closing).
    Pushed(Option<Pushed>),
}

/// Why a connection closes.
enum Close {
    /// The client closed or the socket broke.
    Gone,
    /// No session left to carry.
    NoSession,
    /// Server shutdown.
    Shutdown,
}

impl Conn {
    /// The connection's task. Every step is boxed, so the future, which is as large as its
    /// largest state, is about the idle state: what an idle connection costs.
    async fn run(mut self: Box<Self>, hello: Box<Handshake>) {
        let mut conn = self.state.session_push.connect();
        let mut why = Box::pin(self.greet(&mut conn, hello)).await;
        while why.is_none() {
            // Both sources are polled by one future that holds two references: waiting on
            // them through `select!` kept each source's future in this task, about 400 bytes
            // per idle connection. Pushes (a session's end, the server closing) come first.
            let event = std::future::poll_fn(|cx| {
                if let Poll::Ready(pushed) = conn.poll_next(cx) {
                    return Poll::Ready(Event::Pushed(pushed));
                }
                Pin::new(&mut self.socket).poll_next(cx).map(Event::Frame)
            })
            .await;
            why = match event {
                // Boxed, like every step below: an idle connection's future stays small.
                Event::Frame(Some(Ok(Message::Text(text)))) => {
                    Box::pin(self.on_text(&mut conn, text.as_str())).await
                }
                Event::Frame(Some(Ok(Message::Binary(_)))) => {
                    let e = ApiError::new(ErrorCode::InvalidJson, "frames are JSON text");
                    Box::pin(self.send_error(None, None, e)).await
                }
                Event::Frame(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => None,
                Event::Frame(Some(Ok(Message::Close(_)) | Err(_)) | None) => Some(Close::Gone),
                Event::Pushed(Some(p)) => Box::pin(self.on_push(p)).await,
                Event::Pushed(None) => Some(Close::Shutdown),
            };
            if why.is_none() && self.carried.is_empty() {
                why = Some(Close::NoSession);
            }
        }
        let frame = match why {
            Some(Close::NoSession) => Some((1000, "no live session on this connection")),
            Some(Close::Shutdown) => Some((1001, "server shutting down")),
            _ => None,
        };
        if let Some((code, reason)) = frame {
            let close = Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            }));
            let sent = tokio::time::timeout(Duration::from_secs(1), self.socket.send(close));
            let _ = Box::pin(sent).await;
        }
        // Dropping `conn` removes the subscriptions and lets a shutdown proceed.
        drop(conn);
    }

    /// Carries the handshake's session and answers its heartbeat.
    async fn greet(&mut self, push: &mut Connection, hello: Box<Handshake>) -> Option<Close> {
        let Handshake {
            first,
            token,
            key,
            version,
            beat,
        } = *hello;
        self.carry(push, first, token.clone(), key, version).await;
        let ok = ServerFrame::HeartbeatOk {
            id: None,
            session_token: &token,
            last_heartbeat: &beat.last_heartbeat,
            expires_at: &beat.expires_at,
            heartbeat_interval_secs: beat.interval_secs,
        };
        if self.send(&ok).await && self.tell_update(&first).await {
            None
        } else {
            Some(Close::Gone)
        }
    }

    /// Starts carrying a session whose heartbeat succeeded.
    async fn carry(
        &mut self,
        push: &mut Connection,
        hash: TokenHash,
        token: String,
        key: LicenseKey,
        version: Option<String>,
    ) {
        let version = match version {
            Some(version) => match self.state.licenses.call(&key, Request::Info).await {
                Ok(Reply::Info { license, .. }) => Some(Box::new(ClientVersion {
                    version,
                    product: license.record.product,
                    told: None,
                })),
                _ => None,
            },
            None => None,
        };
        push.subscribe(hash);
        self.carried.insert(
            hash,
            Carried {
                token: token.into(),
                key,
                version,
            },
        );
    }

    /// Sends `update_available` for `session` if its client is behind and was not told yet.
    async fn tell_update(&mut self, session: &TokenHash) -> bool {
        let Some(c) = self.carried.get_mut(session) else {
            return true;
        };
        let token = c.token.clone();
        let Some(client) = c.version.as_deref_mut() else {
            return true;
        };
        let Some(release) = self
            .state
            .session_push
            .release(&client.product)
            .or_else(|| {
                self.state
                    .session_push
                    .release(&self.state.config.licenses.default_product)
            })
        else {
            return true;
        };
        if !input::is_newer(&release.latest_version, &client.version)
            || client.told.as_deref() == Some(release.latest_version.as_str())
        {
            return true;
        }
        client.told = Some(release.latest_version.clone());
        metrics::counter!("tessera_ws_pushes_total", "type" => "update_available").increment(1);
        self.send(&ServerFrame::UpdateAvailable {
            session_token: &token,
            latest_version: release.latest_version,
            download_url: release.download_url,
            release_notes: release.release_notes,
        })
        .await
    }

    async fn on_push(&mut self, pushed: Pushed) -> Option<Close> {
        match pushed {
            Pushed::SessionEnded(end) => {
                let c = self.carried.remove(&end.token_hash)?;
                metrics::counter!("tessera_ws_pushes_total", "type" => "session_ended")
                    .increment(1);
                let ok = self
                    .send(&ServerFrame::SessionEnded {
                        session_token: &c.token,
                        reason: end.reason.as_str(),
                        ended_at: rfc3339(end.ended_at),
                    })
                    .await;
                (!ok).then_some(Close::Gone)
            }
            Pushed::ReleasePublished(product) => {
                let sessions: Vec<TokenHash> = self
                    .carried
                    .iter()
                    .filter(|(_, c)| c.version.as_ref().is_some_and(|v| *v.product == *product))
                    .map(|(h, _)| *h)
                    .collect();
                for s in sessions {
                    if !self.tell_update(&s).await {
                        return Some(Close::Gone);
                    }
                }
                None
            }
        }
    }

    async fn on_text(&mut self, push: &mut Connection, text: &str) -> Option<Close> {
        metrics::counter!("tessera_ws_frames_total", "type" => "text").increment(1);
        let frame: ClientFrame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                let err = ApiError::new(ErrorCode::InvalidJson, format!("invalid frame: {e}"));
                return self.send_error(None, None, err).await;
            }
        };
        let (items, batch) = match frame {
            ClientFrame::Heartbeat(item) => (vec![item], false),
            ClientFrame::Heartbeats { heartbeats } => {
                if heartbeats.is_empty() || heartbeats.len() > MAX_SESSIONS {
                    let e = ApiError::validation(
                        "heartbeats",
                        format!("must hold 1 to {MAX_SESSIONS} heartbeats"),
                    );
                    return self.send_error(None, None, e).await;
                }
                (heartbeats, true)
            }
        };
        // Boxed: the connection's future stays small between frames.
        let answers = Box::pin(self.beat_all(push, items)).await;
        let sent = if batch {
            let results = answers.iter().map(Answer::frame).collect();
            self.send(&ServerFrame::HeartbeatResults { results }).await
        } else {
            match answers.first() {
                Some(a) => self.send(&a.frame()).await,
                None => true,
            }
        };
        if !sent {
            return Some(Close::Gone);
        }
        for a in &answers {
            if let Answer::Ok { hash, .. } = a
                && !Box::pin(self.tell_update(hash)).await
            {
                return Some(Close::Gone);
            }
        }
        None
    }

    /// Runs the heartbeats of one frame: checked one by one, sent to their shards all at
    /// once, then applied to what the connection carries in the frame's order.
    async fn beat_all(&mut self, push: &mut Connection, items: Vec<Item>) -> Vec<Answer> {
        let mut joining: Vec<TokenHash> = Vec::new();
        let prepared: Vec<Result<Ready, Box<Answer>>> = items
            .into_iter()
            .map(|item| self.prepare(item, &mut joining))
            .collect();
        // Sessions new to the connection hear of their end from now on: one that ends while
        // the frame's heartbeats run is pushed, not missed. Unsubscribed below if refused.
        for r in prepared.iter().flatten() {
            if !self.carried.contains_key(&r.hash) {
                push.subscribe(r.hash);
            }
        }
        let (state, ip, client) = (&self.state, self.ip, &self.client);
        let beats = futures::future::join_all(prepared.iter().map(|p| async move {
            match p {
                Ok(r) => Some(heartbeat(state, ip, client, r.hash, &r.key).await),
                Err(_) => None,
            }
        }))
        .await;
        let mut answers = Vec::with_capacity(beats.len());
        for (p, beat) in prepared.into_iter().zip(beats) {
            let r = match p {
                Ok(r) => r,
                Err(answer) => {
                    answers.push(*answer);
                    continue;
                }
            };
            match beat {
                Some(Ok(beat)) => {
                    if !self.carried.contains_key(&r.hash) {
                        self.carry(push, r.hash, r.token.clone(), r.key, r.version)
                            .await;
                    } else if let (Some(v), Some(c)) = (r.version, self.carried.get_mut(&r.hash))
                        && let Some(client) = c.version.as_mut()
                    {
                        client.version = v;
                    }
                    answers.push(Answer::Ok {
                        id: r.id,
                        token: r.token,
                        hash: r.hash,
                        beat,
                    });
                }
                Some(Err(e)) => {
                    let gone = matches!(
                        e.code(),
                        ErrorCode::SessionExpired | ErrorCode::SessionNotFound
                    );
                    if gone {
                        self.carried.remove(&r.hash);
                    }
                    if gone || !self.carried.contains_key(&r.hash) {
                        push.unsubscribe(&r.hash);
                    }
                    answers.push(Answer::failed(r.id, Some(r.token), e));
                }
                None => {
                    if !self.carried.contains_key(&r.hash) {
                        push.unsubscribe(&r.hash);
                    }
                    let e = ApiError::new(ErrorCode::InternalError, "heartbeat not run");
                    answers.push(Answer::failed(r.id, Some(r.token), e));
                }
            }
        }
        answers
    }

    /// Checks one heartbeat before it runs: a UUID token, a license key (given, or the
    /// carried session's), and room on the connection for a session it does not carry yet
    /// (`joining` counts those of this frame).
    fn prepare(&self, item: Item, joining: &mut Vec<TokenHash>) -> Result<Ready, Box<Answer>> {
        let Item {
            session_token,
            license_key,
            id,
            version,
        } = item;
        let token = session_token.trim().to_owned();
        // The per-address limit an HTTP heartbeat takes at the gate, per entry: a frame of
        // made-up tokens costs what as many HTTP requests would.
        if let Err(e) = self.state.rate_limits.check_sessions(self.ip.0) {
            return Err(Box::new(Answer::failed(id, Some(token), e)));
        }
        let hash = match input::session_token("session_token", &token) {
            Ok(h) => h,
            Err(e) => return Err(Box::new(Answer::failed(id, Some(token), e))),
        };
        let carried = self.carried.get(&hash);
        let key = match (license_key, carried) {
            (Some(k), _) => input::license_key("license_key", &k),
            (None, Some(c)) => Ok(c.key.clone()),
            (None, None) => Err(ApiError::validation(
                "license_key",
                "is required for a session this connection does not carry yet",
            )),
        };
        let key = match key {
            Ok(k) => k,
            Err(e) => return Err(Box::new(Answer::failed(id, Some(token), e))),
        };
        if carried.is_none() && !joining.contains(&hash) {
            if self.carried.len() + joining.len() >= MAX_SESSIONS {
                let e = ApiError::validation(
                    "session_token",
                    format!("a connection carries at most {MAX_SESSIONS} sessions"),
                );
                return Err(Box::new(Answer::failed(id, Some(token), e)));
            }
            joining.push(hash);
        }
        Ok(Ready {
            id,
            token,
            hash,
            key,
            version,
        })
    }

    async fn send_error(
        &mut self,
        id: Option<Value>,
        session_token: Option<String>,
        e: ApiError,
    ) -> Option<Close> {
        let answer = Answer::failed(id, session_token, e);
        (!self.send(&answer.frame()).await).then_some(Close::Gone)
    }

    /// Sends a frame; `false` when the socket is gone.
    async fn send(&mut self, frame: &ServerFrame<'_>) -> bool {
        let Ok(text) = serde_json::to_string(frame) else {
            return false;
        };
        self.socket.send(Message::Text(text.into())).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The size of what `f` returns, without calling it.
    fn returned_size<A, B, R>(_: &impl FnOnce(A, B) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    #[test]
    fn an_idle_connection_stays_small() {
        let run = returned_size(&Conn::run);
        eprintln!(
            "run future {run} B, Conn {} B, WebSocket {} B, Connection {} B",
            std::mem::size_of::<Conn>(),
            std::mem::size_of::<WebSocket>(),
            std::mem::size_of::<Connection>(),
        );
        assert!(run <= 192, "the connection's future is {run} B");
    }

    fn parse(text: &str) -> Result<ClientFrame, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn frames_parse_as_documented_and_unknown_fields_are_refused() {
        let one = parse(r#"{"type":"heartbeat","session_token":"t","id":7}"#).unwrap();
        assert!(
            matches!(one, ClientFrame::Heartbeat(Item { ref session_token, .. }) if session_token == "t")
        );
        let many = parse(
            r#"{"type":"heartbeats","heartbeats":[{"session_token":"a"},{"session_token":"b","license_key":"K","version":"1.0"}]}"#,
        )
        .unwrap();
        let ClientFrame::Heartbeats { heartbeats } = many else {
            unreachable!("a heartbeats frame")
        };
        assert_eq!(heartbeats.len(), 2);
        assert_eq!(heartbeats[1].license_key.as_deref(), Some("K"));
        for bad in [
            r#"{"type":"heartbeat","session_token":"t","bogus":1}"#,
            r#"{"type":"heartbeats","heartbeats":[{"session_token":"a","type":"heartbeat"}]}"#,
            r#"{"type":"heartbeats","heartbeats":[{"session_token":"a"}],"id":1}"#,
            r#"{"type":"heartbeat"}"#,
            r#"{"type":"nope","session_token":"t"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} must be refused");
        }
    }
}
