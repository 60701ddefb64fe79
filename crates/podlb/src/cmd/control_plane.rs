//! `podlb control-plane`: serves Kubernetes Services (or a catalog file)
//! over xDS to Envoy and to proxyless gRPC clients; and
//! `podlb control-plane status`: who is connected and what each client has
//! accepted or rejected, read from a running control plane's admin
//! endpoint.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use podlb_control_plane::status::{StatusReport, render_table};
use podlb_control_plane::{ControlPlane, ControlPlaneConfig, Source};

/// Arguments of `podlb control-plane`.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  # Every Service labelled app.kubernetes.io/part-of=shop in namespace shop:
  podlb control-plane --namespace shop --selector app.kubernetes.io/part-of=shop
  # Two Services by name, and a gateway Listener for Envoy on :8080:
  podlb control-plane --namespace default --service greeter --service checkout --gateway 0.0.0.0:8080
  # Outside Kubernetes, from a catalog file (read again when it changes):
  podlb control-plane --catalog catalog.yaml
  # Who is connected, and what each client ACKed or NACKed:
  podlb control-plane status --admin 127.0.0.1:18001

Clients name a Service port as in a kubernetes:/// target: xds:///greeter.default:50051
(also greeter.default.svc.cluster.local:50051, greeter.default:grpc, and greeter:50051 in
the default namespace). Each Service's policy is its podlb.io/lb-policy annotation:
round_robin (default), least_request or ring_hash (hashing the header named by
podlb.io/hash-header); podlb proxies and clients on xds:/// targets follow it too unless
given --lb (they have no ring_hash: least_request instead). Ready endpoints are HEALTHY,
serving-but-terminating ones DRAINING, others left out; localities come from the
endpoints' zones."
)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Show every connected xDS client: node, address, and per resource
    /// type the version sent, the version ACKed and the last NACK.
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Where the xDS (ADS over gRPC, plaintext HTTP/2) server listens.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:18000")]
    listen: SocketAddr,
    /// Where the admin HTTP endpoint listens (GET /status, /status?format=text, /healthz).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:18001")]
    admin: SocketAddr,
    /// Serve Envoy a socket Listener named podlb-gateway on ADDR, routing by
    /// :authority to every Service port (Envoy's wildcard Listener request).
    #[arg(long, value_name = "ADDR")]
    gateway: Option<SocketAddr>,
    /// Serve the Services of this catalog file instead of Kubernetes'.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["namespace", "all_namespaces", "selector", "service", "kubeconfig"])]
    catalog: Option<PathBuf>,
    /// The namespace to serve (default: $POD_NAMESPACE, the pod's own, else default).
    #[arg(long, value_name = "NS", conflicts_with = "all_namespaces")]
    namespace: Option<String>,
    /// Serve Services of every namespace.
    #[arg(long)]
    all_namespaces: bool,
    /// Only Services with these labels (a Kubernetes label selector).
    #[arg(long, value_name = "SELECTOR")]
    selector: Option<String>,
    /// Only these Services (repeat for more).
    #[arg(long = "service", value_name = "NAME")]
    service: Vec<String>,
    /// The kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, then the pod's service account).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// The control plane's admin address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:18001")]
    admin: SocketAddr,
    /// Print the JSON the admin endpoint serves instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = super::runtime(0).context("starting the runtime")?;
    match args.command {
        Some(Command::Status(status)) => rt.block_on(print_status(status)),
        None => rt.block_on(serve(args.serve)),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let source = match args.catalog {
        Some(path) => Source::StaticFile(path),
        None => kubernetes_source(&args),
    };
    let config = ControlPlaneConfig {
        xds_listen: args.listen,
        admin_listen: Some(args.admin),
        gateway_listen: args.gateway,
        source,
        default_namespace: None,
    };
    let signal = super::TerminateSignal::register().context("installing signal handlers")?;
    let control_plane = ControlPlane::start(config).await?;
    signal.recv().await;
    tracing::info!("stopping");
    control_plane.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn kubernetes_source(args: &ServeArgs) -> Source {
    let namespace = match (&args.namespace, args.all_namespaces) {
        (_, true) => None,
        (Some(ns), false) => Some(ns.clone()),
        (None, false) => Some(own_namespace()),
    };
    let selection = podlb_discovery::CatalogSelection {
        namespace,
        label_selector: args.selector.clone(),
        names: args.service.clone(),
    };
    let mut options = podlb_discovery::KubernetesOptions::default();
    options.kubeconfig = args.kubeconfig.clone();
    Source::Kubernetes { selection, options }
}

/// The pod's namespace, as the downward API or the service account gives
/// it; `default` outside a pod.
fn own_namespace() -> String {
    const SERVICE_ACCOUNT_NAMESPACE: &str =
        "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE).ok())
        .map(|ns| ns.trim().to_string())
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

async fn print_status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let body = get(args.admin, "/status").await.with_context(|| {
        format!(
            "reading the status from the control plane's admin endpoint at {} \
             (is `podlb control-plane` running with --admin {}?)",
            args.admin, args.admin
        )
    })?;
    if args.json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let report: StatusReport = serde_json::from_str(&body)
        .with_context(|| format!("{} did not answer /status with a status report", args.admin))?;
    print!("{}", render_table(&report));
    Ok(ExitCode::SUCCESS)
}

/// GET `path` from `addr` over HTTP/1.1; the body, or an error naming the
/// status.
async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<bytes::Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    anyhow::ensure!(status.is_success(), "GET {path}: {status}: {text}");
    Ok(text)
}
