//! Jittered exponential backoff between reconnect attempts.
//!
//! `max` bounds the delay with its jitter: a listed endpoint that comes back
//! is tried again within `max` (issue 13: back in rotation within a second),
//! where a jitter applied after the cap would stretch it by half again.

use std::time::Duration;

/// Delays that double from `initial` up to `max`, each spread at random
/// over [0.5, 1.5) times the doubled delay so endpoints that failed
/// together do not reconnect in lockstep; but never `max` or more: near
/// the cap the spread is [0.5 x delay, max).
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
    /// places the delay in `[base / 2, min(base x 1.5, max))`, uniformly:
    /// `base x (0.5 + jitter)` below the cap.
    pub fn next_delay_with(&mut self, jitter: f64) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let low = base / 2;
        let high = base.saturating_add(low).min(self.max);
        low + (high - low).mul_f64(jitter.clamp(0.0, 1.0))
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

    #[test]
    fn jitter_never_takes_a_delay_past_the_cap() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000));
        // Below the cap the spread is the doubled delay times [0.5, 1.5).
        assert_eq!(b.next_delay_with(0.0), ms(50));
        assert_eq!(b.next_delay_with(0.5), ms(200));
        assert_eq!(b.next_delay_with(1.0), ms(600));
        // 800 ms x 1.5 would pass the cap: [400 ms, 1 s).
        assert_eq!(b.next_delay_with(1.0), ms(1000));
        for jitter in [0.0, 0.25, 0.5, 0.999, 1.0] {
            let d = b.next_delay_with(jitter);
            assert!(d >= ms(500) && d <= ms(1000), "{jitter}: {d:?}");
        }
    }
}
