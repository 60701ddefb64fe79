//! EndpointSlices written by the real EndpointSlice controller (from a
//! Service with a selector and its Pods) resolve to the pods' IPs on the
//! number of the Service's named target port, each with its readiness and
//! node: a pod that fails its readiness turns not-ready, a deleted pod goes.
//! The test plays the kubelet: it binds pods to a Node and patches their
//! status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use podlb_core::EndpointState;
use podlb_discovery::{Discovery, DiscoveryOptions, Resolution};
use podlb_testkit::kube::KubeCluster;

/// The Service's target port, named `grpc`: what the slices carry.
const TARGET_PORT: u16 = 50051;
/// How long a change may take to pass through the controller to discovery.
const SETTLE: Duration = Duration::from_secs(30);
/// The pods and their IPs (data only: never contacted).
const PODS: [(&str, &str); 3] = [
    ("greeter-11", "10.244.0.11"),
    ("greeter-12", "10.244.0.12"),
    ("greeter-13", "10.244.0.13"),
];

/// Deletes the test's Node (cluster-scoped, so not deleted with the
/// namespace) when the test ends, passed or failed.
struct NodeGuard<'a> {
    cluster: &'a KubeCluster,
    name: String,
}

impl Drop for NodeGuard<'_> {
    fn drop(&mut self) {
        let _ = self
            .cluster
            .kubectl(&["delete", "node", &self.name, "--wait=false"]);
    }
}

/// The Node, the Service and the Pods (not yet running) of the test.
fn objects(ns: &str, node: &str) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: {node}}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: greeter, namespace: {ns}}}\n\
         spec:\n  selector: {{app: greeter}}\n  \
         ports: [{{name: grpc, port: 80, targetPort: {TARGET_PORT}, protocol: TCP}}]\n"
    );
    for (pod, _) in PODS {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\n\
             metadata: {{name: {pod}, namespace: {ns}, labels: {{app: greeter}}}}\n\
             spec:\n  nodeName: {node}\n  containers: [{{name: app, image: greeter}}]\n"
        ));
    }
    yaml
}

/// Acts as the kubelet: the pod runs at `ip`, ready or not.
fn set_pod_status(cluster: &KubeCluster, ns: &str, pod: &str, ip: &str, ready: bool) {
    let ready = if ready { "True" } else { "False" };
    let patch = format!(
        r#"{{"status":{{"phase":"Running","podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}],"conditions":[{{"type":"Ready","status":"{ready}"}}]}}}}"#
    );
    cluster.kubectl_ok(&[
        "patch",
        "pod",
        pod,
        "-n",
        ns,
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        &patch,
    ]);
}

/// Each endpoint's address and state, by address.
fn states(res: &Resolution) -> Vec<(SocketAddr, EndpointState)> {
    let mut states: Vec<_> = res
        .endpoints
        .iter()
        .map(|e| (e.addr.socket_addr(), e.state))
        .collect();
    states.sort();
    states
}

fn addr(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), TARGET_PORT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_written_slices_follow_pod_readiness_and_deletion() {
    let cluster = KubeCluster::shared();
    let ns = tokio::task::block_in_place(|| cluster.unique_namespace("ctrl"));
    let node = format!("node-{ns}");
    let _node = NodeGuard {
        cluster: &cluster,
        name: node.clone(),
    };
    tokio::task::block_in_place(|| {
        cluster.apply_yaml(&objects(&ns, &node));
        for (pod, ip) in PODS {
            set_pod_status(&cluster, &ns, pod, ip, true);
        }
    });

    let target = format!("kubernetes:///greeter.{ns}:grpc").parse().unwrap();
    let mut options = DiscoveryOptions::default();
    options.kubernetes.kubeconfig = Some(cluster.kubeconfig_path());
    let discovery = Discovery::start(&target, &options);
    let mut updates = discovery.subscribe();

    let all_ready: Vec<_> = PODS
        .iter()
        .map(|(_, ip)| (addr(ip), EndpointState::Ready))
        .collect();
    let res = support::wait_for_resolution(
        &mut updates,
        SETTLE,
        "the 3 pods ready on port 50051",
        |r| states(r) == all_ready,
    )
    .await;
    for e in res.endpoints.iter() {
        assert_eq!(
            e.topology.node_name.as_deref(),
            Some(node.as_str()),
            "the controller records each pod's node: {e:?}"
        );
        assert!(
            e.source
                .as_deref()
                .is_some_and(|s| s.starts_with("greeter-")),
            "the source is the controller's slice, greeter-XXXXX: {e:?}"
        );
    }

    let (pod12, ip12) = PODS[1];
    tokio::task::block_in_place(|| set_pod_status(&cluster, &ns, pod12, ip12, false));
    let one_not_ready = vec![
        (addr("10.244.0.11"), EndpointState::Ready),
        (addr("10.244.0.12"), EndpointState::NotReady),
        (addr("10.244.0.13"), EndpointState::Ready),
    ];
    support::wait_for_resolution(
        &mut updates,
        SETTLE,
        "greeter-12 not ready, the others ready",
        |r| states(r) == one_not_ready,
    )
    .await;

    // No kubelet confirms a graceful deletion here: delete at once.
    let (pod13, _) = PODS[2];
    tokio::task::block_in_place(|| {
        cluster.kubectl_ok(&[
            "delete",
            "pod",
            pod13,
            "-n",
            &ns,
            "--grace-period=0",
            "--force",
        ])
    });
    let after_delete = vec![
        (addr("10.244.0.11"), EndpointState::Ready),
        (addr("10.244.0.12"), EndpointState::NotReady),
    ];
    support::wait_for_resolution(
        &mut updates,
        SETTLE,
        "greeter-13 gone, greeter-12 still not ready",
        |r| states(r) == after_delete,
    )
    .await;
}
