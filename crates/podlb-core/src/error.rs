//! The one error type of `podlb-core`.

/// Why a target URI or an address could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The target has no `scheme://` prefix at all.
    #[error(
        "target {target:?} has no scheme: write static:///IP:PORT[,IP:PORT...], dns:///HOST:PORT, kubernetes:///SERVICE.NAMESPACE:PORT or xds:///NAME"
    )]
    MissingScheme {
        /// The target as written.
        target: String,
    },
    /// The scheme is not one podlb knows.
    #[error(
        "target {target:?}: unknown scheme {scheme:?}; podlb knows static:///, dns:///, kubernetes:/// and xds:///"
    )]
    UnknownScheme {
        /// The target as written.
        target: String,
        /// The scheme found before `://`.
        scheme: String,
    },
    /// A `static:///` target lists no address.
    #[error("target {target:?} lists no endpoint: write static:///IP:PORT[,IP:PORT...]")]
    EmptyTarget {
        /// The target as written.
        target: String,
    },
    /// A `static:///` target names an authority, which static targets do not take.
    #[error(
        "target {target:?}: static targets take no authority; write static:///IP:PORT (three slashes)"
    )]
    UnexpectedAuthority {
        /// The target as written.
        target: String,
    },
    /// An address is not an IP literal with a port.
    #[error(
        "{addr:?} is not IP:PORT (write 10.0.0.1:50051 or [::1]:50051; host names need the dns:/// scheme)"
    )]
    BadAddress {
        /// The address as written.
        addr: String,
    },
    /// The target has no `/` after its authority.
    #[error(
        "target {target:?} has no path: write scheme://[AUTHORITY]/ENDPOINT, e.g. dns:///greeter:50051 (three slashes)"
    )]
    MissingPath {
        /// The target as written.
        target: String,
    },
    /// A `dns:` or `kubernetes:` target has no `:PORT`.
    #[error("target {target:?} needs a port: add :PORT, e.g. dns:///greeter:50051")]
    MissingPort {
        /// The target as written.
        target: String,
    },
    /// The port is neither a number in 1..=65535 nor a Kubernetes port name.
    #[error(
        "target {target:?}: bad port {port:?}; write a number (50051) or, for kubernetes:///, a port name (grpc)"
    )]
    BadPort {
        /// The target as written.
        target: String,
        /// The port as written.
        port: String,
    },
    /// A `dns:` target's host is empty or malformed.
    #[error("target {target:?}: bad host {host:?}; write dns:///NAME:PORT")]
    BadHost {
        /// The target as written.
        target: String,
        /// The host as written.
        host: String,
    },
    /// The DNS server in `dns://SERVER/` is not an IP address.
    #[error(
        "target {target:?}: DNS server {server:?} must be an IP address with an optional port, e.g. dns://10.96.0.10:53/greeter:50051"
    )]
    BadDnsServer {
        /// The target as written.
        target: String,
        /// The authority as written.
        server: String,
    },
    /// A Service or namespace name Kubernetes would not accept.
    #[error(
        "target {target:?}: {name:?} is not a Kubernetes Service name; write kubernetes:///SERVICE[.NAMESPACE[.svc.cluster.local]]:PORT with lowercase names"
    )]
    BadKubernetesName {
        /// The target as written.
        target: String,
        /// The offending name.
        name: String,
    },
    /// An `xds:///` target with an empty name or whitespace in it.
    #[error(
        "target {target:?}: {name:?} is not an xDS resource name; write xds:///NAME with the Listener name the xDS server serves, e.g. xds:///greeter.default:50051"
    )]
    BadXdsName {
        /// The target as written.
        target: String,
        /// The offending name.
        name: String,
    },
    /// `kubernetes://NS/svc.OTHER:port` names two namespaces.
    #[error(
        "target {target:?} names two different namespaces; give it once, as kubernetes://NAMESPACE/SERVICE:PORT or kubernetes:///SERVICE.NAMESPACE:PORT"
    )]
    ConflictingNamespace {
        /// The target as written.
        target: String,
    },
}
