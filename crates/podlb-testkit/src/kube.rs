//! A real Kubernetes control plane for tests: etcd + kube-apiserver v1.20.2
//! (+ kube-controller-manager with the endpoint and endpointslice
//! controllers), run by `scripts/kube-test-cluster.sh` on 127.0.0.1.
//!
//! It owns nothing but the wrapper: the script builds, caches, starts and
//! stops the processes; this module finds the cluster and drives it.
//!
//! - [`KubeCluster::shared`]: the cluster `scripts/test.sh` starts once for
//!   the whole run (with controllers), named by `PODLB_KUBE_DIR`. Tests
//!   sharing it isolate themselves with [`KubeCluster::unique_namespace`] and
//!   never stop it.
//! - [`KubeCluster::start_private`]: a cluster of the test's own, on free
//!   ports, for fault injection ([`KubeCluster::stop_apiserver`],
//!   [`KubeCluster::start_apiserver`], [`KubeCluster::compact`]); stopped and
//!   deleted when dropped.
//!
//! Without a cluster (not run through `scripts/test.sh`, binaries not built)
//! both panic, saying how to get one: a missing peer fails the test, it never
//! passes it silently. [`KubeCluster::shared_if_started`] is for benchmarks and
//! examples that run without a cluster and say so themselves.
//!
//! Kubernetes 1.20 serves EndpointSlices as `discovery.k8s.io/v1beta1` only.
//! Every call is synchronous (std::process): call it from
//! `tokio::task::spawn_blocking` where blocking matters.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A running test cluster: the directory `scripts/kube-test-cluster.sh start`
/// wrote its kubeconfigs, pki, logs and pids to.
#[derive(Debug)]
pub struct KubeCluster {
    dir: PathBuf,
    /// Started by this process (private): stopped and deleted on drop.
    owned: bool,
    script: PathBuf,
    apiserver_port: u16,
}

/// What a [`KubeCluster::start_private`] cluster runs with.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrivateClusterOptions {
    /// `--watch-cache=false`: watches are served from etcd, so
    /// [`KubeCluster::compact`] makes older resourceVersions answer 410.
    pub no_watch_cache: bool,
    /// Also run kube-controller-manager (endpoint and endpointslice
    /// controllers), which turn Services and Pods into Endpoints and
    /// EndpointSlices.
    pub controllers: bool,
}

/// Numbers namespaces and private clusters of this process.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// No cluster: the test fails, saying `why` and how to get one (`fix`).
fn unavailable(why: &str, fix: &str) -> ! {
    panic!("this test needs the Kubernetes test cluster: {why}.\n{fix}")
}

/// How to get the cluster [`KubeCluster::shared`] reads.
const SHARED_FIX: &str = "Run the tests with `bash scripts/test.sh`, which builds, starts and \
     stops it; or start one by hand: `bash scripts/kube-test-cluster.sh install`, then \
     `bash scripts/kube-test-cluster.sh start DIR --controllers`, and export PODLB_KUBE_DIR=DIR \
     (stop it with `bash scripts/kube-test-cluster.sh stop DIR`).";

/// How to get what [`KubeCluster::start_private`] runs.
const PRIVATE_FIX: &str = "Build it once with `bash scripts/kube-test-cluster.sh install` \
     (`bash scripts/test.sh` does it too).";

/// `scripts/kube-test-cluster.sh`: `PODLB_KUBE_SCRIPT`, or this repository's.
fn script_path() -> PathBuf {
    match std::env::var_os("PODLB_KUBE_SCRIPT") {
        Some(script) if !script.is_empty() => PathBuf::from(script),
        _ => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/kube-test-cluster.sh"
        )),
    }
}

/// A port that was free a moment ago on 127.0.0.1. All listeners are held
/// until every port is picked, so the ports differ from each other.
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local_addr").port())
}

/// Reads `APISERVER_PORT` from the `cluster.env` the script wrote in `dir`.
fn read_apiserver_port(dir: &Path) -> u16 {
    let env_file = dir.join("cluster.env");
    let text = std::fs::read_to_string(&env_file)
        .unwrap_or_else(|e| panic!("read {}: {e}", env_file.display()));
    text.lines()
        .find_map(|line| line.strip_prefix("APISERVER_PORT="))
        .and_then(|port| port.trim().parse().ok())
        .unwrap_or_else(|| panic!("no APISERVER_PORT in {}", env_file.display()))
}

impl KubeCluster {
    /// The cluster `scripts/test.sh` started for the whole test run
    /// (`PODLB_KUBE_DIR`), with controllers.
    ///
    /// # Panics
    /// When there is none, saying how to start one: a test that needs the
    /// cluster fails without it.
    pub fn shared() -> KubeCluster {
        match Self::shared_if_started() {
            Some(cluster) => cluster,
            None => unavailable("PODLB_KUBE_DIR is not set", SHARED_FIX),
        }
    }

    /// [`KubeCluster::shared`], or `None` when `PODLB_KUBE_DIR` is not set:
    /// for benchmarks and examples that report "not run" themselves. Tests
    /// use [`KubeCluster::shared`].
    ///
    /// # Panics
    /// When `PODLB_KUBE_DIR` names a directory without a started cluster.
    pub fn shared_if_started() -> Option<KubeCluster> {
        let dir = match std::env::var_os("PODLB_KUBE_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => return None,
        };
        assert!(
            dir.join("kubeconfig").is_file(),
            "PODLB_KUBE_DIR={} has no kubeconfig: is the cluster started?",
            dir.display()
        );
        Some(KubeCluster {
            apiserver_port: read_apiserver_port(&dir),
            dir,
            owned: false,
            script: script_path(),
        })
    }

    /// Starts a cluster of the caller's own (etcd + kube-apiserver, and the
    /// controllers if asked) on free ports, in a fresh directory under the
    /// temp dir; it is stopped and deleted on drop. Takes about 5 s.
    ///
    /// # Panics
    /// When the binaries are not built (`scripts/kube-test-cluster.sh
    /// install`), saying so, and whenever the start itself fails.
    pub fn start_private(opts: PrivateClusterOptions) -> KubeCluster {
        let script = script_path();
        let check = Command::new("bash")
            .arg(&script)
            .arg("check")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run bash {} check: {e}", script.display()));
        if !check.status.success() {
            unavailable(
                &format!(
                    "the test control plane is not installed: {}",
                    String::from_utf8_lossy(&check.stderr).trim()
                ),
                PRIVATE_FIX,
            );
        }

        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("podlb-kube-{}-{n}", std::process::id()));
        // Free ports can be taken by someone else before etcd or the
        // apiserver binds them: try again on fresh ones.
        let mut last_failure = String::new();
        for _ in 0..3 {
            let _ = std::fs::remove_dir_all(&dir);
            let [apiserver, etcd, etcd_peer] = free_ports::<3>();
            let mut cmd = Command::new("bash");
            cmd.arg(&script)
                .arg("start")
                .arg(&dir)
                .args(["--apiserver-port", &apiserver.to_string()])
                .args(["--etcd-port", &etcd.to_string()])
                .args(["--etcd-peer-port", &etcd_peer.to_string()])
                // Stop it even if this process dies without dropping it.
                .args(["--owner-pid", &std::process::id().to_string()]);
            if opts.no_watch_cache {
                cmd.arg("--no-watch-cache");
            }
            if opts.controllers {
                cmd.arg("--controllers");
            }
            let out = cmd
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("run bash {} start: {e}", script.display()));
            if out.status.success() {
                return KubeCluster {
                    dir,
                    owned: true,
                    script,
                    apiserver_port: apiserver,
                };
            }
            last_failure = String::from_utf8_lossy(&out.stderr).into_owned();
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("start a private test cluster failed 3 times; last attempt:\n{last_failure}");
    }

    /// The cluster's directory (logs: `kube-apiserver.log`, `etcd.log`, ...).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig (group `system:masters`, namespace `default`).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The kubeconfig of user `nowatch`, who may get and list
    /// `discovery.k8s.io` EndpointSlices but not watch them.
    pub fn nowatch_kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig-nowatch")
    }

    /// The API server's URL, `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver_port)
    }

    /// Runs `kubectl ARGS` as admin and returns its output, whatever its
    /// exit status.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_stdin(args, None)
    }

    /// Runs `kubectl ARGS` as admin and returns its stdout; panics with its
    /// stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        checked(args, self.kubectl(args))
    }

    /// `kubectl apply -f -` of `yaml` as admin; panics when it fails.
    pub fn apply_yaml(&self, yaml: &str) {
        let args = ["apply", "-f", "-"];
        checked(&args, self.kubectl_with_stdin(&args, Some(yaml)));
    }

    fn kubectl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;

        let mut child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.kubeconfig_path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run kubectl {}: {e}", args.join(" ")));
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            pipe.write_all(input.as_bytes())
                .unwrap_or_else(|e| panic!("write to kubectl {}: {e}", args.join(" ")));
        }
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("wait for kubectl {}: {e}", args.join(" ")))
    }

    /// Creates a namespace named `PREFIX-N-PID`, unique to this call, and
    /// returns its name: tests sharing a cluster work in their own.
    /// `prefix` must be lowercase letters, digits and '-'.
    pub fn unique_namespace(&self, prefix: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{n}-{}", std::process::id());
        assert!(
            name.len() <= 63
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "namespace {name:?} is not a DNS label: pick a short lowercase prefix"
        );
        self.kubectl_ok(&["create", "namespace", &name]);
        name
    }

    /// Stops the API server (etcd and the controllers keep running) until
    /// [`start_apiserver`](Self::start_apiserver). Private clusters only.
    pub fn stop_apiserver(&self) {
        self.assert_owned("stop_apiserver");
        self.script_ok("stop-apiserver");
    }

    /// Starts the API server again with its original flags and waits until
    /// it is ready. Private clusters only.
    pub fn start_apiserver(&self) {
        self.assert_owned("start_apiserver");
        self.script_ok("start-apiserver");
    }

    /// Compacts etcd at its current revision and returns that revision:
    /// with `no_watch_cache`, a watch from an older resourceVersion then
    /// fails with 410 Expired (Gone) and the watcher must list again.
    pub fn compact(&self) -> u64 {
        let out = self.script_ok("compact");
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("compact printed {out:?}, not a revision: {e}"))
    }

    fn assert_owned(&self, what: &str) {
        assert!(
            self.owned,
            "{what} on the shared cluster would disturb every other test: \
             use KubeCluster::start_private"
        );
    }

    /// Runs `bash SCRIPT SUBCOMMAND DIR`; returns its stdout, panics with
    /// its stderr when it fails.
    fn script_ok(&self, subcommand: &str) -> String {
        let out = Command::new("bash")
            .arg(&self.script)
            .arg(subcommand)
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run bash {} {subcommand}: {e}", self.script.display()));
        assert!(
            out.status.success(),
            "{} {subcommand} {} failed ({}):\n{}",
            self.script.display(),
            self.dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The stdout of a kubectl run that must have succeeded.
fn checked(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "kubectl {} failed ({}):\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Drop for KubeCluster {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let stopped = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output();
        match stopped {
            Ok(out) if out.status.success() => {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
            // Keep the directory (its logs) when something may be left running.
            Ok(out) => eprintln!(
                "stop the test cluster in {} failed ({}):\n{}",
                self.dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("run bash {} stop: {e}", self.script.display()),
        }
    }
}

/// A `discovery.k8s.io/v1beta1` EndpointSlice named `name` in `namespace`
/// for Service `service` (the `kubernetes.io/service-name` label), IPv4, one
/// port named `grpc`. Each endpoint is an address and its conditions as a
/// YAML flow mapping, e.g. `("127.0.0.11", "{ready: true}")`.
pub fn endpoint_slice_yaml(
    namespace: &str,
    name: &str,
    service: &str,
    port: u16,
    endpoints: &[(&str, &str)],
) -> String {
    use std::fmt::Write as _;
    let mut yaml = format!(
        "apiVersion: discovery.k8s.io/v1beta1\n\
         kind: EndpointSlice\n\
         metadata:\n  name: {name}\n  namespace: {namespace}\n  \
         labels: {{kubernetes.io/service-name: {service}}}\n\
         addressType: IPv4\n\
         ports: [{{name: grpc, port: {port}, protocol: TCP}}]\n\
         endpoints:\n"
    );
    if endpoints.is_empty() {
        yaml.push_str("  []\n");
    }
    for (address, conditions) in endpoints {
        let _ = writeln!(
            yaml,
            "- addresses: [\"{address}\"]\n  conditions: {conditions}"
        );
    }
    yaml
}
