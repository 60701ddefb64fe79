//! The test control plane of `scripts/kube-test-cluster.sh` works as the
//! discovery tests expect: EndpointSlices written by a test read back, and a
//! private cluster survives an apiserver restart and an etcd compaction.
//!
//! Needs the cluster: run through `bash scripts/test.sh` (the tests fail
//! without it, saying how to start one).

use podlb_testkit::kube::{KubeCluster, PrivateClusterOptions};

#[test]
fn shared_cluster_stores_v1beta1_endpoint_slices() {
    let cluster = KubeCluster::shared();
    let ns = cluster.unique_namespace("kube-cluster");
    cluster.apply_yaml(&format!(
        r#"
apiVersion: discovery.k8s.io/v1beta1
kind: EndpointSlice
metadata:
  name: greeter-abc
  namespace: {ns}
  labels:
    kubernetes.io/service-name: greeter
addressType: IPv4
endpoints:
- addresses: ["127.0.0.11"]
  conditions:
    ready: true
ports:
- name: grpc
  port: 50051
  protocol: TCP
"#
    ));

    let got = cluster.kubectl_ok(&[
        "get",
        "endpointslices.v1beta1.discovery.k8s.io",
        "-n",
        &ns,
        "-l",
        "kubernetes.io/service-name=greeter",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.endpoints[0].addresses[0]} {.ports[0].port}{\"\\n\"}{end}",
    ]);
    assert_eq!(got, "greeter-abc 127.0.0.11 50051\n");
}

#[test]
fn private_cluster_restarts_its_apiserver_and_compacts() {
    let cluster = KubeCluster::start_private(PrivateClusterOptions {
        no_watch_cache: true,
        controllers: false,
    });
    assert!(cluster.server_url().starts_with("https://127.0.0.1:"));
    cluster.kubectl_ok(&["create", "configmap", "before", "--from-literal=a=1"]);

    cluster.stop_apiserver();
    let down = cluster.kubectl(&["get", "configmaps", "--request-timeout=2s"]);
    assert!(
        !down.status.success(),
        "kubectl worked with the apiserver stopped"
    );
    cluster.start_apiserver();

    // etcd kept the data across the restart.
    let names = cluster.kubectl_ok(&["get", "configmap", "before", "-o", "name"]);
    assert_eq!(names.trim(), "configmap/before");

    let old_version = cluster.kubectl_ok(&[
        "get",
        "configmap",
        "before",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    // Two more changes: etcd keeps the compaction revision itself, so the
    // watch below (which starts right after `old_version`) must start
    // before it.
    cluster.kubectl_ok(&["create", "configmap", "after-1", "--from-literal=a=2"]);
    cluster.kubectl_ok(&["create", "configmap", "after-2", "--from-literal=a=3"]);
    let revision = cluster.compact();
    assert!(revision > 1, "compacted at revision {revision}");

    // Without the watch cache, a watch from before the compaction is Gone.
    let watch = cluster.kubectl_ok(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old_version}&timeoutSeconds=5"
        ),
    ]);
    assert!(
        watch.contains(r#""type":"ERROR""#) && watch.contains(r#""code":410"#),
        "watch from compacted resourceVersion {old_version}: {watch}"
    );
}
