//! While the Kubernetes API server is down, a `kubernetes:///` upstream
//! keeps balancing over the last endpoints it knew; once the server is back,
//! the watch resumes and a change made then reaches the proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_proxy::ProxyConfig;
use podlb_testkit::kube::{KubeCluster, PrivateClusterOptions};
use support::TestProxy;

/// How long a change may take to reach the proxy while the API is up.
const SETTLE: Duration = Duration::from_secs(30);
/// How long the watch may take to come back after the API server: its
/// retries back off up to about 30 s while the server is down.
const RESUME: Duration = Duration::from_secs(45);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_keeps_the_last_endpoints_while_the_api_server_is_down_and_resumes_after() {
    let cluster =
        tokio::task::block_in_place(
            || KubeCluster::start_private(PrivateClusterOptions::default()),
        );
    let ns = tokio::task::block_in_place(|| cluster.unique_namespace("restart"));
    let (pods, port) = podlb_testkit::start_pods(2).await;
    let (a11, a12) = (pods[0].addr(), pods[1].addr());
    let slice = |endpoints: &[(&str, &str)]| {
        let yaml =
            podlb_testkit::kube::endpoint_slice_yaml(&ns, "greeter-a", "greeter", port, endpoints);
        tokio::task::block_in_place(|| cluster.apply_yaml(&yaml));
    };
    slice(&[
        ("127.0.0.11", "{ready: true}"),
        ("127.0.0.12", "{ready: true}"),
    ]);

    let target = format!("kubernetes:///greeter.{ns}:grpc");
    let mut config = ProxyConfig::single(
        "127.0.0.1:0".parse().unwrap(),
        target.parse().unwrap(),
        PolicyKind::RoundRobin,
    );
    config.upstreams[0].discovery.kubernetes.kubeconfig = Some(cluster.kubeconfig_path());
    let proxy = TestProxy::start_config(config).await;
    let mut client = proxy.client().await;
    support::wait_for_proxy_endpoints(&proxy, &[a11, a12], SETTLE, "a slice with .11, .12").await;

    tokio::task::block_in_place(|| cluster.stop_apiserver());
    // 40 calls over about 4 s with the API server down: the watch has
    // broken and its retries fail, yet every call succeeds on both pods.
    let mut during = Vec::new();
    for _ in 0..40 {
        let ids = support::call_backends(&mut client, 1)
            .await
            .unwrap_or_else(|status| {
                panic!("a call failed while the API server was down: {status:?}")
            });
        during.extend(ids);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counts = podlb_testkit::tally(during.iter().map(String::as_str));
    assert_eq!(
        counts.keys().map(String::as_str).collect::<Vec<_>>(),
        ["pod-11", "pod-12"],
        "calls should keep reaching both pods while the API server is down: {counts:?}"
    );
    support::wait_for_proxy_endpoints(&proxy, &[a11, a12], SETTLE, "the API server down").await;

    // Nothing can be written while it is down (etcd is up, but every write
    // goes through the API server): the change comes after.
    tokio::task::block_in_place(|| cluster.start_apiserver());
    slice(&[("127.0.0.11", "{ready: true}")]);
    support::wait_for_proxy_endpoints(
        &proxy,
        &[a11],
        RESUME,
        ".12 removed after the API server came back",
    )
    .await;
    let ids = support::call_backends(&mut client, 60).await.unwrap();
    let counts = podlb_testkit::tally(ids.iter().map(String::as_str));
    assert_eq!(
        counts.keys().map(String::as_str).collect::<Vec<_>>(),
        ["pod-11"],
        "after the change only .11 takes calls: {counts:?}"
    );
}
