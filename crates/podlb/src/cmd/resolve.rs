//! `podlb resolve TARGET [--watch]`: the endpoint set as podlb sees it,
//! for when calls do not go where they should. It runs the same discovery
//! as the proxy and prints what it holds; it never connects to endpoints.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use podlb_balance::PolicyChoice;
use podlb_core::{Endpoint, EndpointAddr, Target};
use podlb_discovery::{Discovery, DiscoveryOptions, DnsOptions, Resolution};
use podlb_upstream::{ConnectionSettings, EndpointState, HealthCheckSettings, Upstream};

/// Arguments of `podlb resolve`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  podlb resolve kubernetes:///greeter.default:50051
  podlb resolve --watch kubernetes:///greeter.default:grpc
  podlb resolve dns:///greeter.default.svc.cluster.local:50051
  GRPC_XDS_BOOTSTRAP=bootstrap.json podlb resolve --watch xds:///greeter.default:50051

STATE is the endpoint's condition: ready, serving-terminating (draining but still
serving; takes calls only when no endpoint is ready), terminating or not-ready.
CALLS says whether podlb would send it new calls. --connect also connects to each
endpoint as the proxy does and shows CONNECTION (ready, connecting, backing off)
and, with --health-check, HEALTH (serving, not serving, pending, unchecked: the
backend has no grpc.health.v1 service). Outlier ejections come from calls, which
resolve never sends: the proxy logs each one. Kubernetes credentials come from
the pod's service account or from KUBECONFIG / ~/.kube/config.

Exit status: 0 when discovery answered, 1 when it failed or did not answer in time.")]
pub(crate) struct Args {
    /// The target: static:///..., dns:///HOST:PORT, kubernetes:///SERVICE.NAMESPACE:PORT
    /// or xds:///NAME.
    target: String,
    /// Keep running and print each change as it arrives, with a timestamp.
    #[arg(long)]
    watch: bool,
    /// How long to wait for the first answer.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// kubernetes:/// only: the kubeconfig to use (default: $KUBECONFIG,
    /// ~/.kube/config, then the pod's service account).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<std::path::PathBuf>,
    /// xds:/// only: the gRPC xDS bootstrap file (default: $GRPC_XDS_BOOTSTRAP,
    /// else the JSON in $GRPC_XDS_BOOTSTRAP_CONFIG).
    #[arg(long, value_name = "FILE")]
    xds_bootstrap: Option<std::path::PathBuf>,
    /// dns:/// only: the least time between two lookups (with --watch).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    dns_min_interval: Duration,
    /// dns:/// only: the most time between two lookups (with --watch).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    dns_max_interval: Duration,
    /// Also connect to every endpoint as the proxy does (HTTP/2, proven by
    /// a PING) and show whether each connection is up. Sends no calls.
    #[arg(long)]
    connect: bool,
    /// With --connect: also ask each endpoint's grpc.health.v1 service
    /// (Watch, else Check) about SERVICE (empty: the whole server), as
    /// `health_check:` does in the proxy, and show the answer.
    #[arg(long, value_name = "SERVICE", num_args = 0..=1, default_missing_value = "")]
    health_check: Option<String>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let target: Target = args.target.parse()?;
    let mut options = DiscoveryOptions::default();
    options.dns = DnsOptions {
        min_interval: args.dns_min_interval,
        max_interval: args.dns_max_interval.max(args.dns_min_interval),
    };
    options.kubernetes.kubeconfig = args.kubeconfig;
    if let Some(path) = args.xds_bootstrap {
        options.xds.bootstrap = podlb_discovery::BootstrapSource::File(path);
    }
    let rt = super::runtime(1).context("starting the runtime")?;
    let code = rt.block_on(resolve(
        target.clone(),
        options.clone(),
        args.watch && !args.connect,
        args.timeout,
    ))?;
    if code != ExitCode::SUCCESS || !(args.connect || args.health_check.is_some()) {
        return Ok(code);
    }
    rt.block_on(connect(target, options, args.health_check, args.timeout))
}

/// `--connect`: an upstream over the target, as the proxy runs one, and
/// what its connections and health checks say once every endpoint has had
/// its first try (or `timeout` passed). Outlier ejections are not shown:
/// they come from calls, and this sends none (the proxy logs each one).
async fn connect(
    target: Target,
    options: DiscoveryOptions,
    health_check: Option<String>,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let settings = ConnectionSettings {
        health_check: health_check.map(|service| HealthCheckSettings {
            service,
            ..HealthCheckSettings::default()
        }),
        ..ConnectionSettings::default()
    };
    let discovery = Discovery::start(&target, &options);
    let upstream = Upstream::start(
        &target.to_string(),
        discovery,
        PolicyChoice::FromSource,
        settings,
    );
    let settled = tokio::time::timeout(timeout, async {
        // Starting: discovery has not answered, or a first connect (or a
        // first health answer) is under way.
        while upstream.is_starting() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if settled.is_err() {
        eprintln!("podlb: {target}: some endpoints were still connecting after {timeout:?}");
    }
    print!("{}", connections_table(&upstream));
    Ok(ExitCode::SUCCESS)
}

/// The endpoints' connections and health, as a table.
fn connections_table(upstream: &Upstream) -> String {
    let rows: Vec<[String; 3]> = upstream
        .endpoints()
        .iter()
        .map(|e| {
            [
                e.addr().to_string(),
                connection_state(e.state()).to_string(),
                e.health().to_string(),
            ]
        })
        .collect();
    let ready = rows.iter().filter(|r| r[1] == "ready").count();
    let mut out = format!(
        "connections from here: {} endpoints, {ready} connected\n",
        rows.len()
    );
    out.push_str(&aligned(
        ["ADDRESS", "CONNECTION", "HEALTH"].map(String::from),
        &rows,
    ));
    out
}

fn connection_state(state: EndpointState) -> &'static str {
    match state {
        EndpointState::Connecting => "connecting",
        EndpointState::Ready => "ready",
        EndpointState::Draining => "draining",
        EndpointState::BackingOff => "backing off",
        EndpointState::Removed => "removed",
    }
}

/// Rows under a header, in columns as wide as their widest cell.
fn aligned<const N: usize>(header: [String; N], rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|i| {
            std::iter::once(&header)
                .chain(rows)
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

async fn resolve(
    target: Target,
    options: DiscoveryOptions,
    watch: bool,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let discovery = Discovery::start(&target, &options);
    let mut updates = discovery.subscribe();
    let waited = tokio::time::timeout(
        timeout,
        updates.wait_for(|r| r.resolved || r.error.is_some()),
    )
    .await
    .map(|r| r.map(|res| res.clone()));
    let Ok(Ok(first)) = waited else {
        eprintln!("podlb: {target}: no answer from discovery within {timeout:?}");
        return Ok(ExitCode::FAILURE);
    };
    if !first.resolved {
        if let Some(err) = &first.error {
            eprintln!("podlb: error: {err}");
        }
        if !watch {
            return Ok(ExitCode::FAILURE);
        }
    } else {
        print!("{}", table(&target, &first));
    }
    if !watch {
        return Ok(ExitCode::SUCCESS);
    }
    let mut shown = first;
    while updates.changed().await.is_ok() {
        let next = updates.borrow_and_update().clone();
        print!("{}", changes(&shown, &next));
        shown = next;
    }
    Ok(ExitCode::SUCCESS)
}

/// The whole set, as a table.
fn table(target: &Target, res: &Resolution) -> String {
    let routable = routable_addrs(res);
    let mut out = format!(
        "{target}: {} endpoints, {} take calls\n",
        res.endpoints.len(),
        routable.len()
    );
    if !res.policies.is_empty() {
        let _ = writeln!(
            out,
            "policy named by the source: {}",
            res.policies.join(", ")
        );
    }
    let rows: Vec<[String; 6]> = res
        .endpoints
        .iter()
        .map(|e| row(e, routable.contains(&e.addr)))
        .collect();
    let header = ["ADDRESS", "STATE", "CALLS", "ZONE", "NODE", "SOURCE"].map(String::from);
    out.push_str(&aligned(header, &rows));
    out
}

fn row(e: &Endpoint, takes_calls: bool) -> [String; 6] {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    [
        e.addr.to_string(),
        e.state.to_string(),
        if takes_calls { "yes" } else { "no" }.into(),
        dash(&e.topology.zone),
        dash(&e.topology.node_name),
        dash(&e.source),
    ]
}

fn routable_addrs(res: &Resolution) -> Vec<EndpointAddr> {
    podlb_core::routable(&res.endpoints)
        .iter()
        .map(|e| e.addr)
        .collect()
}

/// What changed between two resolutions, one line each, timestamped:
/// `+` joined, `-` left, `~` changed state, `!` discovery error.
fn changes(old: &Resolution, new: &Resolution) -> String {
    let stamp = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let mut out = String::new();
    if let Some(err) = new.error.as_ref().filter(|_| new.version == old.version) {
        let _ = writeln!(out, "{stamp} ! {err}");
        return out;
    }
    let by_addr = |res: &Resolution| -> BTreeMap<(EndpointAddr, Option<String>), Endpoint> {
        res.endpoints
            .iter()
            .map(|e| ((e.addr, e.source.clone()), e.clone()))
            .collect()
    };
    let (before, after) = (by_addr(old), by_addr(new));
    let routable = routable_addrs(new);
    let describe = |e: &Endpoint| {
        let [addr, state, calls, zone, node, source] = row(e, routable.contains(&e.addr));
        format!("{addr} {state} calls={calls} zone={zone} node={node} source={source}")
    };
    for (key, e) in &after {
        match before.get(key) {
            None => {
                let _ = writeln!(out, "{stamp} + {}", describe(e));
            }
            Some(was) if was != e => {
                let _ = writeln!(out, "{stamp} ~ {} (was {})", describe(e), was.state);
            }
            Some(_) => {}
        }
    }
    for (key, e) in &before {
        if !after.contains_key(key) {
            let _ = writeln!(out, "{stamp} - {} {}", e.addr, dash_source(e));
        }
    }
    if old.policies != new.policies {
        let named = match new.policies.join(", ") {
            none if none.is_empty() => "-".to_string(),
            named => named,
        };
        let _ = writeln!(out, "{stamp} ~ policy named by the source: {named}");
    }
    if !out.is_empty() {
        let _ = writeln!(
            out,
            "{stamp} = {} endpoints, {} take calls",
            new.endpoints.len(),
            routable.len()
        );
    }
    out
}

fn dash_source(e: &Endpoint) -> String {
    format!("source={}", e.source.as_deref().unwrap_or("-"))
}
