//! Re-sending calls as gRPC defines it (gRFC A6): what a retry or hedging
//! policy says, and the per-upstream limits that keep re-sends from
//! multiplying an outage (a retry budget, A6 throttling). Pure types, no
//! I/O: the call engine (`call.rs`) asks them what to do.
//!
//! ```text
//!   call ─► Resend::policy ─┬─ Unprocessed: re-send only what no backend processed (default)
//!                           ├─ Retry:  after a retryable status / broken stream / per-try
//!                           │          timeout, before response headers; backoff or pushback
//!                           └─ Hedge:  another attempt every hedging delay until one answers
//!   every retry or hedge ─► ResendLimits: budget (share of calls + floor) ─► throttle (A6)
//! ```
//!
//! The policies are plain data, built by the proxy's config or the client
//! builder. The limits are shared by every call of one upstream and cost
//! one atomic update per call.

mod budget;
mod policy;
mod pushback;
mod throttle;

use std::sync::Arc;

pub use budget::{BudgetConfig, RetryBudget};
pub use policy::{CallPolicy, Codes, HedgingPolicy, MAX_POLICY_ATTEMPTS, RetryPolicy};
pub use pushback::Pushback;
pub use throttle::{Throttle, ThrottleConfig};

/// What an upstream (or a route) re-sends, and the limits it shares.
#[derive(Debug, Clone, Default)]
pub struct Resend {
    /// The policy of the calls.
    pub policy: CallPolicy,
    /// The upstream's budget and throttle, shared by its routes.
    pub limits: Arc<ResendLimits>,
}

/// How re-sends are configured for one upstream: a policy, the budget and
/// the throttle. What the proxy's config and the client builder produce.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResendSettings {
    /// The policy (default: re-send only calls no backend processed).
    pub policy: CallPolicy,
    /// The retry budget; `None` turns it off. Default on (20% + 10/s).
    pub budget: Option<BudgetConfig>,
    /// A6 throttling; off unless configured.
    pub throttle: Option<ThrottleConfig>,
}

impl ResendSettings {
    /// The settings podlb starts with: no policy, the default budget.
    pub fn new() -> Self {
        ResendSettings {
            policy: CallPolicy::Unprocessed,
            budget: Some(BudgetConfig::default()),
            throttle: None,
        }
    }

    /// The running limits these settings describe (one per upstream).
    pub fn limits(&self) -> Arc<ResendLimits> {
        Arc::new(ResendLimits {
            budget: self.budget.map(RetryBudget::new),
            throttle: self.throttle.map(Throttle::new),
        })
    }
}

/// The limits every call of one upstream shares.
#[derive(Debug, Default)]
pub struct ResendLimits {
    /// Retries at most a share of calls plus a floor.
    pub budget: Option<RetryBudget>,
    /// A6 throttling: no retries while too many calls fail.
    pub throttle: Option<Throttle>,
}

impl ResendLimits {
    /// A call starts: it earns the budget its share.
    pub fn call_started(&self) {
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
    }

    /// Whether one more retry or hedge may be sent now; takes it from the
    /// budget when so.
    pub fn allow_resend(&self) -> bool {
        if self.throttle.as_ref().is_some_and(|t| !t.allows()) {
            return false;
        }
        self.budget.as_ref().is_none_or(RetryBudget::try_withdraw)
    }

    /// An attempt answered with a status the policy counts as a failure
    /// (retryable or non-fatal), or pushback said stop.
    pub fn attempt_failed(&self) {
        if let Some(t) = &self.throttle {
            t.failure();
        }
    }

    /// An attempt answered with anything else.
    pub fn attempt_succeeded(&self) {
        if let Some(t) = &self.throttle {
            t.success();
        }
    }
}
