//! How many concurrent ADS streams the control plane holds, and how long
//! one change takes to reach all of them.
//!
//! ```text
//!  this process (load generator)                          child: podlb control plane
//!  N × AckingStream ─ one HTTP/2 connection each ─ 127.0.0.1 ─► ADS server (Source::Fixed,
//!     LDS + CDS + EDS of svc-0000.bench:50051, ACK every response     1,000 Services × 10 endpoints)
//!  "apply 0 1 GEN" ─ stdin ──────────────────────────────────────► ControlPlane::apply(Upsert svc-0000)
//!     t0 ... each stream reads the new ClusterLoadAssignment ◄── push to all N
//! ```
//!
//! The streams are opened in steps (1,000, 5,000, 10,000 by default;
//! `STREAM_STEPS="1000 2000"` chooses others), kept open from one step to
//! the next. After each step:
//!
//! - the control plane's RSS and the CPU it spent accepting the step's
//!   streams (each gets its three initial responses and ACKs them);
//! - one change to the Service every stream watches, pushed to all N: the
//!   time until every stream has read it (median, p99, last), the time
//!   until the control plane's status view holds every ACK, and the
//!   control plane's CPU for the push.
//!
//! The streams are probes ([`bench_support::ads`]) speaking the real
//! protocol, not full clients: a real client's own work is not the control
//! plane's and would only crowd the two cores. They all subscribe to one
//! Service, the worst case for one change (all N are pushed to); one
//! stream per connection by default, as each proxyless client has its own
//! channel (`STREAMS_PER_CONNECTION` shares connections instead).
//!
//! Bounded: it stops before a step it cannot finish safely, i.e. when the
//! file descriptor limit (`ulimit -n`, one per connection on each side) or
//! the machine's available memory would not cover it, and says so. The
//! load generator and the control plane share the machine's cores, so the
//! push times include the generator's reading; the control plane's CPU is
//! its own.
//!
//! Run by `bench/control_plane.sh`. Prints Markdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bench_support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bench_support::ads::{self, AckingStream};
use bench_support::catalog::{endpoint_port, resource_name};
use bench_support::child::{ChildControlPlane, ChildSource};
use bench_support::measure::{self, mib, ms, quantile};
use futures_util::{StreamExt, stream};
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// The binary's allocator, so the control plane runs as `podlb control-plane` does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The catalog served: the same as `xds_scale`'s.
const SERVICES: usize = 1_000;
const ENDPOINTS: usize = 10;
const NAMESPACE: &str = "bench";
/// Stream counts when `STREAM_STEPS` does not name others.
const DEFAULT_STEPS: [usize; 3] = [1_000, 5_000, 10_000];
/// Streams being opened at once.
const OPENING_IN_FLIGHT: usize = 64;
/// How long one step may take before the run stops.
const PATIENCE: Duration = Duration::from_secs(120);
/// Memory the machine must keep available: a step that would leave less
/// is not run.
const MEMORY_RESERVE_MB: u64 = 4_096;
/// A guess at the memory of one stream on both sides together, for the
/// bound above (the first step measures the real figure).
const FIRST_GUESS_KB_PER_STREAM: u64 = 200;

/// What one stream reports.
#[derive(Debug)]
enum Event {
    /// The stream received its ClusterLoadAssignment with endpoints on
    /// this port.
    Endpoints { port: u16, at: Instant },
    /// The stream failed or ended.
    Failed(String),
}

/// One step's figures.
#[derive(Debug)]
struct Step {
    streams: usize,
    open_wall: Duration,
    open_cpu_per_stream: Duration,
    rss_kb: u64,
    generator_rss_kb: u64,
    push_median: Duration,
    push_p99: Duration,
    push_last: Duration,
    /// From the change to the status view holding every ACK (its clock, ms).
    acks_ms: Option<f64>,
    push_cpu: Duration,
}

fn main() {
    if bench_support::child::run_if_child() {
        return;
    }
    let steps: Vec<usize> = match std::env::var("STREAM_STEPS") {
        Ok(text) if !text.trim().is_empty() => text
            .split_whitespace()
            .map(|n| n.parse().expect("STREAM_STEPS: numbers"))
            .collect(),
        _ => DEFAULT_STEPS.to_vec(),
    };
    let per_connection: usize = std::env::var("STREAMS_PER_CONNECTION")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(&steps, per_connection));
}

async fn run(steps: &[usize], per_connection: usize) {
    let connections = match per_connection {
        1 => "one HTTP/2 connection per stream".to_string(),
        n => format!("{n} streams per HTTP/2 connection"),
    };
    println!("## Concurrent ADS streams ({connections}), and one change pushed to all of them");
    println!();
    println!("Machine: {}", measure::machine());
    println!();
    let mut cp = ChildControlPlane::start(&ChildSource::Fixed {
        namespace: NAMESPACE.to_string(),
        services: SERVICES,
        endpoints: ENDPOINTS,
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let empty_rss = cp.usage().rss_kb;
    let name = resource_name(NAMESPACE, 0);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut channels: Vec<Channel> = Vec::new();
    let mut opened = 0;
    let mut generation = 0u16;
    let mut rows = Vec::new();
    let mut stopped = None;
    let mut kb_per_stream = FIRST_GUESS_KB_PER_STREAM;
    for &target in steps {
        if target <= opened {
            continue;
        }
        if let Some(why) = too_big(target, per_connection, opened, kb_per_stream) {
            stopped = Some(format!("stopped before {target} streams: {why}"));
            break;
        }
        let before = cp.usage();
        let generator_before = measure::own_usage().rss_kb;
        let started = Instant::now();
        let new = target - opened;
        let result = open_streams(
            &cp,
            &name,
            opened,
            new,
            per_connection,
            &mut channels,
            &events_tx,
        )
        .await;
        if let Err(why) = result {
            stopped = Some(format!("stopped at {target} streams: {why}"));
            break;
        }
        // Each new stream's first ClusterLoadAssignment (generation now).
        if let Err(why) = await_all(&mut events, new, endpoint_port(generation)).await {
            stopped = Some(format!("stopped at {target} streams: {why}"));
            break;
        }
        let open_wall = started.elapsed();
        opened = target;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let loaded = cp.usage();
        let open_cpu_per_stream = loaded.cpu.saturating_sub(before.cpu) / new as u32;
        let generator_rss_kb = measure::own_usage().rss_kb;
        let added_kb = loaded.rss_kb.saturating_sub(before.rss_kb)
            + generator_rss_kb.saturating_sub(generator_before);
        kb_per_stream = kb_per_stream.max(added_kb / new as u64 + 1);

        generation += 1;
        let before = cp.usage();
        let wall_start = unix_ms_now();
        let start = Instant::now();
        cp.send_apply(0, 1, generation).await;
        let arrivals = match await_all(&mut events, opened, endpoint_port(generation)).await {
            Ok(arrivals) => arrivals,
            Err(why) => {
                stopped = Some(format!("stopped at {target} streams: {why}"));
                break;
            }
        };
        let push_cpu = cp.usage().cpu.saturating_sub(before.cpu);
        cp.applied().await;
        let push: Vec<Duration> = arrivals
            .iter()
            .map(|at| at.saturating_duration_since(start))
            .collect();
        let acks_ms = all_acked(&mut cp, opened, wall_start).await;
        rows.push(Step {
            streams: opened,
            open_wall,
            open_cpu_per_stream,
            rss_kb: loaded.rss_kb,
            generator_rss_kb,
            push_median: quantile(&push, 0.5),
            push_p99: quantile(&push, 0.99),
            push_last: quantile(&push, 1.0),
            acks_ms,
            push_cpu,
        });
        eprintln!("{opened} streams: done");
    }
    drop(channels);
    cp.quit().await;
    print_steps(&rows, empty_rss, &connections, stopped.as_deref());
}

/// Why a step to `target` streams should not run, if it should not.
fn too_big(
    target: usize,
    per_connection: usize,
    opened: usize,
    kb_per_stream: u64,
) -> Option<String> {
    let connections = target.div_ceil(per_connection) as u64;
    let limit = fd_limit();
    // One descriptor per connection in each process, plus some spare.
    if connections + 256 > limit {
        return Some(format!(
            "{connections} connections need more file descriptors than `ulimit -n` = {limit} \
             (bench/control_plane.sh raises it)"
        ));
    }
    let needed_mb = (target - opened) as u64 * kb_per_stream / 1024;
    let available_mb = mem_available_mb();
    if available_mb < needed_mb + MEMORY_RESERVE_MB {
        return Some(format!(
            "about {needed_mb} MiB more needed, {available_mb} MiB available, \
             {MEMORY_RESERVE_MB} MiB kept for the machine"
        ));
    }
    None
}

/// Opens `count` streams (numbered from `first`), `OPENING_IN_FLIGHT` at a
/// time, each in a task of its own that ACKs and reports its
/// ClusterLoadAssignments.
async fn open_streams(
    cp: &ChildControlPlane,
    name: &str,
    first: usize,
    count: usize,
    per_connection: usize,
    channels: &mut Vec<Channel>,
    events: &mpsc::UnboundedSender<Event>,
) -> Result<(), String> {
    let addr = cp.xds_addr;
    // The connections of the new streams: new ones, or the last one shared.
    let mut needed = Vec::new();
    for k in first..first + count {
        let connection = k / per_connection;
        needed.push(connection);
    }
    let new_connections: Vec<usize> = needed
        .iter()
        .copied()
        .filter(|&c| c >= channels.len())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let connected: Vec<Result<Channel, String>> = stream::iter(new_connections)
        .map(|_| async move {
            tokio::time::timeout(PATIENCE, ads::try_connect(addr))
                .await
                .map_err(|_| "connecting timed out".to_string())?
        })
        .buffered(OPENING_IN_FLIGHT)
        .collect()
        .await;
    for channel in connected {
        channels.push(channel?);
    }
    let name: Arc<str> = Arc::from(name);
    let opened: Vec<Result<(), String>> = stream::iter(first..first + count)
        .map(|k| {
            let channel = channels[k / per_connection].clone();
            let (name, events) = (Arc::clone(&name), events.clone());
            async move {
                let node = format!("bench-stream-{k}");
                let stream = AckingStream::open(channel, &node, &name)
                    .await
                    .map_err(|status| format!("stream {k}: {status}"))?;
                tokio::spawn(follow(stream, events));
                Ok(())
            }
        })
        .buffer_unordered(OPENING_IN_FLIGHT)
        .collect()
        .await;
    opened.into_iter().collect()
}

/// Reads a stream's responses (ACKing each) and reports its endpoints.
async fn follow(mut stream: AckingStream, events: mpsc::UnboundedSender<Event>) {
    loop {
        match stream.next().await {
            Ok(Some(received)) => {
                let endpoints = ads::endpoints(&received.response);
                if let Some(port) = endpoints.first().map(|e| e.port()) {
                    let _ = events.send(Event::Endpoints {
                        port,
                        at: received.at,
                    });
                }
            }
            Ok(None) => {
                let _ = events.send(Event::Failed("the server ended the stream".into()));
                return;
            }
            Err(status) => {
                let _ = events.send(Event::Failed(status.to_string()));
                return;
            }
        }
    }
}

/// Waits until `count` streams reported endpoints on `port`; returns when
/// each did.
async fn await_all(
    events: &mut mpsc::UnboundedReceiver<Event>,
    count: usize,
    port: u16,
) -> Result<Vec<Instant>, String> {
    let mut arrivals = Vec::with_capacity(count);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while arrivals.len() < count {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Endpoints { port: p, at })) if p == port => arrivals.push(at),
            Ok(Some(Event::Endpoints { .. })) => {}
            Ok(Some(Event::Failed(why))) => return Err(format!("a stream failed: {why}")),
            Ok(None) => return Err("no stream is left".into()),
            Err(_) => {
                return Err(format!(
                    "{} of {count} streams had port {port} after {PATIENCE:?}",
                    arrivals.len()
                ));
            }
        }
    }
    Ok(arrivals)
}

/// Waits until the status view holds an ACK of a ClusterLoadAssignment
/// sent after `since` (Unix ms) from every one of `streams` clients;
/// returns how long after `since` the last one arrived. `None` if they do
/// not all show up within a few seconds.
async fn all_acked(cp: &mut ChildControlPlane, streams: usize, since: f64) -> Option<f64> {
    for _ in 0..100 {
        let acks = cp.acks().await;
        if acks.clients >= streams
            && acks.synced >= streams
            && acks.first_sent_ms as f64 >= since.floor()
        {
            return Some(acks.last_ack_ms as f64 - since);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn unix_ms_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The soft limit on open files (`ulimit -n`).
fn fd_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(1024)
}

/// `MemAvailable` of `/proc/meminfo`, MiB.
fn mem_available_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn print_steps(rows: &[Step], empty_rss_kb: u64, connections: &str, stopped: Option<&str>) {
    println!(
        "Control plane: its own process, Source::Fixed with {SERVICES} Services × {ENDPOINTS} \
         endpoints ({:.1} MiB RSS with no stream). Load generator: ACKing ADS probes \
         (envoy-types' client, LDS + CDS + EDS of one Service each, node only in the first \
         request, as gRPC does), {connections}, on 127.0.0.1, same 2 cores. Push: one \
         `ControlPlane::apply` moving the watched Service's 10 endpoints; t0 = the command \
         written to the control plane.",
        mib(empty_rss_kb)
    );
    println!();
    println!(
        "| streams | open: wall | open: CP CPU per stream | CP RSS | CP RSS per stream | generator RSS | push to all: median / p99 / last stream | all ACKs in the status view | CP CPU for the push | per stream |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let per_stream_kb = row.rss_kb.saturating_sub(empty_rss_kb) as f64 / row.streams as f64;
        let acks = row
            .acks_ms
            .map_or("not all seen".to_string(), |ms| format!("{ms:.0} ms"));
        println!(
            "| {} | {:.1} s | {:.0} µs | {:.0} MiB | {:.1} KiB | {:.0} MiB | {:.0} / {:.0} / {:.0} ms | {acks} | {:.0} ms | {:.1} µs |",
            row.streams,
            row.open_wall.as_secs_f64(),
            row.open_cpu_per_stream.as_secs_f64() * 1e6,
            mib(row.rss_kb),
            per_stream_kb,
            mib(row.generator_rss_kb),
            ms(row.push_median),
            ms(row.push_p99),
            ms(row.push_last),
            ms(row.push_cpu),
            row.push_cpu.as_secs_f64() * 1e6 / row.streams as f64,
        );
    }
    println!();
    if let Some(why) = stopped {
        println!("The run {why}.");
        println!();
    }
}
