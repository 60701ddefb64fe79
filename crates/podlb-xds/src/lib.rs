//! xDS for podlb: the pieces both ends of the protocol share (type URLs,
//! endpoints to and from `ClusterLoadAssignment`) and the client side that
//! turns an `xds:///NAME` target into endpoint updates.
//!
//! It must not depend on `podlb-discovery` (which depends on this crate to
//! serve `xds:///` targets) nor on the control plane.

mod endpoints;
mod error;
mod types;

pub use endpoints::{cluster_load_assignment, endpoints_from_cla};
pub use error::Error;
pub use types::{CLUSTER, ENDPOINTS, LISTENER, ROUTE, ResourceType};
