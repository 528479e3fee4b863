//! The one outer layer every request passes through, written as a plain tower service.
//!
//! In order: request metrics (count and latency by route template, method and status),
//! a debug span, the declared-body-size check (413), the client address ([`ClientIp`]), the
//! request timeout (408), panic capture (500) and the rewrite of non-JSON error responses into
//! the JSON error shape. Each of these used to be its own `from_fn` middleware; as one
//! service they cost one boxed future per request instead of one per layer, which matters on
//! the heartbeat path (see `bench/README.md`).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::BoxFuture;
use ipnet::IpNet;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::auth::access::{self, Access, Caller};
use crate::auth::panel_cookie;
use crate::auth::system_key as auth;
use crate::http::client_ip::{self, ClientIp};
use crate::http::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::metrics::RequestMetrics;
use crate::http::rate_limit::RateClass;
use crate::http::redact::MaskedUri;
use crate::policy;
use crate::state::AppState;

/// Settings of the [`Gateway`], read from `[server]` once when the app is built.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// Requests whose `Content-Length` exceeds this get 413 before anything else runs.
    pub body_limit_bytes: u64,
    /// Requests running longer get 408.
    pub request_timeout: Duration,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

/// Wraps a router in a [`Gateway`].
#[derive(Clone)]
pub struct GatewayLayer {
    shared: Arc<Shared>,
}

struct Shared {
    settings: GatewaySettings,
    metrics: RequestMetrics,
}

impl GatewayLayer {
    /// A layer with `settings`, recording into the process's metrics recorder.
    pub fn new(settings: GatewaySettings) -> Self {
        Self {
            shared: Arc::new(Shared {
                settings,
                metrics: RequestMetrics::default(),
            }),
        }
    }
}

impl<S> Layer<S> for GatewayLayer {
    type Service = Gateway<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gateway {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`GatewayLayer`].
#[derive(Clone)]
pub struct Gateway<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// The matched route template of a request, carried on its response to the gateway.
#[derive(Clone)]
struct RouteLabel(MatchedPath);

/// What a route requires before its handler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GroupRules {
    /// Who may call it.
    pub access: Access,
    /// One token of this class per request, per client address.
    pub rate_limit: Option<RateClass>,
}

impl GroupRules {
    /// The rules of a route with this access: client and admin routes take the `api`
    /// limit, session routes the `sessions` one, login routes the `login` one.
    pub(crate) fn of(access: Access) -> Self {
        let rate_limit = match access {
            Access::Client | Access::Admin(_) | Access::SuperAdmin | Access::Operator => {
                Some(RateClass::Api)
            }
            Access::Sessions => Some(RateClass::Sessions),
            Access::Login => Some(RateClass::Login),
            Access::Public | Access::Envelope => None,
        };
        Self { access, rate_limit }
    }
}

/// Resolves an admin route's caller: a bearer admin key or operator token, or the panel's
/// cookie (an operator token; a change also needs its CSRF value). Without one, says
/// whether the request carried the valid system API key (which gets a 403, not a 401).
async fn admin_caller(
    state: &AppState,
    parts: &axum::http::request::Parts,
) -> Result<(Option<Caller>, bool), ApiError> {
    let headers = &parts.headers;
    if let Some(credential) = access::bearer(headers) {
        return match state.auth.bearer(credential).await? {
            Some(caller) => Ok((Some(caller), false)),
            None => Err(ErrorCode::Unauthenticated.into()),
        };
    }
    if let Some(token) = panel_cookie::token(headers) {
        return match state.auth.bearer(token).await? {
            Some(caller @ Caller::Operator(_)) => {
                panel_cookie::check_change(&parts.method, &parts.uri, headers, token)?;
                Ok((Some(caller), false))
            }
            _ => Err(ErrorCode::Unauthenticated.into()),
        };
    }
    let system_key = headers.contains_key("x-api-key")
        && auth::check_api_key(&state.api_keys, headers).await.is_ok();
    Ok((None, system_key))
}

/// State of [`route_gate`]: the app and its group's rules.
#[derive(Clone)]
pub(crate) struct RouteGate {
    /// The app.
    pub state: AppState,
    /// The group's rules.
    pub rules: GroupRules,
}

/// Route-level middleware, one per route group, in order: the group's per-address rate
/// limit, the policy's `on_request` hook, the credential check, the handler,
/// `on_login_failure` after a 401.
/// It also carries the matched route template out to the gateway's metrics. One layer
/// instead of one per concern: each `from_fn` layer costs a boxed service and future per
/// request.
pub(crate) async fn route_gate(
    State(gate): State<RouteGate>,
    req: Request,
    next: Next,
) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let ip = req
        .extensions()
        .get::<ClientIp>()
        .copied()
        .unwrap_or(ClientIp(IpAddr::from([127, 0, 0, 1])));
    let route_str = route.as_ref().map(MatchedPath::as_str);
    let state = &gate.state;
    // The body is not `Sync`: keep only the parts borrowed across the awaits below.
    let (parts, body) = req.into_parts();
    let admitted = async {
        let access = gate.rules.access;
        // The per-address limit comes first: a flood without credentials is refused before
        // it costs a plugin call or a key check.
        match gate.rules.rate_limit {
            Some(RateClass::Api) => state.rate_limits.check_api(ip.0)?,
            Some(RateClass::Login) => state.rate_limits.check_login(ip.0)?,
            Some(RateClass::Sessions) => state.rate_limits.check_sessions(ip.0)?,
            Some(RateClass::Heartbeat) | None => {}
        }
        match access {
            // Seed 003's handlers apply the limit, then the hook, in their own error shape.
            Access::Envelope => {}
            Access::Public => {
                // Public routes have no limit of their own; a hooked one takes the API's.
                if policy::runs_request_hook(&state.policy, route_str) {
                    state.rate_limits.check_api(ip.0)?;
                    policy::request_hook(&state.policy, ip, &parts.method, route_str).await?;
                }
            }
            _ => policy::request_hook(&state.policy, ip, &parts.method, route_str).await?,
        }
        let mut caller = None;
        if matches!(access, Access::Client | Access::Sessions) {
            auth::check_api_key(&state.api_keys, &parts.headers).await?;
        } else if access.is_admin() {
            let (found, system_key) = admin_caller(state, &parts).await?;
            access.admit(found.as_ref(), system_key)?;
            caller = found;
        }
        Ok::<Option<Caller>, ApiError>(caller)
    };
    let mut resp = match admitted.await {
        Ok(caller) => {
            let mut req = Request::from_parts(parts, body);
            if let Some(caller) = caller {
                req.extensions_mut().insert(caller);
            }
            // Audit records name the client address without every handler passing it.
            crate::audit::context::with_client(ip.0, next.run(req)).await
        }
        Err(e) => e.into_response(),
    };
    policy::login_failure_hook(&state.policy, ip, route_str, resp.status()).await;
    if let Some(route) = route {
        resp.extensions_mut().insert(RouteLabel(route));
    }
    resp
}

impl<S> Service<Request> for Gateway<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The ready service handles this request; a fresh clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let start = Instant::now();
        let method = req.method().clone();
        // Only when debug logs are on: otherwise the span is disabled anyway, and wrapping the
        // future in it would still cost a check on every poll.
        let span = tracing::enabled!(tracing::Level::DEBUG).then(
            || tracing::debug_span!("request", method = %req.method(), uri = %MaskedUri(req.uri())),
        );
        let too_large = declared_length(req.headers())
            .is_some_and(|len| len > shared.settings.body_limit_bytes);
        if !too_large {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
            let ip = client_ip::resolve(peer, req.headers(), &shared.settings.trusted_proxies);
            req.extensions_mut().insert(ClientIp(ip));
        }
        let uri = req.uri().clone();
        let handled = async move {
            let resp = if too_large {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "Request body is larger than {} bytes",
                        shared.settings.body_limit_bytes
                    ),
                )
                .into_response()
            } else {
                let run = AssertUnwindSafe(async move { inner.call(req).await }).catch_unwind();
                match tokio::time::timeout(shared.settings.request_timeout, run).await {
                    Ok(Ok(Ok(resp))) => resp,
                    Ok(Ok(Err(never))) => match never {},
                    Ok(Err(panic)) => panicked(&uri, panic.as_ref()),
                    Err(_) => ApiError::from(ErrorCode::RequestTimeout).into_response(),
                }
            };
            let resp = normalize_error(resp).await;
            let route = resp.extensions().get::<RouteLabel>().map(|r| r.0.as_str());
            let elapsed = start.elapsed();
            shared
                .metrics
                .record(route, &method, resp.status(), elapsed);
            tracing::debug!(
                status = resp.status().as_u16(),
                latency_us = elapsed.as_micros() as u64,
                "response"
            );
            Ok(resp)
        };
        match span {
            Some(span) => Box::pin(handled.instrument(span)),
            None => Box::pin(handled),
        }
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// 500 `INTERNAL_ERROR` for a handler that panicked, logged with the panic message.
fn panicked(uri: &axum::http::Uri, panic: &(dyn std::any::Any + Send)) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    ApiError::internal(anyhow::anyhow!(
        "handler for {} panicked: {what}",
        MaskedUri(uri)
    ))
    .into_response()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

/// Rewrites an error response made outside our handlers (axum's extractor rejections,
/// layers) into the JSON error shape, keeping its status and headers.
async fn normalize_error(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(resp.headers()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let code = ErrorCode::for_status(status);
    let message = if text.is_empty() || status.is_server_error() {
        code.default_message().to_owned()
    } else {
        text
    };
    let body = ErrorBody {
        error: &message,
        code,
        status: status.as_u16(),
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!("non-JSON 500 from a layer");
    }
    let mut out = Response::from_parts(parts, axum::body::Body::from(json));
    *out.status_mut() = status;
    out
}
