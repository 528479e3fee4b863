//! Exponential backoff with jitter, honouring `Retry-After`.
#![forbid(unsafe_code)]

use std::time::Duration;

use rand::Rng;

/// How calls are retried after network errors, 5xx and 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (heartbeats ignore this: they retry until the
    /// session's offline validity runs out).
    pub max_attempts: u32,
    /// Delay before the first retry; it doubles with every further retry.
    pub base_delay: Duration,
    /// Longest delay between two attempts (a `Retry-After` may ask for more).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// The delays of one series of retries.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    retries: u32,
}

impl Backoff {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Self { policy, retries: 0 }
    }

    /// Retries so far.
    pub(crate) fn retries(&self) -> u32 {
        self.retries
    }

    /// The delay before the next attempt: `base · 2^n`, capped, scaled by a random factor
    /// in [0.5, 1] so that clients that failed together do not retry together; at least
    /// `retry_after` when the server sent one.
    pub(crate) fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let exp = self.retries.min(20);
        self.retries = self.retries.saturating_add(1);
        let raw = self
            .policy
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.policy.max_delay);
        let jittered = raw.mul_f64(rand::rng().random_range(0.5..=1.0));
        match retry_after {
            Some(ra) => jittered.max(ra),
            None => jittered,
        }
    }
}

/// Parses a `Retry-After` header given in seconds (the form Tessera sends).
pub(crate) fn parse_retry_after(value: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let secs: f64 = value?.to_str().ok()?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_honour_retry_after() {
        let mut b = Backoff::new(RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        });
        let d: Vec<Duration> = (0..6).map(|_| b.next_delay(None)).collect();
        for (i, d) in d.iter().enumerate() {
            let full = Duration::from_millis(100 * (1 << i)).min(Duration::from_millis(1000));
            assert!(*d <= full && *d >= full / 2, "retry {i}: {d:?} vs {full:?}");
        }
        assert!(b.next_delay(Some(Duration::from_secs(7))) >= Duration::from_secs(7));
        assert_eq!(b.retries(), 7);
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        let v = reqwest::header::HeaderValue::from_static("3");
        assert_eq!(parse_retry_after(Some(&v)), Some(Duration::from_secs(3)));
        let v = reqwest::header::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_retry_after(Some(&v)), None);
        assert_eq!(parse_retry_after(None), None);
    }
}
