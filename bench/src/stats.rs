//! Per-operation latency histograms (HDR), outcome counts and the reports built from them.
//!
//! Two latencies are kept per request:
//! - **latency**: from the request's *intended* start (its slot in the open-loop schedule)
//!   to the end of the response. A server that stalls cannot hide it by slowing the
//!   generator down: requests queued behind the stall carry their waiting time. This is the
//!   number every table shows.
//! - **service**: from the moment the request was written to the end of the response
//!   (what a closed-loop tool would report). Kept in the JSON for comparison.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::http::CallResult;

/// An operation the generator performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `POST /api/admin/licenses`.
    Issue,
    /// `POST /api/license/activate`.
    Activate,
    /// `POST /api/license/session/start`.
    Start,
    /// `POST /api/license/session/heartbeat`.
    Heartbeat,
    /// `POST /api/license/session/end`.
    End,
    /// A request with a license key that does not exist (expects 404 `LICENSE_NOT_FOUND`).
    WrongKey,
    /// A session start on a license whose only seat is taken (expects 409
    /// `SESSION_LIMIT_REACHED`).
    LimitHit,
}

impl Op {
    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Op::Issue => "issue",
            Op::Activate => "activate",
            Op::Start => "start",
            Op::Heartbeat => "heartbeat",
            Op::End => "end",
            Op::WrongKey => "wrong_key",
            Op::LimitHit => "limit_hit",
        }
    }

    /// Whether `r` is the answer this operation expects.
    pub fn expects(self, r: &CallResult) -> bool {
        match (self, r) {
            (Op::WrongKey, CallResult::Http { status, .. }) => *status == 404 || *status == 401,
            (Op::LimitHit, CallResult::Http { status, .. }) => *status == 409,
            (Op::WrongKey | Op::LimitHit, CallResult::Transport(_)) => false,
            (_, r) => r.is_success(),
        }
    }
}

fn new_hist() -> Histogram<u64> {
    // 1 µs .. 100 s at 3 significant digits; recorded values are clamped into that range.
    match Histogram::new_with_bounds(1, 100_000_000, 3) {
        Ok(h) => h,
        // Constant bounds that meet hdrhistogram's preconditions (1 <= low, 2*low <= high,
        // sigfig <= 5): creation cannot fail.
        Err(e) => unreachable!("histogram bounds: {e}"),
    }
}

/// Counts and histograms of one operation.
#[derive(Debug, Clone)]
pub struct OpStats {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    /// Answers the operation expected.
    pub expected: u64,
    /// Everything else, by label (`"409 SESSION_LIMIT_REACHED"`, `"transport timeout"`).
    pub unexpected: BTreeMap<String, u64>,
}

impl Default for OpStats {
    fn default() -> Self {
        Self {
            latency: new_hist(),
            service: new_hist(),
            expected: 0,
            unexpected: BTreeMap::new(),
        }
    }
}

impl OpStats {
    /// Completed requests.
    pub fn count(&self) -> u64 {
        self.expected + self.unexpected.values().sum::<u64>()
    }

    fn record(
        &mut self,
        latency: Duration,
        service: Duration,
        ok: bool,
        label: impl FnOnce() -> String,
    ) {
        let us = |d: Duration| (d.as_micros() as u64).clamp(1, 100_000_000);
        let _ = self.latency.record(us(latency));
        let _ = self.service.record(us(service));
        if ok {
            self.expected += 1;
        } else {
            *self.unexpected.entry(label()).or_default() += 1;
        }
    }

    fn merge(&mut self, other: &OpStats) {
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
        self.expected += other.expected;
        for (k, v) in &other.unexpected {
            *self.unexpected.entry(k.clone()).or_default() += v;
        }
    }
}

/// Percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value seen.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// The report of one operation.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    /// Operation.
    pub op: Op,
    /// Completed requests in the measured window.
    pub count: u64,
    /// Of which the expected answer.
    pub expected: u64,
    /// Completed requests per second over the measured window.
    pub per_sec: f64,
    /// Latency from intended start (µs): the honest number.
    pub latency_us: Percentiles,
    /// Latency from actual send (µs), for comparison only.
    pub service_us: Percentiles,
    /// Unexpected answers by label.
    pub unexpected: BTreeMap<String, u64>,
    /// The latency percentile curve (HDR): latency at quantiles `1 - 10^(-k/10)` for
    /// `k = 0..=50` (0 % .. 99.999 %), then the maximum. Empty for wrk runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_curve: Vec<CurvePoint>,
}

/// One point of a latency percentile curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Quantile, 0..=1.
    pub quantile: f64,
    /// Latency at that quantile (µs).
    pub us: u64,
}

/// The percentile curve of `h` (see [`OpReport::latency_curve`]).
pub fn curve(h: &Histogram<u64>) -> Vec<CurvePoint> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<CurvePoint> = (0..=50)
        .map(|k| {
            let quantile = 1.0 - 10f64.powf(-f64::from(k) / 10.0);
            CurvePoint {
                quantile,
                us: h.value_at_quantile(quantile),
            }
        })
        .collect();
    out.push(CurvePoint {
        quantile: 1.0,
        us: h.max(),
    });
    out
}

/// A whole run's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Length of the measured window in seconds.
    pub duration_secs: f64,
    /// Per operation.
    pub ops: Vec<OpReport>,
    /// Requests scheduled in the window that never completed (still queued or in flight
    /// when the run ended after its drain grace).
    pub abandoned: u64,
}

impl Report {
    /// The report of `op`, if it ran.
    pub fn op(&self, op: Op) -> Option<&OpReport> {
        self.ops.iter().find(|r| r.op == op)
    }

    /// Unexpected answers that are 5xx or transport errors, summed.
    pub fn server_or_transport_errors(&self) -> u64 {
        self.ops
            .iter()
            .flat_map(|o| o.unexpected.iter())
            .filter(|(k, _)| k.starts_with('5') || k.starts_with("transport"))
            .map(|(_, v)| *v)
            .sum()
    }

    /// All unexpected answers, summed.
    pub fn unexpected_total(&self) -> u64 {
        self.ops.iter().flat_map(|o| o.unexpected.values()).sum()
    }

    /// A fixed-width table for people.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<10} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}  unexpected",
            "op", "count", "per_sec", "p50", "p90", "p99", "p99.9", "max"
        );
        for o in &self.ops {
            let l = &o.latency_us;
            let errs = if o.unexpected.is_empty() {
                "-".to_owned()
            } else {
                o.unexpected
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                s,
                "{:<10} {:>9} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
                o.op.name(),
                o.count,
                o.per_sec,
                fmt_us(l.p50),
                fmt_us(l.p90),
                fmt_us(l.p99),
                fmt_us(l.p999),
                fmt_us(l.max),
                errs
            );
        }
        if self.abandoned > 0 {
            let _ = writeln!(s, "abandoned (never completed): {}", self.abandoned);
        }
        let _ = writeln!(
            s,
            "window {:.1} s; latency measured from each request's intended start time",
            self.duration_secs
        );
        s
    }
}

/// `1234` µs as `"1.23ms"`.
pub fn fmt_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if us >= 1_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{us}µs")
    }
}

/// Collects completed requests. Requests whose intended start is before the measured
/// window (warm-up) are counted in the progress line only.
#[derive(Debug)]
pub struct Recorder {
    window_start: Instant,
    window_end: Option<Instant>,
    total: BTreeMap<Op, OpStats>,
    interval: BTreeMap<Op, OpStats>,
    last_progress: Instant,
    started: Instant,
    /// Requests scheduled inside the window that never completed.
    pub abandoned: u64,
}

impl Recorder {
    /// A recorder whose measured window starts at `window_start`.
    pub fn new(window_start: Instant) -> Self {
        let now = Instant::now();
        Self {
            window_start,
            window_end: None,
            total: BTreeMap::new(),
            interval: BTreeMap::new(),
            last_progress: now,
            started: now,
            abandoned: 0,
        }
    }

    /// Moves the start of the measured window (e.g. after a warm-up phase).
    pub fn set_window_start(&mut self, at: Instant) {
        self.window_start = at;
    }

    /// Closes the measured window at `at` (for the throughput denominator).
    pub fn set_window_end(&mut self, at: Instant) {
        self.window_end = Some(at);
    }

    /// Records one completed request.
    pub fn record(
        &mut self,
        op: Op,
        intended: Instant,
        sent: Instant,
        done: Instant,
        r: &CallResult,
    ) {
        let ok = op.expects(r);
        let latency = done.saturating_duration_since(intended);
        let service = done.saturating_duration_since(sent);
        self.interval
            .entry(op)
            .or_default()
            .record(latency, service, ok, || r.label());
        if intended >= self.window_start {
            self.total
                .entry(op)
                .or_default()
                .record(latency, service, ok, || r.label());
        }
    }

    /// If a second has passed, the progress line for it (and a fresh interval).
    pub fn progress(&mut self, extra: &str) -> Option<String> {
        let now = Instant::now();
        let dt = now.duration_since(self.last_progress);
        if dt < Duration::from_secs(1) {
            return None;
        }
        self.last_progress = now;
        let mut s = format!("[{:>4.0}s]", now.duration_since(self.started).as_secs_f64());
        let interval = std::mem::take(&mut self.interval);
        for (op, st) in &interval {
            let bad: u64 = st.unexpected.values().sum();
            let _ = write!(
                s,
                " {} {:.0}/s p99 {}{}",
                op.name(),
                st.count() as f64 / dt.as_secs_f64(),
                fmt_us(Percentiles::of(&st.latency).p99),
                if bad > 0 {
                    format!(" unexpected {bad}")
                } else {
                    String::new()
                }
            );
        }
        if interval.is_empty() {
            s.push_str(" (no completions)");
        }
        s.push_str(extra);
        Some(s)
    }

    /// Merges another recorder's totals into this one.
    pub fn merge(&mut self, other: &Recorder) {
        for (op, st) in &other.total {
            self.total.entry(*op).or_default().merge(st);
        }
        self.abandoned += other.abandoned;
    }

    /// The report of the measured window.
    pub fn report(&self) -> Report {
        let end = self.window_end.unwrap_or_else(Instant::now);
        let secs = end
            .saturating_duration_since(self.window_start)
            .as_secs_f64()
            .max(1e-9);
        Report {
            duration_secs: secs,
            ops: self
                .total
                .iter()
                .map(|(op, st)| OpReport {
                    op: *op,
                    count: st.count(),
                    expected: st.expected,
                    per_sec: st.count() as f64 / secs,
                    latency_us: Percentiles::of(&st.latency),
                    service_us: Percentiles::of(&st.service),
                    unexpected: st.unexpected.clone(),
                    latency_curve: curve(&st.latency),
                })
                .collect(),
            abandoned: self.abandoned,
        }
    }
}
