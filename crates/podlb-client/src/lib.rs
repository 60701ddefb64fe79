//! Per-call gRPC load balancing inside a tonic client, with no proxy hop.
//!
//! A Kubernetes Service balances connections, and gRPC sends every call of a
//! client over one connection, so one pod gets them all. A
//! [`Channel`] resolves every endpoint of a target, keeps an HTTP/2
//! connection to each, and picks one per call:
//!
//! ```text
//!  target ─► discovery (static, DNS, Kubernetes EndpointSlices) ─► endpoint set
//!  call ─► policy picks an endpoint ─► its HTTP/2 connection ─► server
//! ```
//!
//! It is the same discovery, policies and endpoint connections as
//! `podlb proxy`: connections reconnect with jittered backoff, a
//! disconnected endpoint is never picked, a server's GOAWAY drains its
//! connection and calls it never processed are sent again elsewhere.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // Any tonic-generated client takes the channel, e.g.
//! // let mut greeter = GreeterClient::new(channel.clone());
//! let channel = podlb_client::Channel::builder("dns:///greeter.default.svc.cluster.local:50051")?
//!     .policy(podlb_client::PolicyKind::RoundRobin)
//!     .wait_for_ready(true)
//!     .build()?;
//! for endpoint in channel.endpoints() {
//!     println!("{} {:?} {} in flight", endpoint.addr, endpoint.state, endpoint.in_flight);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Targets: `static:///10.0.0.1:50051,10.0.0.2:50051`,
//! `dns:///NAME:PORT`, `kubernetes:///SERVICE.NAMESPACE:PORT` (the cargo
//! feature `kubernetes`, on by default). Failures are gRPC statuses:
//! UNAVAILABLE naming the target (and the endpoint, when one was picked),
//! DEADLINE_EXCEEDED when the call's deadline passes first.

mod body;
mod call;
mod channel;
mod error;

pub use body::ResponseBody;
pub use channel::{Builder, Channel, EndpointState, EndpointStatus};
pub use error::Error;
pub use podlb_balance::PolicyKind;
pub use podlb_upstream::ConnectionSettings;
