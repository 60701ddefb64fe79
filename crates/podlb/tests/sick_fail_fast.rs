//! A pod that is up but fails every call at once (its dependency died,
//! its health check still passes) is ejected by outlier detection after a
//! handful of failed calls, whether its status comes in the response
//! headers (trailers-only) or in the trailers after a reply; a pod that
//! answers NOT_FOUND (an answer about the call) is not. Three backends,
//! one of them Python grpcio, 16 calls in flight through the proxy with
//! its default `least_request`, which without outlier detection sends the
//! fail-fast pod *most* calls (it never has one in flight).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_balance::outlier::{OutlierSettings, Trip};
use podlb_testkit::load::{CallKind, LoadReport, run_load};
use podlb_testkit::python::PythonServer;
use podlb_testkit::{Sickness, TestBackend};
use support::TestProxy;
use tonic::Code;

const IN_FLIGHT: usize = 16;
const CALLS: usize = 900;

/// The most calls a fail-fast pod can fail: the detector's run of
/// consecutive failures, plus every call that was already on its way to it
/// when the run ended (at most all that are in flight). Fail-fast calls
/// take a millisecond, so in practice it is the run plus one or two.
const FAILED_BOUND: usize = 5 + IN_FLIGHT;

/// A proxy over `addrs` with the default outlier detection, except a first
/// ejection long enough to outlast the run (the return is another test's).
async fn proxy_over(addrs: &[SocketAddr]) -> TestProxy {
    let mut config = support::config(addrs, PolicyKind::LeastRequest);
    config.upstreams[0].connection.outlier = OutlierSettings {
        base_ejection_time: Duration::from_secs(120),
        ..OutlierSettings::default()
    };
    let proxy = TestProxy::start_config(config).await;
    proxy.wait_ready(addrs.len()).await;
    proxy
}

fn ejected(proxy: &TestProxy) -> Vec<(SocketAddr, Trip)> {
    proxy
        .handle
        .endpoints()
        .iter()
        .filter_map(|e| e.ejection.map(|j| (e.addr.socket_addr(), j.trip)))
        .collect()
}

fn assert_ejected_after_few_failures(
    report: &LoadReport,
    sick_code: &str,
    proxy: &TestProxy,
    sick: SocketAddr,
) {
    println!("{report:?}; ejected: {:?}", ejected(proxy));
    assert_eq!(report.total(), CALLS);
    assert_eq!(
        report.max_in_flight, IN_FLIGHT,
        "the calls were in flight together"
    );
    let failed = report.failures();
    assert!(
        failed >= 5,
        "the sick pod failed calls before it was ejected: {report:?}"
    );
    assert!(
        failed <= FAILED_BOUND,
        "at most {FAILED_BOUND} failed calls: {report:?}"
    );
    assert_eq!(report.failed.keys().collect::<Vec<_>>(), [sick_code]);
    let ejections = ejected(proxy);
    assert_eq!(ejections.len(), 1, "{ejections:?}");
    assert_eq!(ejections[0].0, sick);
    assert!(
        matches!(ejections[0].1, Trip::ConsecutiveFailures { failures: 5 }),
        "{ejections:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_failing_every_call_in_headers_is_ejected_after_a_few_calls() {
    let sick = TestBackend::start("sick").await;
    let healthy = TestBackend::start("healthy").await;
    let python = PythonServer::start("py-1").await;
    let proxy = proxy_over(&[sick.addr(), healthy.addr(), python.addr()]).await;
    sick.set_sickness(Sickness::FailInHeaders(Code::Unavailable));

    let report = run_load(proxy.client().await, CallKind::Unary, IN_FLIGHT, CALLS).await;
    assert_ejected_after_few_failures(&report, "Unavailable", &proxy, sick.addr());
    // Every call the sick pod received failed: after the ejection it
    // received none.
    assert_eq!(sick.calls_started() as usize, report.failures());
    assert!(report.answered_by("healthy") > CALLS / 4, "{report:?}");
    assert!(report.answered_by("py-1") > CALLS / 4, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_failing_every_call_in_trailers_after_a_reply_is_ejected_after_a_few_calls() {
    let healthy1 = TestBackend::start("healthy-1").await;
    let healthy2 = TestBackend::start("healthy-2").await;
    let python = PythonServer::start("py-sick").await;
    let proxy = proxy_over(&[healthy1.addr(), healthy2.addr(), python.addr()]).await;
    python.set_sickness(Sickness::FailInTrailers(Code::Unavailable));

    let report = run_load(
        proxy.client().await,
        CallKind::ServerStream,
        IN_FLIGHT,
        CALLS,
    )
    .await;
    assert_ejected_after_few_failures(&report, "Unavailable", &proxy, python.addr());
    // Its status came after a reply, so the calls it failed were not
    // answered by it: every call it received failed.
    assert_eq!(report.answered_by("py-sick"), 0, "{report:?}");
    assert_eq!(
        (healthy1.calls_started() + healthy2.calls_started()) as usize,
        CALLS - report.failures()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_answering_not_found_is_not_ejected() {
    let picky = TestBackend::start("picky").await;
    let healthy = TestBackend::start("healthy").await;
    let python = PythonServer::start("py-1").await;
    let proxy = proxy_over(&[picky.addr(), healthy.addr(), python.addr()]).await;
    picky.set_sickness(Sickness::FailInHeaders(Code::NotFound));

    let report = run_load(proxy.client().await, CallKind::Unary, IN_FLIGHT, CALLS).await;
    println!("{report:?}");
    assert_eq!(report.max_in_flight, IN_FLIGHT);
    assert!(ejected(&proxy).is_empty(), "{:?}", ejected(&proxy));
    // NOT_FOUND is an answer about the call: the pod keeps its share (more
    // than a third under least_request, as its answers are the fastest).
    let not_found = report.failed.get("NotFound").copied().unwrap_or(0);
    assert_eq!(not_found, report.failures());
    assert_eq!(picky.calls_started() as usize, not_found);
    assert!(not_found >= CALLS / 4, "{report:?}");
}
