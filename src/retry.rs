//! Waiting before trying again: the one backoff schedule of shop's Stripe
//! client, its GitHub client and the server's mail queue.
//!
//! Kept by hand rather than taken from `backon`: each caller first honours
//! what the service says (Stripe's `Retry-After`, GitHub's rate-limit reset,
//! a deadline), and the mail queue keeps its next attempt in the database
//! rather than in a sleeping task, so what they share is this formula, not
//! a retry loop.

use std::time::Duration;

/// Exponential backoff: `initial`, doubling with each failure, capped at
/// `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max }
    }

    /// The longest wait after `failures` failed attempts (1 or more).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let doubled = self
            .initial
            .saturating_mul(1 << failures.clamp(1, 17).saturating_sub(1));
        doubled.min(self.max)
    }

    /// The wait after `failures` failed attempts, half fixed and half
    /// random: retries of many clients spread out without collapsing to
    /// no wait at all.
    pub fn delay(&self, failures: u32) -> Duration {
        let half = self.ceiling(failures) / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_and_are_capped() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        assert_eq!(backoff.ceiling(1), Duration::from_millis(100));
        assert_eq!(backoff.ceiling(3), Duration::from_millis(400));
        assert_eq!(backoff.ceiling(5), Duration::from_millis(1000));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_millis(1000));
        for _ in 0..50 {
            let first = backoff.delay(1);
            assert!(
                first >= Duration::from_millis(50) && first <= Duration::from_millis(100),
                "{first:?}"
            );
            let tenth = backoff.delay(10);
            assert!(
                tenth >= Duration::from_millis(500) && tenth <= Duration::from_millis(1000),
                "{tenth:?}"
            );
        }
    }
}
