//! Load generator for `bench/client.sh`: calls/s and the client's own
//! CPU-µs per call through `podlb_client::Channel`, and through tonic's own
//! channels for comparison, against servers that run as separate processes.
//!
//! ```text
//!  bench_client run --mode M --kind K --servers A,B,C
//!
//!   C workers (tokio tasks) ─► one channel ─► servers (other processes)
//!     mode plain         tonic::transport::Channel to A only (one connection)
//!     mode balance_list  tonic::transport::Channel::balance_list(A, B, C)
//!                        (tower p2c over pending requests, one connection each)
//!     mode podlb         podlb_client::Channel, static:///A,B,C, least_request
//!                        (or --policy)
//!
//!     kind unary         helloworld.Greeter/SayHello, one call after the other
//!                        per worker (servers: `podlb backend`)
//!     kind streaming     podlb.test.v1.TestService/Bidi: per worker one stream
//!                        at a time, a message sent, its reply awaited, N times;
//!                        a "call" is one message and its reply (servers:
//!                        `bench_client serve`)
//!
//!   warm-up ─► snapshot ─► measured window ─► snapshot ─► one JSON line
//!
//!  bench_client serve --listen ADDR --id NAME
//!     podlb_testkit's TestBackend on ADDR, on a current-thread runtime (as
//!     `podlb backend --workers 1`), until killed
//! ```
//!
//! The runtime is tokio's multi-thread one with 2 workers (`--threads`), as
//! a typical service on a 2-core pod would run it. CPU time is utime+stime
//! of this whole process (every thread) from `/proc/self/stat`, over the
//! measured window only, divided by the good calls (messages) of that
//! window. The global allocator is the system one for every mode.
//!
//! Options of `run` (all `--name value`):
//!
//! | option          | default | meaning |
//! |-----------------|---------|---------|
//! | `--mode`        | -       | `plain`, `balance_list` or `podlb` |
//! | `--kind`        | -       | `unary` or `streaming` |
//! | `--servers`     | -       | `HOST:PORT,HOST:PORT,...`; `plain` uses the first |
//! | `--concurrency` | 64      | workers, so calls (or streams) in flight |
//! | `--duration`    | 10      | seconds measured |
//! | `--warmup`      | 2       | seconds run before the measured window |
//! | `--messages`    | 1000    | streaming: messages per stream |
//! | `--clk-tck`     | 100     | clock ticks per second of `/proc` (`getconf CLK_TCK`) |
//! | `--policy`      | least_request | mode podlb: `round_robin`, `random`, `least_request` or `peak_ewma` |
//! | `--threads`     | 2       | tokio worker threads of the client |
//! | `--server-pids` | none    | `PID,PID,...`: these processes' CPU over the same window, per call |
//!
//! Output, one line on stdout: `{"mode":..,"policy":..,"kind":..,"concurrency":..,
//! "secs":..,"calls":..,"calls_per_s":..,"cpu_us_per_call":..,
//! "cpu_s":..,"servers_cpu_us_per_call":..,"errors":..,"warmup_errors":..,
//! "write_syscalls_per_call":..,"bytes_written_per_call":..,
//! "context_switches_per_call":..,"by_backend":{"b1":..},"first_error":..}`.
//! `errors` counts the measured window, `warmup_errors` the warm-up, and
//! `first_error` is the first of either. The kernel's counts (from
//! `/proc/self/io` and `/proc/self/task/*/status`) tell how a channel talks
//! to the socket: writes, bytes (so frames) and thread wake-ups per call.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use podlb_backend::GreeterClient;
use podlb_backend::pb::HelloRequest;
use podlb_testkit::{EchoRequest, TestBackend, TestServiceClient};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::client::GrpcService;
use tonic::codegen::StdError;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => Opts::parse(&args[1..]).and_then(run),
        Some("serve") => serve(&args[1..]),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench_client: {err}");
            ExitCode::from(2)
        }
    }
}

const USAGE: &str = "usage: bench_client run --mode plain|balance_list|podlb --kind unary|streaming \
--servers A,B,C [--concurrency 64] [--duration 10] [--warmup 2] [--messages 1000] [--clk-tck 100] \
[--policy least_request] [--threads 2] [--server-pids P,P,P]\n\
       bench_client serve --listen ADDR --id NAME";

/// Which channel the workers share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    BalanceList,
    Podlb,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::BalanceList => "balance_list",
            Mode::Podlb => "podlb",
        }
    }
}

/// Which call the workers make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unary,
    Streaming,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Unary => "unary",
            Kind::Streaming => "streaming",
        }
    }
}

/// The options of `run`.
#[derive(Debug, Clone)]
struct Opts {
    mode: Mode,
    kind: Kind,
    servers: Vec<String>,
    concurrency: usize,
    duration: Duration,
    warmup: Duration,
    messages: u64,
    clk_tck: f64,
    policy: podlb_client::PolicyKind,
    threads: usize,
    server_pids: Vec<u32>,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Opts, String> {
        let mut opts = Opts {
            mode: Mode::Podlb,
            kind: Kind::Unary,
            servers: Vec::new(),
            concurrency: 64,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            messages: 1000,
            clk_tck: 100.0,
            policy: podlb_client::PolicyKind::LeastRequest,
            threads: 2,
            server_pids: Vec::new(),
        };
        let (mut mode, mut kind) = (None, None);
        let mut it = args.iter();
        while let Some(name) = it.next() {
            let value = it
                .next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))?;
            let bad = |what: &str| format!("{name} {value:?}: {what}\n{USAGE}");
            match name.as_str() {
                "--mode" => {
                    mode = Some(match value.as_str() {
                        "plain" => Mode::Plain,
                        "balance_list" => Mode::BalanceList,
                        "podlb" => Mode::Podlb,
                        _ => return Err(bad("not a mode")),
                    })
                }
                "--kind" => {
                    kind = Some(match value.as_str() {
                        "unary" => Kind::Unary,
                        "streaming" => Kind::Streaming,
                        _ => return Err(bad("not a kind")),
                    })
                }
                "--servers" => opts.servers = value.split(',').map(str::to_owned).collect(),
                "--concurrency" => opts.concurrency = value.parse().map_err(|_| bad("a number"))?,
                "--duration" => opts.duration = seconds(value).ok_or_else(|| bad("seconds"))?,
                "--warmup" => opts.warmup = seconds(value).ok_or_else(|| bad("seconds"))?,
                "--messages" => opts.messages = value.parse().map_err(|_| bad("a number"))?,
                "--clk-tck" => opts.clk_tck = value.parse().map_err(|_| bad("a number"))?,
                "--policy" => opts.policy = value.parse().map_err(|_| bad("not a policy"))?,
                "--threads" => opts.threads = value.parse().map_err(|_| bad("a number"))?,
                "--server-pids" => {
                    opts.server_pids = value
                        .split(',')
                        .map(|p| p.parse().map_err(|_| bad("process ids")))
                        .collect::<Result<_, _>>()?
                }
                _ => return Err(format!("unknown option {name}\n{USAGE}")),
            }
        }
        opts.mode = mode.ok_or_else(|| format!("--mode is required\n{USAGE}"))?;
        opts.kind = kind.ok_or_else(|| format!("--kind is required\n{USAGE}"))?;
        if opts.servers.is_empty() || opts.servers.iter().any(String::is_empty) {
            return Err(format!("--servers is required\n{USAGE}"));
        }
        if opts.concurrency == 0 || opts.messages == 0 || opts.threads == 0 || opts.clk_tck <= 0.0 {
            return Err(format!(
                "--concurrency, --messages, --threads and --clk-tck must be positive\n{USAGE}"
            ));
        }
        Ok(opts)
    }
}

fn seconds(value: &str) -> Option<Duration> {
    Duration::try_from_secs_f64(value.trim_end_matches('s').parse().ok()?).ok()
}

/// `serve`: a test-service backend on `--listen` until the process is
/// killed, on one thread as `podlb backend --workers 1` runs.
fn serve(args: &[String]) -> Result<(), String> {
    let (mut listen, mut id) = (None, "backend".to_owned());
    let mut it = args.iter();
    while let Some(name) = it.next() {
        let value = it.next().ok_or_else(|| format!("{name} needs a value"))?;
        match name.as_str() {
            "--listen" => {
                listen = Some(
                    value
                        .parse::<std::net::SocketAddr>()
                        .map_err(|e| format!("--listen {value:?}: {e}"))?,
                )
            }
            "--id" => id.clone_from(value),
            _ => return Err(format!("unknown option {name}\n{USAGE}")),
        }
    }
    let listen = listen.ok_or_else(|| format!("--listen is required\n{USAGE}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    rt.block_on(async {
        let backend = TestBackend::start_at(&id, listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        eprintln!("test service {id} listening on {}", backend.addr());
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// What a worker has seen: good calls by the backend that answered them,
/// and failed calls. Each worker has its own, so counting takes no lock
/// another thread holds (except at the two snapshots).
#[derive(Debug, Default, Clone)]
struct Tally {
    by_backend: Vec<(String, u64)>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn hit(&mut self, backend: &str) {
        match self.by_backend.iter_mut().find(|(id, _)| id == backend) {
            Some((_, n)) => *n += 1,
            None => self.by_backend.push((backend.to_owned(), 1)),
        }
    }

    fn error(&mut self, err: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(err.to_string());
        }
    }

    fn add(&mut self, other: &Tally) {
        for (id, n) in &other.by_backend {
            match self.by_backend.iter_mut().find(|(mine, _)| mine == id) {
                Some((_, mine)) => *mine += n,
                None => self.by_backend.push((id.clone(), *n)),
            }
        }
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }

    fn calls(&self) -> u64 {
        self.by_backend.iter().map(|(_, n)| n).sum()
    }

    /// `self - earlier`, per backend.
    fn since(&self, earlier: &Tally) -> Tally {
        let before = |id: &str| {
            earlier
                .by_backend
                .iter()
                .find(|(e, _)| e == id)
                .map_or(0, |(_, n)| *n)
        };
        let mut by_backend: Vec<(String, u64)> = self
            .by_backend
            .iter()
            .map(|(id, n)| (id.clone(), n - before(id)))
            .collect();
        by_backend.sort();
        Tally {
            by_backend,
            errors: self.errors - earlier.errors,
            first_error: self.first_error.clone(),
        }
    }
}

type SharedTally = Arc<Mutex<Tally>>;

fn lock(tally: &Mutex<Tally>) -> MutexGuard<'_, Tally> {
    // A worker that panicked leaves its counts as they were: still good.
    tally
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A channel a tonic-generated client can run on, from a spawned task.
trait GrpcChannel:
    GrpcService<
        tonic::body::Body,
        Future: Send,
        Error: Into<StdError>,
        ResponseBody: Body<Data = Bytes, Error: Into<StdError> + Send> + Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<T> GrpcChannel for T where
    T: GrpcService<
            tonic::body::Body,
            Future: Send,
            Error: Into<StdError>,
            ResponseBody: Body<Data = Bytes, Error: Into<StdError> + Send> + Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

fn run(opts: Opts) -> Result<(), String> {
    // 2 workers by default, as a service on a 2-core machine would run;
    // the machine has 2 cores, shared with the servers.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads)
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    let line = rt.block_on(async {
        let uri = |addr: &str| {
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| format!("server {addr:?}: {e}"))
        };
        match opts.mode {
            Mode::Plain => {
                let channel = uri(&opts.servers[0])?
                    .connect()
                    .await
                    .map_err(|e| format!("connecting to {}: {e}", opts.servers[0]))?;
                measure(&opts, channel).await
            }
            Mode::BalanceList => {
                let endpoints = opts
                    .servers
                    .iter()
                    .map(|s| uri(s))
                    .collect::<Result<Vec<_>, _>>()?;
                let channel = tonic::transport::Channel::balance_list(endpoints.into_iter());
                measure(&opts, channel).await
            }
            Mode::Podlb => {
                let target = format!("static:///{}", opts.servers.join(","));
                let channel = podlb_client::Channel::builder(&target)
                    .and_then(|b| b.policy(opts.policy).build())
                    .map_err(|e| e.to_string())?;
                measure(&opts, channel).await
            }
        }
    })?;
    println!("{line}");
    // The workers are stopped mid-call; do not wait for their streams.
    rt.shutdown_background();
    Ok(())
}

/// Runs the workers over `channel`, warms up, measures; the JSON line.
async fn measure<T: GrpcChannel>(opts: &Opts, channel: T) -> Result<String, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let tallies: Vec<SharedTally> = (0..opts.concurrency)
        .map(|_| SharedTally::default())
        .collect();
    for tally in &tallies {
        let (channel, tally, stop) = (channel.clone(), tally.clone(), stop.clone());
        match opts.kind {
            Kind::Unary => tokio::spawn(unary_worker(channel, tally, stop)),
            Kind::Streaming => tokio::spawn(streaming_worker(channel, opts.messages, tally, stop)),
        };
    }
    let total = || {
        let mut sum = Tally::default();
        for tally in &tallies {
            sum.add(&lock(tally));
        }
        sum
    };

    let servers_cpu = || -> Result<u64, String> {
        let mut ticks = 0;
        for pid in &opts.server_pids {
            ticks += cpu_ticks(&format!("/proc/{pid}/stat"))?;
        }
        Ok(ticks)
    };

    tokio::time::sleep(opts.warmup).await;
    let t0 = Instant::now();
    let (cpu0, servers0, tally0) = (cpu_ticks("/proc/self/stat")?, servers_cpu()?, total());
    let kernel0 = Kernel::now();
    tokio::time::sleep(opts.duration).await;
    let (cpu1, servers1, tally1) = (cpu_ticks("/proc/self/stat")?, servers_cpu()?, total());
    let kernel1 = Kernel::now();
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);

    let window = tally1.since(&tally0);
    let calls = window.calls();
    let cpu_us = (cpu1 - cpu0) as f64 / opts.clk_tck * 1e6;
    let servers_cpu_us = (servers1 - servers0) as f64 / opts.clk_tck * 1e6;
    let per_call = |us: f64| {
        if calls > 0 {
            format!("{:.2}", us / calls as f64)
        } else {
            "null".to_owned()
        }
    };
    let kernel_per_call = |field: fn(&Kernel) -> u64| match (&kernel0, &kernel1) {
        (Some(k0), Some(k1)) => per_call(field(k1).saturating_sub(field(k0)) as f64),
        _ => "null".to_owned(),
    };
    let by_backend: Vec<String> = window
        .by_backend
        .iter()
        .map(|(id, n)| format!("{}:{n}", json_string(id)))
        .collect();
    let fields = [
        ("mode", json_string(opts.mode.name())),
        (
            "policy",
            match opts.mode {
                Mode::Podlb => json_string(opts.policy.name()),
                Mode::Plain | Mode::BalanceList => "null".to_owned(),
            },
        ),
        ("kind", json_string(opts.kind.name())),
        ("concurrency", opts.concurrency.to_string()),
        ("threads", opts.threads.to_string()),
        ("secs", format!("{secs:.3}")),
        ("calls", calls.to_string()),
        ("calls_per_s", format!("{:.0}", calls as f64 / secs)),
        ("cpu_us_per_call", per_call(cpu_us)),
        ("cpu_s", format!("{:.3}", cpu_us / 1e6)),
        (
            "servers_cpu_us_per_call",
            if opts.server_pids.is_empty() {
                "null".to_owned()
            } else {
                per_call(servers_cpu_us)
            },
        ),
        ("errors", window.errors.to_string()),
        ("warmup_errors", tally0.errors.to_string()),
        ("write_syscalls_per_call", kernel_per_call(|k| k.syscw)),
        ("bytes_written_per_call", kernel_per_call(|k| k.wchar)),
        ("context_switches_per_call", kernel_per_call(|k| k.switches)),
        ("by_backend", format!("{{{}}}", by_backend.join(","))),
        (
            "first_error",
            window
                .first_error
                .as_deref()
                .map_or_else(|| "null".to_owned(), json_string),
        ),
    ];
    let fields: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("\"{name}\":{value}"))
        .collect();
    Ok(format!("{{{}}}", fields.join(",")))
}

/// One unary call after the other, until told to stop.
async fn unary_worker<T: GrpcChannel>(channel: T, tally: SharedTally, stop: Arc<AtomicBool>) {
    let mut client = GreeterClient::new(channel);
    while !stop.load(Ordering::Relaxed) {
        let request = HelloRequest {
            name: "world".to_owned(),
        };
        match client.say_hello(request).await {
            Ok(reply) => lock(&tally).hit(podlb_backend::backend_of(reply.get_ref())),
            Err(status) => {
                lock(&tally).error(status);
                // A failing server must not turn the worker into a busy loop.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// One bidi stream after the other, each `messages` ping-pongs long (one
/// message in flight per stream), until told to stop.
async fn streaming_worker<T: GrpcChannel>(
    channel: T,
    messages: u64,
    tally: SharedTally,
    stop: Arc<AtomicBool>,
) {
    let mut client = TestServiceClient::new(channel);
    let request = EchoRequest {
        payload: b"hello".to_vec(),
        ..EchoRequest::default()
    };
    while !stop.load(Ordering::Relaxed) {
        if let Err(err) = one_stream(&mut client, &request, messages, &tally, &stop).await {
            lock(&tally).error(err);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn one_stream<T: GrpcChannel>(
    client: &mut TestServiceClient<T>,
    request: &EchoRequest,
    messages: u64,
    tally: &Mutex<Tally>,
    stop: &AtomicBool,
) -> Result<(), String> {
    let (tx, rx) = mpsc::channel(1);
    // The receiver is alive: this cannot fail.
    let _ = tx.send(request.clone()).await;
    let mut replies = client
        .bidi(ReceiverStream::new(rx))
        .await
        .map_err(|s| s.to_string())?
        .into_inner();
    let mut sent = 1;
    loop {
        match replies.message().await {
            Ok(Some(reply)) => lock(tally).hit(&reply.backend),
            Ok(None) => return Err(format!("stream ended after {sent} messages")),
            Err(status) => return Err(status.to_string()),
        }
        if sent == messages || stop.load(Ordering::Relaxed) {
            break;
        }
        if tx.send(request.clone()).await.is_err() {
            return Err("request stream closed".to_owned());
        }
        sent += 1;
    }
    drop(tx);
    match replies.message().await {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err("a reply more than messages sent".to_owned()),
        Err(status) => Err(status.to_string()),
    }
}

/// What the kernel counts for this process: write system calls and their
/// bytes (`/proc/self/io`, every thread; h2 writes with `writev`, which is
/// counted, and reads with `recvfrom`, which is not), and context switches
/// summed over its threads (`/proc/self/task/*/status`). `None` where
/// `/proc` does not have them.
#[derive(Debug, Clone, Copy)]
struct Kernel {
    syscw: u64,
    wchar: u64,
    switches: u64,
}

impl Kernel {
    fn now() -> Option<Kernel> {
        let io = std::fs::read_to_string("/proc/self/io").ok()?;
        let field = |text: &str, name: &str| -> Option<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
        };
        let mut switches = 0;
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
                continue; // a thread that just ended
            };
            switches += field(&status, "voluntary_ctxt_switches").unwrap_or(0)
                + field(&status, "nonvoluntary_ctxt_switches").unwrap_or(0);
        }
        Some(Kernel {
            syscw: field(&io, "syscw")?,
            wchar: field(&io, "wchar")?,
            switches,
        })
    }
}

/// utime+stime of a process (all its threads) from its `/proc/PID/stat`,
/// in clock ticks.
fn cpu_ticks(path: &str) -> Result<u64, String> {
    let stat = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    // The command name may hold spaces: count fields after its ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("{path}: no ')'"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("{path}: field {} missing", i + 3))
    };
    // Fields 14 (utime) and 15 (stime); the first after ')' is field 3.
    Ok(field(11)? + field(12)?)
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
