//! When to send the next heartbeat: a pure state machine over a monotonic `now` and the wall
//! clock, so the tests drive time instead of sleeping.
//!
//! - The cadence is the interval the server announced, shortened by up to [`JITTER`] at
//!   random, so a fleet that started together does not stay in lockstep.
//! - Validity: a session stays valid for the server's timeout + grace after the last
//!   acknowledged heartbeat (measured from when that heartbeat was *sent*, which is never
//!   later than when the server saw it).
//! - Jumps: when the loop wakes more than a whole interval later than it planned (the
//!   process was stopped, the machine suspended), or the wall clock advanced more than an
//!   interval beyond the monotonic clock (Linux's monotonic clock does not count suspend),
//!   the schedule re-anchors: one heartbeat right away, never a burst of missed ones. Time
//!   the monotonic clock did not see is charged to the validity.
#![forbid(unsafe_code)]

use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::time::Instant;

/// At most this fraction of the interval is taken off each wait.
pub(crate) const JITTER: f64 = 0.1;

#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    interval: Duration,
    lifetime: Duration,
    valid_until: Instant,
    next_due: Instant,
    armed_at: Instant,
    armed_wall: SystemTime,
    planned_wake: Instant,
}

impl Schedule {
    /// A schedule for a session acknowledged at `now` (its start).
    pub(crate) fn new(
        now: Instant,
        wall: SystemTime,
        interval: Duration,
        lifetime: Duration,
    ) -> Self {
        let interval = interval.max(Duration::from_millis(100));
        let mut s = Self {
            interval,
            lifetime: lifetime.max(interval),
            valid_until: now + lifetime.max(interval),
            next_due: now,
            armed_at: now,
            armed_wall: wall,
            planned_wake: now,
        };
        s.next_due = now + s.jittered();
        s
    }

    fn jittered(&self) -> Duration {
        self.interval
            .mul_f64(1.0 - JITTER * rand::rng().random_range(0.0..=1.0))
    }

    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    pub(crate) fn next_due(&self) -> Instant {
        self.next_due
    }

    /// The end of the session's offline validity.
    pub(crate) fn valid_until(&self) -> Instant {
        self.valid_until
    }

    /// The loop is about to sleep until `wake`.
    pub(crate) fn arm(&mut self, now: Instant, wall: SystemTime, wake: Instant) {
        self.armed_at = now;
        self.armed_wall = wall;
        self.planned_wake = wake.max(now);
    }

    /// The loop woke at `now`. Returns whether time jumped; if so, a heartbeat is due now.
    pub(crate) fn wake(&mut self, now: Instant, wall: SystemTime) -> bool {
        let mono = now.saturating_duration_since(self.armed_at);
        let overslept = now.saturating_duration_since(self.planned_wake);
        let (unseen, wall_jump) = match wall.duration_since(self.armed_wall) {
            Ok(w) => (
                w.saturating_sub(mono),
                w.saturating_sub(mono) > self.interval,
            ),
            // The wall clock was set back: nothing was lost, but re-anchor all the same.
            Err(e) => (Duration::ZERO, e.duration() > self.interval),
        };
        let jumped = overslept > self.interval || wall_jump;
        if jumped {
            if wall_jump {
                // Suspend: the server's clock ran on while ours stood still.
                // Underflow means the result is before the clock's origin: past, like `now`.
                self.valid_until = self.valid_until.checked_sub(unseen).unwrap_or(now);
            }
            self.next_due = now;
        }
        jumped
    }

    /// A heartbeat sent at `sent_at` was acknowledged at `now`; the server may announce a
    /// new interval or lifetime.
    pub(crate) fn acked(
        &mut self,
        sent_at: Instant,
        now: Instant,
        interval: Option<Duration>,
        lifetime: Option<Duration>,
    ) {
        if let Some(i) = interval.filter(|i| !i.is_zero()) {
            self.interval = i.max(Duration::from_millis(100));
        }
        if let Some(l) = lifetime.filter(|l| !l.is_zero()) {
            self.lifetime = l.max(self.interval);
        }
        self.valid_until = sent_at + self.lifetime;
        self.next_due = (sent_at + self.jittered()).max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_secs(10);
    const L: Duration = Duration::from_secs(60);

    fn at(base: Instant, secs: f64) -> Instant {
        base + Duration::from_secs_f64(secs)
    }

    #[test]
    fn heartbeats_follow_the_interval_with_bounded_jitter() {
        let t0 = Instant::now();
        let w0 = SystemTime::now();
        let mut s = Schedule::new(t0, w0, I, L);
        let mut now = t0;
        let mut seen = Vec::new();
        for _ in 0..200 {
            let due = s.next_due();
            let gap = due - now;
            assert!(gap <= I && gap >= I.mul_f64(1.0 - JITTER), "gap {gap:?}");
            seen.push(gap);
            s.arm(now, w0 + (now - t0), due);
            now = due;
            assert!(!s.wake(now, w0 + (now - t0)));
            s.acked(now, now + Duration::from_millis(5), None, None);
            assert_eq!(s.valid_until(), now + L);
        }
        seen.sort();
        assert!(seen[0] < seen[199], "jitter varies the gaps");
    }

    #[test]
    fn waking_far_too_late_re_anchors_to_one_heartbeat_now() {
        let t0 = Instant::now();
        let w0 = SystemTime::now();
        let mut s = Schedule::new(t0, w0, I, L);
        let due = s.next_due();
        s.arm(t0, w0, due);
        // The process was stopped for five intervals (monotonic and wall clock both ran).
        let late = at(due, 50.0);
        assert!(s.wake(late, w0 + (late - t0)));
        assert_eq!(s.next_due(), late, "due at once, not five times");
        assert_eq!(
            s.valid_until(),
            t0 + L,
            "no time was hidden from the monotonic clock"
        );
        // A wake a little late (less than an interval) is not a jump.
        s.acked(late, late, None, None);
        let due = s.next_due();
        s.arm(late, w0 + (late - t0), due);
        let slightly = at(due, 3.0);
        assert!(!s.wake(slightly, w0 + (slightly - t0)));
    }

    #[test]
    fn a_suspend_unseen_by_the_monotonic_clock_is_charged_to_the_validity() {
        let t0 = Instant::now();
        let w0 = SystemTime::now();
        let mut s = Schedule::new(t0, w0, I, L);
        let due = s.next_due();
        s.arm(t0, w0, due);
        // Monotonic: on time. Wall clock: 100 s later (suspend).
        let woke = due;
        let wall = w0 + (due - t0) + Duration::from_secs(100);
        assert!(s.wake(woke, wall));
        assert_eq!(s.next_due(), woke);
        assert!(
            s.valid_until() <= woke,
            "100 s unseen > 60 s lifetime: only the server can tell now"
        );
        // A successful heartbeat restores it.
        s.acked(woke, woke, None, None);
        assert_eq!(s.valid_until(), woke + L);
    }

    #[test]
    fn the_server_may_change_the_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, SystemTime::now(), I, L);
        s.acked(
            t0,
            t0,
            Some(Duration::from_secs(2)),
            Some(Duration::from_secs(6)),
        );
        assert!(s.next_due() - t0 <= Duration::from_secs(2));
        assert_eq!(s.valid_until(), t0 + Duration::from_secs(6));
        assert_eq!(s.interval(), Duration::from_secs(2));
    }
}
