//! The one error type of `podlb-proxy`.

/// Why the proxy could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listener could not bind its address.
    #[error("listener {name:?}: cannot listen on {address}: {source}")]
    Bind {
        /// The listener's name.
        name: String,
        /// The address it tried.
        address: podlb_core::ListenAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A route names an upstream that is not configured.
    #[error(
        "listener {listener:?}: a route sends to upstream {upstream:?}, which is not configured"
    )]
    UnknownUpstream {
        /// The listener whose route it is.
        listener: String,
        /// The missing upstream.
        upstream: String,
    },
}
