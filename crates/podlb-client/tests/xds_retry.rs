//! A channel to `xds:///NAME` given no retry policy retries as the route
//! podlb's control plane serves says (gRFC A44: the Service's catalog
//! `retry`, here UNAVAILABLE, 2 retries): one backend answers every call
//! UNAVAILABLE and every call still succeeds. Outlier detection is off on
//! the channel, so it is the retry doing it, not an ejection. A channel
//! given its own retry policy keeps it. One call at a time, so the counts
//! are exact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;
mod xds_support;

use std::net::SocketAddr;
use std::time::Duration;

use fault_support::wait_for_endpoints;
use podlb_client::{Channel, Codes, OutlierSettings, RetryPolicy};
use podlb_control_plane::catalog::LbPolicy;
use podlb_control_plane::{ControlPlane, ControlPlaneConfig, Source};
use podlb_core::RouteRetry;
use podlb_testkit::load::{CallKind, run_load};
use podlb_testkit::{Sickness, TestBackend, TestServiceClient};
use tonic::Code;
use xds_support::{TARGET, bootstrap, greeter};

/// One in three calls lands on the sick backend: 10 retries, within the
/// default budget (10 tokens to start, a fifth of a token per call).
const CALLS: usize = 30;

async fn control_plane(addrs: &[SocketAddr]) -> ControlPlane {
    let mut service = greeter(addrs, LbPolicy::RoundRobin);
    service.retry = Some(Box::new(RouteRetry {
        codes: vec![Code::Unavailable as u8],
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
    }));
    ControlPlane::start(ControlPlaneConfig {
        xds_listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: None,
        source: Source::Fixed(vec![service]),
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn backends() -> ([TestBackend; 3], Vec<SocketAddr>) {
    let backends = [
        TestBackend::start("sick").await,
        TestBackend::start("b2").await,
        TestBackend::start("b3").await,
    ];
    let addrs = backends.iter().map(TestBackend::addr).collect();
    backends[0].set_sickness(Sickness::FailInHeaders(Code::Unavailable));
    (backends, addrs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_without_a_retry_policy_retries_as_the_route_says() {
    let (backends, addrs) = backends().await;
    let cp = control_plane(&addrs).await;
    let channel = Channel::builder(TARGET)
        .unwrap()
        .xds_bootstrap_json(bootstrap(cp.xds_addr(), "retry-follower"))
        .outlier_detection(OutlierSettings::disabled())
        .build()
        .unwrap();
    wait_for_endpoints(&channel, &addrs, "the first answer").await;

    let client = TestServiceClient::new(channel.clone());
    let report = run_load(client, CallKind::Unary, 1, CALLS).await;
    println!("{report:?}");
    assert_eq!(report.failures(), 0, "{report:?}");
    assert!(
        backends[0].calls_started() >= CALLS as u64 / 3,
        "the sick backend kept its share: {}",
        backends[0].calls_started()
    );
    assert!(channel.endpoints().iter().all(|e| e.ejection.is_none()));
    cp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_given_a_retry_policy_keeps_it() {
    let (backends, addrs) = backends().await;
    let cp = control_plane(&addrs).await;
    // Retries INTERNAL only: the sick backend's UNAVAILABLE is the answer.
    let own = RetryPolicy {
        retryable_codes: Codes::of(&[Code::Internal]),
        ..RetryPolicy::default()
    };
    let channel = Channel::builder(TARGET)
        .unwrap()
        .xds_bootstrap_json(bootstrap(cp.xds_addr(), "retry-own"))
        .outlier_detection(OutlierSettings::disabled())
        .retry(own)
        .build()
        .unwrap();
    wait_for_endpoints(&channel, &addrs, "the first answer").await;

    let client = TestServiceClient::new(channel.clone());
    let report = run_load(client, CallKind::Unary, 1, CALLS).await;
    let sick_calls = backends[0].calls_started() as usize;
    assert!(sick_calls > 0);
    assert_eq!(report.failures(), sick_calls, "{report:?}");
    cp.shutdown().await;
}
