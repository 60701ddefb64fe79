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
