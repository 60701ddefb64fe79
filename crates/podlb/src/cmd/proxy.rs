//! `podlb proxy` (being written).

use std::process::ExitCode;

/// Arguments of `podlb proxy`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("podlb proxy is not built yet")
}
