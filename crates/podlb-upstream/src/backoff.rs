//! Jittered exponential backoff between reconnect attempts.

use std::time::Duration;

/// Delays that double from `initial` up to `max`, each scaled by a random
/// factor in [0.5, 1.5) so endpoints that failed together do not reconnect
/// in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff starting at `initial`, capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            failures: 0,
        }
    }

    /// The delay before the next attempt; each call counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(fastrand::f64())
    }

    /// [`Backoff::next_delay`] with the jitter given: `jitter` in `[0, 1)`
    /// scales the delay by `0.5 + jitter`.
    pub fn next_delay_with(&mut self, jitter: f64) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        base.mul_f64(0.5 + jitter.clamp(0.0, 1.0))
    }

    /// Forgets past failures after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let bases = [100, 200, 400, 800, 1000, 1000];
        for base in bases {
            let d = b.next_delay().as_secs_f64() * 1000.0;
            assert!(
                d >= base as f64 * 0.5 && d < base as f64 * 1.5,
                "{d} vs {base}"
            );
        }
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(150));
    }
}
