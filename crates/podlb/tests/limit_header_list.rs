//! A call whose header list is over the listener's `max_header_list_bytes`
//! is answered 431 and never reaches a backend; the connection and other
//! clients' calls go on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use podlb_balance::PolicyKind;
use podlb_proxy::ListenerLimits;
use podlb_testkit::{EchoRequest, TestBackend};
use support::TestProxy;

#[tokio::test]
async fn an_oversized_header_list_is_refused_with_431() {
    let backend = TestBackend::start("b1").await;
    let mut config = support::config(&[backend.addr()], PolicyKind::default());
    config.listeners[0].limits = ListenerLimits {
        max_header_list_bytes: 1024,
        ..ListenerLimits::default()
    };
    let proxy = TestProxy::start_config(config).await;
    proxy.wait_ready(1).await;
    let mut other = proxy.client().await;
    other.unary(EchoRequest::default()).await.unwrap();

    let mut h2 = support::raw_h2(proxy.addr).await;
    let big = "x".repeat(2000);
    let request = support::grpc_request(
        proxy.addr,
        "/podlb.test.v1.TestService/Unary",
        &[("x-big", &big)],
    );
    let (response, _body) = h2.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(
        response.status(),
        http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(backend.calls_started(), 1, "only the other client's call");

    // The same connection still takes calls of ordinary size.
    h2 = h2.ready().await.unwrap();
    let request = support::grpc_request(proxy.addr, "/podlb.test.v1.TestService/Unary", &[]);
    let (response, mut body) = h2.send_request(request, false).unwrap();
    body.send_data(support::grpc_frame(&EchoRequest::default()), true)
        .unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        chunk.unwrap();
    }
    let trailers = body.trailers().await.unwrap().unwrap();
    assert_eq!(trailers["grpc-status"], "0");
    other.unary(EchoRequest::default()).await.unwrap();
}
