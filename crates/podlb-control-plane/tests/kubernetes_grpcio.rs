//! The Kubernetes path end to end: EndpointSlices written to the real test
//! API server (Kubernetes 1.20.2, `discovery.k8s.io/v1beta1`) → the control
//! plane's Kubernetes source (Services selected by namespace and label) →
//! ADS → a real grpcio `xds:///` client, whose one channel follows each
//! change: a pod added (in a second slice), a pod made not ready, a pod
//! serving but terminating (sent as DRAINING, which gRPC does not pick), a
//! pod removed. The split of the client's calls over the pods is asserted
//! before and after every change, and each pod left out is checked, by its
//! own count, to get no call.
//!
//! The pods are test backends on 127.0.0.11, .12, ... (one port, like a
//! Deployment's pods): v1beta1 slices written by the test accept loopback
//! addresses, so all traffic stays on this machine. The Service is headless
//! and has no selector, so no controller writes slices of its own.
//!
//! It uses the cluster `scripts/test.sh` starts (`PODLB_KUBE_DIR`); without
//! one the test fails, saying how to start one, as every Kubernetes test of
//! the repository does. Waits are bounded only so a failure cannot hang;
//! nothing is asserted about elapsed time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use podlb_control_plane::snapshot::ENDPOINTS;
use podlb_control_plane::status::{SyncState, TypeStatus};
use podlb_control_plane::{ControlPlane, ControlPlaneConfig, Source};
use podlb_core::EndpointState;
use podlb_discovery::{CatalogSelection, KubernetesOptions};
use podlb_testkit::TestBackend;
use podlb_testkit::kube::{KubeCluster, endpoint_slice_yaml};
use podlb_testkit::start_pods;
use podlb_testkit::xds_peers::{XdsClient, XdsPeer};
use prost::Message;

/// Calls per backend in each balance check (round robin: an equal share).
const CALLS_PER_BACKEND: usize = 40;
/// The Service port clients name (`xds:///greeter.NS:50051`); the pods
/// listen on another, the Service's target port.
const SERVICE_PORT: u16 = 50051;
/// The label the control plane selects Services by.
const SELECTOR: &str = "podlb.io/test=control-plane";

const READY: &str = "{ready: true}";
const NOT_READY: &str = "{ready: false}";
const SERVING_TERMINATING: &str = "{ready: false, serving: true, terminating: true}";

fn service_yaml(ns: &str, target_port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\n\
         metadata:\n  name: greeter\n  namespace: {ns}\n  \
         labels: {{podlb.io/test: control-plane}}\n  \
         annotations: {{podlb.io/lb-policy: round_robin}}\n\
         spec:\n  clusterIP: None\n  \
         ports: [{{name: grpc, port: {SERVICE_PORT}, targetPort: {target_port}, protocol: TCP}}]\n"
    )
}

fn calls_started(pods: &[TestBackend]) -> Vec<u64> {
    pods.iter().map(TestBackend::calls_started).collect()
}

/// Calls until exactly `serving` answer, then a counted round over them:
/// every call succeeds, each of `serving` gets its share, and every other
/// pod's own count stays where it was.
async fn assert_split(client: &mut XdsClient, pods: &[TestBackend], serving: &[&str], what: &str) {
    client.calls_until_backends(serving).await;
    let before = calls_started(pods);
    let tally = client.calls(CALLS_PER_BACKEND * serving.len()).await;
    tally.assert_balanced_over(serving);
    for (pod, before) in pods.iter().zip(before) {
        let got = pod.calls_started() - before;
        let counted = tally.by_backend.get(pod.id()).copied().unwrap_or(0) as u64;
        assert_eq!(
            got,
            counted,
            "{what}: pod {} counted {got} calls, the client {counted}: {tally}",
            pod.id()
        );
    }
}

/// The health of each endpoint the control plane serves now for `cluster`.
fn served_endpoints(cp: &ControlPlane, cluster: &str) -> Vec<(String, EndpointState)> {
    let snapshot = cp.snapshots().borrow().clone();
    let Some(resource) = snapshot.get(ENDPOINTS, cluster) else {
        return Vec::new();
    };
    let cla = ClusterLoadAssignment::decode(resource.body.value.as_slice()).unwrap();
    let mut endpoints: Vec<(String, EndpointState)> = podlb_xds::endpoints_from_cla(&cla)
        .unwrap()
        .into_iter()
        .map(|e| (e.addr.to_string(), e.state))
        .collect();
    endpoints.sort_by(|a, b| a.0.cmp(&b.0));
    endpoints
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_follows_endpoint_slices_added_not_ready_terminating_and_removed() {
    let cluster = KubeCluster::shared();
    let ns = tokio::task::block_in_place(|| cluster.unique_namespace("cp-grpcio"));
    let apply = |yaml: String| tokio::task::block_in_place(|| cluster.apply_yaml(&yaml));
    let (pods, port) = start_pods(5).await;
    let [p11, p12, p13, p14, p15] = ["pod-11", "pod-12", "pod-13", "pod-14", "pod-15"];
    let slice_a = |endpoints: &[(&str, &str)]| {
        endpoint_slice_yaml(&ns, "greeter-a", "greeter", port, endpoints)
    };
    let slice_b = |endpoints: &[(&str, &str)]| {
        endpoint_slice_yaml(&ns, "greeter-b", "greeter", port, endpoints)
    };

    apply(service_yaml(&ns, port));
    apply(slice_a(&[
        ("127.0.0.11", READY),
        ("127.0.0.12", READY),
        ("127.0.0.13", READY),
    ]));
    let mut options = KubernetesOptions::default();
    options.kubeconfig = Some(cluster.kubeconfig_path());
    let cp = ControlPlane::start(ControlPlaneConfig {
        xds_listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: None,
        source: Source::Kubernetes {
            selection: CatalogSelection {
                namespace: Some(ns.clone()),
                label_selector: Some(SELECTOR.to_string()),
                names: Vec::new(),
            },
            options,
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let name = format!("greeter.{ns}:{SERVICE_PORT}");
    let node_id = "grpcio-kubernetes";
    let mut client = XdsClient::proxyless(XdsPeer::Grpcio, &name, cp.xds_addr(), node_id).await;

    assert_split(&mut client, &pods, &[p11, p12, p13], "three ready pods").await;

    // Added: a second slice of the same Service, merged with the first.
    apply(slice_b(&[("127.0.0.14", READY), ("127.0.0.15", READY)]));
    assert_split(
        &mut client,
        &pods,
        &[p11, p12, p13, p14, p15],
        "a second slice added",
    )
    .await;

    // Not ready: .11 still runs, but gets no call.
    apply(slice_a(&[
        ("127.0.0.11", NOT_READY),
        ("127.0.0.12", READY),
        ("127.0.0.13", READY),
    ]));
    assert_split(&mut client, &pods, &[p12, p13, p14, p15], ".11 not ready").await;

    // Terminating but still serving: served as DRAINING, which a gRPC
    // client keeps out of its picks.
    apply(slice_a(&[
        ("127.0.0.11", NOT_READY),
        ("127.0.0.12", SERVING_TERMINATING),
        ("127.0.0.13", READY),
    ]));
    assert_split(&mut client, &pods, &[p13, p14, p15], ".12 terminating").await;
    let cluster_name = format!("greeter.{ns}:{SERVICE_PORT}");
    let served = served_endpoints(&cp, &cluster_name);
    assert!(
        served.contains(&(
            format!("127.0.0.12:{port}"),
            EndpointState::ServingTerminating
        )),
        "the terminating pod should be served as DRAINING: {served:?}"
    );
    assert!(
        !served
            .iter()
            .any(|(addr, _)| addr.starts_with("127.0.0.11:")),
        "the not-ready pod should not be served at all: {served:?}"
    );

    // Removed: .13 leaves its slice.
    apply(slice_a(&[
        ("127.0.0.11", NOT_READY),
        ("127.0.0.12", SERVING_TERMINATING),
    ]));
    assert_split(&mut client, &pods, &[p14, p15], ".13 removed").await;

    // The client ACKed everything it was sent, and NACKed nothing.
    let report = cp.status();
    let status = report
        .clients
        .iter()
        .find(|c| c.node_id == node_id)
        .unwrap_or_else(|| panic!("node {node_id} is not in the status: {report:#?}"));
    let nacked: Vec<&TypeStatus> = status
        .types
        .iter()
        .filter(|t| t.last_nack.is_some() || t.sync == SyncState::Nacked)
        .collect();
    assert!(nacked.is_empty(), "the client NACKed: {nacked:#?}");

    client.quit().await;
    cp.shutdown().await;
}
