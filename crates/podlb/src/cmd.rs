//! One module per subcommand. Each exposes `Args` (clap) and `run`.

pub(crate) mod backend;
pub(crate) mod check;
pub(crate) mod control_plane;
pub(crate) mod demo;
pub(crate) mod proxy;
pub(crate) mod resolve;

/// A tokio runtime with `workers` threads (0: one per core).
pub(crate) fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if workers > 1 {
            b.worker_threads(workers);
        }
        b
    };
    builder.enable_all().build()
}

/// SIGTERM and SIGINT (Ctrl-C), caught from the moment this is built: a
/// signal that arrives before anyone waits is kept, never left to the
/// default action (which would kill the process without a graceful stop).
pub(crate) struct TerminateSignal {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl TerminateSignal {
    /// Installs the handlers. Must be called within a tokio runtime.
    pub(crate) fn register() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(TerminateSignal {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(TerminateSignal {})
    }

    /// Resolves at the first SIGTERM or SIGINT.
    pub(crate) async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
