//! The one error type of `podlb-core`.

/// Why a target URI or an address could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The target has no `scheme://` prefix at all.
    #[error(
        "target {target:?} has no scheme: write it as static:///IP:PORT[,IP:PORT...] (dns:/// and kubernetes:/// come later)"
    )]
    MissingScheme {
        /// The target as written.
        target: String,
    },
    /// The scheme is not one podlb knows.
    #[error(
        "target {target:?}: unknown scheme {scheme:?}; podlb knows static:///, dns:/// and kubernetes:///"
    )]
    UnknownScheme {
        /// The target as written.
        target: String,
        /// The scheme found before `://`.
        scheme: String,
    },
    /// The scheme is known but this build of podlb does not implement it yet.
    #[error(
        "target {target:?}: the {scheme}:/// scheme is not built yet; use static:///IP:PORT,IP:PORT for now"
    )]
    SchemeNotBuilt {
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
}
