//! podlb's control plane: watches where endpoints live (Kubernetes
//! EndpointSlices, or a static file) and serves them over xDS v3 (ADS,
//! state of the world) to Envoy and to proxyless gRPC clients.
//!
//! ```text
//!  source (kubernetes | static_file) ─► Catalog (Services, ports, endpoints, policy)
//!      ─► resources: Catalog → Snapshot (Listener, RouteConfiguration, Cluster, ClusterLoadAssignment)
//!      ─► ads: one task per client stream (subscriptions, versions, nonces, ACK/NACK) ─► clients
//!                                        └─► status: what each client has ACKed or NACKed
//! ```

pub mod admin;
pub mod ads;
pub mod catalog;
mod control_plane;
pub mod resources;
pub mod snapshot;
pub mod source;
pub mod status;

mod error;
pub use error::Error;

pub use control_plane::{ControlPlane, ControlPlaneConfig, Source};
