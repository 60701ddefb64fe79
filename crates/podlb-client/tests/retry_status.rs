//! A status-based retry goes to another endpoint, through the client
//! library: one server answers every call UNAVAILABLE (trailers-only), the
//! others answer; with a retry policy on UNAVAILABLE every call succeeds,
//! and the retries went to the other servers (counted per server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;
mod retry_support;

use podlb_testkit::retry_scenarios::retried_elsewhere;
use podlb_testkit::{TestBackend, TestServiceClient};
use retry_support::{ample_budget, builder, connected, retry_unavailable};

#[tokio::test]
async fn unavailable_in_headers_is_retried_on_another_server() {
    let bad = TestBackend::start("bad").await;
    let good = [
        TestBackend::start("good-1").await,
        TestBackend::start("good-2").await,
    ];
    let addrs = [bad.addr(), good[0].addr(), good[1].addr()];
    let builder = builder(&addrs)
        .retry(retry_unavailable(3))
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
