//! Large messages pass through the proxy whole and unchanged: a 16 MiB unary
//! call and reply, and streams of 128 messages of 64 KiB in each direction,
//! checked by size and by content.

mod support;

use futures_util::StreamExt;
use podlb_balance::PolicyKind;
use podlb_testkit::{EchoRequest, TestBackend, TestServiceClient};
use support::TestProxy;
use tonic::transport::Channel;

/// Above tonic's 4 MiB default and below the test backend's 64 MiB limit.
const CLIENT_MAX_MESSAGE: usize = 32 * 1024 * 1024;
const STREAM_MESSAGES: usize = 128;
const STREAM_MESSAGE_SIZE: usize = 64 * 1024;

/// `len` bytes that differ from message to message (by `seed`) and along
/// the message, so a dropped, repeated or reordered chunk shows.
fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 7 + seed * 31 + i % 251) % 256) as u8)
        .collect()
}

async fn start() -> (TestBackend, TestProxy, TestServiceClient<Channel>) {
    let backend = TestBackend::start("b1").await;
    let proxy = TestProxy::start(&[backend.addr()], PolicyKind::default()).await;
    let client = proxy
        .client()
        .await
        .max_decoding_message_size(CLIENT_MAX_MESSAGE)
        .max_encoding_message_size(CLIENT_MAX_MESSAGE);
    (backend, proxy, client)
}

#[tokio::test]
async fn a_16_mib_unary_request_and_reply_pass_unchanged() {
    let (_backend, _proxy, mut client) = start().await;
    let payload = pattern(16 * 1024 * 1024, 1);
    let reply = client
        .unary(EchoRequest {
            payload: payload.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.backend, "b1");
    assert_eq!(reply.payload.len(), payload.len());
    assert!(reply.payload == payload, "the 16 MiB reply differs");
}

#[tokio::test]
async fn a_client_stream_of_128_messages_of_64_kib_arrives_whole() {
    let (_backend, _proxy, mut client) = start().await;
    let requests = (0..STREAM_MESSAGES).map(|i| EchoRequest {
        payload: pattern(STREAM_MESSAGE_SIZE, i),
        ..Default::default()
    });
    let reply = client
        .client_stream(futures_util::stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    // The backend counts the messages it decoded and their payload bytes:
    // a message cut or merged by the proxy changes one or the other.
    assert_eq!(reply.count, STREAM_MESSAGES as u64);
    assert_eq!(
        reply.total_bytes,
        (STREAM_MESSAGES * STREAM_MESSAGE_SIZE) as u64
    );
}

#[tokio::test]
async fn a_bidi_stream_of_128_messages_of_64_kib_is_echoed_in_order() {
    // The client stream above can only be checked by size; here the backend
    // echoes every message, so the content is checked too.
    let (_backend, _proxy, mut client) = start().await;
    let requests = (0..STREAM_MESSAGES).map(|i| EchoRequest {
        payload: pattern(STREAM_MESSAGE_SIZE, i),
        ..Default::default()
    });
    let mut replies = client
        .bidi(futures_util::stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut received = 0;
    while let Some(reply) = replies.next().await {
        let reply = reply.unwrap();
        assert_eq!(reply.count, received as u64 + 1);
        assert!(
            reply.payload == pattern(STREAM_MESSAGE_SIZE, received),
            "echo {} differs",
            received + 1
        );
        received += 1;
    }
    assert_eq!(received, STREAM_MESSAGES);
}

#[tokio::test]
async fn a_server_stream_of_128_replies_of_64_kib_arrives_whole() {
    let (_backend, _proxy, mut client) = start().await;
    let payload = pattern(STREAM_MESSAGE_SIZE, 7);
    let mut replies = client
        .server_stream(EchoRequest {
            payload: payload.clone(),
            reply_count: STREAM_MESSAGES as u32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut counts = Vec::new();
    while let Some(reply) = replies.next().await {
        let reply = reply.unwrap();
        assert_eq!(reply.payload.len(), STREAM_MESSAGE_SIZE);
        assert!(
            reply.payload == payload,
            "reply {} has other content",
            reply.count
        );
        counts.push(reply.count);
    }
    assert_eq!(counts, (1..=STREAM_MESSAGES as u64).collect::<Vec<_>>());
}
