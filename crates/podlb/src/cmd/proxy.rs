//! `podlb proxy`: the quick form (one listener, one target) or the full
//! form (`--config podlb.yaml`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use podlb_balance::PolicyKind;
use podlb_core::{ListenAddr, Target};
use podlb_proxy::{Proxy, ProxyConfig};

/// Arguments of `podlb proxy`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  podlb proxy --listen 127.0.0.1:7000 static:///127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053
  podlb proxy --listen 0.0.0.0:7000 --lb round_robin static:///10.0.0.1:50051,10.0.0.2:50051
  podlb proxy --config podlb.yaml

Policies: least_request (default: the less busy of two random endpoints), round_robin,
random, peak_ewma (the faster of two random endpoints, by latency x load).")]
pub(crate) struct Args {
    /// Where to send calls: a target URI such as
    /// static:///10.0.0.1:50051,10.0.0.2:50051 (quick form).
    #[arg(required_unless_present = "config", conflicts_with = "config")]
    target: Option<String>,
    /// Address to accept gRPC (h2c) and HTTP/1.1 on (quick form).
    #[arg(long, default_value = "127.0.0.1:7000", conflicts_with = "config")]
    listen: String,
    /// Balancing policy (quick form): least_request, round_robin, random, peak_ewma.
    #[arg(
        long = "lb",
        default_value = "least_request",
        conflicts_with = "config"
    )]
    policy: String,
    /// A YAML config with listeners, routes and upstreams (full form; see
    /// examples/configs/podlb.yaml). Validate it with `podlb check`.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// On SIGTERM, how long calls in flight may take to finish (e.g. 30s);
    /// overrides the config's shutdown.grace_period.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    grace_period: Option<Duration>,
    /// Runtime worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = proxy_config(&args)?;
    if let Some(grace) = args.grace_period {
        config.grace_period = grace;
    }
    let rt = super::runtime(args.workers).context("starting the runtime")?;
    rt.block_on(async {
        let proxy = Proxy::bind(config).await?;
        proxy.run(super::terminate_signal()).await?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
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
    let policy: PolicyKind = args.policy.parse().context("--lb")?;
    Ok(ProxyConfig::single(listen, target, policy))
}
