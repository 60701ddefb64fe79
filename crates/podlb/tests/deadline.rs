//! `grpc-timeout` is enforced by the proxy: at expiry the backend stream is
//! reset (the backend sees the cancel) and the client gets DEADLINE_EXCEEDED.

mod support;

use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_testkit::{EchoRequest, TestBackend};
use support::TestProxy;
use tonic::{Code, Request};

#[tokio::test]
async fn deadline_expiry_cancels_the_backend_call() {
    let backend = TestBackend::start("b1").await;
    let proxy = TestProxy::start(&[backend.addr()], PolicyKind::default()).await;
    let mut client = proxy.client().await;

    let mut request = Request::new(EchoRequest {
        sleep_ms: 60_000,
        ..Default::default()
    });
    request.set_timeout(Duration::from_millis(200));
    let status = client.unary(request).await.unwrap_err();
    // tonic's client enforces the deadline too and may win the race with
    // its own CANCELLED "Timeout expired"; the proxy's own answer is tested
    // below with a client that does not.
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    let counts = backend.wait_for_cancelled(1).await;
    assert_eq!(counts.cancelled, 1);
}

/// The proxy itself answers DEADLINE_EXCEEDED, even for a client that does
/// not enforce its own deadline (a raw h2 client sends grpc-timeout and
/// waits as long as it takes).
#[tokio::test]
async fn proxy_answers_deadline_exceeded_itself() {
    let backend = TestBackend::start("b1").await;
    let proxy = TestProxy::start(&[backend.addr()], PolicyKind::default()).await;

    let mut h2 = support::raw_h2(proxy.addr).await;
    let request = support::grpc_request(
        proxy.addr,
        "/podlb.test.v1.TestService/Unary",
        &[("grpc-timeout", "100m")],
    );
    let (response, mut body) = h2.send_request(request, false).unwrap();
    let sleepy = EchoRequest {
        sleep_ms: 60_000,
        ..Default::default()
    };
    body.send_data(support::grpc_frame(&sleepy), true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "4");
    let message = response.headers()["grpc-message"].to_str().unwrap();
    assert!(message.contains("deadline"), "{message}");
    backend.wait_for_cancelled(1).await;
}
