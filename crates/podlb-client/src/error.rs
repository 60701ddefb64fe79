//! The one error type of `podlb-client`: why a channel could not be built.
//! Errors of a call are gRPC statuses, as tonic's own channel gives them.

/// Why a [`Channel`](crate::Channel) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The target URI does not parse.
    #[error(transparent)]
    Target(#[from] podlb_core::Error),
    /// A `kubernetes:///` target in a build without the `kubernetes`
    /// feature.
    #[error(
        "target {target:?}: this build of podlb-client has no Kubernetes support; enable the crate's `kubernetes` feature"
    )]
    KubernetesDisabled {
        /// The target as written.
        target: String,
    },
    /// An `xds:///` target in a build without the `xds` feature.
    #[error(
        "target {target:?}: this build of podlb-client has no xDS support; enable the crate's `xds` feature"
    )]
    XdsDisabled {
        /// The target as written.
        target: String,
    },
    /// Built outside a tokio runtime: discovery and connections run as
    /// tasks on the runtime the channel is built in.
    #[error("podlb_client::Channel must be built inside a tokio runtime")]
    NoRuntime,
}
