//! What the proxy's retry and hedging tests share: a proxy in front of
//! test backends with a policy, round robin (so first attempts reach
//! every backend in turn), waited on until every backend is connected.
//! The scenarios themselves are `podlb_testkit::retry_scenarios`, shared
//! with the client library's tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_proxy::retry::{BudgetConfig, CallPolicy, Codes, HedgingPolicy, RetryPolicy};
use tonic::Code;

use crate::support::{TestProxy, config};

/// Retries on UNAVAILABLE, up to `max_attempts`, with a backoff of about
/// nothing (so a pushback's delay is the only wait).
pub fn retry_unavailable(max_attempts: u32) -> CallPolicy {
    CallPolicy::Retry(RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
        backoff_multiplier: 1.0,
        retryable_codes: Codes::of(&[Code::Unavailable]),
        per_try_timeout: None,
    })
}

/// Retries on UNAVAILABLE and after `per_try` without response headers.
pub fn retry_per_try(per_try: Duration) -> CallPolicy {
    let CallPolicy::Retry(mut policy) = retry_unavailable(3) else {
        unreachable!("retry_unavailable is a retry policy")
    };
    policy.per_try_timeout = Some(per_try);
    CallPolicy::Retry(policy)
}

/// Hedging every `delay`, up to `max_attempts`.
pub fn hedge_every(delay: Duration, max_attempts: u32) -> CallPolicy {
    CallPolicy::Hedge(HedgingPolicy {
        max_attempts,
        hedging_delay: delay,
        non_fatal_codes: Codes::of(&[Code::Unavailable]),
    })
}

/// A proxy over `backends` with `policy` and `budget`, every backend ready.
pub async fn proxy_with(
    backends: &[SocketAddr],
    policy: CallPolicy,
    budget: Option<BudgetConfig>,
) -> TestProxy {
    let mut config = config(backends, PolicyKind::RoundRobin);
    config.upstreams[0].resend.policy = policy;
    config.upstreams[0].resend.budget = budget;
    let proxy = TestProxy::start_config(config).await;
    proxy.wait_ready(backends.len()).await;
    proxy
}

/// A budget too large to matter, for tests of something else.
pub fn ample_budget() -> Option<BudgetConfig> {
    Some(BudgetConfig {
        ratio: 10.0,
        min_per_second: 1000,
    })
}
