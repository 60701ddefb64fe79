//! A per-try timeout moves a call on through the proxy: one backend answers
//! 1 s late (as a frozen pod sends nothing); with a retry policy whose
//! `per_try_timeout` is 100 ms, every call is answered by the other
//! backend, and the slow one's attempts were cancelled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod retry_support;
mod support;

use std::time::Duration;

use podlb_testkit::TestBackend;
use podlb_testkit::retry_scenarios::per_try_timeout_moves_on;
use retry_support::{ample_budget, proxy_with, retry_per_try};

#[tokio::test]
async fn an_attempt_without_headers_in_time_is_retried_elsewhere() {
    let slow = TestBackend::start_with_delay("slow", Duration::from_secs(1)).await;
    let fast = TestBackend::start("fast").await;
    let policy = retry_per_try(Duration::from_millis(100));
    let proxy = proxy_with(&[slow.addr(), fast.addr()], policy, ample_budget()).await;
    per_try_timeout_moves_on(proxy.client().await, &slow, &fast, 6).await;
    proxy.stop().await;
}
