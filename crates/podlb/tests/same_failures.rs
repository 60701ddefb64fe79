//! The proxy and the client library run each call on one engine and answer
//! podlb's own failures with one mapping: the same failure reads the same
//! through both, with the same code and a message that names the upstream
//! and the endpoint (`podlb: upstream "NAME" (TARGET): endpoint ADDR: ...`).
//!
//! The backend here is a raw HTTP/2 server that takes calls and never
//! answers them, or drops its connection as soon as one arrives.

// Test code: a failed unwrap is a failed test, in helpers as in tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_testkit::{EchoRequest, TestServiceClient};
use support::TestProxy;
use tokio::net::TcpListener;
use tonic::{Code, Status};

const UNARY: &str = "/podlb.test.v1.TestService/Unary";

/// What the stuck backend does with a call.
#[derive(Clone, Copy)]
enum OnCall {
    /// Holds it open, never answering.
    Hold,
    /// Drops the whole connection (no GOAWAY, no RST_STREAM).
    DropConnection,
}

/// An HTTP/2 server on 127.0.0.1 that answers the handshake and PINGs but
/// never a call.
async fn stuck_backend(on_call: OnCall) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                let mut held = Vec::new();
                while let Some(Ok(call)) = conn.accept().await {
                    match on_call {
                        OnCall::Hold => held.push(call),
                        OnCall::DropConnection => return,
                    }
                }
            });
        }
    });
    addr
}

/// The status the proxy answers a Unary call to `backend` with, sent with
/// a raw HTTP/2 client so that no client-side timer races the proxy's.
async fn through_proxy(backend: SocketAddr, timeout: Option<&str>) -> Status {
    let proxy = TestProxy::start(&[backend], PolicyKind::default()).await;
    proxy.wait_ready(1).await;
    let mut h2 = support::raw_h2(proxy.addr).await;
    let headers: Vec<(&str, &str)> = timeout.map(|t| ("grpc-timeout", t)).into_iter().collect();
    let request = support::grpc_request(proxy.addr, UNARY, &headers);
    let (response, mut body) = h2.send_request(request, false).unwrap();
    body.send_data(support::grpc_frame(&EchoRequest::default()), true)
        .unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let status = match Status::from_header_map(response.headers()) {
        Some(status) => status,
        None => {
            let mut body = response.into_body();
            while body.data().await.is_some() {}
            let trailers = body.trailers().await.unwrap().expect("trailers");
            Status::from_header_map(&trailers).expect("a grpc-status")
        }
    };
    proxy.stop().await;
    status
}

/// The status the client library answers a Unary call to `backend` with.
async fn through_client(backend: SocketAddr, timeout: Option<Duration>) -> Status {
    let channel = podlb_client::Channel::from_target(&format!("static:///{backend}")).unwrap();
    let mut client = TestServiceClient::new(channel);
    let mut request = tonic::Request::new(EchoRequest::default());
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    client.unary(request).await.unwrap_err()
}

/// Checks `status` is podlb's own answer, with `code`, naming an upstream
/// and `backend`, and returns what its message says after the endpoint.
fn podlb_says(status: &Status, code: Code, backend: SocketAddr) -> String {
    assert_eq!(status.code(), code, "{status:?}");
    let message = status.message();
    assert!(message.starts_with("podlb: upstream \""), "{status:?}");
    let endpoint = format!("endpoint {backend}");
    let at = message
        .find(&endpoint)
        .unwrap_or_else(|| panic!("the message should name {endpoint}: {status:?}"));
    message[at + endpoint.len()..].to_string()
}

#[tokio::test]
async fn a_call_past_its_deadline_reads_the_same_through_proxy_and_client() {
    let backend = stuck_backend(OnCall::Hold).await;
    let proxy = through_proxy(backend, Some("300m")).await;
    let client = through_client(backend, Some(Duration::from_millis(300))).await;
    let (proxy, client) = (
        podlb_says(&proxy, Code::DeadlineExceeded, backend),
        podlb_says(&client, Code::DeadlineExceeded, backend),
    );
    // "... deadline exceeded on endpoint ADDR": nothing follows the address.
    assert_eq!((proxy.as_str(), client.as_str()), ("", ""));
}

#[tokio::test]
async fn a_connection_lost_under_a_call_reads_the_same_through_proxy_and_client() {
    let backend = stuck_backend(OnCall::DropConnection).await;
    let proxy = through_proxy(backend, None).await;
    let client = through_client(backend, None).await;
    let proxy = podlb_says(&proxy, Code::Unavailable, backend);
    let client = podlb_says(&client, Code::Unavailable, backend);
    assert!(proxy.starts_with(": "), "{proxy}");
    assert!(client.starts_with(": "), "{client}");
}
