//! A per-try timeout moves a call on in the client library: one server
//! answers 1 s late (as a frozen pod sends nothing); with a retry policy
//! whose `per_try_timeout` is 100 ms, every call is answered by the other
//! server, and the slow one's attempts were cancelled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;
mod retry_support;

use std::time::Duration;

use podlb_testkit::retry_scenarios::per_try_timeout_moves_on;
use podlb_testkit::{TestBackend, TestServiceClient};
use retry_support::{ample_budget, builder, connected, retry_per_try};

#[tokio::test]
async fn an_attempt_without_headers_in_time_is_retried_elsewhere() {
    let slow = TestBackend::start_with_delay("slow", Duration::from_secs(1)).await;
    let fast = TestBackend::start("fast").await;
    let addrs = [slow.addr(), fast.addr()];
    let builder = builder(&addrs)
        .retry(retry_per_try(Duration::from_millis(100)))
        .retry_budget(ample_budget());
    let channel = connected(builder, &addrs).await;
    per_try_timeout_moves_on(TestServiceClient::new(channel), &slow, &fast, 6).await;
}
