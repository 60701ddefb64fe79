//! How long an EndpointSlice change takes to reach an xDS client, against a
//! real kube-apiserver (the test cluster named by `PODLB_KUBE_DIR`):
//! median of 20 changes, each waited for before the next.
//!
//! ```text
//!  this process: kube-rs PATCH slice ──► kube-apiserver ──watch──► child: podlb control plane
//!       t0 ─────────────────────────────────────────────────────────────┘  (Source::Kubernetes)
//!  this process: podlb_xds::discover("svc-0000.NS:50051") ◄── ADS push ──┘
//!       yields the new endpoints (its ACK is queued just before) ── "client has it"
//!  child: status view records the push and the client's ACK ── "ACK at the control plane"
//! ```
//!
//! The client is the project's own xDS client (`podlb_xds::discover`, the
//! one behind `xds:///` targets): a real client that follows Listener →
//! Cluster → ClusterLoadAssignment, validates, and ACKs or NACKs. It queues
//! the ACK of a response before it hands the response's endpoints to the
//! caller, so "client has it" is also "ACK queued". The control plane's
//! status view (the rows `podlb control-plane status` prints) then gives
//! when it sent the ClusterLoadAssignment and when the ACK came back, in
//! milliseconds of the same clock.
//!
//! Each change moves the 10 endpoints of Service 0 to a new port (a merge
//! patch of its one EndpointSlice), so the client can tell it has the new
//! endpoints from their port. The namespace holds N Services of 10
//! endpoints (N = 10 and 1,000 by default; the arguments choose others),
//! so the figure is also taken with a large catalog behind it. The
//! namespace is removed afterwards.
//!
//! Run by `bench/control_plane.sh`. Prints Markdown; without
//! `PODLB_KUBE_DIR` it says it did not run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bench_support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bench_support::catalog::{self, endpoint_port, resource_name, slice_name};
use bench_support::child::{ChildControlPlane, ChildSource, endpoints_ack};
use bench_support::kube as k8s;
use bench_support::measure::{self, max, median, ms, quantile};
use futures_util::{Stream, StreamExt};
use podlb_core::Update;
use podlb_testkit::kube::KubeCluster;

/// The binary's allocator, so the control plane runs as `podlb control-plane` does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Changes timed per catalog size.
const CHANGES: usize = 20;
/// Endpoints per Service.
const ENDPOINTS: usize = 10;
/// Catalog sizes when no argument names others.
const DEFAULT_SIZES: [usize; 2] = [10, 1_000];
/// The pause between two changes, so each is timed alone.
const PAUSE: Duration = Duration::from_millis(250);
/// The client's node id, which finds its row in the status view.
const NODE_ID: &str = "podlb-bench-propagation";
/// How long one change may take before the run is declared broken.
const PATIENCE: Duration = Duration::from_secs(30);

/// One change, timed from just before the PATCH request is sent.
#[derive(Debug, Clone, Copy)]
struct Change {
    /// The API server answered the PATCH (the write is in etcd).
    written: Duration,
    /// `podlb_xds::discover` yielded the new endpoints (ACK queued).
    client: Duration,
    /// The control plane sent the ClusterLoadAssignment (its clock, ms).
    sent_ms: f64,
    /// The control plane received the client's ACK of it (its clock, ms).
    acked_ms: f64,
    /// The control plane's CPU from the write until the client had it.
    cpu: Duration,
}

/// The changes of one catalog size.
#[derive(Debug)]
struct Run {
    services: usize,
    changes: Vec<Change>,
}

fn main() {
    if bench_support::child::run_if_child() {
        return;
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse().expect("a number of Services"))
        .collect();
    let sizes = if sizes.is_empty() {
        DEFAULT_SIZES.to_vec()
    } else {
        sizes
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(&sizes));
}

async fn run(sizes: &[usize]) {
    println!("## EndpointSlice write → xDS client ACK (median of {CHANGES})");
    println!();
    println!("Machine: {}", measure::machine());
    println!();
    let Some(cluster) = KubeCluster::shared_if_started() else {
        println!("Not run: no test cluster (`PODLB_KUBE_DIR` is not set).");
        return;
    };
    let client = k8s::client(&cluster).await;
    let mut runs = Vec::new();
    for &services in sizes {
        runs.push(propagation_run(&cluster, &client, services).await);
    }
    print_runs(&runs);
}

async fn propagation_run(cluster: &KubeCluster, client: &kube::Client, services: usize) -> Run {
    let namespace = cluster.unique_namespace("xds-prop");
    let written = Instant::now();
    k8s::create_catalog(client, &namespace, services, ENDPOINTS).await;
    eprintln!(
        "wrote {services} Services and EndpointSlices to {namespace} in {:.1} s",
        written.elapsed().as_secs_f64()
    );

    let mut cp = ChildControlPlane::start(&ChildSource::Kubernetes {
        kubeconfig: cluster.kubeconfig_path(),
        namespace: namespace.clone(),
    })
    .await;
    cp.await_port(&resource_name(&namespace, services - 1), endpoint_port(0))
        .await;

    let mut bootstrap =
        podlb_xds::Bootstrap::insecure(&cp.xds_addr.to_string()).expect("a bootstrap");
    bootstrap.node.id = NODE_ID.to_string();
    bootstrap.node.cluster = "podlb-bench".to_string();
    let target = resource_name(&namespace, 0);
    let mut updates = podlb_xds::discover(&target, bootstrap);
    wait_for_port(&mut updates, endpoint_port(0)).await;

    let mut changes = Vec::new();
    for k in 0..CHANGES {
        let generation = 1 + k as u16;
        let patch = k8s::slice_patch(
            endpoint_port(generation),
            &catalog::slice_endpoints(0, ENDPOINTS),
        );
        let before = cp.usage();
        let wall_start = unix_ms_now();
        let start = Instant::now();
        k8s::patch_all(client, &namespace, vec![(slice_name(0), patch)]).await;
        let written = start.elapsed();
        wait_for_port(&mut updates, endpoint_port(generation)).await;
        let client_has_it = start.elapsed();
        let cpu = cp.usage().cpu.saturating_sub(before.cpu);
        let (sent_ms, acked_ms) = ack_after(&mut cp, wall_start).await;
        changes.push(Change {
            written,
            client: client_has_it,
            sent_ms: sent_ms as f64 - wall_start,
            acked_ms: acked_ms as f64 - wall_start,
            cpu,
        });
        tokio::time::sleep(PAUSE).await;
    }
    drop(updates);
    cp.quit().await;
    k8s::delete_namespace(client, &namespace).await;
    Run { services, changes }
}

/// Reads the client's updates until one holds endpoints, all on `port`.
async fn wait_for_port(
    updates: &mut (impl Stream<Item = Result<Update, podlb_xds::Error>> + Unpin),
    port: u16,
) {
    let wait = async {
        loop {
            match updates.next().await {
                Some(Ok(Update::Reset(endpoints)))
                    if !endpoints.is_empty()
                        && endpoints
                            .iter()
                            .all(|e| e.addr.socket_addr().port() == port) =>
                {
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => eprintln!("xDS client: {err}"),
                None => panic!("the xDS client's stream ended"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("the xDS client did not get port {port} in {PATIENCE:?}"));
}

/// The status view's record of the ClusterLoadAssignment sent to the
/// client after `since` (Unix ms) and its ACK: (sent, ACKed), Unix ms.
async fn ack_after(cp: &mut ChildControlPlane, since: f64) -> (u64, u64) {
    let started = Instant::now();
    loop {
        let report = cp.status().await;
        let ack = report
            .clients
            .iter()
            .filter(|c| c.node_id == NODE_ID)
            .find_map(endpoints_ack)
            .filter(|(sent, _)| *sent as f64 >= since.floor());
        if let Some(ack) = ack {
            return ack;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the status view shows no ACK of the change"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn unix_ms_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn print_runs(runs: &[Run]) {
    println!(
        "Client: podlb's own xDS client (`podlb_xds::discover`, LDS → CDS → EDS, ACK queued \
         before the endpoints are handed over). Change: a merge PATCH of one EndpointSlice \
         (10 endpoints move to a new port); t0 = just before the PATCH is sent. Control plane \
         in its own process, Source::Kubernetes (EndpointSlice watch, kube-apiserver 1.20.2 on \
         127.0.0.1). Send and ACK times from the control plane's status view: \
         whole milliseconds of the same clock, so ±1 ms."
    );
    println!();
    println!(
        "| Services × {ENDPOINTS} endpoints in the namespace | API server answered the PATCH \
         | control plane sent the EDS response | client has the endpoints (ACK queued): median / p90 \
         | control plane received the ACK: median / p90 / max | control plane CPU per change |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for run in runs {
        let pick = |f: &dyn Fn(&Change) -> Duration| run.changes.iter().map(f).collect::<Vec<_>>();
        let from_ms = |v: f64| Duration::from_secs_f64(v.max(0.0) / 1000.0);
        let written = pick(&|c| c.written);
        let client = pick(&|c| c.client);
        let sent = pick(&|c| from_ms(c.sent_ms));
        let acked = pick(&|c| from_ms(c.acked_ms));
        let cpu = pick(&|c| c.cpu);
        println!(
            "| {} | {:.1} ms | {:.0} ms | {:.1} / {:.1} ms | {:.0} / {:.0} / {:.0} ms | {:.2} ms |",
            run.services,
            ms(median(&written)),
            ms(median(&sent)),
            ms(median(&client)),
            ms(quantile(&client, 0.9)),
            ms(median(&acked)),
            ms(quantile(&acked, 0.9)),
            ms(max(&acked)),
            ms(median(&cpu)),
        );
    }
    println!();
    println!("Medians of {CHANGES} changes each, one at a time ({PAUSE:?} apart).");
    println!();
}
