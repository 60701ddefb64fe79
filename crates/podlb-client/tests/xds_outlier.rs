//! A channel to `xds:///NAME` given no outlier settings ejects a server
//! that fails every call by the settings podlb's control plane sends in
//! the Cluster's `outlier_detection` (here: 2 failures in a row, where
//! podlb's default is 5); a channel given its own settings keeps them.
//! One call at a time, so the count of failed calls is exact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;
mod xds_support;

use std::net::SocketAddr;
use std::time::Duration;

use fault_support::wait_for_endpoints;
use podlb_client::{Channel, OutlierSettings, Trip};
use podlb_control_plane::{ControlPlane, ControlPlaneConfig, Source};
use podlb_testkit::load::{CallKind, run_load};
use podlb_testkit::{Sickness, TestBackend, TestServiceClient};
use tonic::Code;
use xds_support::{TARGET, bootstrap, greeter};

const CALLS: usize = 60;

/// What the control plane asks for: two failures in a row eject, for
/// longer than the test.
fn served_settings() -> OutlierSettings {
    OutlierSettings {
        consecutive_failures: Some(2),
        failure_rate: None,
        base_ejection_time: Duration::from_secs(120),
        ..OutlierSettings::default()
    }
}

async fn control_plane(addrs: &[SocketAddr]) -> ControlPlane {
    let mut service = greeter(addrs, podlb_control_plane::catalog::LbPolicy::RoundRobin);
    service.outlier = served_settings();
    ControlPlane::start(ControlPlaneConfig {
        xds_listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: None,
        source: Source::Fixed(vec![service]),
        ..Default::default()
    })
    .await
    .unwrap()
}

fn ejections(channel: &Channel) -> Vec<(SocketAddr, Trip)> {
    channel
        .endpoints()
        .iter()
        .filter_map(|e| e.ejection.map(|j| (e.addr.socket_addr(), j.trip)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_without_outlier_settings_ejects_as_the_control_plane_says() {
    let backends = [
        TestBackend::start("sick").await,
        TestBackend::start("b2").await,
        TestBackend::start("b3").await,
    ];
    let addrs: Vec<SocketAddr> = backends.iter().map(TestBackend::addr).collect();
    let cp = control_plane(&addrs).await;
    let channel = Channel::builder(TARGET)
        .unwrap()
        .xds_bootstrap_json(bootstrap(cp.xds_addr(), "outlier-follower"))
        .build()
        .unwrap();
    wait_for_endpoints(&channel, &addrs, "the first answer").await;
    assert_eq!(channel.outlier_settings(), served_settings());

    backends[0].set_sickness(Sickness::FailInHeaders(Code::Unavailable));
    let client = TestServiceClient::new(channel.clone());
    let report = run_load(client, CallKind::Unary, 1, CALLS).await;
    println!("{report:?}; ejected: {:?}", ejections(&channel));
    assert_eq!(report.failures(), 2, "{report:?}");
    assert_eq!(backends[0].calls_started(), 2);
    assert_eq!(
        ejections(&channel),
        [(addrs[0], Trip::ConsecutiveFailures { failures: 2 })]
    );
    cp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_given_outlier_settings_keeps_them() {
    let backends = [
        TestBackend::start("sick").await,
        TestBackend::start("b2").await,
        TestBackend::start("b3").await,
    ];
    let addrs: Vec<SocketAddr> = backends.iter().map(TestBackend::addr).collect();
    let cp = control_plane(&addrs).await;
    let own = OutlierSettings {
        base_ejection_time: Duration::from_secs(120),
        ..OutlierSettings::default()
    };
    let channel = Channel::builder(TARGET)
        .unwrap()
        .xds_bootstrap_json(bootstrap(cp.xds_addr(), "outlier-fixed"))
        .outlier_detection(own)
        .build()
        .unwrap();
    wait_for_endpoints(&channel, &addrs, "the first answer").await;
    assert_eq!(channel.outlier_settings(), own);

    backends[0].set_sickness(Sickness::FailInHeaders(Code::Unavailable));
    let client = TestServiceClient::new(channel.clone());
    let report = run_load(client, CallKind::Unary, 1, CALLS).await;
    assert_eq!(report.failures(), 5, "podlb's own run of 5: {report:?}");
    assert_eq!(
        ejections(&channel),
        [(addrs[0], Trip::ConsecutiveFailures { failures: 5 })]
    );
    cp.shutdown().await;
}
