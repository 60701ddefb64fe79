//! A greeter client whose calls podlb-client balances over the pods of a
//! Kubernetes Service. The channel watches the Service's EndpointSlices,
//! so a pod gets calls as soon as it is ready and none once it leaves.
//!
//! In a cluster, with `KUBECONFIG`, `~/.kube/config` or a pod's service
//! account that may get, list and watch `endpointslices` (see
//! `deploy/kubernetes/rbac.yaml`), and the Service `greeter` of
//! `deploy/kubernetes/backends-example.yaml`:
//!
//! ```sh
//! cargo run --release -p podlb-client --example greeter_kubernetes -- kubernetes:///greeter.default:grpc
//! ```
//!
//! On one machine, against the test control plane of
//! `scripts/kube-test-cluster.sh` (a real kube-apiserver on 127.0.0.1, no
//! nodes or pods): three greeters on 127.0.0.11, .12 and .13, and an
//! EndpointSlice naming them, written by hand as the endpoint controller
//! would write it for a Service `greeter` with a port named `grpc`:
//!
//! ```sh
//! cargo build --release -p podlb
//! for i in 1 2 3; do ./target/release/podlb backend --listen 127.0.0.1$i:50051 --id b$i & done
//! bash scripts/kube-test-cluster.sh start /tmp/ex-k8s --apiserver-port 18643 --etcd-port 25990
//! kubectl --kubeconfig /tmp/ex-k8s/kubeconfig apply -f - <<'EOF'
//! apiVersion: discovery.k8s.io/v1beta1   # 1.20 serves only v1beta1; use v1 on 1.21+
//! kind: EndpointSlice
//! metadata:
//!   name: greeter-abc
//!   namespace: default
//!   labels: { kubernetes.io/service-name: greeter }
//! addressType: IPv4
//! ports: [{ name: grpc, port: 50051, protocol: TCP }]
//! endpoints:
//!   - { addresses: ["127.0.0.11"], conditions: { ready: true } }
//!   - { addresses: ["127.0.0.12"], conditions: { ready: true } }
//!   - { addresses: ["127.0.0.13"], conditions: { ready: true } }
//! EOF
//! cargo run --release -p podlb-client --example greeter_kubernetes -- --kubeconfig /tmp/ex-k8s/kubeconfig
//! bash scripts/kube-test-cluster.sh stop /tmp/ex-k8s
//! ```
//!
//! With `--pause 1s`, edit the slice while it runs (`kubectl edit
//! endpointslice greeter-abc`, set a `ready` to false) and watch that
//! greeter stop getting calls.
//!
//! The channel waits for ready (gRPC's wait-for-ready): a call made before
//! any pod is ready waits for one, up to its timeout, instead of failing at
//! once. It prints the backend that answered each call and how long the
//! call took (waiting included), then how many calls each backend answered
//! and each endpoint's state. Arguments:
//!
//! ```text
//! greeter_kubernetes [TARGET] [--kubeconfig FILE] [--calls N] [--pause DURATION]
//!                    [--timeout DURATION] [--policy NAME]
//!   TARGET             default kubernetes:///greeter.default:grpc
//!                      (Service greeter, namespace default, the port named grpc)
//!   --kubeconfig FILE  instead of KUBECONFIG, ~/.kube/config or the pod's service account
//!   --calls N          how many SayHello calls, one after another; default 12
//!   --pause DURATION   time between two calls, e.g. 1s (to watch pods come
//!                      and go while it runs); default 0s
//!   --timeout DURATION each call's deadline, waiting for a ready pod included; default 10s
//!   --policy NAME      least_request (the default), round_robin, random or peak_ewma
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use podlb_backend::GreeterClient;
use podlb_backend::pb::HelloRequest;
use podlb_client::{Channel, PolicyKind};
use tokio::time::Instant;

const DEFAULT_TARGET: &str = "kubernetes:///greeter.default:grpc";
const USAGE: &str = "\
usage: greeter_kubernetes [TARGET] [--kubeconfig FILE] [--calls N] [--pause DURATION]
                          [--timeout DURATION] [--policy NAME]
  TARGET              default kubernetes:///greeter.default:grpc
                      (Service greeter, namespace default, the port named grpc)
  --kubeconfig FILE   instead of KUBECONFIG, ~/.kube/config or the pod's service account
  --calls N           how many SayHello calls, one after another; default 12
  --pause DURATION    time between two calls, e.g. 1s (to watch pods come
                      and go while it runs); default 0s
  --timeout DURATION  each call's deadline, waiting for a ready pod included; default 10s
  --policy NAME       least_request (the default), round_robin, random or peak_ewma";

/// What the command line asks for.
struct Args {
    target: String,
    kubeconfig: Option<PathBuf>,
    calls: usize,
    pause: Duration,
    timeout: Duration,
    policy: PolicyKind,
}

/// Reads the command line: one optional positional target, and flags that
/// each take one value; durations are written as `250ms`, `2s`, `1m`.
/// `None`: the user asked for help.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        target: DEFAULT_TARGET.to_string(),
        kubeconfig: None,
        calls: 12,
        pause: Duration::ZERO,
        timeout: Duration::from_secs(10),
        policy: PolicyKind::default(),
    };
    let mut target_seen = false;
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        let duration = |flag: &str, v: String| {
            humantime::parse_duration(&v).map_err(|e| format!("{flag} {v:?}: {e}"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--kubeconfig" => parsed.kubeconfig = Some(value("--kubeconfig")?.into()),
            "--calls" => {
                let v = value("--calls")?;
                parsed.calls = v
                    .parse()
                    .map_err(|_| format!("--calls {v:?}: not a number"))?;
            }
            "--pause" => parsed.pause = duration("--pause", value("--pause")?)?,
            "--timeout" => parsed.timeout = duration("--timeout", value("--timeout")?)?,
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
            eprintln!("greeter_kubernetes: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("greeter_kubernetes: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = Channel::builder(&args.target)?
        .policy(args.policy)
        .wait_for_ready(true);
    if let Some(path) = &args.kubeconfig {
        builder = builder.kubeconfig(path);
    }
    let channel = builder.build()?;
    println!(
        "{} calls to {} ({}, wait for ready, {} per call)",
        args.calls,
        args.target,
        args.policy,
        humantime::format_duration(args.timeout),
    );
    let mut greeter = GreeterClient::new(channel.clone());
    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    for i in 1..=args.calls {
        if i > 1 && !args.pause.is_zero() {
            tokio::time::sleep(args.pause).await;
        }
        // The deadline bounds the wait for a ready pod; without one a
        // wait-for-ready call waits as long as it takes.
        let mut request = tonic::Request::new(HelloRequest {
            name: "world".to_string(),
        });
        request.set_timeout(args.timeout);
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
