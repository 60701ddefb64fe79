//! Through the client library: a server that fails every call at once is
//! ejected after a handful of failed calls, whether its status comes in
//! the response headers or in the trailers after a reply; one that answers
//! NOT_FOUND is not. Three servers, 16 calls in flight, the default
//! `least_request`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use podlb_client::{Channel, OutlierSettings, Trip};
use podlb_testkit::load::{CallKind, LoadReport, run_load};
use podlb_testkit::{Sickness, TestBackend, TestServiceClient};
use tonic::Code;

const IN_FLIGHT: usize = 16;
const CALLS: usize = 900;
/// The detector's run of 5, plus every call already on its way (at most
/// all in flight).
const FAILED_BOUND: usize = 5 + IN_FLIGHT;

/// A channel over `addrs` with a first ejection longer than the run.
async fn channel_over(addrs: &[SocketAddr]) -> Channel {
    let list: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    let channel = Channel::builder(&format!("static:///{}", list.join(",")))
        .unwrap()
        .outlier_detection(OutlierSettings {
            base_ejection_time: Duration::from_secs(120),
            ..OutlierSettings::default()
        })
        .build()
        .unwrap();
    while channel
        .endpoints()
        .iter()
        .filter(|e| e.state == podlb_client::EndpointState::Ready)
        .count()
        < addrs.len()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    channel
}

fn ejected(channel: &Channel) -> Vec<(SocketAddr, Trip)> {
    channel
        .endpoints()
        .iter()
        .filter_map(|e| e.ejection.map(|j| (e.addr.socket_addr(), j.trip)))
        .collect()
}

fn assert_ejected_after_few_failures(report: &LoadReport, channel: &Channel, sick: SocketAddr) {
    println!("{report:?}; ejected: {:?}", ejected(channel));
    assert_eq!(report.total(), CALLS);
    assert_eq!(report.max_in_flight, IN_FLIGHT);
    let failed = report.failures();
    assert!(failed >= 5, "failures before the ejection: {report:?}");
    assert!(failed <= FAILED_BOUND, "at most {FAILED_BOUND}: {report:?}");
    assert_eq!(report.failed.get("Unavailable"), Some(&failed));
    let ejections = ejected(channel);
    assert_eq!(ejections.len(), 1, "{ejections:?}");
    assert_eq!(ejections[0].0, sick);
    assert!(
        matches!(ejections[0].1, Trip::ConsecutiveFailures { failures: 5 }),
        "{ejections:?}"
    );
}

async fn three() -> [TestBackend; 3] {
    [
        TestBackend::start("sick").await,
        TestBackend::start("b2").await,
        TestBackend::start("b3").await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_failing_every_call_in_headers_is_ejected_after_a_few_calls() {
    let [sick, b2, b3] = three().await;
    let channel = channel_over(&[sick.addr(), b2.addr(), b3.addr()]).await;
    sick.set_sickness(Sickness::FailInHeaders(Code::Unavailable));
    let client = TestServiceClient::new(channel.clone());
    let report = run_load(client, CallKind::Unary, IN_FLIGHT, CALLS).await;
    assert_ejected_after_few_failures(&report, &channel, sick.addr());
    assert_eq!(sick.calls_started() as usize, report.failures());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_failing_every_call_in_trailers_after_a_reply_is_ejected_after_a_few_calls() {
    let [sick, b2, b3] = three().await;
    let channel = channel_over(&[sick.addr(), b2.addr(), b3.addr()]).await;
    sick.set_sickness(Sickness::FailInTrailers(Code::Unavailable));
    let client = TestServiceClient::new(channel.clone());
    let report = run_load(client, CallKind::ServerStream, IN_FLIGHT, CALLS).await;
    assert_ejected_after_few_failures(&report, &channel, sick.addr());
    assert_eq!(sick.calls_started() as usize, report.failures());
    assert_eq!(report.answered_by("sick"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_answering_not_found_is_not_ejected() {
    let [picky, b2, b3] = three().await;
    let channel = channel_over(&[picky.addr(), b2.addr(), b3.addr()]).await;
    picky.set_sickness(Sickness::FailInHeaders(Code::NotFound));
    let client = TestServiceClient::new(channel.clone());
    let report = run_load(client, CallKind::Unary, IN_FLIGHT, CALLS).await;
    println!("{report:?}");
    assert_eq!(report.max_in_flight, IN_FLIGHT);
    assert!(ejected(&channel).is_empty());
    let not_found = report.failed.get("NotFound").copied().unwrap_or(0);
    assert_eq!(not_found, report.failures());
    assert_eq!(picky.calls_started() as usize, not_found);
    assert!(not_found >= CALLS / 4, "{report:?}");
}
