//! Cancellation crosses the proxy both ways: a client's RST_STREAM cancels
//! the backend call; a backend's reset reaches the client.

mod support;

use podlb_balance::PolicyKind;
use podlb_testkit::{EchoRequest, TestBackend};
use support::TestProxy;

#[tokio::test]
async fn client_reset_mid_stream_reaches_the_backend() {
    let backend = TestBackend::start("b1").await;
    let proxy = TestProxy::start(&[backend.addr()], PolicyKind::default()).await;
    let mut h2 = support::raw_h2(proxy.addr).await;
    let request = support::grpc_request(proxy.addr, "/podlb.test.v1.TestService/Bidi", &[]);
    let (response, mut body) = h2.send_request(request, false).unwrap();
    body.send_data(support::grpc_frame(&EchoRequest::default()), false)
        .unwrap();
    let mut replies = response.await.unwrap().into_body();
    let first = replies.data().await.unwrap().unwrap();
    assert!(!first.is_empty());
    assert_eq!(backend.calls_cancelled(), 0);
    body.send_reset(h2::Reason::CANCEL);
    let counts = backend.wait_for_cancelled(1).await;
    assert_eq!(counts.cancelled, 1);
}

#[tokio::test]
async fn client_cancel_of_a_waiting_unary_call_reaches_the_backend() {
    let backend = TestBackend::start("b1").await;
    let proxy = TestProxy::start(&[backend.addr()], PolicyKind::default()).await;
    let mut client = proxy.client().await;
    let call = tokio::spawn(async move {
        client
            .unary(EchoRequest {
                sleep_ms: 60_000,
                ..Default::default()
            })
            .await
    });
    backend.wait_for_started(1).await;
    call.abort();
    backend.wait_for_cancelled(1).await;
}

#[tokio::test]
async fn backend_reset_reaches_the_client() {
    // A raw h2 backend that resets every stream with ENHANCE_YOUR_CALM.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut conn = h2::server::handshake(tcp).await.unwrap();
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    respond.send_reset(h2::Reason::ENHANCE_YOUR_CALM);
                }
            });
        }
    });
    let proxy = TestProxy::start(&[addr], PolicyKind::default()).await;
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut h2, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let request = http::Request::post(format!("http://{}/x.Y/Z", proxy.addr))
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let (response, _body) = h2.send_request(request, false).unwrap();
    let err = response.await.unwrap_err();
    assert_eq!(err.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM), "{err:?}");
}
