//! `podlb check`: validates a config file with `podlb-config` and says what
//! it holds, or prints the first error (`file:line:column: field: what`) and
//! exits with status 2. It starts nothing.

use std::process::ExitCode;

/// Arguments of `podlb check`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The config file to validate.
    #[arg(long)]
    config: std::path::PathBuf,
}

/// The exit status of a config that does not validate (1 is any other failure).
const INVALID: u8 = 2;

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match podlb_config::load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{err}");
            return Ok(ExitCode::from(INVALID));
        }
    };
    let routes: usize = config.listeners.iter().map(|l| l.routes.len()).sum();
    println!(
        "{}: OK: {}, {}, {}",
        args.config.display(),
        count(config.listeners.len(), "listener"),
        count(config.upstreams.len(), "upstream"),
        count(routes, "route"),
    );
    Ok(ExitCode::SUCCESS)
}

/// `1 listener`, `2 listeners`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
