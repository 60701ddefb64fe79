//! Kubernetes discovery run with a service account that may list but not
//! watch EndpointSlices says exactly what is missing: the verb `watch`, the
//! resource `endpointslices`, the group `discovery.k8s.io`, and what to
//! grant; `podlb resolve --watch` shows it too. With full rights,
//! `podlb resolve` prints the Service's endpoints as a table and exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use podlb_discovery::{Discovery, DiscoveryOptions};
use podlb_testkit::kube::KubeCluster;

const PORT: u16 = 50051;
/// How long discovery or `podlb resolve` may take to say something.
const ANSWER: Duration = Duration::from_secs(30);

/// A Service `greeter` in a fresh namespace with one slice: a ready endpoint
/// with its zone and node, and a not-ready one (documentation addresses,
/// never contacted). Returns the namespace.
fn greeter_service(cluster: &KubeCluster, prefix: &str) -> String {
    let ns = cluster.unique_namespace(prefix);
    cluster.apply_yaml(&format!(
        "apiVersion: discovery.k8s.io/v1beta1\n\
         kind: EndpointSlice\n\
         metadata:\n  name: greeter-abc\n  namespace: {ns}\n  \
         labels: {{kubernetes.io/service-name: greeter}}\n\
         addressType: IPv4\n\
         ports: [{{name: grpc, port: {PORT}, protocol: TCP}}]\n\
         endpoints:\n\
         - addresses: [\"192.0.2.1\"]\n  conditions: {{ready: true}}\n  \
         topology: {{kubernetes.io/hostname: node-a, topology.kubernetes.io/zone: zone-a}}\n\
         - addresses: [\"192.0.2.2\"]\n  conditions: {{ready: false}}\n"
    ));
    ns
}

/// Asserts `text` is the refusal of the watch, saying what to grant.
fn assert_names_the_missing_right(text: &str) {
    for word in [
        "watch",
        "endpointslices",
        "discovery.k8s.io",
        "grant",
        "get, list and watch",
    ] {
        assert!(text.contains(word), "the error should say {word:?}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_without_the_watch_verb_says_which_right_to_grant() {
    let cluster = KubeCluster::shared();
    let ns = tokio::task::block_in_place(|| greeter_service(&cluster, "rbac"));
    let target = format!("kubernetes:///greeter.{ns}:grpc").parse().unwrap();
    let mut options = DiscoveryOptions::default();
    options.kubernetes.kubeconfig = Some(cluster.nowatch_kubeconfig_path());
    let discovery = Discovery::start(&target, &options);
    let mut updates = discovery.subscribe();

    // The list is allowed, so the set is known; the watch that follows is
    // refused, and the error stays beside the set.
    let res = support::wait_for_resolution(
        &mut updates,
        ANSWER,
        "the listed set and the watch's refusal",
        |r| r.resolved && r.error.is_some(),
    )
    .await;
    assert_eq!(res.endpoints.len(), 2, "{res:?}");
    let error = res.error.unwrap().to_string();
    assert_names_the_missing_right(&error);
    assert!(
        error.contains(&ns),
        "the error should name the namespace: {error}"
    );
}

/// A child process killed when dropped, so a failing test leaves none.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn podlb_resolve(kubeconfig: &Path, target: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podlb"));
    cmd.arg("resolve")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(extra)
        .arg(target)
        // The kubeconfig comes from the flag only.
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null());
    cmd
}

#[test]
fn podlb_resolve_watch_without_the_watch_verb_prints_the_set_then_the_refusal() {
    let cluster = KubeCluster::shared();
    let ns = greeter_service(&cluster, "rbac-cli");
    let target = format!("kubernetes:///greeter.{ns}:grpc");
    let mut child = Killed(
        podlb_resolve(&cluster.nowatch_kubeconfig_path(), &target, &["--watch"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start podlb resolve"),
    );

    // Both streams, line by line, into one channel.
    let (tx, lines) = mpsc::channel::<String>();
    let stdout = child.0.stdout.take().unwrap();
    let stderr = child.0.stderr.take().unwrap();
    for stream in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);

    let deadline = Instant::now() + ANSWER;
    let mut seen = Vec::new();
    let refusal = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains("refused to watch") => break line,
            Ok(line) => seen.push(line),
            Err(_) => panic!(
                "podlb resolve --watch should print the watch's refusal within {ANSWER:?}; \
                 it printed: {seen:#?}"
            ),
        }
    };
    assert_names_the_missing_right(&refusal);
    assert!(
        seen.iter().any(|l| l.starts_with("192.0.2.1:50051")),
        "the listed set comes first: {seen:#?}"
    );
}

#[test]
fn podlb_resolve_prints_the_endpoints_of_a_service_as_a_table_and_exits_0() {
    let cluster = KubeCluster::shared();
    let ns = greeter_service(&cluster, "resolve");
    let target = format!("kubernetes:///greeter.{ns}:grpc");
    let out = podlb_resolve(&cluster.kubeconfig_path(), &target, &["--timeout", "30s"])
        .output()
        .expect("run podlb resolve");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "podlb resolve should exit 0 ({}): {stdout}{stderr}",
        out.status
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let expected: [&[&str]; 3] = [
        &["ADDRESS", "STATE", "CALLS", "ZONE", "NODE", "SOURCE"],
        &[
            "192.0.2.1:50051",
            "ready",
            "yes",
            "zone-a",
            "node-a",
            "greeter-abc",
        ],
        &[
            "192.0.2.2:50051",
            "not-ready",
            "no",
            "-",
            "-",
            "greeter-abc",
        ],
    ];
    for row in expected {
        assert!(
            rows.iter().any(|r| r == row),
            "the table should have the row {row:?}:\n{stdout}"
        );
    }
    assert!(
        stdout.starts_with(&format!("{target}: 2 endpoints, 1 take calls")),
        "{stdout}"
    );
}
