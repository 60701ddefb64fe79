//! The proxy's own answers are proper gRPC errors: a call no route matches
//! gets UNIMPLEMENTED naming its path, a call to an upstream with no
//! reachable endpoint gets UNAVAILABLE naming the upstream (at once, not
//! after hanging), and on the wire both are trailers-only responses: one
//! HEADERS frame with END_STREAM, `:status` 200, `content-type:
//! application/grpc` and `grpc-status`, and no DATA.

// Test code: a failed unwrap is a failed test, in helpers as in tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;

use podlb_balance::PolicyKind;
use podlb_proxy::{EndpointState, RouteMatch};
use podlb_testkit::{EchoRequest, TestBackend};
use support::TestProxy;
use tonic::Code;

const UNARY: &str = "/podlb.test.v1.TestService/Unary";
const SERVER_STREAM: &str = "/podlb.test.v1.TestService/ServerStream";

/// A proxy in front of `backend` that routes only the Unary method.
async fn unary_only_proxy(backend: &TestBackend) -> TestProxy {
    let mut config = support::config(&[backend.addr()], PolicyKind::default());
    config.listeners[0].routes[0].matcher = RouteMatch::Method(UNARY.into());
    let proxy = TestProxy::start_config(config).await;
    proxy.wait_ready(1).await;
    proxy
}

/// An address nothing listens on: a port bound and released again.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A proxy whose only upstream has one endpoint that refuses connections,
/// once the proxy has tried it and is backing off.
async fn unreachable_upstream_proxy() -> TestProxy {
    let proxy =
        TestProxy::start_config(support::config(&[closed_port()], PolicyKind::default())).await;
    proxy
        .wait_until(|eps| eps.iter().any(|e| e.state == EndpointState::BackingOff))
        .await;
    proxy
}

#[tokio::test]
async fn a_call_no_route_matches_gets_unimplemented_naming_its_path() {
    let backend = TestBackend::start("b1").await;
    let proxy = unary_only_proxy(&backend).await;
    let mut client = proxy.client().await;

    let reply = client.unary(EchoRequest::default()).await.unwrap();
    assert_eq!(reply.into_inner().backend, "b1");

    let status = client
        .server_stream(EchoRequest {
            reply_count: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    assert!(status.message().contains(SERVER_STREAM), "{status:?}");
    assert_eq!(
        backend.calls_started(),
        1,
        "only the routed call got through"
    );
}

#[tokio::test]
async fn a_call_to_an_upstream_without_a_reachable_endpoint_gets_unavailable() {
    let proxy = unreachable_upstream_proxy().await;
    let mut client = proxy.client().await;
    // No deadline: the proxy must answer by itself rather than hold the call.
    let status = client.unary(EchoRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("upstream \"default\""),
        "the message names the upstream: {status:?}"
    );
}

/// Sends one unary call on a raw h2 connection and checks that the answer
/// is a trailers-only error with `code`; returns its grpc-message.
async fn assert_trailers_only(addr: SocketAddr, path: &str, code: Code) -> String {
    let mut h2 = support::raw_h2(addr).await;
    let (response, mut body) = h2
        .send_request(support::grpc_request(addr, path, &[]), false)
        .unwrap();
    // The request may be refused before all of it is read; a failed send
    // does not matter, the response does.
    let _ = body.send_data(support::grpc_frame(&EchoRequest::default()), true);
    let response = response.await.unwrap();
    let (head, mut body) = response.into_parts();
    assert_eq!(head.status, 200, "{head:?}");
    assert!(
        body.is_end_stream(),
        "the HEADERS frame carries END_STREAM: {head:?}"
    );
    assert_eq!(head.headers["content-type"], "application/grpc", "{head:?}");
    assert_eq!(
        head.headers["grpc-status"],
        (code as i32).to_string(),
        "{head:?}"
    );
    assert!(body.data().await.is_none(), "no DATA after trailers-only");
    assert!(
        body.trailers().await.unwrap().is_none(),
        "no second header block"
    );
    let message = head.headers["grpc-message"].to_str().unwrap();
    percent_decode(message)
}

/// grpc-message is percent-encoded (gRPC's HTTP/2 protocol spec).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(Ok(b)) = s.get(i + 1..i + 3).map(|hex| u8::from_str_radix(hex, 16))
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn no_route_is_answered_trailers_only_on_the_wire() {
    let backend = TestBackend::start("b1").await;
    let proxy = unary_only_proxy(&backend).await;
    let message = assert_trailers_only(proxy.addr, SERVER_STREAM, Code::Unimplemented).await;
    assert!(message.contains(SERVER_STREAM), "{message}");
}

#[tokio::test]
async fn unavailable_is_answered_trailers_only_on_the_wire() {
    let proxy = unreachable_upstream_proxy().await;
    let message = assert_trailers_only(proxy.addr, UNARY, Code::Unavailable).await;
    assert!(message.contains("upstream \"default\""), "{message}");
}
