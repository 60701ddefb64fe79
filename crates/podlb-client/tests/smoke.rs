//! A tonic-generated client works over a podlb-client Channel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use podlb_testkit::{EchoRequest, TestBackend, TestServiceClient};

#[tokio::test]
async fn a_generated_client_calls_through_the_channel() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let target = format!("static:///{},{}", a.addr(), b.addr());
    let channel = podlb_client::Channel::builder(&target)
        .unwrap()
        .policy(podlb_client::PolicyKind::RoundRobin)
        .build()
        .unwrap();
    let mut client = TestServiceClient::new(channel.clone());
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..100 {
        let reply = client
            .unary(EchoRequest {
                payload: b"hi".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        *seen.entry(reply.backend).or_insert(0) += 1;
    }
    println!("{seen:?} {:?}", channel.endpoints());
    assert_eq!(seen.len(), 2);
}

/// A call made the moment a channel is built waits for the first
/// connections instead of failing fast: on a multi-threaded runtime,
/// discovery can answer before its answer reaches the endpoint set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_call_on_a_new_channel_waits_for_its_connections() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let target = format!("static:///{},{}", a.addr(), b.addr());
    for round in 0..40 {
        let channel = podlb_client::Channel::from_target(&target).unwrap();
        let mut client = TestServiceClient::new(channel);
        if let Err(status) = client.unary(EchoRequest::default()).await {
            panic!("round {round}: the first call failed: {status:?}");
        }
    }
}
