//! The one error type of `podlb-xds`: why a bootstrap could not be read,
//! or why an `xds:///` target has no (or only its last good) endpoints
//! right now. Every message names what failed and says what to do; none of
//! the stream errors is fatal, since the client keeps going.

use crate::ResourceType;

/// Why the xDS client could not (yet) turn a name into endpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Neither bootstrap environment variable is set.
    #[error(
        "no xDS bootstrap: set GRPC_XDS_BOOTSTRAP to the path of a gRPC bootstrap JSON file, or GRPC_XDS_BOOTSTRAP_CONFIG to its contents"
    )]
    NoBootstrap,
    /// The bootstrap file could not be read.
    #[error(
        "reading the xDS bootstrap file {path}: {reason}; GRPC_XDS_BOOTSTRAP must name a readable gRPC bootstrap JSON file"
    )]
    BootstrapRead {
        /// The file's path.
        path: String,
        /// The operating system's words.
        reason: String,
    },
    /// The bootstrap is not JSON.
    #[error("the xDS bootstrap {source_name} is not valid JSON: {reason}")]
    BootstrapJson {
        /// Where the bootstrap came from: a file path, or
        /// `GRPC_XDS_BOOTSTRAP_CONFIG`.
        source_name: String,
        /// serde_json's words, with line and column.
        reason: String,
    },
    /// A bootstrap field is missing, mistyped or not supported.
    #[error("the xDS bootstrap {source_name}: {field}: {problem}")]
    BootstrapField {
        /// Where the bootstrap came from.
        source_name: String,
        /// The field's path, e.g. `xds_servers[0].channel_creds`.
        field: String,
        /// What is wrong, and what to write instead.
        problem: String,
    },
    /// An `xds://AUTHORITY/NAME` target: federation is not supported.
    #[error(
        "the authority {authority:?} asks for xDS federation (gRFC A47), which podlb does not support; write xds:///{name} to use the bootstrap's xds_servers"
    )]
    Federation {
        /// The authority given.
        authority: String,
        /// The name after it.
        name: String,
    },
    /// The xDS server could not be reached.
    #[error(
        "xDS server {server}: cannot connect ({reason}); keeping the last endpoints and reconnecting with backoff"
    )]
    Connect {
        /// The server's URI.
        server: String,
        /// Why.
        reason: String,
    },
    /// The ADS stream failed or the server ended it.
    #[error(
        "xDS server {server}: the ADS stream broke ({reason}); keeping the last endpoints and reconnecting with backoff"
    )]
    StreamBroken {
        /// The server's URI.
        server: String,
        /// The gRPC status or the reason the stream ended.
        reason: String,
    },
    /// The server sent a resource podlb cannot use; the client NACKed it.
    #[error(
        "xDS server {server} sent {kind} {name:?} that podlb cannot use: {reason}; NACKed it and kept the last good one"
    )]
    Rejected {
        /// The server's URI.
        server: String,
        /// The resource's type.
        kind: ResourceType,
        /// The resource's name.
        name: String,
        /// What is wrong with it (the NACK's message).
        reason: String,
    },
    /// A subscribed resource never came (gRFC A27's does-not-exist timer).
    #[error(
        "xDS server {server} has no {kind} {name:?}{}; the target has no endpoints until it serves one",
        does_not_exist_hint(.kind)
    )]
    DoesNotExist {
        /// The server's URI.
        server: String,
        /// The resource's type.
        kind: ResourceType,
        /// The name subscribed to.
        name: String,
    },
    /// The server deleted a resource the target needs.
    #[error(
        "xDS server {server} deleted {kind} {name:?}; the target has no endpoints until it comes back"
    )]
    Deleted {
        /// The server's URI.
        server: String,
        /// The resource's type.
        kind: ResourceType,
        /// The resource's name.
        name: String,
    },
}

fn does_not_exist_hint(kind: &ResourceType) -> &'static str {
    match kind {
        ResourceType::Listener => " (xds:///NAME asks for the Listener named NAME)",
        _ => "",
    }
}
