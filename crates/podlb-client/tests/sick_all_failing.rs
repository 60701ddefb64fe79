//! Through the client library: when every server fails every call, at most
//! the cap is ejected (none, by the shared-outage check) and calls keep
//! spreading over all three.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use podlb_client::{Channel, EndpointState};
use podlb_testkit::load::{CallKind, run_load};
use podlb_testkit::{Sickness, TestBackend, TestServiceClient};
use tonic::Code;

const IN_FLIGHT: usize = 16;
const CALLS: usize = 900;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_server_fails_calls_still_spread_over_all_of_them() {
    let backends = [
        TestBackend::start("b1").await,
        TestBackend::start("b2").await,
        TestBackend::start("b3").await,
    ];
    let list: Vec<String> = backends.iter().map(|b| b.addr().to_string()).collect();
    let channel = Channel::from_target(&format!("static:///{}", list.join(","))).unwrap();
    while channel
        .endpoints()
        .iter()
        .filter(|e| e.state == EndpointState::Ready)
        .count()
        < 3
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for b in &backends {
        b.set_sickness(Sickness::FailInHeaders(Code::Unavailable));
    }
    let client = TestServiceClient::new(channel.clone());
    let report = run_load(client, CallKind::Unary, IN_FLIGHT, CALLS).await;
    let ejected: Vec<SocketAddr> = channel
        .endpoints()
        .iter()
        .filter(|e| e.ejection.is_some())
        .map(|e| e.addr.socket_addr())
        .collect();
    let counts: Vec<u64> = backends.iter().map(TestBackend::calls_started).collect();
    println!("{report:?}; per server {counts:?}; ejected {ejected:?}");
    assert_eq!(report.failed.get("Unavailable"), Some(&CALLS));
    assert_eq!(report.max_in_flight, IN_FLIGHT);
    assert!(ejected.len() <= 1, "{ejected:?}");
    assert!(
        counts.iter().all(|&n| n as usize >= CALLS / 10),
        "{counts:?}"
    );
}
