//! Every gRPC call kind goes through the proxy to a tonic backend and back.

mod support;

use futures_util::StreamExt;
use podlb_balance::PolicyKind;
use podlb_testkit::{EchoRequest, TestBackend};
use support::TestProxy;

#[tokio::test]
async fn unary_server_client_and_bidi_streams_pass_through() {
    let backend = TestBackend::start("b1").await;
    let proxy = TestProxy::start(&[backend.addr()], PolicyKind::default()).await;
    let mut client = proxy.client().await;

    let reply = client
        .unary(EchoRequest {
            payload: b"hello".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (reply.backend.as_str(), reply.payload.as_slice()),
        ("b1", &b"hello"[..])
    );

    let mut stream = client
        .server_stream(EchoRequest {
            reply_count: 50,
            reply_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut counts = Vec::new();
    while let Some(reply) = stream.next().await {
        let reply = reply.unwrap();
        assert_eq!(reply.payload.len(), 1000);
        counts.push(reply.count);
    }
    assert_eq!(counts, (1..=50).collect::<Vec<_>>());

    let requests = (0..20).map(|i| EchoRequest {
        payload: vec![i as u8; 100 + i],
        ..Default::default()
    });
    let reply = client
        .client_stream(futures_util::stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.count, 20);
    assert_eq!(
        reply.total_bytes,
        (0..20).map(|i| 100 + i as u64).sum::<u64>()
    );

    // Bidi: each reply arrives before the next request is sent.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut replies = client
        .bidi(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for i in 0..10u8 {
        tx.send(EchoRequest {
            payload: vec![i; 10],
            ..Default::default()
        })
        .await
        .unwrap();
        let reply = replies.next().await.unwrap().unwrap();
        assert_eq!(reply.payload, vec![i; 10]);
    }
    drop(tx);
    assert!(replies.next().await.is_none());
}
