//! The one retry policy: exponential backoff with jitter and an optional
//! attempt limit, as data. Both the daemon and the cloud retry Redis and
//! Telegram calls with it, so "how long until the next try, and is there
//! one" is decided in one place.
//!
//! It does no I/O and never sleeps: the caller asks [`Backoff::next_delay`]
//! after a failure and sleeps itself, in a `select!` with its shutdown
//! signal, so every wait is cancellable. `None` means the last attempt has
//! failed: nobody sleeps after it.

use std::time::Duration;

/// How many attempts, and how far apart. Cheap to copy; start a fresh
/// [`Backoff`] per call (or [`Backoff::reset`] one after a success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    /// Total attempts allowed, the first one included; `None` retries forever.
    limit: Option<u32>,
    /// Up to this many percent is added at random, so many clients do not
    /// retry in step.
    jitter_pct: u32,
    failures: u32,
}

impl Backoff {
    /// Retries forever, doubling from `first` up to `max`, with 25 % jitter.
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            limit: None,
            jitter_pct: 25,
            failures: 0,
        }
    }

    /// At most `attempts` attempts in all (so `attempts - 1` waits).
    pub const fn attempts(mut self, attempts: u32) -> Backoff {
        self.limit = Some(attempts);
        self
    }

    /// Exact delays, for callers whose waits a test or a user can predict.
    pub const fn without_jitter(mut self) -> Backoff {
        self.jitter_pct = 0;
        self
    }

    /// Records one failed attempt. Returns the wait before the next one, or
    /// `None` when that was the last attempt allowed.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        if self.limit.is_some_and(|limit| self.failures >= limit) {
            return None;
        }
        let base = self.delay_for(self.failures);
        Some(base + self.jitter(base))
    }

    /// The wait after the `n`th failure, before jitter: `first * 2^(n-1)`,
    /// capped at `max`.
    fn delay_for(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1).min(31);
        self.first
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }

    fn jitter(&self, base: Duration) -> Duration {
        if self.jitter_pct == 0 {
            return Duration::ZERO;
        }
        let extra = rand::random::<f64>() * f64::from(self.jitter_pct) / 100.0;
        base.mul_f64(extra)
    }

    /// After a success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failed attempts since the start or the last [`Backoff::reset`].
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_its_cap() {
        let mut b = Backoff::new(100 * MS, 1000 * MS).without_jitter();
        let waits: Vec<_> = (0..6).map(|_| b.next_delay().unwrap()).collect();
        assert_eq!(
            waits,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
        assert_eq!(b.failures(), 6);
    }

    #[test]
    fn never_waits_after_the_last_attempt() {
        let mut b = Backoff::new(MS, 10 * MS).attempts(3).without_jitter();
        assert_eq!(b.next_delay(), Some(MS));
        assert_eq!(b.next_delay(), Some(2 * MS));
        assert_eq!(b.next_delay(), None, "the third failure is the last");
        assert_eq!(b.next_delay(), None);
    }

    #[test]
    fn one_attempt_means_no_wait_at_all() {
        assert_eq!(Backoff::new(MS, MS).attempts(1).next_delay(), None);
    }

    #[test]
    fn reset_starts_again_from_the_first_delay() {
        let mut b = Backoff::new(MS, 100 * MS).attempts(3).without_jitter();
        b.next_delay();
        b.next_delay();
        b.reset();
        assert_eq!(b.next_delay(), Some(MS));
    }

    #[test]
    fn jitter_stays_within_a_quarter_above_the_base() {
        for _ in 0..1000 {
            let mut b = Backoff::new(400 * MS, 400 * MS);
            let d = b.next_delay().unwrap();
            assert!(d >= 400 * MS && d <= 500 * MS, "{d:?}");
        }
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10)).without_jitter();
        for _ in 0..100 {
            assert!(b.next_delay().unwrap() <= Duration::from_secs(10));
        }
    }
}
