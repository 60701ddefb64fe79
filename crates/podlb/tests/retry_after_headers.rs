//! Nothing is retried through the proxy after response headers (gRFC A6:
//! they commit the call): a bidi call that got a reply, then UNAVAILABLE in
//! its trailers, is not sent again although UNAVAILABLE is retryable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod retry_support;
mod support;

use podlb_testkit::TestBackend;
use podlb_testkit::retry_scenarios::no_retry_after_headers;
use retry_support::{ample_budget, proxy_with, retry_unavailable};

#[tokio::test]
async fn a_status_in_trailers_after_a_message_is_not_retried() {
    let backends = [
        TestBackend::start("b1").await,
        TestBackend::start("b2").await,
    ];
    let addrs = [backends[0].addr(), backends[1].addr()];
    let proxy = proxy_with(&addrs, retry_unavailable(5), ample_budget()).await;
    no_retry_after_headers(proxy.client().await, &[&backends[0], &backends[1]], 6).await;
    proxy.stop().await;
}
