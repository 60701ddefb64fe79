//! An upstream's `max_message_bytes` is enforced by the proxy in both
//! directions: messages up to the limit pass; a larger request ends the call
//! with RESOURCE_EXHAUSTED before any reply, and a larger reply ends a
//! stream whose headers were already sent with RESOURCE_EXHAUSTED in its
//! trailers.

mod support;

use futures_util::StreamExt;
use podlb_balance::PolicyKind;
use podlb_testkit::{EchoRequest, TestBackend, TestServiceClient};
use prost::Message;
use support::TestProxy;
use tonic::Code;
use tonic::transport::Channel;

const LIMIT: u64 = 1024;

/// A backend behind a proxy whose only upstream allows messages of at most
/// [`LIMIT`] bytes.
async fn start() -> (TestBackend, TestProxy, TestServiceClient<Channel>) {
    let backend = TestBackend::start("b1").await;
    let mut config = support::config(&[backend.addr()], PolicyKind::default());
    config.upstreams[0].max_message_bytes = Some(LIMIT);
    let proxy = TestProxy::start_config(config).await;
    proxy.wait_ready(1).await;
    let client = proxy.client().await;
    (backend, proxy, client)
}

fn with_payload(len: usize) -> EchoRequest {
    EchoRequest {
        payload: vec![b'x'; len],
        ..Default::default()
    }
}

#[tokio::test]
async fn messages_up_to_the_limit_pass() {
    let (_backend, _proxy, mut client) = start().await;
    let reply = client.unary(with_payload(100)).await.unwrap().into_inner();
    assert_eq!(reply.payload, vec![b'x'; 100]);

    // The limit is inclusive. The reply is the request's payload plus the
    // backend's id, 4 bytes more: here the reply is exactly at the limit.
    let request = with_payload(1017);
    let reply = client.unary(request.clone()).await.unwrap().into_inner();
    assert_eq!(reply.payload, request.payload);
    assert_eq!(reply.encoded_len() as u64, LIMIT);

    // A request exactly at the limit passes too; its echo, 4 bytes over,
    // is what fails.
    let at_limit = with_payload(1021);
    assert_eq!(at_limit.encoded_len() as u64, LIMIT);
    let status = client.unary(at_limit).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains("a response message of 1028 bytes"),
        "{status:?}"
    );

    let mut replies = client
        .server_stream(EchoRequest {
            reply_count: 10,
            reply_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(reply) = replies.next().await {
        assert_eq!(reply.unwrap().payload.len(), 100);
        n += 1;
    }
    assert_eq!(n, 10);
}

#[tokio::test]
async fn a_request_over_the_limit_gets_resource_exhausted() {
    let (_backend, _proxy, mut client) = start().await;
    for len in [1022, 4096] {
        let request = with_payload(len);
        let size = request.encoded_len();
        let status = client.unary(request).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::ResourceExhausted,
            "{size} bytes: {status:?}"
        );
        assert!(
            status.message().contains("max_message_bytes"),
            "{size} bytes: {status:?}"
        );
        assert!(
            status
                .message()
                .contains(&format!("a request message of {size} bytes")),
            "the message names the direction and size: {status:?}"
        );
    }
    // The connection and the upstream are still good for the next call.
    let reply = client.unary(with_payload(100)).await.unwrap().into_inner();
    assert_eq!(reply.payload.len(), 100);
}

#[tokio::test]
async fn a_reply_over_the_limit_ends_the_stream_with_resource_exhausted_in_trailers() {
    let (_backend, _proxy, mut client) = start().await;
    // tonic returns the response only once it has headers without a
    // grpc-status: an Ok here means the error did not come trailers-only.
    let mut replies = client
        .server_stream(EchoRequest {
            reply_count: 3,
            reply_size: 4096,
            ..Default::default()
        })
        .await
        .expect("response headers before the error")
        .into_inner();
    let status = replies
        .next()
        .await
        .expect("the stream ends with a status")
        .expect_err("a 4 KiB reply must not pass");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("max_message_bytes"), "{status:?}");
    assert!(status.message().contains("response"), "{status:?}");
    assert!(replies.next().await.is_none());
}

/// The same, on the wire: response HEADERS without grpc-status, no DATA,
/// then trailers carrying grpc-status 8.
#[tokio::test]
async fn a_reply_over_the_limit_on_the_wire_is_headers_then_trailers() {
    let (_backend, proxy, _client) = start().await;
    let mut h2 = support::raw_h2(proxy.addr).await;
    let request = support::grpc_request(proxy.addr, "/podlb.test.v1.TestService/ServerStream", &[]);
    let (response, mut body) = h2.send_request(request, false).unwrap();
    let big_replies = EchoRequest {
        reply_count: 3,
        reply_size: 4096,
        ..Default::default()
    };
    body.send_data(support::grpc_frame(&big_replies), true)
        .unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        !response.headers().contains_key("grpc-status"),
        "{:?}",
        response.headers()
    );
    let mut body = response.into_body();
    let mut data = 0;
    while let Some(chunk) = body.data().await {
        data += chunk.unwrap().len();
    }
    assert_eq!(data, 0, "no byte of the too large reply reaches the client");
    let trailers = body.trailers().await.unwrap().expect("trailers");
    assert_eq!(trailers["grpc-status"], "8", "{trailers:?}");
}
