//! Through the client library: an ejected server comes back when its
//! ejection ends (1 s here) and, healed, takes calls again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use podlb_client::{Channel, EndpointState, OutlierSettings};
use podlb_testkit::load::{CallKind, run_load};
use podlb_testkit::{Sickness, TestBackend, TestServiceClient};
use tonic::Code;

const IN_FLIGHT: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_server_that_heals_takes_calls_again() {
    let backends = [
        TestBackend::start("sick").await,
        TestBackend::start("b2").await,
        TestBackend::start("b3").await,
    ];
    let list: Vec<String> = backends.iter().map(|b| b.addr().to_string()).collect();
    let channel = Channel::builder(&format!("static:///{}", list.join(",")))
        .unwrap()
        .outlier_detection(OutlierSettings {
            base_ejection_time: Duration::from_secs(1),
            ..OutlierSettings::default()
        })
        .build()
        .unwrap();
    while channel
        .endpoints()
        .iter()
        .filter(|e| e.state == EndpointState::Ready)
        .count()
        < 3
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sick = &backends[0];
    let ejection = || {
        channel
            .endpoints()
            .into_iter()
            .find(|e| e.addr.socket_addr() == sick.addr())
            .and_then(|e| e.ejection)
    };
    sick.set_sickness(Sickness::FailInHeaders(Code::Unavailable));
    let client = TestServiceClient::new(channel.clone());
    let before = run_load(client.clone(), CallKind::Unary, IN_FLIGHT, 300).await;
    let ejected = ejection().expect("the sick server is ejected");
    println!("sick: {before:?}; {ejected}");
    assert!(before.failures() >= 5);

    sick.set_sickness(Sickness::Healthy);
    while ejection().is_some() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after = run_load(client, CallKind::Unary, IN_FLIGHT, 900).await;
    println!("healed: {after:?}");
    assert_eq!(after.failures(), 0);
    assert!(after.answered_by("sick") > 0, "back in rotation: {after:?}");
}
