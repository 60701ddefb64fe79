//! A channel to a `kubernetes:///SERVICE.NAMESPACE:PORT_NAME` target
//! follows the Service's EndpointSlice on a real API server
//! (`KubeCluster::shared()`, the cluster `scripts/test.sh` starts): calls
//! reach the ready pods, a pod made not-ready gets none, and once the slice
//! is deleted every call fails at once with UNAVAILABLE naming the target,
//! while the pods' servers still run; a new slice brings calls back.
//!
//! The kubeconfig is given to the channel (`Builder::kubeconfig`), never
//! taken from `KUBECONFIG`. Without a cluster the test fails, saying how to
//! start one (`bash scripts/test.sh` does).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;

use std::time::Duration;

use fault_support::{counted_calls, started, wait_for_endpoints};
use podlb_client::{Channel, PolicyKind};
use podlb_testkit::TestServiceClient;
use podlb_testkit::kube::KubeCluster;
use podlb_testkit::kube::endpoint_slice_yaml;
use podlb_testkit::{start_pods, tally};

/// Calls counted after each change; round robin gives each ready pod an
/// equal share.
const CALLS: usize = 60;

const READY: &str = "{ready: true}";
const NOT_READY: &str = "{ready: false}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reach_ready_pods_and_fail_naming_the_target_once_the_slice_is_gone() {
    let cluster = KubeCluster::shared();
    let ns = tokio::task::block_in_place(|| cluster.unique_namespace("client"));
    let apply = |yaml: String| tokio::task::block_in_place(|| cluster.apply_yaml(&yaml));
    let (pods, port) = start_pods(2).await;
    let (a11, a12) = (pods[0].addr(), pods[1].addr());
    let slice = |endpoints: &[(&str, &str)]| {
        endpoint_slice_yaml(&ns, "greeter-a", "greeter", port, endpoints)
    };

    apply(slice(&[("127.0.0.11", READY), ("127.0.0.12", READY)]));
    let target = format!("kubernetes:///greeter.{ns}:grpc");
    let channel = Channel::builder(&target)
        .unwrap()
        .policy(PolicyKind::RoundRobin)
        .kubeconfig(cluster.kubeconfig_path())
        .build()
        .unwrap();
    let mut client = TestServiceClient::new(channel.clone());

    wait_for_endpoints(&channel, &[a11, a12], "both pods ready").await;
    let counts = counted_calls(&mut client, CALLS, "both pods ready").await;
    assert_eq!(
        counts,
        tally(["pod-11", "pod-12"].repeat(CALLS / 2)),
        "round robin over both ready pods"
    );

    // .11 turns not-ready: its server still runs, but no call reaches it.
    apply(slice(&[("127.0.0.11", NOT_READY), ("127.0.0.12", READY)]));
    wait_for_endpoints(&channel, &[a12], ".11 not ready").await;
    let before = started(&pods);
    let counts = counted_calls(&mut client, CALLS, ".11 not ready").await;
    assert_eq!(counts, tally(["pod-12"; CALLS]), ".11 not ready");
    assert_eq!(
        pods[0].calls_started(),
        before[0],
        "the not-ready pod got calls"
    );

    // The slice is deleted: the Service has no endpoint, and the channel
    // says so at once instead of calling the old pods.
    tokio::task::block_in_place(|| {
        cluster.kubectl_ok(&[
            "delete",
            "endpointslices.v1beta1.discovery.k8s.io",
            "greeter-a",
            "-n",
            &ns,
        ])
    });
    wait_for_endpoints(&channel, &[], "the slice deleted").await;
    let before = started(&pods);
    for _ in 0..5 {
        let status = tokio::time::timeout(
            Duration::from_secs(20),
            fault_support::call_backends(&mut client, 1),
        )
        .await
        .expect("a fail-fast call with no endpoint should end at once, not wait")
        .expect_err("a call to a Service with no slice should fail");
        fault_support::assert_unavailable_naming(&status, &[&target]);
    }
    assert_eq!(started(&pods), before, "no call may reach the old pods");

    // A new slice brings calls back.
    apply(endpoint_slice_yaml(
        &ns,
        "greeter-b",
        "greeter",
        port,
        &[("127.0.0.11", READY)],
    ));
    wait_for_endpoints(&channel, &[a11], "a new slice with .11 ready").await;
    let counts = counted_calls(&mut client, CALLS, "a new slice with .11 ready").await;
    assert_eq!(counts, tally(["pod-11"; CALLS]), "a new slice with .11");
}
