//! Prometheus metrics: the process-wide recorder and the HTTP request series.
//!
//! The recorder is global (the `metrics` macros write to it), so it is installed once per
//! process behind a `OnceLock`; every [`crate::AppState`] shares the handle, which lets tests
//! build many servers in one process.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use hashbrown::{Equivalent, HashMap};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use parking_lot::RwLock;

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
    describe_histogram!(
        crate::store::embedded::writer::COMMIT_WRITES,
        "License writes committed together in one embedded-store transaction (one fsync)."
    );
    describe_counter!(
        "tessera_auth_failures_total",
        "Requests refused for a missing or wrong API key."
    );
    metrics::describe_gauge!(
        crate::http::tls::CERT_EXPIRY_GAUGE,
        "Not-after of the TLS certificate listen_addr serves, in Unix seconds (absent without TLS)."
    );
    describe_counter!(
        crate::http::tls::HANDSHAKE_FAILURES,
        "TLS handshakes on listen_addr that failed or timed out."
    );
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

/// Label values of one request series.
#[derive(Hash, PartialEq, Eq)]
struct SeriesKey {
    route: Box<str>,
    method: &'static str,
    status: u16,
}

/// [`SeriesKey`] borrowed, for lookups without allocating.
#[derive(Hash)]
struct SeriesRef<'a> {
    route: &'a str,
    method: &'static str,
    status: u16,
}

impl Equivalent<SeriesKey> for SeriesRef<'_> {
    fn equivalent(&self, key: &SeriesKey) -> bool {
        *self.route == *key.route && self.method == key.method && self.status == key.status
    }
}

/// Handles of one series: registered once, then updated without building labels.
struct Series {
    requests: Counter,
    duration: Histogram,
}

/// `tessera_http_requests_total` and `tessera_http_request_duration_seconds`, labelled by
/// route template (`unmatched` when no route matched, so the label set stays bounded), method
/// and status. Handles are cached per label set: recording a request is a map lookup under a
/// read lock, not a registry lookup with freshly built labels.
#[derive(Default)]
pub struct RequestMetrics {
    series: RwLock<HashMap<SeriesKey, Series>>,
}

impl RequestMetrics {
    /// Counts one request and observes its latency.
    pub fn record(&self, route: Option<&str>, method: &Method, status: StatusCode, took: Duration) {
        let probe = SeriesRef {
            route: route.unwrap_or("unmatched"),
            method: method_label(method),
            status: status.as_u16(),
        };
        let secs = took.as_secs_f64();
        if let Some(s) = self.series.read().get(&probe) {
            s.requests.increment(1);
            s.duration.record(secs);
            return;
        }
        let mut series = self.series.write();
        let s = series
            .entry(SeriesKey {
                route: probe.route.into(),
                method: probe.method,
                status: probe.status,
            })
            .or_insert_with(|| Series {
                requests: metrics::counter!(
                    "tessera_http_requests_total",
                    "route" => probe.route.to_owned(),
                    "method" => probe.method,
                    "status" => probe.status.to_string()
                ),
                duration: metrics::histogram!(
                    "tessera_http_request_duration_seconds",
                    "route" => probe.route.to_owned(),
                    "method" => probe.method
                ),
            });
        s.requests.increment(1);
        s.duration.record(secs);
    }
}
