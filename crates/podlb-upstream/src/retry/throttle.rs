//! A6 retry throttling: a token bucket per upstream that stops retries and
//! hedges while too many calls fail. Each failed attempt (a retryable or
//! non-fatal status, or pushback saying stop) takes one token, each other
//! answer gives back `token_ratio`; re-sends are allowed only while more
//! than half of `max_tokens` is left. Counted in thousandths, as A6 says.

use std::sync::atomic::{AtomicU32, Ordering};

/// A6 `retryThrottling`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleConfig {
    /// The bucket's size, 1..=1000 (A6's `maxTokens`).
    pub max_tokens: u32,
    /// What each answer that is not a failure gives back (A6's
    /// `tokenRatio`), kept to three decimals.
    pub token_ratio: f64,
}

/// A running throttle, shared by every call of an upstream.
#[derive(Debug)]
pub struct Throttle {
    max: u32,
    ratio: u32,
    tokens: AtomicU32,
}

impl Throttle {
    /// A full bucket of `config`.
    pub fn new(config: ThrottleConfig) -> Self {
        let max = config.max_tokens.clamp(1, 1000) * 1000;
        Throttle {
            max,
            ratio: (config.token_ratio.clamp(0.0, 1000.0) * 1000.0) as u32,
            tokens: AtomicU32::new(max),
        }
    }

    /// Whether retries and hedges may be sent now.
    pub fn allows(&self) -> bool {
        self.tokens.load(Ordering::Acquire) > self.max / 2
    }

    /// An attempt failed.
    pub fn failure(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_sub(1000))
            });
    }

    /// An attempt answered with something other than a failure.
    pub fn success(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(self.ratio).min(self.max))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_half_and_recovers_by_the_ratio() {
        let t = Throttle::new(ThrottleConfig {
            max_tokens: 10,
            token_ratio: 0.1,
        });
        assert!(t.allows());
        for _ in 0..4 {
            t.failure();
        }
        assert!(t.allows(), "6 tokens left, above 5");
        t.failure();
        assert!(!t.allows(), "5 left is not above half");
        t.success();
        assert!(t.allows(), "5.1 is");
        for _ in 0..6 {
            t.failure();
        }
        assert_eq!(t.tokens.load(Ordering::Relaxed), 0, "never below zero");
        for _ in 0..50 {
            t.success();
        }
        assert!(!t.allows(), "5.0 after 50 answers at 0.1");
        for _ in 0..1000 {
            t.success();
        }
        assert_eq!(t.tokens.load(Ordering::Relaxed), 10_000, "capped");
    }
}
