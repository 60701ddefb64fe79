//! Nothing is retried by the client library after response headers (gRFC
//! A6: they commit the call): a bidi call that got a reply, then
//! UNAVAILABLE in its trailers, is not sent again although UNAVAILABLE is
//! retryable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;
mod retry_support;

use podlb_testkit::retry_scenarios::no_retry_after_headers;
use podlb_testkit::{TestBackend, TestServiceClient};
use retry_support::{ample_budget, builder, connected, retry_unavailable};

#[tokio::test]
async fn a_status_in_trailers_after_a_message_is_not_retried() {
    let backends = [
        TestBackend::start("b1").await,
        TestBackend::start("b2").await,
    ];
    let addrs = [backends[0].addr(), backends[1].addr()];
    let builder = builder(&addrs)
        .retry(retry_unavailable(5))
        .retry_budget(ample_budget());
    let channel = connected(builder, &addrs).await;
    no_retry_after_headers(
        TestServiceClient::new(channel),
        &[&backends[0], &backends[1]],
        6,
    )
    .await;
}
