//! An ejected pod comes back when its ejection ends and, healed, takes
//! calls again (slow start gives it a growing share from its first
//! second). The first ejection is shortened to 1 s here.

mod support;

use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_balance::outlier::OutlierSettings;
use podlb_testkit::load::{CallKind, run_load};
use podlb_testkit::python::PythonServer;
use podlb_testkit::{Sickness, TestBackend};
use support::TestProxy;
use tonic::Code;

const IN_FLIGHT: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_pod_that_heals_takes_calls_again() {
    let sick = TestBackend::start("sick").await;
    let healthy = TestBackend::start("healthy").await;
    let python = PythonServer::start("py-1").await;
    let addrs = [sick.addr(), healthy.addr(), python.addr()];
    let mut config = support::config(&addrs, PolicyKind::LeastRequest);
    config.upstreams[0].connection.outlier = OutlierSettings {
        base_ejection_time: Duration::from_secs(1),
        ..OutlierSettings::default()
    };
    let proxy = TestProxy::start_config(config).await;
    proxy.wait_ready(3).await;
    let ejection = || {
        proxy
            .handle
            .endpoints()
            .into_iter()
            .find(|e| e.addr.socket_addr() == sick.addr())
            .and_then(|e| e.ejection)
    };

    sick.set_sickness(Sickness::FailInHeaders(Code::Unavailable));
    let before = run_load(proxy.client().await, CallKind::Unary, IN_FLIGHT, 300).await;
    let ejected = ejection().expect("the sick pod is ejected");
    println!("sick: {before:?}; {ejected}");
    assert!(before.failures() >= 5, "{before:?}");
    assert!(ejected.remaining <= Duration::from_secs(1));

    sick.set_sickness(Sickness::Healthy);
    proxy.wait_until(|_| ejection().is_none()).await;
    let after = run_load(proxy.client().await, CallKind::Unary, IN_FLIGHT, 900).await;
    println!("healed: {after:?}");
    assert_eq!(after.failures(), 0, "{after:?}");
    assert!(after.answered_by("sick") > 0, "back in rotation: {after:?}");
    assert!(ejection().is_none());
}
