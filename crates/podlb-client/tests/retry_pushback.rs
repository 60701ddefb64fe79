//! `grpc-retry-pushback-ms` in the client library (gRFC A6): a negative
//! value means no retry; N ms makes the retry wait at least N ms instead of
//! the policy's backoff (set to about nothing here).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;
mod retry_support;

use std::time::Duration;

use podlb_testkit::retry_scenarios::{negative_pushback_stops, pushback_delays_the_retry};
use podlb_testkit::{TestBackend, TestServiceClient};
use retry_support::{ample_budget, builder, connected, retry_unavailable};

#[tokio::test]
async fn negative_pushback_means_no_retry() {
    let backends = [
        TestBackend::start("b1").await,
        TestBackend::start("b2").await,
    ];
    let addrs = [backends[0].addr(), backends[1].addr()];
    let builder = builder(&addrs)
        .retry(retry_unavailable(5))
        .retry_budget(ample_budget());
    let channel = connected(builder, &addrs).await;
    negative_pushback_stops(
        TestServiceClient::new(channel),
        &[&backends[0], &backends[1]],
        6,
    )
    .await;
}

#[tokio::test]
async fn pushback_replaces_the_backoff() {
    let bad = TestBackend::start("bad").await;
    let good = TestBackend::start("good").await;
    let addrs = [bad.addr(), good.addr()];
    let builder = builder(&addrs)
        .retry(retry_unavailable(2))
        .retry_budget(ample_budget());
    let channel = connected(builder, &addrs).await;
    pushback_delays_the_retry(
        TestServiceClient::new(channel),
        &bad,
        4,
        Duration::from_millis(300),
    )
    .await;
}
