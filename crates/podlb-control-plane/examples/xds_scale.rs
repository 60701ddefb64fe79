//! The control plane's memory and CPU with 1,000 Services of 10 endpoints
//! (10,000 endpoints): after the initial sync, per catalog change one at a
//! time, and per change in bursts of 100. Measured twice:
//!
//! - from a real kube-apiserver (1,000 headless Services and 1,000
//!   EndpointSlices written to a namespace of the test cluster, which is
//!   removed afterwards), when `PODLB_KUBE_DIR` names a running test
//!   cluster; skipped otherwise;
//! - from `Source::Fixed` with the same catalog, changes injected with
//!   `ControlPlane::apply`, which isolates the control plane from the
//!   Kubernetes client and its watches.
//!
//! The control plane runs in a child process (see `bench_support::child`),
//! so its RSS and CPU are its own. One ADS-free figure is taken in-process:
//! how long `SnapshotBuilder::build` takes for the whole catalog and after
//! one Service changed.
//!
//! Run by `bench/control_plane.sh`; `cargo run --release -p
//! podlb-control-plane --example xds_scale` runs it on its own. Prints
//! Markdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bench_support;

use std::time::{Duration, Instant};

use bench_support::catalog::{self, endpoint_port, resource_name, slice_name};
use bench_support::child::{ChildControlPlane, ChildSource};
use bench_support::kube as k8s;
use bench_support::measure::{self, Usage, median, mib, ms};
use podlb_control_plane::catalog::{Catalog, CatalogChange};
use podlb_control_plane::resources::{ResourceSettings, SnapshotBuilder};
use podlb_testkit::kube::KubeCluster;

/// The binary's allocator, so memory figures match `podlb control-plane`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Services in the catalog.
const SERVICES: usize = 1_000;
/// Endpoints per Service.
const ENDPOINTS: usize = 10;
/// Changes of one Service, each waited for before the next.
const SINGLE_CHANGES: usize = 20;
/// Bursts, and Services changed per burst.
const BURSTS: usize = 3;
const BURST: usize = 100;
/// The namespace of the Fixed catalog.
const FIXED_NAMESPACE: &str = "bench";
/// How long a control plane idles before its settled RSS is read.
const SETTLE: Duration = Duration::from_secs(2);

/// What one source's run measured.
#[derive(Debug, Default)]
struct ScaleRun {
    /// RSS of the control plane serving an empty catalog.
    empty_rss_kb: u64,
    /// CPU from `ControlPlane::start` to the full catalog served.
    initial_cpu: Duration,
    /// Wall time from start to the full catalog served (Kubernetes only).
    initial_wall: Option<Duration>,
    /// RSS once the full catalog is served and the process has idled.
    loaded_rss_kb: u64,
    /// CPU while idling with the full catalog (no change, no client),
    /// over [`SETTLE`].
    idle_cpu: Duration,
    /// Per single change: CPU, and time until a snapshot serves it.
    single_cpu: Vec<Duration>,
    single_wall: Vec<Duration>,
    /// Per single change: minor page faults of the control plane.
    single_faults: Vec<u64>,
    /// Per burst: CPU per change, time until the last change is served,
    /// snapshots published for the burst.
    burst_cpu_per_change: Vec<Duration>,
    burst_wall: Vec<Duration>,
    burst_snapshots: Vec<u64>,
    /// RSS after the changes, and the peak over the whole run.
    final_rss_kb: u64,
    peak_kb: u64,
}

impl ScaleRun {
    /// One change at a time: made at `started`, the control plane's usage
    /// `before` it and `after` it was served.
    fn record_single(&mut self, started: Instant, before: &Usage, after: &Usage) {
        self.single_wall.push(started.elapsed());
        self.single_cpu.push(cpu_since(before, after));
        self.single_faults
            .push(after.minor_faults.saturating_sub(before.minor_faults));
    }

    /// The control plane's memory once every change is done.
    fn record_end(&mut self, end: &Usage) {
        self.final_rss_kb = end.rss_kb;
        self.peak_kb = end.peak_kb;
    }
}

fn main() {
    if bench_support::child::run_if_child() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    println!("## Control plane at scale: {SERVICES} Services × {ENDPOINTS} endpoints");
    println!();
    println!("Machine: {}", measure::machine());
    println!();
    let fixed = fixed_run().await;
    let kubernetes = match KubeCluster::shared_if_started() {
        Some(cluster) => Some(kubernetes_run(&cluster).await),
        None => None,
    };
    print_runs(&fixed, kubernetes.as_ref());
    print_build_in_process();
}

/// The Fixed-source run; see the module doc.
async fn fixed_run() -> ScaleRun {
    let mut run = ScaleRun::default();
    let empty = ChildControlPlane::start(&fixed_source(0)).await;
    tokio::time::sleep(SETTLE).await;
    run.empty_rss_kb = empty.usage().rss_kb;
    empty.quit().await;

    let mut cp = ChildControlPlane::start(&fixed_source(SERVICES)).await;
    run.initial_cpu = cp.after_start.cpu.saturating_sub(cp.before_start.cpu);
    record_settled(&cp, &mut run).await;

    for k in 0..SINGLE_CHANGES {
        let i = (k * 37) % SERVICES;
        let generation = 1 + k as u16;
        let before = cp.usage();
        let started = Instant::now();
        cp.apply(i, 1, generation).await;
        cp.await_port(
            &resource_name(FIXED_NAMESPACE, i),
            endpoint_port(generation),
        )
        .await;
        run.record_single(started, &before, &cp.usage());
    }
    let last = SERVICES - 1;
    let mut seen = cp
        .await_port(&resource_name(FIXED_NAMESPACE, last), endpoint_port(0))
        .await;
    for b in 0..BURSTS {
        let generation = 100 + b as u16;
        let before = cp.usage();
        let started = Instant::now();
        // The last BURST Services, ending with the last one, awaited.
        cp.apply(SERVICES - BURST, BURST, generation).await;
        let now_seen = cp
            .await_port(
                &resource_name(FIXED_NAMESPACE, last),
                endpoint_port(generation),
            )
            .await;
        run.burst_wall.push(started.elapsed());
        run.burst_cpu_per_change
            .push(cpu_since(&before, &cp.usage()) / BURST as u32);
        run.burst_snapshots.push(now_seen - seen);
        seen = now_seen;
    }
    run.record_end(&cp.usage());
    cp.quit().await;
    run
}

fn fixed_source(services: usize) -> ChildSource {
    ChildSource::Fixed {
        namespace: FIXED_NAMESPACE.to_string(),
        services,
        endpoints: ENDPOINTS,
    }
}

/// The Kubernetes run; see the module doc.
async fn kubernetes_run(cluster: &KubeCluster) -> ScaleRun {
    let client = k8s::client(cluster).await;
    let mut run = ScaleRun::default();

    let empty_namespace = cluster.unique_namespace("xds-empty");
    let mut empty = ChildControlPlane::start(&kubernetes_source(cluster, &empty_namespace)).await;
    empty.await_snapshots(1).await;
    tokio::time::sleep(SETTLE).await;
    run.empty_rss_kb = empty.usage().rss_kb;
    empty.quit().await;
    k8s::delete_namespace(&client, &empty_namespace).await;

    let namespace = cluster.unique_namespace("xds-scale");
    let written = Instant::now();
    k8s::create_catalog(&client, &namespace, SERVICES, ENDPOINTS).await;
    eprintln!(
        "wrote {SERVICES} Services and {SERVICES} EndpointSlices to {namespace} in {:.1} s",
        written.elapsed().as_secs_f64()
    );

    let mut cp = ChildControlPlane::start(&kubernetes_source(cluster, &namespace)).await;
    let started = Instant::now();
    let last = SERVICES - 1;
    let mut seen = cp
        .await_port(&resource_name(&namespace, last), endpoint_port(0))
        .await;
    run.initial_wall = Some(started.elapsed());
    run.initial_cpu = cp.usage().cpu.saturating_sub(cp.before_start.cpu);
    record_settled(&cp, &mut run).await;

    for k in 0..SINGLE_CHANGES {
        let i = (k * 37) % SERVICES;
        let generation = 1 + k as u16;
        let before = cp.usage();
        let started = Instant::now();
        let patch = k8s::slice_patch(
            endpoint_port(generation),
            &catalog::slice_endpoints(i, ENDPOINTS),
        );
        k8s::patch_all(&client, &namespace, vec![(slice_name(i), patch)]).await;
        seen = cp
            .await_port(&resource_name(&namespace, i), endpoint_port(generation))
            .await;
        run.record_single(started, &before, &cp.usage());
    }
    for b in 0..BURSTS {
        let generation = 100 + b as u16;
        let before = cp.usage();
        let started = Instant::now();
        let patches = (0..BURST)
            .map(|i| {
                (
                    slice_name(i),
                    k8s::slice_patch(
                        endpoint_port(generation),
                        &catalog::slice_endpoints(i, ENDPOINTS),
                    ),
                )
            })
            .collect();
        k8s::patch_all(&client, &namespace, patches).await;
        // Written after every other one has been, so the slice watch
        // delivers it last: when it is served, the whole burst is.
        let marker = k8s::slice_patch(
            endpoint_port(generation),
            &catalog::slice_endpoints(last, ENDPOINTS),
        );
        k8s::patch_all(&client, &namespace, vec![(slice_name(last), marker)]).await;
        let now_seen = cp
            .await_port(&resource_name(&namespace, last), endpoint_port(generation))
            .await;
        run.burst_wall.push(started.elapsed());
        run.burst_cpu_per_change
            .push(cpu_since(&before, &cp.usage()) / (BURST as u32 + 1));
        run.burst_snapshots.push(now_seen - seen);
        seen = now_seen;
    }
    run.record_end(&cp.usage());
    cp.quit().await;
    k8s::delete_namespace(&client, &namespace).await;
    run
}

fn kubernetes_source(cluster: &KubeCluster, namespace: &str) -> ChildSource {
    ChildSource::Kubernetes {
        kubeconfig: cluster.kubeconfig_path(),
        namespace: namespace.to_string(),
    }
}

/// Lets `cp` idle for [`SETTLE`] with its full catalog; records its
/// settled RSS and the CPU it spent meanwhile.
async fn record_settled(cp: &ChildControlPlane, run: &mut ScaleRun) {
    let idle_from = cp.usage();
    tokio::time::sleep(SETTLE).await;
    let settled = cp.usage();
    run.loaded_rss_kb = settled.rss_kb;
    run.idle_cpu = cpu_since(&idle_from, &settled);
}

fn cpu_since(before: &Usage, after: &Usage) -> Duration {
    after.cpu.saturating_sub(before.cpu)
}

fn print_runs(fixed: &ScaleRun, kubernetes: Option<&ScaleRun>) {
    println!(
        "| {SERVICES} Services × {ENDPOINTS} endpoints | Source::Fixed | Kubernetes (kube-apiserver 1.20.2) |"
    );
    println!("|---|---:|---:|");
    let both = |label: &str, show: &dyn Fn(&ScaleRun) -> String| {
        let kube = kubernetes.map_or("not run (no PODLB_KUBE_DIR)".to_string(), show);
        println!("| {label} | {} | {kube} |", show(fixed));
    };
    both("RSS, empty catalog", &|r| {
        format!("{:.1} MiB", mib(r.empty_rss_kb))
    });
    both("RSS, full catalog (settled)", &|r| {
        format!("{:.1} MiB", mib(r.loaded_rss_kb))
    });
    both("RSS added by the catalog", &|r| {
        format!(
            "{:.1} MiB",
            mib(r.loaded_rss_kb.saturating_sub(r.empty_rss_kb))
        )
    });
    both(
        &format!("idle with the full catalog: CPU over {SETTLE:?}"),
        &|r| format!("{:.1} ms", ms(r.idle_cpu)),
    );
    both("initial sync: CPU", &|r| {
        format!("{:.0} ms", ms(r.initial_cpu))
    });
    both("initial sync: start → last Service served", &|r| {
        r.initial_wall
            .map_or("(built inside start)".to_string(), |w| {
                format!("{:.0} ms", ms(w))
            })
    });
    both(
        &format!("one change at a time ({SINGLE_CHANGES}): CPU per change, median"),
        &|r| format!("{:.2} ms", ms(median(&r.single_cpu))),
    );
    both(
        "one change at a time: minor page faults per change, median",
        &|r| {
            let mut faults = r.single_faults.clone();
            faults.sort_unstable();
            faults
                .get(faults.len() / 2)
                .map_or("-".into(), u64::to_string)
        },
    );
    both(
        "one change at a time: write → snapshot serves it, median",
        &|r| format!("{:.2} ms", ms(median(&r.single_wall))),
    );
    both(
        &format!("bursts of {BURST} changes ({BURSTS}): CPU per change, median"),
        &|r| format!("{:.3} ms", ms(median(&r.burst_cpu_per_change))),
    );
    both("bursts: first write → whole burst served, median", &|r| {
        format!("{:.0} ms", ms(median(&r.burst_wall)))
    });
    both("bursts: snapshots seen per burst (a lower bound)", &|r| {
        format!("{:?}", r.burst_snapshots)
    });
    both("RSS after the changes / peak", &|r| {
        format!("{:.1} / {:.1} MiB", mib(r.final_rss_kb), mib(r.peak_kb))
    });
    println!();
}

/// `SnapshotBuilder::build` alone, in this process: no ADS, no child.
fn print_build_in_process() {
    let mut catalog = Catalog::default();
    catalog.apply(CatalogChange::Reset(catalog::services(
        FIXED_NAMESPACE,
        SERVICES,
        ENDPOINTS,
        0,
    )));
    let mut builder = SnapshotBuilder::new(ResourceSettings::default());
    let started = Instant::now();
    let first = builder.build(&catalog);
    let initial = started.elapsed();
    drop(first);
    let mut one_change = Vec::new();
    for k in 0..SINGLE_CHANGES {
        let i = (k * 37) % SERVICES;
        catalog.apply(CatalogChange::Upsert(catalog::service(
            FIXED_NAMESPACE,
            i,
            ENDPOINTS,
            1 + k as u16,
        )));
        let started = Instant::now();
        let snapshot = builder.build(&catalog);
        one_change.push(started.elapsed());
        drop(snapshot);
    }
    println!(
        "`SnapshotBuilder::build` in-process: {:.1} ms for all {SERVICES} Services, \
         {:.3} ms (median of {SINGLE_CHANGES}) after one Service changed.",
        ms(initial),
        ms(median(&one_change))
    );
    println!();
}
