//! Calls through a `kubernetes:///` upstream follow the Service's
//! EndpointSlice on a real API server: only ready pods take calls, a pod
//! that turns not-ready stops taking them, a Service with no slice left
//! fails calls at once with UNAVAILABLE naming the upstream and target, and
//! a new slice brings calls back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_proxy::ProxyConfig;
use podlb_testkit::TestServiceClient;
use podlb_testkit::kube::KubeCluster;
use support::TestProxy;
use tonic::Code;
use tonic::transport::Channel;

/// How long a change may take to reach the proxy.
const SETTLE: Duration = Duration::from_secs(30);
/// Calls counted after each change.
const CALLS: usize = 60;

/// Waits until the proxy's endpoints are exactly `expected`, all connected.
async fn settle(proxy: &TestProxy, expected: &[SocketAddr], after: &str) {
    support::wait_for_proxy_endpoints(proxy, expected, SETTLE, after).await;
}

/// Sends [`CALLS`] calls and asserts they all succeed, spread over exactly
/// `expected` (each at least a sixth of them under round robin's even
/// split).
async fn assert_calls_reach(
    client: &mut TestServiceClient<Channel>,
    expected: &[&str],
    after: &str,
) {
    let ids = support::call_backends(client, CALLS)
        .await
        .unwrap_or_else(|status| panic!("{after}: a call failed: {status:?}"));
    let counts: BTreeMap<String, usize> = podlb_testkit::tally(ids.iter().map(String::as_str));
    let reached: Vec<&str> = counts.keys().map(String::as_str).collect();
    assert_eq!(
        reached, expected,
        "{after}: calls should reach exactly {expected:?}: {counts:?}"
    );
    assert!(
        counts.values().all(|n| *n >= CALLS / 6),
        "{after}: each of {expected:?} should take a fair share: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_follow_ready_pods_and_fail_fast_once_the_service_has_no_slice() {
    let cluster = KubeCluster::shared();
    let ns = tokio::task::block_in_place(|| cluster.unique_namespace("routing"));
    let apply = |yaml: String| tokio::task::block_in_place(|| cluster.apply_yaml(&yaml));
    let (pods, port) = podlb_testkit::start_pods(3).await;
    let [a11, a12, a13] = [0, 1, 2].map(|i| pods[i].addr());
    let slice_at = |name: &str, endpoints: &[(&str, &str)]| {
        podlb_testkit::kube::endpoint_slice_yaml(&ns, name, "greeter", port, endpoints)
    };
    const READY: &str = "{ready: true}";
    const NOT_READY: &str = "{ready: false}";

    apply(slice_at("greeter-a", &[("127.0.0.11", READY)]));

    let target = format!("kubernetes:///greeter.{ns}:grpc");
    let mut config = ProxyConfig::single(
        "127.0.0.1:0".parse().unwrap(),
        target.parse().unwrap(),
        PolicyKind::RoundRobin,
    );
    config.upstreams[0].discovery.kubernetes.kubeconfig = Some(cluster.kubeconfig_path());
    let proxy = TestProxy::start_config(config).await;
    let mut client = proxy.client().await;

    settle(&proxy, &[a11], "a slice with .11 ready").await;
    assert_calls_reach(&mut client, &["pod-11"], "a slice with .11 ready").await;

    apply(slice_at(
        "greeter-a",
        &[("127.0.0.11", READY), ("127.0.0.12", READY)],
    ));
    settle(&proxy, &[a11, a12], ".12 added, ready").await;
    assert_calls_reach(&mut client, &["pod-11", "pod-12"], ".12 added, ready").await;

    apply(slice_at(
        "greeter-a",
        &[("127.0.0.11", NOT_READY), ("127.0.0.12", READY)],
    ));
    settle(&proxy, &[a12], ".11 not ready").await;
    assert_calls_reach(&mut client, &["pod-12"], ".11 not ready").await;

    // Kubernetes 1.20 stores `serving` and `terminating` only with the
    // alpha feature gate EndpointSliceTerminatingCondition, which
    // scripts/kube-test-cluster.sh turns on (1.22 and later store them by
    // default).
    assert!(
        tokio::task::block_in_place(|| server_keeps_terminating(&cluster, &ns)),
        "the test API server dropped conditions.serving/terminating: start it with \
         --feature-gates=EndpointSliceTerminatingCondition=true (scripts/kube-test-cluster.sh does)"
    );
    const SERVING_TERMINATING: &str = "{ready: false, serving: true, terminating: true}";
    apply(slice_at(
        "greeter-a",
        &[
            ("127.0.0.11", NOT_READY),
            ("127.0.0.12", SERVING_TERMINATING),
        ],
    ));
    // No endpoint is ready: the serving-terminating one takes the calls.
    settle(&proxy, &[a12], ".12 serving-terminating, none ready").await;
    assert_calls_reach(&mut client, &["pod-12"], ".12 serving-terminating").await;

    apply(slice_at(
        "greeter-a",
        &[
            ("127.0.0.11", NOT_READY),
            ("127.0.0.12", SERVING_TERMINATING),
            ("127.0.0.13", READY),
        ],
    ));
    // A ready endpoint wins over serving-terminating ones.
    settle(&proxy, &[a13], ".13 ready beside serving-terminating .12").await;
    assert_calls_reach(&mut client, &["pod-13"], ".13 ready beside .12").await;

    // The Service loses its last slice: the Go kuberesolver keeps calling
    // the old pods here; podlb knows the set is empty and says so at once.
    tokio::task::block_in_place(|| {
        cluster.kubectl_ok(&[
            "delete",
            "endpointslices.v1beta1.discovery.k8s.io",
            "greeter-a",
            "-n",
            &ns,
        ])
    });
    settle(&proxy, &[], "the slice deleted").await;
    let status = support::call_backends(&mut client, 1)
        .await
        .expect_err("a call with no endpoint known should fail");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    for named in ["upstream \"default\"", target.as_str()] {
        assert!(
            status.message().contains(named),
            "the message should name {named}: {status:?}"
        );
    }

    apply(slice_at("greeter-b", &[("127.0.0.13", READY)]));
    settle(&proxy, &[a13], "a new slice with .13 ready").await;
    assert_calls_reach(&mut client, &["pod-13"], "a new slice with .13 ready").await;
}

/// Whether the API server keeps `conditions.serving` of a v1beta1
/// EndpointSlice: writes a slice for another Service and reads it back.
fn server_keeps_terminating(cluster: &KubeCluster, ns: &str) -> bool {
    cluster.apply_yaml(&podlb_testkit::kube::endpoint_slice_yaml(
        ns,
        "probe",
        "probe",
        1,
        &[(
            "127.0.0.14",
            "{ready: false, serving: true, terminating: true}",
        )],
    ));
    let serving = cluster.kubectl_ok(&[
        "get",
        "endpointslices.v1beta1.discovery.k8s.io",
        "probe",
        "-n",
        ns,
        "-o",
        "jsonpath={.endpoints[0].conditions.serving}",
    ]);
    serving.trim() == "true"
}
