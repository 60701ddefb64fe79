//! A replayed request body is sent exactly once per attempt through the
//! proxy: a client stream of 5 messages that fails on one backend after
//! all 5 arrived is retried on another, which reads the same 5 messages
//! and no more (cf. linkerd2#15649, a body sent twice on a retry).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod retry_support;
mod support;

use podlb_testkit::TestBackend;
use podlb_testkit::retry_scenarios::replayed_body_sent_once;
use retry_support::{ample_budget, proxy_with, retry_unavailable};

#[tokio::test]
async fn a_retried_client_stream_reaches_each_attempt_once() {
    let bad = TestBackend::start("bad").await;
    let good = TestBackend::start("good").await;
    let proxy = proxy_with(
        &[bad.addr(), good.addr()],
        retry_unavailable(3),
        ample_budget(),
    )
    .await;
    replayed_body_sent_once(proxy.client().await, &bad, &[&good], 8).await;
    proxy.stop().await;
}
