//! `podlb backend`: a greeter backend to put behind podlb by hand.

use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `podlb backend`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on, e.g. 127.0.0.1:50051.
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// The name this backend gives in its replies ("Hello NAME from ID").
    #[arg(long, default_value = "backend")]
    id: String,
    /// Runtime worker threads (0: one per core).
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = super::runtime(args.workers).context("starting the runtime")?;
    rt.block_on(async {
        let signal =
            super::TerminateSignal::register().context("installing the SIGTERM handler")?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        tracing::info!(listen = %args.listen, id = %args.id, "greeter backend serving helloworld.Greeter and grpc.health.v1");
        podlb_backend::serve(listener, args.id, signal.recv())
            .await
            .context("serving")?;
        Ok(ExitCode::SUCCESS)
    })
}
