//! `podlb proxy`: the quick form (one listener, one target) or the full
//! form (`--config podlb.yaml`).
//!
//! The proxy runs as N workers, each a complete proxy on its own
//! single-threaded runtime (its own listeners with SO_REUSEPORT, its own
//! upstream connections), so a call never crosses threads: the kernel
//! spreads client connections over the workers.

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use podlb_balance::PolicyChoice;
use podlb_core::{ListenAddr, Target};
use podlb_discovery::BootstrapSource;
use podlb_proxy::{DiscoveryHub, DnsOptions, Proxy, ProxyConfig};
use tokio::sync::watch;

/// Arguments of `podlb proxy`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  podlb proxy --listen 127.0.0.1:7000 static:///127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053
  podlb proxy --listen 0.0.0.0:7000 --lb round_robin static:///10.0.0.1:50051,10.0.0.2:50051
  podlb proxy --listen 0.0.0.0:7000 kubernetes:///greeter.default:grpc
  podlb proxy --listen 0.0.0.0:7000 dns:///greeter.default.svc.cluster.local:50051
  GRPC_XDS_BOOTSTRAP=bootstrap.json podlb proxy --listen 0.0.0.0:7000 xds:///greeter.default:50051
  podlb proxy --config podlb.yaml

Policies: least_request (default: the less busy of two random endpoints), round_robin,
random, peak_ewma (the faster of two random endpoints, by latency x load).

On SIGTERM or Ctrl-C podlb stops accepting, sends GOAWAY to clients, lets calls in flight
finish within the grace period, and exits 0.")]
pub(crate) struct Args {
    /// Where to send calls (quick form): static:///IP:PORT,IP:PORT,
    /// dns:///HOST:PORT (every A/AAAA record; dns://SERVER/HOST:PORT to ask
    /// one server), kubernetes:///SERVICE[.NAMESPACE]:PORT (a watch on the
    /// Service's EndpointSlices; PORT may be a port name) or xds:///NAME (the
    /// endpoints an xDS server such as `podlb control-plane` gives for the
    /// Listener NAME; see --xds-bootstrap).
    #[arg(required_unless_present = "config", conflicts_with = "config")]
    target: Option<String>,
    /// Address to accept gRPC (h2c) and HTTP/1.1 on (quick form).
    #[arg(long, default_value = "127.0.0.1:7000", conflicts_with = "config")]
    listen: String,
    /// Balancing policy (quick form): least_request, round_robin, random,
    /// peak_ewma. Default: for an xds:/// target, the policy its Cluster
    /// names (e.g. round_robin) if podlb has it; else least_request.
    #[arg(long = "lb", value_name = "POLICY", conflicts_with = "config")]
    policy: Option<String>,
    /// A YAML config with listeners, routes and upstreams (full form; see
    /// examples/configs/podlb.yaml). Validate it with `podlb check`.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// On SIGTERM, how long calls in flight may take to finish (e.g. 30s);
    /// overrides the config's shutdown.grace_period.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    grace_period: Option<Duration>,
    /// dns:/// targets (quick form): the least time between two lookups, and
    /// the floor of the records' TTL.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration, conflicts_with = "config")]
    dns_min_interval: Duration,
    /// dns:/// targets (quick form): the ceiling of the records' TTL; a name
    /// is looked up at least this often.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, conflicts_with = "config")]
    dns_max_interval: Duration,
    /// kubernetes:/// targets: the kubeconfig to use (default: $KUBECONFIG,
    /// ~/.kube/config, then the pod's service account).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<std::path::PathBuf>,
    /// xds:/// targets: the gRPC xDS bootstrap file naming the xDS server
    /// (default: $GRPC_XDS_BOOTSTRAP, else the JSON in
    /// $GRPC_XDS_BOOTSTRAP_CONFIG, as every gRPC library reads it).
    #[arg(long, value_name = "FILE")]
    xds_bootstrap: Option<std::path::PathBuf>,
    /// Worker threads, each a single-threaded proxy sharing the listening
    /// ports (0: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = proxy_config(&args)?;
    for upstream in &mut config.upstreams {
        upstream.discovery.kubernetes.kubeconfig = args.kubeconfig.clone();
        if let Some(path) = &args.xds_bootstrap {
            upstream.discovery.xds.bootstrap = BootstrapSource::File(path.clone());
        }
    }
    if let Some(grace) = args.grace_period {
        config.grace_period = grace;
    }
    let workers = match args.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // Signals are caught before any worker starts, so an early SIGTERM
    // still means a graceful stop.
    let signal_rt = super::runtime(1).context("starting the signal runtime")?;
    let signal = signal_rt
        .block_on(async { super::TerminateSignal::register() })
        .context("installing the SIGTERM handler")?;
    // Discovery runs once for all workers, on a thread of its own: one
    // Kubernetes watch and one DNS schedule per target, however many workers.
    let discovery_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("podlb-discovery")
        .enable_all()
        .build()
        .context("starting the discovery runtime")?;
    let hub = discovery_rt.block_on(async { DiscoveryHub::new() });
    let (stop_tx, stop_rx) = watch::channel(false);
    // The first worker binds as configured; the others bind where it did,
    // which matters for port 0.
    let (bound_tx, bound_rx) = mpsc::channel();
    let mut threads = vec![spawn_worker(
        0,
        config.clone(),
        &hub,
        stop_rx.clone(),
        Some(bound_tx),
    )?];
    let Ok(bound) = bound_rx.recv() else {
        return join(threads);
    };
    for (listener, (_, addr)) in config.listeners.iter_mut().zip(&bound) {
        listener.address = ListenAddr::from(*addr);
    }
    for id in 1..workers {
        threads.push(spawn_worker(
            id,
            config.clone(),
            &hub,
            stop_rx.clone(),
            None,
        )?);
    }
    for (name, addr) in &bound {
        tracing::info!(listener = %name, address = %addr, workers, "listening");
    }
    signal_rt.block_on(signal.recv());
    tracing::info!(
        grace_period = ?config.grace_period,
        "shutting down: no new connections, GOAWAY to clients, waiting for calls in flight"
    );
    let _ = stop_tx.send(true);
    join(threads)
}

type Worker = std::thread::JoinHandle<anyhow::Result<()>>;

fn spawn_worker(
    id: usize,
    config: ProxyConfig,
    hub: &DiscoveryHub,
    mut stop: watch::Receiver<bool>,
    bound: Option<mpsc::Sender<Vec<(String, std::net::SocketAddr)>>>,
) -> anyhow::Result<Worker> {
    let thread = std::thread::Builder::new()
        .name(format!("podlb-worker-{id}"))
        .spawn({
            let hub = hub.clone();
            move || {
                let rt = super::runtime(1).context("starting a worker runtime")?;
                rt.block_on(async move {
                    let proxy = Proxy::bind_with(config, true, &hub).await?;
                    if let Some(bound) = bound {
                        let _ = bound.send(proxy.local_addrs().to_vec());
                    }
                    proxy
                        .run(async move {
                            let _ = stop.wait_for(|stopped| *stopped).await;
                        })
                        .await?;
                    Ok(())
                })
            }
        })
        .context("starting a worker thread")?;
    Ok(thread)
}

/// Waits for every worker; the first error wins.
fn join(threads: Vec<Worker>) -> anyhow::Result<ExitCode> {
    let mut result = Ok(());
    for thread in threads {
        let outcome = thread
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker thread panicked")));
        if result.is_ok() {
            result = outcome;
        }
    }
    result?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn proxy_config(args: &Args) -> anyhow::Result<ProxyConfig> {
    if let Some(path) = &args.config {
        return Ok(podlb_config::load(path)?);
    }
    let target = args.target.as_deref().unwrap_or_default();
    let target: Target = target.parse()?;
    let listen: ListenAddr = args
        .listen
        .parse()
        .with_context(|| format!("--listen {}", args.listen))?;
    let policy = match &args.policy {
        Some(name) => PolicyChoice::Fixed(name.parse().context("--lb")?),
        None => PolicyChoice::FromSource,
    };
    let mut config = ProxyConfig::single(listen, target, policy);
    if args.dns_min_interval > args.dns_max_interval {
        anyhow::bail!(
            "--dns-min-interval ({:?}) is longer than --dns-max-interval ({:?})",
            args.dns_min_interval,
            args.dns_max_interval
        );
    }
    for upstream in &mut config.upstreams {
        upstream.discovery.dns = DnsOptions {
            min_interval: args.dns_min_interval,
            max_interval: args.dns_max_interval,
        };
    }
    Ok(config)
}
