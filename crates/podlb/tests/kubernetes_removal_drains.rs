//! A pod removed from its Service's EndpointSlice gets no new calls, but
//! the calls already in flight on it finish normally before podlb closes
//! its connection: a scale-down or rollout loses nothing.
//!
//! The calls in flight are bidi streams the test holds open: each has had
//! one exchange with its pod and stays open until the test ends it, so it
//! is provably in flight when the removal reaches the proxy (the pod's own
//! counters say so, not a sleep), and it ends only when the test ends it,
//! after the removal: one more exchange, then the client closes its side
//! and the call must end OK.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_proxy::ProxyConfig;
use podlb_testkit::kube::KubeCluster;
use podlb_testkit::{CallCounts, HeldCall};
use support::TestProxy;

/// How long the proxy may take to see a change of the slice, or to close a
/// drained connection; only a broken proxy waits this long.
const PATIENCE: Duration = Duration::from_secs(30);

/// Calls held open over the two pods.
const HELD: usize = 6;

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
    support::wait_for_proxy_endpoints(&proxy, &[a11, a12], PATIENCE, "both ready").await;

    // Calls held open, spread over both pods by round robin.
    let mut client = proxy.client().await;
    let mut held = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        held.push(HeldCall::open(&mut client).await);
    }
    let on_12 = held.iter().filter(|c| c.backend() == "pod-12").count() as u64;
    assert!(
        on_12 > 0,
        "round robin over two ready pods should put some of the {HELD} calls on pod-12: {:?}",
        held.iter().map(HeldCall::backend).collect::<Vec<_>>()
    );

    // .12 leaves the Service while its calls are open.
    apply(podlb_testkit::kube::endpoint_slice_yaml(
        &ns,
        "greeter-a",
        "greeter",
        port,
        &[("127.0.0.11", ready)],
    ));
    support::wait_for_proxy_endpoints(&proxy, &[a11], PATIENCE, ".12 removed").await;

    // The proxy has dropped .12, and pod-12 still has every call it took
    // in flight: none was cancelled by the removal.
    let in_flight = CallCounts {
        started: on_12,
        finished: 0,
        cancelled: 0,
    };
    assert_eq!(
        pods[1].counts(),
        in_flight,
        "pod-12's calls when the proxy had removed it: all {on_12} still in flight"
    );

    // New calls go elsewhere, while the removed pod's calls are still open.
    let after = support::call_backends(&mut client, 30).await.unwrap();
    assert!(
        after.iter().all(|id| id == "pod-11"),
        "no new call may reach the removed pod: {after:?}"
    );
    assert_eq!(pods[1].counts(), in_flight, "pod-12 took a new call");

    // Every held call, on either pod, goes on and ends OK on its own pod.
    for call in held {
        call.finish()
            .await
            .unwrap_or_else(|e| panic!("a call in flight when pod-12 was removed: {e}"));
    }
    assert_eq!(
        pods[1].counts(),
        CallCounts {
            started: on_12,
            finished: on_12,
            cancelled: 0,
        },
        "pod-12's calls should all have finished, none cancelled"
    );

    // Drained, the removed pod's connection closes.
    let closed = tokio::time::timeout(PATIENCE, async {
        while pods[1].connections_open() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the proxy should close its connection to the drained pod-12 \
         ({} still open after {PATIENCE:?})",
        pods[1].connections_open()
    );
}
