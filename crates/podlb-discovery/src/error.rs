//! The one error type of `podlb-discovery`: why a source could not learn
//! its endpoints this time. Every variant names the target and says what to
//! do; none is fatal, since sources keep retrying.

/// Why a discovery source could not learn its endpoints this time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A DNS lookup failed (timeout, refused, SERVFAIL), as opposed to an
    /// answer with no records, which is an empty set.
    #[error(
        "{target}: DNS lookup of {host:?} failed: {reason}; keeping the last endpoints and retrying"
    )]
    Dns {
        /// The target URI.
        target: String,
        /// The name looked up.
        host: String,
        /// The resolver's words.
        reason: String,
    },
    /// No Kubernetes credentials: not in a pod, and no usable kubeconfig.
    #[error(
        "{target}: no Kubernetes API credentials ({reason}); run podlb in a pod with a service account, or set KUBECONFIG"
    )]
    KubeConfig {
        /// The target URI.
        target: String,
        /// kube-rs's words.
        reason: String,
    },
    /// The API server refused a request for lack of RBAC rights.
    #[error(
        "{target}: the Kubernetes API refused to {verb} endpointslices.discovery.k8s.io in namespace {namespace:?} ({message}); grant the verbs get, list and watch on the resource endpointslices in API group discovery.k8s.io to podlb's service account (see the Role in deploy/kubernetes/rbac.yaml)"
    )]
    Forbidden {
        /// The target URI.
        target: String,
        /// The verb refused: `list` or `watch`.
        verb: &'static str,
        /// The namespace asked for.
        namespace: String,
        /// The API server's message.
        message: String,
    },
    /// The API server serves EndpointSlices in no version podlb reads.
    #[error(
        "{target}: the Kubernetes API serves neither discovery.k8s.io/v1 nor v1beta1 EndpointSlices; podlb needs Kubernetes 1.17 or later"
    )]
    NoEndpointSliceApi {
        /// The target URI.
        target: String,
    },
    /// Any other failure to talk to the API server; the watch retries with
    /// backoff.
    #[error("{target}: Kubernetes API: {reason}; retrying with backoff")]
    KubeApi {
        /// The target URI.
        target: String,
        /// What failed.
        reason: String,
    },
    /// A `kubernetes:///` target in a build without Kubernetes support.
    #[error(
        "{target}: this build has no Kubernetes support; enable the `kubernetes` cargo feature"
    )]
    KubernetesDisabled {
        /// The target URI.
        target: String,
    },
    /// An `xds:///` target: the bootstrap could not be read, or the xDS
    /// server could not (yet) give its endpoints.
    #[cfg(feature = "xds")]
    #[error("{target}: {error}")]
    Xds {
        /// The target URI.
        target: String,
        /// What the xDS client met.
        #[source]
        error: podlb_xds::Error,
    },
    /// An `xds:///` target in a build without xDS support.
    #[error("{target}: this build has no xDS support; enable the `xds` cargo feature")]
    XdsDisabled {
        /// The target URI.
        target: String,
    },
    /// The API server refused one of a Kubernetes catalog's requests (its
    /// Service watch or its EndpointSlice watch) for lack of RBAC rights.
    #[error(
        "{catalog}: the Kubernetes API refused to {verb} {resource} in {scope} ({message}); grant the verbs get, list and watch on {resource} {grant} to podlb's service account",
        scope = match namespace { Some(ns) => format!("namespace {ns:?}"), None => "all namespaces".to_string() },
        grant = match namespace { Some(ns) => format!("in namespace {ns:?} (a Role)"), None => "in all namespaces (a ClusterRole)".to_string() },
    )]
    CatalogForbidden {
        /// The catalog, as its `CatalogSelection` describes itself.
        catalog: String,
        /// The verb refused: `list` or `watch`.
        verb: &'static str,
        /// The resource refused, with its API group:
        /// `endpointslices.discovery.k8s.io` or `services`.
        resource: &'static str,
        /// The namespace asked for; `None`: all namespaces.
        namespace: Option<String>,
        /// The API server's message.
        message: String,
    },
}
