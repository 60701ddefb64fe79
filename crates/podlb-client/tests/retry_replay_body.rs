//! A replayed request body is sent exactly once per attempt by the client
//! library: a client stream of 5 messages that fails on one server after
//! all 5 arrived is retried on another, which reads the same 5 messages
//! and no more (cf. linkerd2#15649, a body sent twice on a retry).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;
mod retry_support;

use podlb_testkit::retry_scenarios::replayed_body_sent_once;
use podlb_testkit::{TestBackend, TestServiceClient};
use retry_support::{ample_budget, builder, connected, retry_unavailable};

#[tokio::test]
async fn a_retried_client_stream_reaches_each_attempt_once() {
    let bad = TestBackend::start("bad").await;
    let good = TestBackend::start("good").await;
    let addrs = [bad.addr(), good.addr()];
    let builder = builder(&addrs)
        .retry(retry_unavailable(3))
        .retry_budget(ample_budget());
    let channel = connected(builder, &addrs).await;
    replayed_body_sent_once(TestServiceClient::new(channel), &bad, &[&good], 8).await;
}
