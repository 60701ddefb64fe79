//! The `podlb` binary: parses the command line, sets up logging, and hands
//! each subcommand to its module in `cmd/`. `anyhow` lives here only.

mod cmd;

/// mimalloc: the proxy allocates and frees small blocks on every call
/// (h2 frames and stream state, task cells); measured in BENCHMARKING.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// podlb balances every gRPC call, not every connection, across the pods of
/// a service.
///
/// A Kubernetes Service balances TCP connections; gRPC sends every call of a
/// client over one HTTP/2 connection, so all of them land on one pod. podlb
/// spreads the calls themselves.
#[derive(Debug, Parser)]
#[command(name = "podlb", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the L7 proxy: accept gRPC (h2c) and HTTP/1.1, balance each call.
    Proxy(cmd::proxy::Args),
    /// Show a target's endpoints as podlb sees them (state, zone, source);
    /// with --watch, every change as it arrives.
    Resolve(cmd::resolve::Args),
    /// Run the xDS control plane: serve Kubernetes Services (or a catalog
    /// file) to Envoy and proxyless gRPC clients; `status` shows its clients.
    ControlPlane(cmd::control_plane::Args),
    /// Validate a config file; exit non-zero with file:line:column on error.
    Check(cmd::check::Args),
    /// Run a greeter backend (helloworld.Greeter + grpc.health.v1) for trying podlb.
    Backend(cmd::backend::Args),
    /// Show the problem and the fix: calls over one connection, via an L4
    /// forwarder (like a Kubernetes Service) and via podlb.
    Demo(cmd::demo::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints a report; the embedded proxy's routine logs would
    // only clutter it.
    let default_level = match cli.command {
        Command::Demo(_) => "warn",
        // resolve prints discovery's errors itself.
        Command::Resolve(_) => "error",
        _ => "info",
    };
    init_tracing(default_level);
    let result = match cli.command {
        Command::Proxy(args) => cmd::proxy::run(args),
        Command::Resolve(args) => cmd::resolve::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::ControlPlane(args) => cmd::control_plane::run(args),
        Command::Backend(args) => cmd::backend::run(args),
        Command::Demo(args) => cmd::demo::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("podlb: error: {}", describe(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, as `{:#}` prints them, but a cause
/// the text already says is not said again: many errors put their source in
/// their own message (`file: cannot read: No such file`) and expose it as
/// their source as well.
fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let said = cause.to_string();
        if !text.contains(&said) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&said);
        }
    }
    text
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `default_level`).
/// Release builds compile out events below `info` (see the workspace's
/// tracing features), so `RUST_LOG=debug` needs a debug build.
fn init_tracing(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let err = anyhow::Error::new(io).context("x.yaml: cannot read: No such file");
        assert_eq!(describe(&err), "x.yaml: cannot read: No such file");
        let err = anyhow::anyhow!("refused").context("--admin 127.0.0.1:1");
        assert_eq!(describe(&err), "--admin 127.0.0.1:1: refused");
    }
}
