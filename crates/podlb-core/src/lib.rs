//! podlb's pure core: the vocabulary every other crate speaks.
//!
//! It owns the parsing of target URIs ([`Target`]), the address newtypes
//! ([`EndpointAddr`], [`ListenAddr`]) and the discovery vocabulary
//! ([`Update`]). It does no I/O and must never grow any: discovery, balancing
//! and the proxy build on it, and it is tested without sockets.

mod addr;
mod error;
pub mod outlier;
mod retry;
mod target;
mod update;

pub use addr::{EndpointAddr, ListenAddr};
pub use error::Error;
pub use outlier::OutlierSettings;
pub use retry::RouteRetry;
pub use target::{DnsTarget, KubernetesTarget, PortRef, Target, TargetKind, XdsTarget};
pub use update::{Endpoint, EndpointState, Topology, Update, routable};
