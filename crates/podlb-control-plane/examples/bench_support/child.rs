//! The control plane in a process of its own: the benchmark binary runs
//! itself again with `serve ...` as its arguments, and that child starts a
//! [`ControlPlane`] on 127.0.0.1 and takes commands on stdin. Its RSS and
//! CPU (read from `/proc/PID` by the parent) are then the control plane's
//! alone, not the load generator's or the Kubernetes client's that writes
//! the objects.
//!
//! ```text
//!  parent ── "apply FIRST COUNT GEN" ──► child: ControlPlane::apply(Upsert) × COUNT ── "APPLIED"
//!         ── "reset GEN" ──────────────► child: ControlPlane::apply(Reset(all))     ── "APPLIED"
//!         ── "await NAME PORT" ────────► child: waits for a snapshot whose ClusterLoadAssignment
//!                                               NAME has an endpoint on PORT      ── "SEEN N" | "TIMEOUT"
//!         ── "snapshots N" ────────────► child: waits for N snapshots            ── "SNAPSHOTS N"
//!         ── "status" ─────────────────► child: ControlPlane::status() as JSON   ── "STATUS {json}"
//!         ── "acks" ───────────────────► child: ClusterLoadAssignment ACKs, summed over clients
//!                                               ── "ACKS CLIENTS SYNCED FIRST_SENT_MS LAST_SENT_MS LAST_ACK_MS"
//!         ── "quit" ───────────────────► child: ControlPlane::shutdown           ── "BYE"
//! ```
//!
//! The child runs a 2-worker tokio runtime and mimalloc (the examples set
//! it as their allocator), as `podlb control-plane` does, but logs nothing:
//! the binary would log one line per connected ADS stream at `info`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use podlb_control_plane::catalog::CatalogChange;
use podlb_control_plane::snapshot::{ENDPOINTS, SharedSnapshot};
use podlb_control_plane::status::{ClientStatus, StatusReport, SyncState};
use podlb_control_plane::{ControlPlane, ControlPlaneConfig, Source};
use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;

use super::catalog;
use super::measure::{self, Usage};

/// The first argument that makes a benchmark binary the child.
const SERVE: &str = "serve";
/// How long the parent waits for one answer: only a guard against a hang.
const PATIENCE: Duration = Duration::from_secs(300);

/// Where the child's Services come from.
#[derive(Debug, Clone)]
pub(crate) enum ChildSource {
    /// `Source::Fixed`: `services` Services of `endpoints` endpoints each,
    /// generation 0, in `namespace`.
    Fixed {
        /// Their namespace.
        namespace: String,
        /// How many Services.
        services: usize,
        /// Endpoints per Service.
        endpoints: usize,
    },
    /// `Source::Kubernetes`: every Service of `namespace`.
    Kubernetes {
        /// The kubeconfig of the API server.
        kubeconfig: PathBuf,
        /// The namespace to serve.
        namespace: String,
    },
}

impl ChildSource {
    fn to_args(&self) -> Vec<String> {
        match self {
            ChildSource::Fixed {
                namespace,
                services,
                endpoints,
            } => vec![
                "fixed".into(),
                namespace.clone(),
                services.to_string(),
                endpoints.to_string(),
            ],
            ChildSource::Kubernetes {
                kubeconfig,
                namespace,
            } => vec![
                "kubernetes".into(),
                kubeconfig.display().to_string(),
                namespace.clone(),
            ],
        }
    }

    fn from_args(args: &[String]) -> Option<ChildSource> {
        match args {
            [kind, namespace, services, endpoints] if kind == "fixed" => Some(ChildSource::Fixed {
                namespace: namespace.clone(),
                services: services.parse().ok()?,
                endpoints: endpoints.parse().ok()?,
            }),
            [kind, kubeconfig, namespace] if kind == "kubernetes" => {
                Some(ChildSource::Kubernetes {
                    kubeconfig: PathBuf::from(kubeconfig),
                    namespace: namespace.clone(),
                })
            }
            _ => None,
        }
    }
}

/// A control plane running in a child process; killed when dropped.
pub(crate) struct ChildControlPlane {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    pid: u32,
    /// Where its ADS server listens.
    pub(crate) xds_addr: SocketAddr,
    /// Its usage just before `ControlPlane::start`.
    pub(crate) before_start: Usage,
    /// Its usage just after (a Fixed catalog's snapshot is built by then).
    pub(crate) after_start: Usage,
}

impl ChildControlPlane {
    /// Runs this binary again as a control plane serving `source`, and
    /// waits until it serves.
    pub(crate) async fn start(source: &ChildSource) -> ChildControlPlane {
        let exe = std::env::current_exe().expect("the benchmark's own path");
        let mut child = Command::new(exe)
            .arg(SERVE)
            .args(source.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the control plane child");
        let pid = child.id().expect("the child's pid");
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let mut started = ChildControlPlane {
            child,
            stdin,
            stdout,
            pid,
            xds_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            before_start: Usage::default(),
            after_start: Usage::default(),
        };
        let ready = started.read_line().await;
        let words: Vec<&str> = ready.split_whitespace().collect();
        match words.as_slice() {
            ["READY", addr, before_us, after_us, after_kb] => {
                started.xds_addr = addr.parse().expect("READY names the xDS address");
                started.before_start.cpu = micros(before_us);
                started.after_start.cpu = micros(after_us);
                started.after_start.rss_kb = after_kb.parse().unwrap_or(0);
            }
            _ => panic!("the control plane child said {ready:?} instead of READY"),
        }
        started
    }

    /// The child's CPU time and memory now.
    pub(crate) fn usage(&self) -> Usage {
        measure::usage(self.pid)
    }

    /// Upserts Services `first..first + count` in `generation`, one
    /// `apply` each, as fast as the control plane takes them.
    pub(crate) async fn apply(&mut self, first: usize, count: usize, generation: u16) {
        self.expect(&format!("apply {first} {count} {generation}"), "APPLIED")
            .await;
    }

    /// Replaces the whole catalog by its `generation`: every Service changes.
    pub(crate) async fn reset(&mut self, generation: u16) {
        self.expect(&format!("reset {generation}"), "APPLIED").await;
    }

    /// Sends `reset` without waiting for its answer (read it with
    /// [`ChildControlPlane::applied`]), so the caller's clock starts at the
    /// write.
    pub(crate) async fn send_reset(&mut self, generation: u16) {
        self.write(&format!("reset {generation}")).await;
    }

    /// Sends `apply` without waiting for its answer.
    pub(crate) async fn send_apply(&mut self, first: usize, count: usize, generation: u16) {
        self.write(&format!("apply {first} {count} {generation}"))
            .await;
    }

    /// Reads the answer of a `send_*`.
    pub(crate) async fn applied(&mut self) {
        let line = self.read_line().await;
        assert_eq!(line, "APPLIED", "the control plane child answered {line:?}");
    }

    /// Waits until a snapshot serves ClusterLoadAssignment `name` with an
    /// endpoint on `port`; returns how many snapshots the child has seen.
    pub(crate) async fn await_port(&mut self, name: &str, port: u16) -> u64 {
        self.write(&format!("await {name} {port}")).await;
        let line = self.read_line().await;
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["SEEN", n] => n.parse().unwrap_or(0),
            _ => panic!("no snapshot served {name} on port {port}: the child said {line:?}"),
        }
    }

    /// Waits until the child has seen `n` snapshots after the first.
    pub(crate) async fn await_snapshots(&mut self, n: u64) {
        self.write(&format!("snapshots {n}")).await;
        let line = self.read_line().await;
        assert!(line.starts_with("SNAPSHOTS"), "the child said {line:?}");
    }

    /// What the control plane's status view says of every client now.
    pub(crate) async fn status(&mut self) -> StatusReport {
        self.write("status").await;
        let line = self.read_line().await;
        let json = line
            .strip_prefix("STATUS ")
            .unwrap_or_else(|| panic!("the child said {line:?} instead of STATUS"));
        serde_json::from_str(json).expect("a status report")
    }

    /// The ClusterLoadAssignment ACKs of every client, summed up in the
    /// child (a report of 10,000 clients is too big to ship for a count).
    pub(crate) async fn acks(&mut self) -> Acks {
        self.write("acks").await;
        let line = self.read_line().await;
        Acks::from_line(&line).unwrap_or_else(|| panic!("the child said {line:?} instead of ACKS"))
    }

    /// Shuts the control plane down and waits for the child to exit.
    pub(crate) async fn quit(mut self) {
        // The child may be gone already; then there is nothing to ask.
        let _ = self.stdin.write_all(b"quit\n").await;
        let _ = self.stdin.flush().await;
        let _ = tokio::time::timeout(Duration::from_secs(30), self.read_line_raw()).await;
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    async fn expect(&mut self, command: &str, answer: &str) {
        self.write(command).await;
        let line = self.read_line().await;
        assert_eq!(
            line, answer,
            "the control plane child answered {command:?} with {line:?}"
        );
    }

    async fn write(&mut self, command: &str) {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .expect("write to the control plane child");
        self.stdin
            .flush()
            .await
            .expect("flush to the control plane child");
    }

    async fn read_line(&mut self) -> String {
        match tokio::time::timeout(PATIENCE, self.read_line_raw()).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("the control plane child exited"),
            Err(_) => panic!("the control plane child did not answer in {PATIENCE:?}"),
        }
    }

    async fn read_line_raw(&mut self) -> Option<String> {
        self.stdout.next_line().await.ok().flatten()
    }
}

/// Where the clients' ClusterLoadAssignments stand, from the status view.
/// Times are the control plane's, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Acks {
    /// Connected clients.
    pub(crate) clients: usize,
    /// Clients whose latest ClusterLoadAssignment response is ACKed.
    pub(crate) synced: usize,
    /// The earliest and the latest of those responses' send times.
    pub(crate) first_sent_ms: u64,
    pub(crate) last_sent_ms: u64,
    /// The latest of their ACKs' arrival times.
    pub(crate) last_ack_ms: u64,
}

impl Acks {
    fn to_line(self) -> String {
        format!(
            "ACKS {} {} {} {} {}",
            self.clients, self.synced, self.first_sent_ms, self.last_sent_ms, self.last_ack_ms
        )
    }

    fn from_line(line: &str) -> Option<Acks> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["ACKS", clients, synced, first, last, ack] => Some(Acks {
                clients: clients.parse().ok()?,
                synced: synced.parse().ok()?,
                first_sent_ms: first.parse().ok()?,
                last_sent_ms: last.parse().ok()?,
                last_ack_ms: ack.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// The ClusterLoadAssignment ACK of one client, if its latest response of
/// that type is ACKed: (sent at, ACKed at), Unix ms.
pub(crate) fn endpoints_ack(client: &ClientStatus) -> Option<(u64, u64)> {
    let eds = client.types.iter().find(|t| t.type_url == ENDPOINTS)?;
    let (sent, acked) = (eds.last_sent.as_ref()?, eds.acked.as_ref()?);
    (eds.sync == SyncState::Acked && acked.nonce == sent.nonce)
        .then_some((sent.at_unix_ms, acked.at_unix_ms))
}

fn acks(report: &StatusReport) -> Acks {
    let mut acks = Acks {
        clients: report.clients.len(),
        first_sent_ms: u64::MAX,
        ..Acks::default()
    };
    for (sent, acked) in report.clients.iter().filter_map(endpoints_ack) {
        acks.synced += 1;
        acks.first_sent_ms = acks.first_sent_ms.min(sent);
        acks.last_sent_ms = acks.last_sent_ms.max(sent);
        acks.last_ack_ms = acks.last_ack_ms.max(acked);
    }
    if acks.synced == 0 {
        acks.first_sent_ms = 0;
    }
    acks
}

fn micros(text: &str) -> Duration {
    Duration::from_micros(text.parse().unwrap_or(0))
}

/// If this process was started as the child (`serve ...`), runs the
/// control plane until told to quit and returns true.
pub(crate) fn run_if_child() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((first, rest)) = args.split_first() else {
        return false;
    };
    if first != SERVE {
        return false;
    }
    let source =
        ChildSource::from_args(rest).expect("serve fixed NS N M | serve kubernetes KUBECONFIG NS");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(serve(source));
    true
}

async fn serve(source: ChildSource) {
    let (control_plane_source, fixed) = match &source {
        ChildSource::Fixed {
            namespace,
            services,
            endpoints,
        } => (
            Source::Fixed(catalog::services(namespace, *services, *endpoints, 0)),
            Some((namespace.clone(), *services, *endpoints)),
        ),
        ChildSource::Kubernetes {
            kubeconfig,
            namespace,
        } => {
            let selection = podlb_discovery::CatalogSelection {
                namespace: Some(namespace.clone()),
                ..Default::default()
            };
            // KubernetesOptions is #[non_exhaustive]: no struct literal here.
            let mut options = podlb_discovery::KubernetesOptions::default();
            options.kubeconfig = Some(kubeconfig.clone());
            (Source::Kubernetes { selection, options }, None)
        }
    };
    let before = measure::own_usage();
    let control_plane = ControlPlane::start(ControlPlaneConfig {
        xds_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        gateway_listen: None,
        source: control_plane_source,
        default_namespace: None,
    })
    .await
    .expect("start the control plane");
    let after = measure::own_usage();
    println!(
        "READY {} {} {} {}",
        control_plane.xds_addr(),
        before.cpu.as_micros(),
        after.cpu.as_micros(),
        after.rss_kb
    );
    let seen = Arc::new(AtomicU64::new(0));
    // `await` watches the counter's output, not the control plane's
    // channel, so the count it answers with includes the snapshot it found.
    let (counted_tx, counted) = watch::channel(control_plane.snapshots().borrow().clone());
    tokio::spawn(count_snapshots(
        control_plane.snapshots(),
        Arc::clone(&seen),
        counted_tx,
    ));
    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = commands.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["apply", first, count, generation] => {
                let (namespace, _, endpoints) = fixed.clone().expect("apply needs a Fixed source");
                let (first, count, generation) = (parse(first), parse(count), parse(generation));
                for i in first..first + count {
                    let service = catalog::service(&namespace, i, endpoints, generation as u16);
                    control_plane.apply(CatalogChange::Upsert(service)).await;
                }
                "APPLIED".to_string()
            }
            ["reset", generation] => {
                let (namespace, services, endpoints) =
                    fixed.clone().expect("reset needs a Fixed source");
                let all =
                    catalog::services(&namespace, services, endpoints, parse(generation) as u16);
                control_plane.apply(CatalogChange::Reset(all)).await;
                "APPLIED".to_string()
            }
            ["await", name, port] => {
                let found = serves_port(counted.clone(), name, parse(port) as u16).await;
                match found {
                    true => format!("SEEN {}", seen.load(Ordering::Relaxed)),
                    false => "TIMEOUT".to_string(),
                }
            }
            ["snapshots", n] => {
                let n = parse(n) as u64;
                while seen.load(Ordering::Relaxed) < n {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                format!("SNAPSHOTS {}", seen.load(Ordering::Relaxed))
            }
            ["status"] => match serde_json::to_string(&control_plane.status()) {
                Ok(json) => format!("STATUS {json}"),
                Err(err) => format!("ERROR {err}"),
            },
            ["acks"] => acks(&control_plane.status()).to_line(),
            ["quit"] => break,
            _ => format!("UNKNOWN {line}"),
        };
        println!("{answer}");
    }
    control_plane.shutdown().await;
    println!("BYE");
}

fn parse(word: &str) -> usize {
    word.parse().expect("a number")
}

/// Counts the snapshots it sees, then passes each on to `counted`. A
/// watch channel keeps only the latest value, so snapshots that replace
/// each other before this task runs count as one: the count is a lower
/// bound of the snapshots published (exact when they are far apart).
async fn count_snapshots(
    mut snapshots: watch::Receiver<SharedSnapshot>,
    seen: Arc<AtomicU64>,
    counted: watch::Sender<SharedSnapshot>,
) {
    while snapshots.changed().await.is_ok() {
        let snapshot = snapshots.borrow_and_update().clone();
        seen.fetch_add(1, Ordering::Relaxed);
        counted.send_replace(snapshot);
    }
}

/// Waits (at most [`PATIENCE`]) for a snapshot whose ClusterLoadAssignment
/// `name` has an endpoint on `port`.
async fn serves_port(
    mut snapshots: watch::Receiver<SharedSnapshot>,
    name: &str,
    port: u16,
) -> bool {
    let wait = async {
        loop {
            let snapshot = snapshots.borrow_and_update().clone();
            if endpoint_ports(&snapshot, name).contains(&port) {
                return;
            }
            if snapshots.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait).await.is_ok()
}

fn endpoint_ports(snapshot: &SharedSnapshot, name: &str) -> Vec<u16> {
    let Some(resource) = snapshot.get(ENDPOINTS, name) else {
        return Vec::new();
    };
    let Ok(cla) = ClusterLoadAssignment::decode(resource.body.value.as_slice()) else {
        return Vec::new();
    };
    podlb_xds::endpoints_from_cla(&cla)
        .unwrap_or_default()
        .iter()
        .map(|endpoint| endpoint.addr.socket_addr().port())
        .collect()
}
