//! A greeter client whose calls podlb-client balances over every address of
//! a DNS name (in Kubernetes, a headless Service gives one per pod). The
//! name is looked up again when its TTL runs out, within the two intervals
//! below, and at once when a server refuses or drops a connection.
//!
//! In a cluster:
//!
//! ```sh
//! cargo run --release -p podlb-client --example greeter_dns -- dns:///greeter.default.svc.cluster.local:50051
//! ```
//!
//! On one machine, `localhost` gives two addresses, 127.0.0.1 and ::1 (the
//! resolver answers it itself), so two greeters, one on each, are enough:
//!
//! ```sh
//! cargo build --release -p podlb
//! ./target/release/podlb backend --listen 127.0.0.1:50051 --id b1 &
//! ./target/release/podlb backend --listen '[::1]:50051' --id b2 &
//! cargo run --release -p podlb-client --example greeter_dns -- dns:///localhost:50051
//! ```
//!
//! For a name with more addresses, run your own DNS server and name it in
//! the target's authority (`dns://SERVER/NAME:PORT` asks that server only).
//! With dnsmasq (Debian: `apt-get install dnsmasq-base`), three greeters on
//! 127.0.0.11, .12 and .13; `--local=/test/` makes dnsmasq answer "no
//! such record" to the AAAA lookup instead of refusing it:
//!
//! ```sh
//! for i in 1 2 3; do ./target/release/podlb backend --listen 127.0.0.1$i:50051 --id b$i & done
//! printf '127.0.0.11 greeter.test\n127.0.0.12 greeter.test\n127.0.0.13 greeter.test\n' > /tmp/greeter.hosts
//! /usr/sbin/dnsmasq --keep-in-foreground --no-resolv --no-hosts --conf-file=/dev/null \
//!     --listen-address=127.0.0.1 --bind-interfaces --port=5353 --local-ttl=5 \
//!     --local=/test/ --addn-hosts=/tmp/greeter.hosts &    # as root, add --user=root
//! cargo run --release -p podlb-client --example greeter_dns -- dns://127.0.0.1:5353/greeter.test:50051
//! ```
//!
//! To see a server leave, run it with `--pause 500ms --calls 20`, delete a
//! line of `/tmp/greeter.hosts` and send dnsmasq SIGHUP (it re-reads the
//! file): after the next lookup (at most 5 s later, the TTL) that greeter
//! gets no more calls.
//!
//! It prints the backend that answered each call and how long the call
//! took, then how many calls each backend answered and the channel's
//! endpoints. Arguments:
//!
//! ```text
//! greeter_dns [TARGET] [--calls N] [--pause DURATION] [--policy NAME]
//!             [--dns-min-interval DURATION] [--dns-max-interval DURATION]
//!   TARGET                 default dns:///localhost:50051
//!   --calls N              how many SayHello calls, one after another; default 12
//!   --pause DURATION       time between two calls, e.g. 1s (to watch a server
//!                          come or go while it runs); default 0s
//!   --policy NAME          least_request (the default), round_robin, random or peak_ewma
//!   --dns-min-interval D   the least time between two lookups; default 2s
//!   --dns-max-interval D   the most time between two lookups; default 30s
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use podlb_backend::GreeterClient;
use podlb_backend::pb::HelloRequest;
use podlb_client::{Channel, PolicyKind};
use tokio::time::Instant;

const DEFAULT_TARGET: &str = "dns:///localhost:50051";
const USAGE: &str = "\
usage: greeter_dns [TARGET] [--calls N] [--pause DURATION] [--policy NAME]
                   [--dns-min-interval DURATION] [--dns-max-interval DURATION]
  TARGET                 default dns:///localhost:50051
  --calls N              how many SayHello calls, one after another; default 12
  --pause DURATION       time between two calls, e.g. 1s (to watch a server
                         come or go while it runs); default 0s
  --policy NAME          least_request (the default), round_robin, random or peak_ewma
  --dns-min-interval D   the least time between two lookups; default 2s
  --dns-max-interval D   the most time between two lookups; default 30s";

/// What the command line asks for.
struct Args {
    target: String,
    calls: usize,
    pause: Duration,
    policy: PolicyKind,
    dns_min_interval: Duration,
    dns_max_interval: Duration,
}

/// Reads the command line: one optional positional target, and flags that
/// each take one value; durations are written as `250ms`, `2s`, `1m`.
/// `None`: the user asked for help.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        target: DEFAULT_TARGET.to_string(),
        calls: 12,
        pause: Duration::ZERO,
        policy: PolicyKind::default(),
        dns_min_interval: Duration::from_secs(2),
        dns_max_interval: Duration::from_secs(30),
    };
    let mut target_seen = false;
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        let duration = |flag: &str, v: String| {
            humantime::parse_duration(&v).map_err(|e| format!("{flag} {v:?}: {e}"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--calls" => {
                let v = value("--calls")?;
                parsed.calls = v
                    .parse()
                    .map_err(|_| format!("--calls {v:?}: not a number"))?;
            }
            "--pause" => parsed.pause = duration("--pause", value("--pause")?)?,
            "--policy" => {
                let v = value("--policy")?;
                parsed.policy = v.parse().map_err(|e| format!("--policy: {e}"))?;
            }
            "--dns-min-interval" => {
                parsed.dns_min_interval = duration(&arg, value(&arg)?)?;
            }
            "--dns-max-interval" => {
                parsed.dns_max_interval = duration(&arg, value(&arg)?)?;
            }
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag}")),
            _ if target_seen => return Err(format!("one target only; {arg:?} is a second")),
            _ => {
                parsed.target = arg;
                target_seen = true;
            }
        }
    }
    Ok(Some(parsed))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(why) => {
            eprintln!("greeter_dns: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("greeter_dns: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let channel = Channel::builder(&args.target)?
        .policy(args.policy)
        .dns_intervals(args.dns_min_interval, args.dns_max_interval)
        .build()?;
    println!(
        "{} calls to {} ({}; lookups every {} to {})",
        args.calls,
        args.target,
        args.policy,
        humantime::format_duration(args.dns_min_interval),
        humantime::format_duration(args.dns_max_interval),
    );
    let mut greeter = GreeterClient::new(channel.clone());
    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    for i in 1..=args.calls {
        if i > 1 && !args.pause.is_zero() {
            tokio::time::sleep(args.pause).await;
        }
        let request = HelloRequest {
            name: "world".to_string(),
        };
        let sent = Instant::now();
        match greeter.say_hello(request).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                println!("call {i:>3}: {} ({:.1?})", reply.message, sent.elapsed());
                *answered
                    .entry(podlb_backend::backend_of(&reply).to_string())
                    .or_default() += 1;
            }
            Err(status) => {
                println!(
                    "call {i:>3}: {:?}: {} ({:.1?})",
                    status.code(),
                    status.message(),
                    sent.elapsed()
                );
                *answered.entry("(failed)".to_string()).or_default() += 1;
            }
        }
    }
    let tally: Vec<String> = answered.iter().map(|(b, n)| format!("{b} {n}")).collect();
    println!("answered: {}", tally.join(", "));
    println!("endpoints:");
    for endpoint in channel.endpoints() {
        println!(
            "  {:<22} {:?}, {} in flight",
            endpoint.addr.to_string(),
            endpoint.state,
            endpoint.in_flight
        );
    }
    Ok(())
}
