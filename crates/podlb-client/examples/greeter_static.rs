//! A greeter client whose calls podlb-client balances over a fixed list of
//! servers: one `Channel`, one HTTP/2 connection to each server, and each
//! call sent to the server the policy picks.
//!
//! Start three greeters (each names itself in its reply), then run it:
//!
//! ```sh
//! cargo build --release -p podlb
//! ./target/release/podlb backend --listen 127.0.0.1:50051 --id b1 &
//! ./target/release/podlb backend --listen 127.0.0.1:50052 --id b2 &
//! ./target/release/podlb backend --listen 127.0.0.1:50053 --id b3 &
//! cargo run --release -p podlb-client --example greeter_static
//! ```
//!
//! It prints the backend that answered each call and how long the call
//! took, then how many calls each backend answered and the channel's
//! endpoints. Arguments:
//!
//! ```text
//! greeter_static [TARGET] [--calls N] [--policy NAME]
//!   TARGET         default static:///127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053
//!   --calls N      how many SayHello calls, one after another; default 12
//!   --policy NAME  least_request (the default), round_robin, random or peak_ewma
//! ```
//!
//! Pass the flags after `--` with cargo:
//! `cargo run --release -p podlb-client --example greeter_static -- --policy round_robin`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use podlb_backend::GreeterClient;
use podlb_backend::pb::HelloRequest;
use podlb_client::{Channel, PolicyKind};
use tokio::time::Instant;

const DEFAULT_TARGET: &str = "static:///127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053";
const USAGE: &str = "\
usage: greeter_static [TARGET] [--calls N] [--policy NAME]
  TARGET         default static:///127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053
  --calls N      how many SayHello calls, one after another; default 12
  --policy NAME  least_request (the default), round_robin, random or peak_ewma";

/// What the command line asks for.
struct Args {
    target: String,
    calls: usize,
    policy: PolicyKind,
}

/// Reads the command line: one optional positional target, and flags that
/// each take one value. `None`: the user asked for help.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        target: DEFAULT_TARGET.to_string(),
        calls: 12,
        policy: PolicyKind::default(),
    };
    let mut target_seen = false;
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--calls" => {
                let v = value("--calls")?;
                parsed.calls = v
                    .parse()
                    .map_err(|_| format!("--calls {v:?}: not a number"))?;
            }
            "--policy" => {
                let v = value("--policy")?;
                parsed.policy = v.parse().map_err(|e| format!("--policy: {e}"))?;
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
            eprintln!("greeter_static: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("greeter_static: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let channel = Channel::builder(&args.target)?
        .policy(args.policy)
        .build()?;
    println!("{} calls to {} ({})", args.calls, args.target, args.policy);
    // Any tonic-generated client takes the channel.
    let mut greeter = GreeterClient::new(channel.clone());
    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    for i in 1..=args.calls {
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
