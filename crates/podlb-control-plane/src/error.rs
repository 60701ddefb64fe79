//! The crate's one error type. Every fallible public function of the
//! control plane returns [`Error`]; messages carry the layer they come from
//! (`ads server: ...`, `admin endpoint: ...`) so a log line reads like the
//! path the failure took. Owns nothing else; no module maps these to gRPC
//! statuses (a client stream's problems are statuses on that stream only).

/// What can go wrong in the control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ADS gRPC server failed as a whole (its listener or HTTP/2 layer),
    /// not one client stream.
    #[error("ads server: {0}")]
    AdsServe(#[source] tonic::transport::Error),
    /// The catalog file cannot be used; the message names file, line and field.
    #[error(transparent)]
    CatalogFile {
        /// What is wrong, and where.
        source: Box<podlb_yaml::Error>,
    },
    /// A listening socket could not be opened.
    #[error("cannot listen on {addr} for {what}: {source} (is another process using it?)")]
    Bind {
        /// Which listener: "xDS (ADS)", "admin", ...
        what: &'static str,
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}
