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

pub mod ads;
pub mod snapshot;
