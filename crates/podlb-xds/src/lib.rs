//! xDS for podlb: the pieces both ends of the protocol share (type URLs,
//! endpoints to and from `ClusterLoadAssignment`) and the client side that
//! turns an `xds:///NAME` target into endpoint updates.
//!
//! ```text
//!  bootstrap   GRPC_XDS_BOOTSTRAP / GRPC_XDS_BOOTSTRAP_CONFIG ─► Bootstrap (server, node)
//!  client      one ADS stream per target, reconnects, timers ─┐
//!  chain       LDS → RDS → CDS → EDS, ACK/NACK, subscriptions ◄┘ (pure)
//!  resources   one resource ─► what the chain needs, or why it is NACKed (pure)
//!  endpoints   ClusterLoadAssignment ⇄ podlb Endpoints (shared with the control plane)
//!  types       the four type URLs (shared with the control plane)
//! ```
//!
//! ```no_run
//! # async fn example() -> Result<(), podlb_xds::Error> {
//! use futures_util::StreamExt;
//!
//! let bootstrap = podlb_xds::Bootstrap::from_env()?;
//! let mut updates = podlb_xds::discover("greeter.default:50051", bootstrap);
//! while let Some(update) = updates.next().await {
//!     println!("{update:?}");
//! }
//! # Ok(())
//! # }
//! ```
//!
//! It must not depend on `podlb-discovery` (which depends on this crate to
//! serve `xds:///` targets) nor on the control plane.

mod bootstrap;
mod chain;
mod client;
mod endpoints;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod resources;
mod types;

pub use bootstrap::{
    BOOTSTRAP_CONFIG_ENV, BOOTSTRAP_PATH_ENV, Bootstrap, IGNORE_RESOURCE_DELETION, LocalityInfo,
    NodeInfo, XdsServer,
};
pub use client::{ClientOptions, discover, discover_with};
pub use endpoints::{cluster_load_assignment, endpoints_from_cla};
pub use error::Error;
pub use resources::outlier::outlier_detection;
pub use resources::retry::{retry_on_code, retry_policy};
pub use types::{CLUSTER, ENDPOINTS, LISTENER, ROUTE, ResourceType};
