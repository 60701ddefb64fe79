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

/// The proxy itself answers DEADLINE_EXCEEDED and resets the backend
/// stream, even for a client that does not enforce its own deadline (a raw
/// h2 client sends grpc-timeout and waits as long as it takes) and a backend
/// that ignores it (a raw h2 server that never answers: a tonic backend
/// would race the proxy with its own timer).
#[tokio::test]
async fn proxy_answers_deadline_exceeded_itself() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let (reset_tx, reset_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(tcp).await.unwrap();
        let (_request, mut respond) = conn.accept().await.unwrap().unwrap();
        // Keep the connection going while waiting for the proxy's reset.
        tokio::spawn(async move { while conn.accept().await.is_some() {} });
        let reason = std::future::poll_fn(|cx| respond.poll_reset(cx))
            .await
            .unwrap();
        let _ = reset_tx.send(reason);
    });
    let proxy = TestProxy::start(&[backend], PolicyKind::default()).await;

    let mut h2 = support::raw_h2(proxy.addr).await;
    let request = support::grpc_request(
        proxy.addr,
        "/podlb.test.v1.TestService/Unary",
        &[("grpc-timeout", "100m")],
    );
    let (response, mut body) = h2.send_request(request, false).unwrap();
    body.send_data(support::grpc_frame(&EchoRequest::default()), true)
        .unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "4");
    let message = response.headers()["grpc-message"].to_str().unwrap();
    assert!(message.contains("deadline"), "{message}");
    assert_eq!(reset_rx.await.unwrap(), h2::Reason::CANCEL);
}

/// The backend gets the client's `grpc-timeout` lowered by the time the call
/// spent in the proxy (never raised), and the client's `:authority` and
/// metadata unchanged, while hop-by-hop headers are dropped.
#[tokio::test]
async fn grpc_timeout_is_lowered_and_authority_kept_on_the_way_to_the_backend() {
    // A raw h2 backend that reports the headers of the first call it gets.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut seen_tx = Some(seen_tx);
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut conn = h2::server::handshake(tcp).await.unwrap();
            while let Some(Ok((request, mut respond))) = conn.accept().await {
                if let Some(tx) = seen_tx.take() {
                    let _ = tx.send(request.into_parts().0);
                }
                let response = http::Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", "0")
                    .body(())
                    .unwrap();
                let _ = respond.send_response(response, true);
            }
        }
    });
    let proxy = TestProxy::start(&[backend], PolicyKind::default()).await;
    let mut h2 = support::raw_h2(proxy.addr).await;
    let mut request = support::grpc_request(
        proxy.addr,
        "/podlb.test.v1.TestService/Unary",
        &[("grpc-timeout", "5S"), ("x-meta", "kept")],
    );
    *request.uri_mut() = "http://greeter.example:50051/podlb.test.v1.TestService/Unary"
        .parse()
        .unwrap();
    let (response, mut body) = h2.send_request(request, false).unwrap();
    body.send_data(support::grpc_frame(&EchoRequest::default()), true)
        .unwrap();
    assert_eq!(response.await.unwrap().headers()["grpc-status"], "0");

    let seen = seen_rx.await.unwrap();
    assert_eq!(
        seen.uri.authority().unwrap().as_str(),
        "greeter.example:50051"
    );
    assert_eq!(seen.headers["x-meta"], "kept");
    assert_eq!(seen.headers["te"], "trailers");
    let timeout = seen.headers["grpc-timeout"].to_str().unwrap();
    let (digits, unit) = timeout.split_at(timeout.len() - 1);
    let nanos_per_unit: u128 = match unit {
        "n" => 1,
        "u" => 1_000,
        "m" => 1_000_000,
        "S" => 1_000_000_000,
        other => panic!("unexpected unit {other} in {timeout}"),
    };
    let forwarded = digits.parse::<u128>().unwrap() * nanos_per_unit;
    assert!(forwarded < 5_000_000_000, "not lowered: {timeout}");
    assert!(forwarded > 0, "{timeout}");
}
