//! What the client library's retry and hedging tests share: a channel over
//! test backends with a policy, round robin (so first attempts reach every
//! backend in turn), waited on until every backend is connected. The
//! scenarios themselves are `podlb_testkit::retry_scenarios`, shared with
//! the proxy's tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use podlb_client::{BudgetConfig, Builder, Channel, Codes, HedgingPolicy, PolicyKind, RetryPolicy};
use tonic::Code;

use crate::fault_support::wait_for_endpoints;

/// Retries on UNAVAILABLE, up to `max_attempts`, with a backoff of about
/// nothing (so a pushback's delay is the only wait).
pub fn retry_unavailable(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
        backoff_multiplier: 1.0,
        retryable_codes: Codes::of(&[Code::Unavailable]),
        per_try_timeout: None,
    }
}

/// Retries on UNAVAILABLE and after `per_try` without response headers.
pub fn retry_per_try(per_try: Duration) -> RetryPolicy {
    RetryPolicy {
        per_try_timeout: Some(per_try),
        ..retry_unavailable(3)
    }
}

/// Hedging every `delay`, up to `max_attempts`.
pub fn hedge_every(delay: Duration, max_attempts: u32) -> HedgingPolicy {
    HedgingPolicy {
        max_attempts,
        hedging_delay: delay,
        non_fatal_codes: Codes::of(&[Code::Unavailable]),
    }
}

/// A round-robin builder over `backends`.
pub fn builder(backends: &[SocketAddr]) -> Builder {
    let list: Vec<String> = backends.iter().map(SocketAddr::to_string).collect();
    Channel::builder(&format!("static:///{}", list.join(",")))
        .unwrap()
        .policy(PolicyKind::RoundRobin)
}

/// `builder` built, every backend connected.
pub async fn connected(builder: Builder, backends: &[SocketAddr]) -> Channel {
    let channel = builder.build().unwrap();
    wait_for_endpoints(&channel, backends, "a new channel").await;
    channel
}

/// A budget too large to matter, for tests of something else.
pub fn ample_budget() -> Option<BudgetConfig> {
    Some(BudgetConfig {
        ratio: 10.0,
        min_per_second: 1000,
    })
}
