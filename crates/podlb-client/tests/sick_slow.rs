//! Through the client library: a server that answers 250 ms late loses its
//! share under `peak_ewma` and `least_request`, 16 calls in flight.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use podlb_client::{Channel, EndpointState, PolicyKind};
use podlb_testkit::load::{CallKind, run_load};
use podlb_testkit::{Sickness, TestBackend, TestServiceClient};

const IN_FLIGHT: usize = 16;
const CALLS: usize = 900;

async fn slow_server_share(policy: PolicyKind) {
    let backends = [
        TestBackend::start("slow").await,
        TestBackend::start("b2").await,
        TestBackend::start("b3").await,
    ];
    let addrs: Vec<SocketAddr> = backends.iter().map(TestBackend::addr).collect();
    let list: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    let channel = Channel::builder(&format!("static:///{}", list.join(",")))
        .unwrap()
        .policy(policy)
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
    backends[0].set_sickness(Sickness::Slow(Duration::from_millis(250)));
    let report = run_load(
        TestServiceClient::new(channel),
        CallKind::Unary,
        IN_FLIGHT,
        CALLS,
    )
    .await;
    println!("{policy}: {report:?}");
    assert_eq!(report.failures(), 0);
    assert_eq!(report.max_in_flight, IN_FLIGHT);
    // A blind policy gives it a third; a sixth is far above what load or
    // latency leave it (a few calls of 250 ms at a time).
    assert!(
        report.answered_by("slow") < CALLS / 6,
        "{policy}: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_gets_a_small_share_under_peak_ewma() {
    slow_server_share(PolicyKind::PeakEwma).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_gets_a_small_share_under_least_request() {
    slow_server_share(PolicyKind::LeastRequest).await;
}
