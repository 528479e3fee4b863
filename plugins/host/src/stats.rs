//! What a status page shows about each plugin, kept in process next to the metrics: call
//! results, failures by kind and a latency histogram per loaded version (relaxed atomics,
//! three increments per call), and the last reload error per plugin name.
//!
//! The latency histogram has fixed buckets, four per power of two of microseconds (each at
//! most 25 % wide), so a percentile is the upper bound of the bucket that holds it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tessera_plugin_abi::Decision;

use crate::error::FailureKind;

/// Buckets of the latency histogram: `[0, 1 µs)`, `[1, 2 µs)`, ... up to 2^25 µs (33 s);
/// longer calls count in the last one.
const BUCKETS: usize = 96;

/// Call results of one plugin version, in the order of [`CallCounts`].
const RESULTS: usize = 6;
const FAILURE: usize = 5;

/// Failure kinds, in the order of [`FailureCounts`].
const KINDS: usize = 6;

/// The live counters of one loaded plugin version.
pub(crate) struct LiveStats {
    results: [AtomicU64; RESULTS],
    failures: [AtomicU64; KINDS],
    latency: [AtomicU64; BUCKETS],
}

fn bucket(elapsed: Duration) -> usize {
    let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    if us < 4 {
        return us as usize;
    }
    // us >= 4: its top three bits pick the power of two and the quarter within it.
    let e = 63 - us.leading_zeros();
    let quarter = (us >> (e - 2)) & 3;
    (((e - 1) * 4) as usize + quarter as usize).min(BUCKETS - 1)
}

/// The exclusive upper bound of bucket `i`, in microseconds.
fn upper_bound_us(i: usize) -> u64 {
    if i < 4 {
        return i as u64 + 1;
    }
    let e = (i / 4) as u32 + 1;
    let quarter = (i % 4) as u64;
    (5 + quarter) << (e - 2)
}

fn kind_index(kind: FailureKind) -> usize {
    match kind {
        FailureKind::Trap => 0,
        FailureKind::Timeout => 1,
        FailureKind::MemoryLimit => 2,
        FailureKind::BadDecision => 3,
        FailureKind::Instantiate => 4,
        FailureKind::KvUnavailable => 5,
    }
}

impl LiveStats {
    pub(crate) fn new() -> LiveStats {
        LiveStats {
            results: std::array::from_fn(|_| AtomicU64::new(0)),
            failures: std::array::from_fn(|_| AtomicU64::new(0)),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Counts a call that returned `decision` after `elapsed`.
    pub(crate) fn decided(&self, decision: &Decision, elapsed: Duration) {
        let i = match decision {
            Decision::Allow => 0,
            Decision::Deny { .. } => 1,
            Decision::Ban { .. } => 2,
            Decision::Flag { .. } => 3,
            Decision::Risk { .. } => 4,
        };
        self.results[i].fetch_add(1, Ordering::Relaxed);
        self.latency[bucket(elapsed)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a call that failed with `kind` after `elapsed`.
    pub(crate) fn failed(&self, kind: FailureKind, elapsed: Duration) {
        self.results[FAILURE].fetch_add(1, Ordering::Relaxed);
        self.failures[kind_index(kind)].fetch_add(1, Ordering::Relaxed);
        self.latency[bucket(elapsed)].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now (each counter read on its own: a call counted meanwhile may show in
    /// one and not yet in another).
    pub(crate) fn snapshot(&self) -> CallStats {
        let r = |i: usize| self.results[i].load(Ordering::Relaxed);
        let f = |i: usize| self.failures[i].load(Ordering::Relaxed);
        let latency: Vec<u64> = self
            .latency
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        CallStats {
            calls: CallCounts {
                allow: r(0),
                deny: r(1),
                ban: r(2),
                flag: r(3),
                risk: r(4),
                failure: r(FAILURE),
            },
            failures: FailureCounts {
                trap: f(0),
                timeout: f(1),
                memory_limit: f(2),
                bad_decision: f(3),
                instantiate: f(4),
                kv_unavailable: f(5),
            },
            p99: p99(&latency),
        }
    }
}

/// The upper bound of the bucket holding the 99th percentile of `buckets`; `None` when empty.
fn p99(buckets: &[u64]) -> Option<Duration> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    // The percentile's rank, 1-based: the fewest calls that make up 99 % of them.
    let rank = total.saturating_mul(99).div_ceil(100).max(1);
    let mut seen = 0u64;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(Duration::from_micros(upper_bound_us(i)));
        }
    }
    Some(Duration::from_micros(upper_bound_us(buckets.len() - 1)))
}

/// Calls of one plugin version by result (as `tessera_plugin_calls_total{result}` counts
/// them, but since this version was loaded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// Allowed.
    pub allow: u64,
    /// Denied.
    pub deny: u64,
    /// Banned the license.
    pub ban: u64,
    /// Flagged.
    pub flag: u64,
    /// Added risk.
    pub risk: u64,
    /// Failed (see [`FailureCounts`]); the plugin's fail mode decided.
    pub failure: u64,
}

/// Failed calls of one plugin version by [`FailureKind`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureCounts {
    /// The guest trapped.
    pub trap: u64,
    /// The call ran past the timeout.
    pub timeout: u64,
    /// The guest grew its memory past the limit.
    pub memory_limit: u64,
    /// The hook returned something that is not a decision.
    pub bad_decision: u64,
    /// No instance could be created.
    pub instantiate: u64,
    /// A durable key could not be read.
    pub kv_unavailable: u64,
}

/// What one loaded plugin version did since it was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Calls by result.
    pub calls: CallCounts,
    /// Failures by kind.
    pub failures: FailureCounts,
    /// The 99th percentile of call durations (every hook), as the upper bound of its
    /// histogram bucket (at most 25 % above the true value); `None` before the first call.
    pub p99: Option<Duration>,
}

/// The last reload of a plugin that failed, until a reload loads it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadFailure {
    /// Why (the load error).
    pub message: String,
    /// When, unix milliseconds.
    pub at_ms: i64,
    /// Whether the previous version kept serving.
    pub kept_previous: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_at_most_a_quarter_wide() {
        let mut lower = 0u64;
        for i in 0..BUCKETS {
            let upper = upper_bound_us(i);
            assert!(upper > lower, "bucket {i}");
            assert_eq!(
                bucket(Duration::from_micros(lower)),
                i,
                "lower bound of {i}"
            );
            assert_eq!(bucket(Duration::from_micros(upper - 1)), i, "top of {i}");
            if lower >= 4 {
                assert!((upper - lower) * 4 <= lower, "bucket {i} is too wide");
            }
            lower = upper;
        }
        assert_eq!(bucket(Duration::from_secs(3600)), BUCKETS - 1);
    }

    #[test]
    fn the_p99_is_the_bound_of_the_bucket_holding_the_99th_call() {
        let stats = LiveStats::new();
        assert_eq!(stats.snapshot().p99, None);
        for _ in 0..99 {
            stats.decided(&Decision::Allow, Duration::from_micros(10));
        }
        stats.failed(FailureKind::Timeout, Duration::from_millis(50));
        let s = stats.snapshot();
        assert_eq!(s.calls.allow, 99);
        assert_eq!(s.calls.failure, 1);
        assert_eq!(s.failures.timeout, 1);
        // 10 µs lies in [10, 12).
        assert_eq!(s.p99, Some(Duration::from_micros(12)));
        stats.failed(FailureKind::Timeout, Duration::from_millis(50));
        // 2 of 101 calls took 50 ms: the 99th percentile is one of them, in [49152, 57344) µs.
        assert_eq!(stats.snapshot().p99, Some(Duration::from_micros(57_344)));
    }
}
