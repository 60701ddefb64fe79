//! Discovery: turns a [`Target`] into the endpoints it names, and keeps them
//! current.
//!
//! ```text
//!  Target ─► source (static_list | dns | kubernetes | xds) ─► UpdateStream (Reset | Policy, or an error)
//!                                                            │
//!            Discovery task: folds it into one Resolution ◄──┘
//!                                                            │ tokio watch: latest wins
//!            subscribers: each proxy worker's upstream, the client, `podlb resolve`
//! ```
//!
//! A source owns how it learns endpoints; it must not touch connections or
//! balancing, which consume the [`Resolution`]. Sources report every
//! endpoint with its state, not-ready ones included; the balancer keeps
//! only the [routable](podlb_core::routable) ones. A source keeps going
//! through errors (it yields them, keeps the last good set, retries), so a
//! subscriber always has the best known set and, with it, the last error to
//! explain an empty one.

mod dns;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod hub;
#[cfg(feature = "kubernetes")]
mod kubernetes;
mod static_list;
#[cfg(feature = "xds")]
mod xds;

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use podlb_core::{Target, TargetKind, Update};
use tokio::sync::Notify;

pub use error::Error;
pub use hub::{Discovery, DiscoveryHub, Resolution};
#[cfg(feature = "kubernetes")]
pub use kubernetes::catalog::{
    CatalogEvent, CatalogSelection, CatalogStream, ServiceKey, ServicePort, ServiceView,
    watch_catalog,
};

/// The raw updates of one source, in order, with the errors it met along
/// the way. It ends only when the source can never change again.
pub type UpdateStream = Pin<Box<dyn Stream<Item = Result<Update, Error>> + Send + 'static>>;

/// How discovery behaves; the same for every source that has a knob.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct DiscoveryOptions {
    /// For `dns:///` targets.
    pub dns: DnsOptions,
    /// For `kubernetes:///` targets.
    pub kubernetes: KubernetesOptions,
    /// For `xds:///` targets.
    pub xds: XdsOptions,
}

/// How an `xds:///` target finds its xDS server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct XdsOptions {
    /// Where the gRPC xDS bootstrap (server and node) comes from.
    pub bootstrap: BootstrapSource,
}

/// Where the gRPC xDS bootstrap of `xds:///` targets comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum BootstrapSource {
    /// As every gRPC library reads it: the file named by
    /// `GRPC_XDS_BOOTSTRAP`, else the JSON in `GRPC_XDS_BOOTSTRAP_CONFIG`.
    /// Read when a target's discovery starts.
    #[default]
    Env,
    /// This bootstrap file.
    File(PathBuf),
    /// This bootstrap JSON.
    Json(String),
}

/// How a `kubernetes:///` target reaches the API server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct KubernetesOptions {
    /// A kubeconfig file to use. `None`: `KUBECONFIG`, then
    /// `~/.kube/config`, then the pod's service account, as kubectl does.
    pub kubeconfig: Option<PathBuf>,
}

/// When a `dns:///` target is resolved again.
///
/// A name is resolved again when its records' TTL runs out, but never
/// sooner than `min_interval` nor later than `max_interval`; and at once
/// (at most once per `min_interval`) when one of its endpoints refuses or
/// fails a connection, since that is the first sign a pod has moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DnsOptions {
    /// The floor of the TTL, and the least time between two lookups.
    pub min_interval: Duration,
    /// The ceiling of the TTL: a name is looked up at least this often.
    pub max_interval: Duration,
}

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions {
            min_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(30),
        }
    }
}

/// A request, from the balancer to its source, to look again now: an
/// endpoint refused or lost its connection. Cheap to clone; sources that
/// are told of every change (static, Kubernetes) ignore it.
#[derive(Debug, Clone, Default)]
pub struct Refresh(Arc<Notify>);

impl Refresh {
    /// Asks the source to look again soon. Requests made before the source
    /// gets to them count once.
    pub fn request(&self) {
        self.0.notify_one();
    }

    /// Waits for the next request.
    pub(crate) async fn requested(&self) {
        self.0.notified().await;
    }
}

/// The raw update stream of `target`'s source. Most callers want
/// [`Discovery::start`], which folds it into a [`Resolution`] many can
/// follow.
pub fn updates(target: &Target, options: &DiscoveryOptions, refresh: Refresh) -> UpdateStream {
    match target.kind() {
        TargetKind::Static(addrs) => static_list::discover(addrs),
        TargetKind::Dns(dns) => dns::discover(target.clone(), dns.clone(), options.dns, refresh),
        #[cfg(feature = "kubernetes")]
        TargetKind::Kubernetes(kube) => {
            kubernetes::discover(target.clone(), kube.clone(), options.kubernetes.clone())
        }
        #[cfg(not(feature = "kubernetes"))]
        TargetKind::Kubernetes(_) => failed(Error::KubernetesDisabled {
            target: target.uri().to_string(),
        }),
        #[cfg(feature = "xds")]
        TargetKind::Xds(xds) => xds::discover(target, xds, &options.xds),
        #[cfg(not(feature = "xds"))]
        TargetKind::Xds(_) => failed(Error::XdsDisabled {
            target: target.uri().to_string(),
        }),
    }
}

/// A source that cannot start: its one error, then nothing, ever (the
/// stream stays open so the error stays the resolution's last word).
pub(crate) fn failed(error: Error) -> UpdateStream {
    use futures_util::StreamExt;
    futures_util::stream::once(async move { Err(error) })
        .chain(futures_util::stream::pending())
        .boxed()
}
