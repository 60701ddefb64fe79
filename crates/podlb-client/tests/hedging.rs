//! Hedging in the client library wins against a slow server: one answers
//! 1 s late; with a 50 ms hedging delay every call is answered by the fast
//! one, and the slow one's attempts were cancelled. An attempt answered
//! with a non-fatal status (UNAVAILABLE) sends the next hedge at once, to
//! another server, which answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;
mod retry_support;

use std::time::Duration;

use podlb_testkit::retry_scenarios::{hedge_beats_a_slow_endpoint, retried_elsewhere};
use podlb_testkit::{TestBackend, TestServiceClient};
use retry_support::{ample_budget, builder, connected, hedge_every};

#[tokio::test]
async fn a_hedge_answers_before_a_slow_server() {
    let slow = TestBackend::start_with_delay("slow", Duration::from_secs(1)).await;
    let fast = TestBackend::start("fast").await;
    let addrs = [slow.addr(), fast.addr()];
    let builder = builder(&addrs)
        .hedging(hedge_every(Duration::from_millis(50), 2))
        .retry_budget(ample_budget());
    let channel = connected(builder, &addrs).await;
    hedge_beats_a_slow_endpoint(TestServiceClient::new(channel), &slow, &fast, 6).await;
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
    let builder = builder(&addrs)
        .hedging(hedge_every(Duration::from_secs(600), 2))
        .retry_budget(ample_budget());
    let channel = connected(builder, &addrs).await;
    retried_elsewhere(
        TestServiceClient::new(channel),
        &bad,
        &[&good[0], &good[1]],
        30,
    )
    .await;
}
