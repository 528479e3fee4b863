//! Prometheus metrics: the process-wide recorder and the HTTP request middleware.
//!
//! The recorder is global (the `metrics` macros write to it), so it is installed once per
//! process behind a `OnceLock`; every [`crate::AppState`] shares the handle, which lets tests
//! build many servers in one process.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds) of every `_seconds` histogram: 100 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus handle, installing the global recorder on first use.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS);
            let builder = match builder {
                Ok(b) => b,
                // Only fails for an empty bucket list, which LATENCY_BUCKETS is not.
                Err(_) => PrometheusBuilder::new(),
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        "tessera_http_requests_total",
        "HTTP requests by route template, method and status."
    );
    describe_histogram!(
        "tessera_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by route template and method."
    );
    describe_counter!(
        "tessera_rate_limited_total",
        "Requests refused with 429, by rate-limit class."
    );
    describe_counter!("tessera_api_errors_total", "Error responses by error code.");
    describe_counter!(
        "tessera_auth_failures_total",
        "Requests refused for a missing or wrong API key."
    );
}

/// The matched route template of a request, carried on its response to the outer middleware.
#[derive(Clone)]
struct RouteLabel(String);

/// Route-level middleware: records which route template matched (absent for 404s).
pub(crate) async fn capture_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let mut resp = next.run(req).await;
    if let Some(route) = route {
        resp.extensions_mut().insert(RouteLabel(route));
    }
    resp
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Outermost middleware: counts every request and observes its latency, labelled by route
/// template (`unmatched` when no route matched: the label set stays bounded).
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let resp = next.run(req).await;
    let route = resp
        .extensions()
        .get::<RouteLabel>()
        .map_or_else(|| "unmatched".to_owned(), |r| r.0.clone());
    let status = resp.status().as_u16().to_string();
    metrics::counter!(
        "tessera_http_requests_total",
        "route" => route.clone(),
        "method" => method,
        "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "tessera_http_request_duration_seconds",
        "route" => route,
        "method" => method
    )
    .record(start.elapsed().as_secs_f64());
    resp
}
