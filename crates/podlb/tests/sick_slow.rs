//! A pod that answers, but 250 ms late, loses its share of calls under
//! `peak_ewma` (its latency estimate) and `least_request` (its calls stay
//! in flight), with 16 calls in flight through the proxy and a grpcio
//! backend among the three. No call fails.

mod support;

use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_testkit::load::{CallKind, run_load};
use podlb_testkit::python::PythonServer;
use podlb_testkit::{Sickness, TestBackend};
use support::TestProxy;

const IN_FLIGHT: usize = 16;
const CALLS: usize = 900;

async fn slow_pod_share(policy: PolicyKind) {
    let slow = TestBackend::start("slow").await;
    let healthy = TestBackend::start("healthy").await;
    let python = PythonServer::start("py-1").await;
    let proxy = TestProxy::start(&[slow.addr(), healthy.addr(), python.addr()], policy).await;
    slow.set_sickness(Sickness::Slow(Duration::from_millis(250)));

    let report = run_load(proxy.client().await, CallKind::Unary, IN_FLIGHT, CALLS).await;
    println!("{policy}: {report:?}");
    assert_eq!(report.failures(), 0, "{report:?}");
    assert_eq!(report.max_in_flight, IN_FLIGHT);
    // A blind policy gives it a third (300); by load or latency it holds a
    // few calls at a time, each 250 ms, while the others answer in about a
    // millisecond. A sixth is far above that and far below a third.
    let to_slow = report.answered_by("slow");
    assert!(to_slow < CALLS / 6, "{policy}: {report:?}");
    assert_eq!(slow.calls_started() as usize, to_slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_pod_gets_a_small_share_under_peak_ewma() {
    slow_pod_share(PolicyKind::PeakEwma).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_pod_gets_a_small_share_under_least_request() {
    slow_pod_share(PolicyKind::LeastRequest).await;
}
