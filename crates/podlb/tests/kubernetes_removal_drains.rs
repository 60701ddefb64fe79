//! A pod removed from its Service's EndpointSlice gets no new calls, but
//! the calls already in flight on it finish normally before podlb closes
//! its connection: a scale-down or rollout loses nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures_util::future::join_all;
use podlb_balance::PolicyKind;
use podlb_proxy::ProxyConfig;
use podlb_testkit::EchoRequest;
use podlb_testkit::kube::KubeCluster;
use support::TestProxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_on_a_removed_pod_finish_and_new_calls_go_elsewhere() {
    let cluster = KubeCluster::shared();
    let ns = tokio::task::block_in_place(|| cluster.unique_namespace("drain"));
    let apply = |yaml: String| tokio::task::block_in_place(|| cluster.apply_yaml(&yaml));
    let (pods, port) = podlb_testkit::start_pods(2).await;
    let (a11, a12) = (pods[0].addr(), pods[1].addr());
    let ready = "{ready: true}";
    apply(podlb_testkit::kube::endpoint_slice_yaml(
        &ns,
        "greeter-a",
        "greeter",
        port,
        &[("127.0.0.11", ready), ("127.0.0.12", ready)],
    ));

    let target = format!("kubernetes:///greeter.{ns}:grpc");
    let mut config = ProxyConfig::single(
        "127.0.0.1:0".parse().unwrap(),
        target.parse().unwrap(),
        PolicyKind::RoundRobin,
    );
    config.upstreams[0].discovery.kubernetes.kubeconfig = Some(cluster.kubeconfig_path());
    let proxy = TestProxy::start_config(config).await;
    support::wait_for_proxy_endpoints(&proxy, &[a11, a12], Duration::from_secs(30), "both ready")
        .await;

    // Slow calls, spread over both pods by round robin.
    let client = proxy.client().await;
    let slow: Vec<_> = (0..6)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let request = EchoRequest {
                    sleep_ms: 1500,
                    ..Default::default()
                };
                client.unary(request).await.map(|r| r.into_inner().backend)
            })
        })
        .collect();
    pods[1].wait_for_started(1).await;

    // .12 leaves the Service while its calls are running.
    apply(podlb_testkit::kube::endpoint_slice_yaml(
        &ns,
        "greeter-a",
        "greeter",
        port,
        &[("127.0.0.11", ready)],
    ));
    support::wait_for_proxy_endpoints(&proxy, &[a11], Duration::from_secs(30), ".12 removed").await;

    let answered: Vec<String> = join_all(slow)
        .await
        .into_iter()
        .map(|joined| {
            joined
                .unwrap()
                .expect("a call in flight on a removed pod must finish")
        })
        .collect();
    assert!(
        answered.iter().any(|id| id == "pod-12"),
        "some of the slow calls ran on pod-12: {answered:?}"
    );

    let mut client = client;
    let after = support::call_backends(&mut client, 30).await.unwrap();
    assert!(
        after.iter().all(|id| id == "pod-11"),
        "no new call may reach the removed pod: {after:?}"
    );
}
