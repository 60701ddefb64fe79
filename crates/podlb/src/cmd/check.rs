//! `podlb check`: validates a config file (written by the config work).

use std::process::ExitCode;

/// Arguments of `podlb check`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The config file to validate.
    #[arg(long)]
    config: std::path::PathBuf,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("podlb check is not built yet ({})", args.config.display())
}
