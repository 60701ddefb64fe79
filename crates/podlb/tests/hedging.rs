//! Hedging through the proxy wins against a slow endpoint: one backend
//! answers 1 s late; with a 50 ms hedging delay every call is answered by
//! the fast one, and the slow one's attempts were cancelled. An attempt
//! answered with a non-fatal status (UNAVAILABLE) sends the next hedge at
//! once, to another backend, which answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod retry_support;
mod support;

use std::time::Duration;

use podlb_testkit::TestBackend;
use podlb_testkit::retry_scenarios::{hedge_beats_a_slow_endpoint, retried_elsewhere};
use retry_support::{ample_budget, hedge_every, proxy_with};

#[tokio::test]
async fn a_hedge_answers_before_a_slow_endpoint() {
    let slow = TestBackend::start_with_delay("slow", Duration::from_secs(1)).await;
    let fast = TestBackend::start("fast").await;
    let policy = hedge_every(Duration::from_millis(50), 2);
    let proxy = proxy_with(&[slow.addr(), fast.addr()], policy, ample_budget()).await;
    hedge_beats_a_slow_endpoint(proxy.client().await, &slow, &fast, 6).await;
    proxy.stop().await;
}

#[tokio::test]
async fn a_non_fatal_status_sends_the_next_hedge() {
    let bad = TestBackend::start("bad").await;
    let good = [
        TestBackend::start("good-1").await,
        TestBackend::start("good-2").await,
    ];
    let addrs = [bad.addr(), good[0].addr(), good[1].addr()];
    // A delay no call waits for: only the non-fatal answer sends a hedge.
    let policy = hedge_every(Duration::from_secs(600), 2);
    let proxy = proxy_with(&addrs, policy, ample_budget()).await;
    retried_elsewhere(proxy.client().await, &bad, &[&good[0], &good[1]], 30).await;
    proxy.stop().await;
}
