//! The retry budget: retries and hedges of one upstream may be at most a
//! share of its calls plus a small floor per second, as Linkerd and
//! Finagle budget them. Without it, a full outage multiplies the load on
//! the backends by the policy's attempts just when they can least take it.
//!
//! ```text
//!   each call ─► deposit `ratio` ─┐
//!   time ─► `min_per_second`/s ───┼─► tokens (≤ cap) ─► each retry or hedge takes 1,
//!                                 │                     or is refused (the call ends
//!                                 │                     with its last answer)
//! ```
//!
//! Tokens are counted in millionths in one atomic, refilled lazily from
//! the time of the last refill: a call costs an atomic add, a retry a
//! compare-and-swap or two; nothing locks.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// One token, in the budget's unit.
const TOKEN: i64 = 1_000_000;
/// How many seconds of the floor the budget can hold (Finagle's 10 s TTL):
/// a quiet upstream can absorb a short burst of failures.
const CAP_SECONDS: i64 = 10;
/// How often a refused retry is logged at warn level, at most.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The budget's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    /// Retries allowed per call, on average (0.2: one retry per five calls).
    pub ratio: f64,
    /// Retries allowed per second whatever the traffic, so that a quiet
    /// upstream can still retry.
    pub min_per_second: u32,
}

impl Default for BudgetConfig {
    /// Linkerd's and Finagle's defaults: 20% of calls, plus 10 per second.
    fn default() -> Self {
        BudgetConfig {
            ratio: 0.2,
            min_per_second: 10,
        }
    }
}

/// A running budget, shared by every call of an upstream.
#[derive(Debug)]
pub struct RetryBudget {
    per_call: i64,
    per_second: i64,
    cap: i64,
    tokens: AtomicI64,
    epoch: Instant,
    /// Nanoseconds from `epoch` of the last refill.
    refilled: AtomicU64,
    refused: AtomicU64,
    /// Nanoseconds from `epoch` of the last warning (0: never).
    warned: AtomicU64,
}

impl RetryBudget {
    /// A budget of `config`, holding one second of its floor to start with.
    pub fn new(config: BudgetConfig) -> Self {
        let per_second = i64::from(config.min_per_second) * TOKEN;
        RetryBudget {
            per_call: (config.ratio.clamp(0.0, 1000.0) * TOKEN as f64) as i64,
            per_second,
            cap: (per_second * CAP_SECONDS).max(10 * TOKEN),
            tokens: AtomicI64::new(per_second),
            epoch: Instant::now(),
            refilled: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            warned: AtomicU64::new(0),
        }
    }

    /// A call started: it earns its share.
    pub fn deposit(&self) {
        self.add(self.per_call);
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn try_withdraw(&self) -> bool {
        self.refill();
        let taken = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                (t >= TOKEN).then_some(t - TOKEN)
            })
            .is_ok();
        if !taken {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    /// Retries refused since the budget started.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Whether a refusal now should be logged at warn level: at most once
    /// per `LOG_EVERY` (10 s), so that an outage does not flood the logs.
    pub fn should_warn(&self) -> bool {
        // Shifted by one so that 0 can mean "never".
        let now = self.nanos().saturating_add(1);
        let last = self.warned.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= LOG_EVERY.as_nanos() as u64;
        due && self
            .warned
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    fn add(&self, amount: i64) {
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(amount).min(self.cap))
            });
    }

    /// Adds the floor's tokens for the time since the last refill. Only
    /// whole millionths are added and the time they stand for is consumed,
    /// so frequent refills lose nothing.
    fn refill(&self) {
        if self.per_second == 0 {
            return;
        }
        let now = self.nanos();
        let last = self.refilled.load(Ordering::Acquire);
        let elapsed = u128::from(now.saturating_sub(last));
        let earned = elapsed * self.per_second as u128 / 1_000_000_000;
        if earned == 0 {
            return;
        }
        // The time the earned tokens stand for, so the remainder carries over.
        let used = (earned * 1_000_000_000 / self.per_second as u128) as u64;
        if self
            .refilled
            .compare_exchange(last, last + used, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.add(i64::try_from(earned).unwrap_or(i64::MAX));
        }
    }

    fn nanos(&self) -> u64 {
        let since = Instant::now().saturating_duration_since(self.epoch);
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(ratio: f64, min_per_second: u32) -> RetryBudget {
        RetryBudget::new(BudgetConfig {
            ratio,
            min_per_second,
        })
    }

    fn withdraw_all(b: &RetryBudget) -> u32 {
        let mut n = 0;
        while b.try_withdraw() {
            n += 1;
        }
        n
    }

    #[tokio::test(start_paused = true)]
    async fn starts_with_one_second_of_floor() {
        let b = budget(0.2, 10);
        assert_eq!(withdraw_all(&b), 10);
        assert!(b.refused() >= 1);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_earn_their_share() {
        let b = budget(0.2, 0);
        for _ in 0..100 {
            b.deposit();
        }
        assert_eq!(withdraw_all(&b), 10, "the cap: 10 tokens with no floor");
        for _ in 0..25 {
            b.deposit();
        }
        assert_eq!(withdraw_all(&b), 5, "20% of 25 calls");
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_refills_with_time_up_to_ten_seconds() {
        let b = budget(0.2, 10);
        assert_eq!(withdraw_all(&b), 10);
        tokio::time::advance(Duration::from_millis(350)).await;
        assert_eq!(withdraw_all(&b), 3);
        // The remaining 0.5 token carries over.
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(withdraw_all(&b), 1);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(withdraw_all(&b), 100, "capped at 10 s of the floor");
    }

    #[tokio::test(start_paused = true)]
    async fn under_a_full_outage_retries_stay_within_share_plus_floor() {
        let b = budget(0.2, 10);
        let mut retries = 0;
        // 1,000 calls over 2 s, each wanting 4 retries.
        for _ in 0..1000 {
            tokio::time::advance(Duration::from_millis(2)).await;
            b.deposit();
            for _ in 0..4 {
                if b.try_withdraw() {
                    retries += 1;
                }
            }
        }
        // 20% of 1,000, plus 1 s of floor to start, plus 2 s of floor.
        assert!(retries <= 200 + 10 + 20, "{retries}");
        assert!(retries >= 200, "{retries}");
    }

    #[tokio::test(start_paused = true)]
    async fn warns_at_most_once_per_ten_seconds() {
        let b = budget(0.2, 10);
        assert!(b.should_warn());
        assert!(!b.should_warn());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(b.should_warn());
    }
}
