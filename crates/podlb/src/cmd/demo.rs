//! `podlb demo`: the problem and the fix, in one process, in a few seconds.
//!
//! ```text
//!                        ┌─► L4 forwarder (like a Service) ─┐
//!  client, ONE HTTP/2 ───┤                                  ├─► b1, b2, b3
//!  connection            └─► podlb (balances each call) ────┘
//! ```
//!
//! This file starts the three greeter backends, the L4 forwarder
//! (`demo/forwarder.rs`) and podlb's proxy on 127.0.0.1, sends the calls
//! through each in turn (`demo/load.rs`), prints the splits
//! (`demo/report.rs`) and stops everything. It is the README's first
//! command, so it needs nothing but this binary.

mod forwarder;
mod load;
mod report;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use podlb_balance::PolicyKind;
use podlb_core::{ListenAddr, Target};
use podlb_proxy::{EndpointState, Proxy, ProxyConfig, ProxyHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use forwarder::L4Forwarder;
use load::OneConnection;

/// The backends' ids, as their replies name them.
const BACKENDS: [&str; 3] = ["b1", "b2", "b3"];
/// podlb's endpoints become ready in the background; poll this often...
const READY_POLL: Duration = Duration::from_millis(20);
/// ...this many times (5s in all) before giving up.
const READY_POLLS: u32 = 250;
/// Uncounted calls through podlb before measuring, so the connection and
/// every endpoint are up when the clock starts.
const WARM_UP_CALLS: u32 = 3;
/// How long podlb waits for calls in flight on shutdown; none are left by then.
const GRACE_PERIOD: Duration = Duration::from_secs(1);
/// How long the front (podlb, the forwarder) or the backends may take to stop.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);

/// Arguments of `podlb demo`.
#[derive(Debug, clap::Args)]
#[command(after_help = "What it does, all inside this process on 127.0.0.1:
  1. starts three greeter backends, b1, b2 and b3;
  2. starts an L4 forwarder in front of them that sends each TCP connection to the next
     backend, as a Kubernetes Service (kube-proxy) does;
  3. starts podlb in front of the same three backends;
  4. sends the calls over ONE HTTP/2 connection, as a gRPC client does, first through the
     forwarder, then through podlb, and prints how many calls each backend answered.

Examples:
  podlb demo
  podlb demo --calls 10000 --concurrency 64 --lb round_robin")]
pub(crate) struct Args {
    /// How many calls to send through each side (the L4 forwarder, then podlb).
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..))]
    calls: u64,
    /// How many calls are in flight at once on the one connection.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    /// podlb's balancing policy: least_request, round_robin, random, peak_ewma.
    #[arg(long = "lb", default_value = "least_request", value_name = "POLICY")]
    policy: PolicyKind,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = super::runtime(0).context("starting the runtime")?;
    rt.block_on(demo(args))?;
    Ok(ExitCode::SUCCESS)
}

/// Starts everything, measures, prints, and stops everything, also when a
/// step fails: podlb and the forwarder first, then the backends behind
/// them, as one would in production (podlb would otherwise see its
/// backends go and log reconnect attempts).
async fn demo(args: Args) -> anyhow::Result<()> {
    let mut backends = Services::new();
    let mut fronts = Services::new();
    let measured = start_and_measure(&args, &mut backends, &mut fronts).await;
    let fronts_stopped = fronts.shut_down().await;
    let stopped = fronts_stopped.and(backends.shut_down().await);
    match measured {
        Ok(()) => stopped,
        Err(err) => {
            if let Err(stop_err) = stopped {
                tracing::warn!("while stopping after the error: {stop_err:#}");
            }
            Err(err)
        }
    }
}

/// Starts the greeters in `backends` and the L4 forwarder and podlb in
/// `fronts`, sends the calls through each front, and prints the result.
async fn start_and_measure(
    args: &Args,
    backends: &mut Services,
    fronts: &mut Services,
) -> anyhow::Result<()> {
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));

    let mut addrs = Vec::with_capacity(BACKENDS.len());
    for id in BACKENDS {
        let listener = TcpListener::bind(localhost)
            .await
            .with_context(|| format!("backend {id}: cannot listen on {localhost}"))?;
        let addr = listener
            .local_addr()
            .with_context(|| format!("backend {id}: reading the bound address"))?;
        let shutdown = backends.stopped();
        backends.spawn(async move {
            podlb_backend::serve(listener, id, shutdown)
                .await
                .with_context(|| format!("backend {id} on {addr}"))
        });
        addrs.push(addr);
    }

    let forwarder = L4Forwarder::bind(localhost, addrs.clone()).await?;
    let forwarder_addr = forwarder.local_addr()?;
    fronts.spawn(forwarder.run(fronts.stopped()));

    let endpoints: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    let target = format!("static:///{}", endpoints.join(","));
    let target: Target = target
        .parse()
        .with_context(|| format!("podlb target {target}"))?;
    let mut config = ProxyConfig::single(ListenAddr::from(localhost), target, args.policy);
    config.grace_period = GRACE_PERIOD;
    let proxy = Proxy::bind(config).await.context("starting podlb")?;
    let podlb_addr = proxy
        .local_addrs()
        .first()
        .map(|(_, addr)| *addr)
        .context("podlb has no listener")?;
    let podlb = proxy.handle();
    let shutdown = fronts.stopped();
    fronts.spawn(async move { proxy.run(shutdown).await.context("podlb") });

    // podlb connects to its endpoints meanwhile.
    let via_l4 = {
        let conn = OneConnection::open(forwarder_addr)
            .await
            .context("via the L4 forwarder")?;
        // Uncounted, like podlb's warm-up: the clock starts with the connection up.
        conn.call()
            .await
            .context("via the L4 forwarder: first call")?;
        conn.send(args.calls, args.concurrency)
            .await
            .context("via the L4 forwarder")?
    };

    wait_until_ready(&podlb).await?;
    let via_podlb = {
        let conn = OneConnection::open(podlb_addr).await.context("via podlb")?;
        warm_up(&conn).await?;
        conn.send(args.calls, args.concurrency)
            .await
            .context("via podlb")?
    };

    for (side, split) in [("the L4 forwarder", &via_l4), ("podlb", &via_podlb)] {
        anyhow::ensure!(
            split.total() == args.calls,
            "via {side}: {} replies to {} calls",
            split.total(),
            args.calls
        );
    }
    print!(
        "{}",
        report::render(
            args.calls,
            &BACKENDS,
            args.policy.name(),
            &via_l4,
            &via_podlb
        )
    );
    Ok(())
}

/// Waits until podlb has every backend as a Ready endpoint: calls sent
/// earlier would all go to the endpoints already up and skew the split.
async fn wait_until_ready(podlb: &ProxyHandle) -> anyhow::Result<()> {
    for _ in 0..READY_POLLS {
        let endpoints = podlb.endpoints();
        if endpoints.len() == BACKENDS.len()
            && endpoints.iter().all(|e| e.state == EndpointState::Ready)
        {
            return Ok(());
        }
        tokio::time::sleep(READY_POLL).await;
    }
    let states: Vec<String> = podlb
        .endpoints()
        .iter()
        .map(|e| format!("{} {:?}", e.addr, e.state))
        .collect();
    anyhow::bail!(
        "podlb: its endpoints did not all become ready within {:?}: {}",
        READY_POLL * READY_POLLS,
        states.join(", ")
    )
}

/// A few uncounted calls through podlb, retried until they succeed.
async fn warm_up(conn: &OneConnection) -> anyhow::Result<()> {
    let mut ok = 0;
    let mut last_err = None;
    for _ in 0..READY_POLLS {
        match conn.call().await {
            Ok(_) => {
                ok += 1;
                if ok == WARM_UP_CALLS {
                    return Ok(());
                }
            }
            Err(err) => {
                last_err = Some(err);
                tokio::time::sleep(READY_POLL).await;
            }
        }
    }
    let err = last_err.unwrap_or_else(|| anyhow::anyhow!("no reply"));
    Err(err.context("via podlb: warm-up calls keep failing"))
}

/// Tasks that serve until told to stop: the backends, or the L4 forwarder
/// and podlb in front of them.
#[derive(Debug)]
struct Services {
    stop: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl Services {
    fn new() -> Self {
        Services {
            stop: watch::Sender::new(false),
            tasks: JoinSet::new(),
        }
    }

    /// A future that resolves once [`Services::shut_down`] is called (or the
    /// services are dropped): the `shutdown` argument of what is spawned.
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.subscribe();
        async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }
    }

    fn spawn(&mut self, service: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        self.tasks.spawn(service);
    }

    /// Tells every service to stop and waits for them, at most
    /// [`SHUTDOWN_LIMIT`]; the first error any of them returned is the result.
    async fn shut_down(mut self) -> anyhow::Result<()> {
        self.stop.send_replace(true);
        let all = async {
            let mut first_err = None;
            while let Some(done) = self.tasks.join_next().await {
                let err = match done {
                    Ok(Ok(())) => continue,
                    Ok(Err(err)) => err,
                    Err(join) => anyhow::Error::new(join).context("a demo task failed"),
                };
                first_err.get_or_insert(err);
            }
            first_err.map_or(Ok(()), Err)
        };
        match tokio::time::timeout(SHUTDOWN_LIMIT, all).await {
            Ok(result) => result,
            Err(_) => anyhow::bail!("stopping the demo took longer than {SHUTDOWN_LIMIT:?}"),
        }
    }
}
