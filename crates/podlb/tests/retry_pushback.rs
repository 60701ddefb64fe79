//! `grpc-retry-pushback-ms` through the proxy (gRFC A6): a negative value
//! means no retry; N ms makes the retry wait at least N ms instead of the
//! policy's backoff (set to about nothing here).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod retry_support;
mod support;

use std::time::Duration;

use podlb_testkit::TestBackend;
use podlb_testkit::retry_scenarios::{negative_pushback_stops, pushback_delays_the_retry};
use retry_support::{ample_budget, proxy_with, retry_unavailable};

#[tokio::test]
async fn negative_pushback_means_no_retry() {
    let backends = [
        TestBackend::start("b1").await,
        TestBackend::start("b2").await,
    ];
    let addrs = [backends[0].addr(), backends[1].addr()];
    let proxy = proxy_with(&addrs, retry_unavailable(5), ample_budget()).await;
    negative_pushback_stops(proxy.client().await, &[&backends[0], &backends[1]], 6).await;
    proxy.stop().await;
}

#[tokio::test]
async fn pushback_replaces_the_backoff() {
    let bad = TestBackend::start("bad").await;
    let good = TestBackend::start("good").await;
    let proxy = proxy_with(
        &[bad.addr(), good.addr()],
        retry_unavailable(2),
        ample_budget(),
    )
    .await;
    pushback_delays_the_retry(proxy.client().await, &bad, 4, Duration::from_millis(300)).await;
    proxy.stop().await;
}
