//! Upstreams: where calls go once routed.
//!
//! ```text
//!  Target ─► discovery (UpdateStream) ─► EndpointSet<EndpointConnection> ─► Policy::pick
//!                                                 │                   (from the ready snapshot)
//!                                    one driver task per endpoint          CallLease
//!                              over a pure Lifecycle (Connecting ─►    (an HTTP/2 connection
//!                              Ready ⇄ Draining/BackingOff ─► Removed)   with a free stream),
//!                                                                       or Http1Lease
//! ```
//!
//! This crate owns the HTTP/2 connections to backends and the glue from
//! discovery to the endpoint set. It knows nothing of listeners, routes or
//! gRPC routing: the proxy and the client library both drive each call
//! through its call engine ([`call::Call`]) and answer podlb's own failures
//! with the statuses of [`status`].

mod backoff;
pub mod call;
pub mod deadline;
mod endpoint;
mod error;
pub mod framing;
#[doc(hidden)]
pub mod fuzzing;
mod goaway;
pub mod headers;
pub mod health;
mod http1;
mod keepalive;
pub mod outcome;
pub mod pipe;
mod reset_pacer;
pub mod retry;
mod settings;
pub mod status;
mod upstream;
mod waiters;

pub use backoff::Backoff;
pub use endpoint::{
    CallLease, EjectionStatus, EndpointConnection, EndpointState, Lease, SendError,
};
pub use error::Error;
pub use health::{Health, HealthCheckSettings};
pub use http1::Http1Lease;
pub use outcome::CallOutcome;
pub use settings::ConnectionSettings;
pub use status::CallFailure;
pub use upstream::Upstream;
