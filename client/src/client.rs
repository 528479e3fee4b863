//! [`Client`]: the seed 000 License and Session API over HTTP, with retries.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::retry::{Backoff, RetryPolicy, parse_retry_after};
use crate::session::{Session, SessionOptions, Target};

/// The header every call carries so that a balancer can route one license to one node
/// (design §8).
pub const LICENSE_KEY_HEADER: &str = "X-License-Key";
/// The header carrying the system API key.
pub const API_KEY_HEADER: &str = "X-API-Key";

/// A connection to one Tessera server. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.base)
            .finish_non_exhaustive()
    }
}

pub(crate) struct ClientInner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) api_key: String,
    pub(crate) retry: RetryPolicy,
    pub(crate) request_timeout: Duration,
    pub(crate) websocket: bool,
}

/// Settings of a [`Client`] beyond the URL and the API key.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    api_key: String,
    retry: RetryPolicy,
    request_timeout: Duration,
    websocket: bool,
}

impl ClientBuilder {
    /// How calls are retried (default: 4 attempts, 200 ms doubling up to 10 s).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The longest a single request may take (default 10 s; heartbeats use at most the
    /// heartbeat interval).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Whether seed-000 sessions heartbeat over the server's session WebSocket when it
    /// offers one (default true). Without it, and whenever the WebSocket is down, they
    /// heartbeat over HTTP.
    pub fn websocket(mut self, enabled: bool) -> Self {
        self.websocket = enabled;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client, Error> {
        let base = self.url.trim().trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| Error::InvalidArgument(format!("url `{base}`: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::InvalidArgument(format!(
                "url `{base}`: the scheme must be http or https"
            )));
        }
        let api_key = self.api_key.trim().to_owned();
        HeaderValue::from_str(&api_key)
            .map_err(|_| Error::InvalidArgument("the API key cannot be sent as a header".into()))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("tessera-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.request_timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| Error::InvalidArgument(format!("HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(ClientInner {
                http,
                base,
                api_key,
                retry: self.retry,
                request_timeout: self.request_timeout,
                websocket: self.websocket,
            }),
        })
    }
}

/// Whether a failed call may be repeated without changing its effect twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotence {
    /// Repeat after any retryable error (activate, verify, heartbeat, end).
    Idempotent,
    /// Repeat only when the server certainly did nothing: the connection was refused, or
    /// it answered 429 or 503 (session start).
    Once,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

impl ClientInner {
    /// A copy with its own connection pool and short timeouts, for ending sessions from a
    /// runtime other than the one the pool was created on.
    pub(crate) fn fresh(&self, timeout: Duration) -> Option<ClientInner> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("tessera-client/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .build()
            .ok()?;
        Some(ClientInner {
            http,
            base: self.base.clone(),
            api_key: self.api_key.clone(),
            retry: RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_millis(500),
            },
            request_timeout: timeout,
            websocket: false,
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One POST of `body` to `path`, decoded as `T` or as the server's error.
    pub(crate) async fn post_once<T: DeserializeOwned>(
        &self,
        path: &str,
        license_key: Option<&str>,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<T, (Error, bool)> {
        let mut req = self
            .http
            .post(self.url(path))
            .timeout(timeout)
            .header(API_KEY_HEADER, &self.api_key)
            .header(CONTENT_TYPE, "application/json")
            .json(body);
        if let Some(k) = license_key.and_then(|k| HeaderValue::from_str(k.trim()).ok()) {
            req = req.header(LICENSE_KEY_HEADER, k);
        }
        let resp = req.send().await.map_err(|e| {
            let refused = e.is_connect();
            (Error::Network(network_message(&e)), refused)
        })?;
        decode(resp).await.map_err(|e| (e, false))
    }

    /// POST with the client's retry policy.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        license_key: Option<&str>,
        body: &impl Serialize,
        idempotence: Idempotence,
    ) -> Result<T, Error> {
        let mut backoff = Backoff::new(self.retry);
        loop {
            match self
                .post_once(path, license_key, body, self.request_timeout)
                .await
            {
                Ok(v) => return Ok(v),
                Err((e, refused)) => {
                    let may_repeat = match idempotence {
                        Idempotence::Idempotent => e.is_retryable(),
                        Idempotence::Once => {
                            refused
                                || matches!(
                                    &e,
                                    Error::Api {
                                        status: 429 | 503,
                                        ..
                                    }
                                )
                        }
                    };
                    if !may_repeat || backoff.retries() + 1 >= self.retry.max_attempts {
                        return Err(e);
                    }
                    let delay = backoff.next_delay(e.retry_after());
                    tracing::debug!(path, error = %e, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

fn network_message(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Decodes a reply: `T` on 2xx, otherwise the server's `{"error","code","status"}`.
pub(crate) async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, Error> {
    let status = resp.status();
    let retry_after = parse_retry_after(resp.headers().get(RETRY_AFTER));
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| Error::Network(network_message(&e)))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes)
            .map_err(|e| Error::Protocol(format!("reply of HTTP {status}: {e}")));
    }
    let body: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
    let (code, message) = match body {
        Some(ErrorBody {
            code: Some(code),
            error,
        }) => (code, error.unwrap_or_default()),
        _ => (
            format!("HTTP_{}", status.as_u16()),
            status
                .canonical_reason()
                .unwrap_or("unexpected status")
                .to_owned(),
        ),
    };
    Err(Error::Api {
        status: status.as_u16(),
        code,
        message,
        retry_after: if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            retry_after
        } else {
            None
        },
    })
}

/// `POST /api/license/activate`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ActivateRequest {
    /// The license key (`XXXX-XXXX-XXXX-XXXX`).
    pub license_key: String,
    /// The device identifier; [`crate::Fingerprint::hardware_hash`] computes one.
    pub hardware_hash: String,
    /// A name for the machine, shown to operators.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_name: Option<String>,
    /// The application's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
}

impl ActivateRequest {
    /// An activation of `license_key` on the device `hardware_hash`.
    pub fn new(license_key: impl Into<String>, hardware_hash: impl Into<String>) -> Self {
        Self {
            license_key: license_key.into(),
            hardware_hash: hardware_hash.into(),
            ..Self::default()
        }
    }
}

/// One device's activation.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct ActivationRecord {
    /// Activation id.
    #[serde(default)]
    pub id: u64,
    /// The device identifier.
    #[serde(default)]
    pub hardware_hash: String,
    /// The machine name.
    #[serde(default)]
    pub machine_name: String,
    /// When the device was activated (RFC 3339).
    #[serde(default)]
    pub activated_at: String,
    /// False once deactivated.
    #[serde(default)]
    pub is_active: bool,
}

/// The reply to [`Client::activate`].
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct Activation {
    /// The server's message.
    #[serde(default)]
    pub message: String,
    /// The activation.
    pub activation: ActivationRecord,
    /// True when this device was already active (nothing was counted).
    #[serde(default)]
    pub already_active: bool,
    /// Devices active now.
    #[serde(default)]
    pub active_devices: u32,
    /// The license's device limit.
    #[serde(default)]
    pub max_devices: u32,
}

/// `POST /api/license/verify`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyRequest {
    /// The license key.
    pub license_key: String,
    /// When given, the license must be activated on this device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware_hash: Option<String>,
    /// The application's version, for update information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
}

impl VerifyRequest {
    /// A check of `license_key` alone.
    pub fn new(license_key: impl Into<String>) -> Self {
        Self {
            license_key: license_key.into(),
            ..Self::default()
        }
    }
}

/// The license part of a [`Verification`].
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct VerifiedLicense {
    /// The license key.
    #[serde(default)]
    pub key: String,
    /// Last valid day (`YYYY-MM-DD`), or `None` when perpetual.
    #[serde(default)]
    pub valid_until: Option<String>,
    /// Concurrent sessions allowed.
    #[serde(default)]
    pub max_users: u32,
    /// Devices allowed.
    #[serde(default)]
    pub max_devices: u32,
    /// Status (`active` in a successful verification).
    #[serde(default)]
    pub status: String,
    /// The license's plan.
    #[serde(default)]
    pub plan: String,
}

/// The reply to [`Client::verify`]. A refused license is an [`Error::Api`] instead.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct Verification {
    /// True.
    #[serde(default)]
    pub valid: bool,
    /// The license.
    pub license: VerifiedLicense,
    /// Whether a version newer than `app_version` exists.
    #[serde(default)]
    pub update_available: bool,
    /// The latest version of the license's product.
    #[serde(default)]
    pub latest_version: String,
}

/// `POST /api/license/session/start`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StartRequest {
    /// The license key.
    pub license_key: String,
    /// The device identifier; the device must be activated.
    pub hardware_hash: String,
    /// A machine id, shown to operators.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// The application's version (an [`crate::Event::UpdateAvailable`] follows when a
    /// newer one exists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl StartRequest {
    /// A session of `license_key` on the activated device `hardware_hash`.
    pub fn new(license_key: impl Into<String>, hardware_hash: impl Into<String>) -> Self {
        Self {
            license_key: license_key.into(),
            hardware_hash: hardware_hash.into(),
            ..Self::default()
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct StartReply {
    pub(crate) session_token: String,
    pub(crate) heartbeat_interval_secs: u64,
    pub(crate) heartbeat_timeout_secs: u64,
    #[serde(default)]
    pub(crate) update_available: bool,
    #[serde(default)]
    pub(crate) latest_version: String,
    #[serde(default)]
    pub(crate) download_url: String,
    #[serde(default)]
    pub(crate) release_notes: String,
}

impl Client {
    /// A client of the server at `url` (`http://host:port`, no path) with the system API
    /// key. Only checks its arguments; nothing is sent.
    pub fn new(url: &str, api_key: &str) -> Result<Self, Error> {
        Self::builder(url, api_key).build()
    }

    /// A [`ClientBuilder`] to change retries, timeouts or the WebSocket use.
    pub fn builder(url: &str, api_key: &str) -> ClientBuilder {
        ClientBuilder {
            url: url.to_owned(),
            api_key: api_key.to_owned(),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(10),
            websocket: true,
        }
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        &self.inner.base
    }

    /// Activates the license on a device. Activating an already active device is a success
    /// with `already_active`.
    pub async fn activate(&self, req: &ActivateRequest) -> Result<Activation, Error> {
        self.inner
            .post(
                "/api/license/activate",
                Some(&req.license_key),
                req,
                Idempotence::Idempotent,
            )
            .await
    }

    /// Checks that the license is usable (and, with `hardware_hash`, activated there).
    pub async fn verify(&self, req: &VerifyRequest) -> Result<Verification, Error> {
        self.inner
            .post(
                "/api/license/verify",
                Some(&req.license_key),
                req,
                Idempotence::Idempotent,
            )
            .await
    }

    /// Starts a session that heartbeats by itself until it is ended or dropped.
    pub async fn start_session(&self, req: &StartRequest) -> Result<Session, Error> {
        self.start_session_with(req, SessionOptions::default())
            .await
    }

    /// [`Client::start_session`] with options (an event callback).
    pub async fn start_session_with(
        &self,
        req: &StartRequest,
        options: SessionOptions,
    ) -> Result<Session, Error> {
        let reply: StartReply = self
            .inner
            .post(
                "/api/license/session/start",
                Some(&req.license_key),
                req,
                Idempotence::Once,
            )
            .await?;
        let mut target = Target::seed000(
            Arc::clone(&self.inner),
            reply.session_token.clone(),
            req.license_key.trim().to_owned(),
        );
        target.version = req.version.clone();
        let update = reply
            .update_available
            .then(|| crate::Event::UpdateAvailable {
                latest_version: reply.latest_version.clone(),
                download_url: reply.download_url.clone(),
                release_notes: reply.release_notes.clone(),
            });
        Session::spawn(
            target,
            Duration::from_secs(reply.heartbeat_interval_secs),
            Duration::from_secs(reply.heartbeat_timeout_secs),
            options,
            update,
        )
        .await
    }
}
