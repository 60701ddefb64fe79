//! A status-based retry goes to another endpoint, through the proxy: one
//! backend answers every call UNAVAILABLE (trailers-only), the others
//! answer; with a retry policy on UNAVAILABLE every call succeeds, and the
//! retries went to the other backends (counted per backend). Once with
//! tonic backends, once with Python grpcio ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod retry_support;
mod support;

use podlb_testkit::TestBackend;
use podlb_testkit::python::PythonServer;
use podlb_testkit::retry_scenarios::{failing_on, retried_elsewhere};
use retry_support::{ample_budget, proxy_with, retry_unavailable};
use tonic::Code;

#[tokio::test]
async fn unavailable_in_headers_is_retried_on_another_backend() {
    let bad = TestBackend::start("bad").await;
    let good = [
        TestBackend::start("good-1").await,
        TestBackend::start("good-2").await,
    ];
    let addrs = [bad.addr(), good[0].addr(), good[1].addr()];
    let proxy = proxy_with(&addrs, retry_unavailable(3), ample_budget()).await;
    retried_elsewhere(proxy.client().await, &bad, &[&good[0], &good[1]], 30).await;
    proxy.stop().await;
}

#[tokio::test]
async fn grpcio_backends_unavailable_in_headers_is_retried_on_another_backend() {
    let bad = PythonServer::start("py-bad").await;
    let good = [
        PythonServer::start("py-1").await,
        PythonServer::start("py-2").await,
    ];
    let addrs = [bad.addr(), good[0].addr(), good[1].addr()];
    let proxy = proxy_with(&addrs, retry_unavailable(3), ample_budget()).await;
    let mut client = proxy.client().await;
    for i in 0..30 {
        let reply = client
            .unary(failing_on(Code::Unavailable, "py-bad"))
            .await
            .unwrap_or_else(|s| panic!("call {i} should have been retried elsewhere: {s:?}"))
            .into_inner();
        assert_ne!(reply.backend, "py-bad", "call {i}");
    }
    proxy.stop().await;
}
