//! `podlb demo` (being written).

use std::process::ExitCode;

/// Arguments of `podlb demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("podlb demo is not built yet")
}
