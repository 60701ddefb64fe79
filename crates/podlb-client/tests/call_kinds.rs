//! Every gRPC call kind goes through a podlb-client Channel to tonic
//! backends and back whole: unary (up to a 3 MiB message), a server stream
//! eight times the stream's flow-control window, a client stream of a
//! thousand messages, and bidi calls of many messages, ping-pong and
//! pipelined. Each call is balanced on its own: round-robin names every
//! backend in turn, and all of one call's replies come from one backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod semantics_support;

use std::collections::BTreeMap;

use futures_util::StreamExt;
use podlb_client::{Channel, PolicyKind};
use podlb_testkit::{EchoRequest, TestBackend, tally};
use semantics_support::{client, ready_channel};

const IDS: [&str; 3] = ["a", "b", "c"];

/// Three backends behind a round-robin channel, all ready.
async fn three_backends() -> (Vec<TestBackend>, Channel) {
    let mut backends = Vec::new();
    for id in IDS {
        backends.push(TestBackend::start(id).await);
    }
    let addrs: Vec<_> = backends.iter().map(TestBackend::addr).collect();
    let channel = ready_channel(&addrs, PolicyKind::RoundRobin).await;
    (backends, channel)
}

/// Each of the three backends named `n` times.
fn each_backend(n: usize) -> BTreeMap<String, usize> {
    IDS.iter().map(|id| (id.to_string(), n)).collect()
}

#[tokio::test]
async fn unary_calls_echo_their_payload_and_go_to_every_backend_in_turn() {
    let (_backends, channel) = three_backends().await;
    let mut client = client(&channel);

    let mut answered = Vec::new();
    for i in 0..30u8 {
        let payload = vec![i; usize::from(i) * 37];
        let reply = client
            .unary(EchoRequest {
                payload: payload.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.payload, payload, "call {i}");
        answered.push(reply.backend);
    }
    assert_eq!(tally(answered.iter().map(String::as_str)), each_backend(10));

    // A large message: three times the 1 MiB stream window each way.
    let payload: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let reply = client
        .unary(EchoRequest {
            payload: payload.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        reply.payload == payload,
        "the 3 MiB payload came back changed"
    );
    assert!(IDS.contains(&reply.backend.as_str()), "{}", reply.backend);
}

#[tokio::test]
async fn a_large_server_stream_arrives_whole_in_order_from_one_backend() {
    let (_backends, channel) = three_backends().await;
    let mut client = client(&channel);

    // 2000 replies of 4 KiB: 8 MiB, eight times the stream window, so the
    // channel must give window back as the replies are read.
    let mut stream = client
        .server_stream(EchoRequest {
            reply_count: 2000,
            reply_size: 4096,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut counts = Vec::new();
    let mut answered = Vec::new();
    while let Some(reply) = stream.message().await.unwrap() {
        assert!(
            reply.payload.len() == 4096 && reply.payload.iter().all(|&b| b == 0),
            "reply {} has a payload of {} bytes, not 4096 zeros",
            reply.count,
            reply.payload.len()
        );
        counts.push(reply.count);
        answered.push(reply.backend);
    }
    assert_eq!(counts, (1..=2000).collect::<Vec<u64>>());
    let one = tally(answered.iter().map(String::as_str));
    assert_eq!(one.len(), 1, "one call, one backend: {one:?}");
    assert!(IDS.contains(&answered[0].as_str()), "{one:?}");

    // The next three streams go to each backend once.
    let mut answered = Vec::new();
    for _ in 0..3 {
        let replies: Vec<_> = client
            .server_stream(EchoRequest {
                payload: b"p".to_vec(),
                reply_count: 3,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .collect()
            .await;
        let replies: Vec<_> = replies.into_iter().map(Result::unwrap).collect();
        assert_eq!(replies.len(), 3);
        assert!(replies.iter().all(|r| r.backend == replies[0].backend));
        answered.push(replies[0].backend.clone());
    }
    assert_eq!(tally(answered.iter().map(String::as_str)), each_backend(1));
}

#[tokio::test]
async fn a_client_stream_of_a_thousand_messages_is_counted_by_one_backend() {
    let (_backends, channel) = three_backends().await;
    let mut client = client(&channel);

    let mut answered = Vec::new();
    for call in 0..3usize {
        let requests = (0..1000usize).map(move |i| EchoRequest {
            payload: vec![call as u8; (i * 7 + call) % 1500],
            ..Default::default()
        });
        let expected_bytes: u64 = (0..1000usize).map(|i| ((i * 7 + call) % 1500) as u64).sum();
        let reply = client
            .client_stream(futures_util::stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (reply.count, reply.total_bytes),
            (1000, expected_bytes),
            "call {call}"
        );
        answered.push(reply.backend);
    }
    assert_eq!(tally(answered.iter().map(String::as_str)), each_backend(1));
}

#[tokio::test]
async fn a_bidi_call_exchanges_many_messages_ping_pong_with_one_backend() {
    let (_backends, channel) = three_backends().await;
    let mut client = client(&channel);

    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut replies = client
        .bidi(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut answered = Vec::new();
    // Each reply arrives before the next message is sent.
    for i in 0..500u64 {
        let payload = i.to_be_bytes().repeat(1 + (i % 20) as usize);
        tx.send(EchoRequest {
            payload: payload.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
        let reply = replies.message().await.unwrap().expect("a reply");
        assert_eq!((reply.count, &reply.payload), (i + 1, &payload));
        answered.push(reply.backend);
    }
    drop(tx);
    assert!(replies.message().await.unwrap().is_none());
    let one = tally(answered.iter().map(String::as_str));
    assert_eq!(one.len(), 1, "one call, one backend: {one:?}");
}

#[tokio::test]
async fn pipelined_bidi_calls_get_every_reply_in_order_and_spread_over_backends() {
    let (_backends, channel) = three_backends().await;
    let mut client = client(&channel);

    let mut answered = Vec::new();
    for _ in 0..3 {
        // Every message is sent without waiting for replies.
        let requests = (0..5000u32).map(|i| EchoRequest {
            payload: i.to_be_bytes().repeat(50),
            ..Default::default()
        });
        let mut replies = client
            .bidi(futures_util::stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        let mut n = 0u32;
        let mut backends = Vec::new();
        while let Some(reply) = replies.message().await.unwrap() {
            assert_eq!(u64::from(n) + 1, reply.count);
            assert_eq!(reply.payload, n.to_be_bytes().repeat(50), "reply {n}");
            backends.push(reply.backend);
            n += 1;
        }
        assert_eq!(n, 5000);
        let one = tally(backends.iter().map(String::as_str));
        assert_eq!(one.len(), 1, "one call, one backend: {one:?}");
        answered.push(backends.swap_remove(0));
    }
    assert_eq!(tally(answered.iter().map(String::as_str)), each_backend(1));
}
