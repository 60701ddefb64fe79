#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The manifests in `deploy/kubernetes/` are what a real API server accepts,
//! and `rbac.yaml` gives podlb what it needs and nothing more.
//!
//! - Every YAML file passes `kubectl apply --dry-run=server -n NAMESPACE`
//!   against a Kubernetes 1.20 API server: the server validates every
//!   object, and kubectl refuses a file that names another namespace.
//! - Applied for real, `rbac.yaml` lets the service account `podlb` get,
//!   list and watch EndpointSlices in its own namespace, but not write
//!   them, read Endpoints, Services, Pods or Secrets, or watch
//!   EndpointSlices in another namespace.
//! - With only those rights, `podlb resolve` reads a Service's endpoints,
//!   and names the Role when asked for another namespace.
//!
//! Needs the test cluster: run through `bash scripts/test.sh` (the tests
//! fail without it, saying how to start one).

use std::path::PathBuf;
use std::process::Command;

use podlb_testkit::kube::KubeCluster;

/// `deploy/kubernetes/` of this repository.
fn manifest_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/kubernetes"
    ))
}

/// Every `.yaml` and `.yml` file in `deploy/kubernetes/`, sorted.
fn manifests() -> Vec<PathBuf> {
    let dir = manifest_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    files
}

fn path_str(path: &std::path::Path) -> &str {
    path.to_str().expect("the repository path is UTF-8")
}

#[test]
fn every_manifest_passes_a_server_side_dry_run() {
    let files = manifests();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "rbac.yaml",
        "gateway.yaml",
        "sidecar.yaml",
        "backends-example.yaml",
        "control-plane.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "deploy/kubernetes/{expected} is missing (found {names:?})"
        );
    }
    let cluster = KubeCluster::shared();
    let ns = cluster.unique_namespace("manifests");

    for file in &files {
        let out = cluster.kubectl(&["apply", "--dry-run=server", "-f", path_str(file), "-n", &ns]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{} is rejected by the API server:\n{}{}",
            file.display(),
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !stdout.trim().is_empty() && stdout.lines().all(|l| l.ends_with("(server dry run)")),
            "{}: expected every object validated by the server, got:\n{stdout}",
            file.display()
        );
    }
}

/// `kubectl auth can-i VERB RESOURCE --as=SUBJECT -n NAMESPACE`.
fn can_i(cluster: &KubeCluster, subject: &str, verb: &str, resource: &str, ns: &str) -> bool {
    let out = cluster.kubectl(&["auth", "can-i", verb, resource, "--as", subject, "-n", ns]);
    match (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim(),
    ) {
        (Some(0), "yes") => true,
        (Some(1), "no") => false,
        (code, stdout) => panic!(
            "kubectl auth can-i {verb} {resource} -n {ns}: exit {code:?}, stdout {stdout:?}, stderr {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
fn rbac_grants_get_list_watch_on_endpointslices_in_its_namespace_only() {
    let cluster = KubeCluster::shared();
    let ns = cluster.unique_namespace("rbac");
    let rbac = manifest_dir().join("rbac.yaml");
    cluster.kubectl_ok(&["apply", "-f", path_str(&rbac), "-n", &ns]);
    let podlb = format!("system:serviceaccount:{ns}:podlb");
    let slices = "endpointslices.discovery.k8s.io";

    for verb in ["get", "list", "watch"] {
        assert!(
            can_i(&cluster, &podlb, verb, slices, &ns),
            "podlb may not {verb} {slices} in {ns}"
        );
    }
    for verb in ["create", "update", "patch", "delete", "deletecollection"] {
        assert!(
            !can_i(&cluster, &podlb, verb, slices, &ns),
            "podlb may {verb} {slices}"
        );
    }
    for (verb, resource) in [
        ("list", "endpoints"),
        ("list", "services"),
        ("list", "pods"),
        ("get", "secrets"),
    ] {
        assert!(
            !can_i(&cluster, &podlb, verb, resource, &ns),
            "podlb may {verb} {resource}"
        );
    }
    // A Role: nothing in other namespaces.
    assert!(
        !can_i(&cluster, &podlb, "watch", slices, "default"),
        "podlb may watch {slices} outside its namespace"
    );
}

#[test]
fn podlb_resolves_a_service_with_only_the_rbac_rights() {
    let cluster = KubeCluster::shared();
    let ns = cluster.unique_namespace("rbac-resolve");
    let rbac = manifest_dir().join("rbac.yaml");
    cluster.kubectl_ok(&["apply", "-f", path_str(&rbac), "-n", &ns]);
    // The slice the EndpointSlice controller would write for a Service
    // `greeter` with one ready pod (1.20 serves v1beta1 only).
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
- addresses: ["10.1.0.1"]
  conditions:
    ready: true
ports:
- name: grpc
  port: 50051
  protocol: TCP
"#
    ));

    // podlb as its service account, in its namespace, as in a pod.
    let token = cluster.kubectl_ok(&["create", "token", "podlb", "-n", &ns, "--duration=10m"]);
    let ca = cluster.dir().join("pki/ca.crt");
    let kubeconfig = std::env::temp_dir().join(format!("podlb-{ns}.kubeconfig"));
    std::fs::write(
        &kubeconfig,
        format!(
            r#"apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: podlb
  user:
    token: {token}
contexts:
- name: podlb
  context:
    cluster: test
    user: podlb
    namespace: {ns}
current-context: podlb
"#,
            server = cluster.server_url(),
            ca = ca.display(),
            token = token.trim(),
        ),
    )
    .unwrap();
    let resolve = |target: &str| {
        Command::new(env!("CARGO_BIN_EXE_podlb"))
            .args(["resolve", target])
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap()
    };

    let own = resolve("kubernetes:///greeter:grpc");
    let other = resolve("kubernetes:///greeter.default:grpc");
    let _ = std::fs::remove_file(&kubeconfig);

    let stdout = String::from_utf8_lossy(&own.stdout);
    assert!(
        own.status.success()
            && stdout.lines().any(|line| {
                line.split_whitespace()
                    .take(3)
                    .eq(["10.1.0.1:50051", "ready", "yes"])
            }),
        "podlb resolve in its own namespace: {}\n{stdout}{}",
        own.status,
        String::from_utf8_lossy(&own.stderr)
    );
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(
        !other.status.success() && stderr.contains("deploy/kubernetes/rbac.yaml"),
        "podlb resolve in another namespace should be refused and name the Role: {}\n{stderr}",
        other.status
    );
}

#[test]
fn the_control_plane_may_read_services_and_endpointslices_everywhere_and_write_nothing() {
    let cluster = KubeCluster::shared();
    let ns = cluster.unique_namespace("cp-rbac");
    let manifest = manifest_dir().join("control-plane.yaml");
    // Only the RBAC objects are applied for real: the ClusterRoleBinding
    // names the podlb-system namespace, where the ServiceAccount lives.
    let rbac_only = std::env::temp_dir().join(format!("{ns}-cp-rbac.yaml"));
    let text = std::fs::read_to_string(&manifest).unwrap();
    let docs: Vec<&str> = text
        .split("\n---\n")
        .filter(|doc| doc.contains("kind: ClusterRole"))
        .collect();
    assert_eq!(
        docs.len(),
        2,
        "control-plane.yaml should hold a ClusterRole and its binding"
    );
    std::fs::write(&rbac_only, docs.join("\n---\n")).unwrap();
    cluster.kubectl_ok(&["apply", "-f", path_str(&rbac_only)]);
    let subject = "system:serviceaccount:podlb-system:podlb-control-plane";
    for resource in ["services", "endpointslices.discovery.k8s.io"] {
        for verb in ["get", "list", "watch"] {
            assert!(
                can_i(&cluster, subject, verb, resource, &ns),
                "the control plane may not {verb} {resource} in {ns}"
            );
        }
        for verb in ["create", "update", "delete"] {
            assert!(
                !can_i(&cluster, subject, verb, resource, &ns),
                "the control plane may {verb} {resource}"
            );
        }
    }
    for (verb, resource) in [("list", "pods"), ("get", "secrets"), ("list", "endpoints")] {
        assert!(
            !can_i(&cluster, subject, verb, resource, &ns),
            "the control plane may {verb} {resource}"
        );
    }
}
