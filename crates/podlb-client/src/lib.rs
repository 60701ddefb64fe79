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
//! Two greeter servers, and a generated client balancing over them:
//!
//! ```
//! # use podlb_backend::{GreeterClient, pb::HelloRequest};
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let mut addrs = Vec::new();
//! # for id in ["b1", "b2"] {
//! #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! #     addrs.push(listener.local_addr()?.to_string());
//! #     tokio::spawn(podlb_backend::serve(listener, id, std::future::pending()));
//! # }
//! let target = format!("static:///{},{}", addrs[0], addrs[1]);
//! // Or dns:///greeter.default.svc.cluster.local:50051,
//! // kubernetes:///greeter.default:grpc, or xds:///greeter.default:50051
//! let channel = podlb_client::Channel::builder(&target)?
//!     .policy(podlb_client::PolicyKind::RoundRobin)
//!     .build()?;
//! let mut greeter = GreeterClient::new(channel.clone());
//! let mut answered_by = Vec::new();
//! for _ in 0..4 {
//!     let request = HelloRequest { name: "world".into() };
//!     let reply = greeter.say_hello(request).await?.into_inner();
//!     answered_by.push(podlb_backend::backend_of(&reply).to_string());
//! }
//! answered_by.sort();
//! assert_eq!(answered_by, ["b1", "b1", "b2", "b2"]);
//! for endpoint in channel.endpoints() {
//!     println!("{} {:?} {} in flight", endpoint.addr, endpoint.state, endpoint.in_flight);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Connections are plaintext HTTP/2 (h2c) for now. TLS is planned: it will
//! plug into the endpoint connection (`podlb-upstream`), which both the
//! channel and the proxy use, as a connector setting beside the windows
//! and keepalive.
//!
//! Targets: `static:///10.0.0.1:50051,10.0.0.2:50051`,
//! `dns:///NAME:PORT`, `kubernetes:///SERVICE.NAMESPACE:PORT` (the cargo
//! feature `kubernetes`, on by default), `xds:///NAME` (the endpoints an
//! xDS server such as `podlb control-plane` gives for the Listener NAME,
//! the server named by the gRPC bootstrap; the cargo feature `xds`, on by
//! default). Failures are gRPC statuses:
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
pub use podlb_balance::outlier::{FailureRate, FaultCodes, OutlierSettings, Trip};
/// Retries and hedging (gRFC A6): see [`Builder::retry`], [`Builder::hedging`].
pub use podlb_upstream::retry::{BudgetConfig, Codes, HedgingPolicy, RetryPolicy, ThrottleConfig};
pub use podlb_upstream::{ConnectionSettings, EjectionStatus, Health, HealthCheckSettings};
