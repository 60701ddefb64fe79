//! Upstreams: where calls go once routed.
//!
//! ```text
//!  Target ─► discovery (UpdateStream) ─► EndpointSet<EndpointConnection> ─► Policy::pick
//!                                                 │                             │
//!                                    one driver task per endpoint          CallLease
//!                                 (connect ─► Ready ⇄ BackingOff,      (an HTTP/2 connection
//!                                  GOAWAY ─► drain, more conns when      with a free stream)
//!                                  SETTINGS_MAX_CONCURRENT_STREAMS)
//! ```
//!
//! This crate owns the HTTP/2 connections to backends and the glue from
//! discovery to the endpoint set. It knows nothing of listeners, routes or
//! gRPC status: the proxy (and later the client library) drive calls over
//! the [`CallLease`] it hands out.

mod backoff;
pub mod deadline;
mod endpoint;
mod error;
pub mod framing;
#[doc(hidden)]
pub mod fuzzing;
mod goaway;
pub mod headers;
mod keepalive;
pub mod pipe;
mod settings;
mod upstream;
mod waiters;

pub use backoff::Backoff;
pub use endpoint::{CallLease, EndpointConnection, EndpointState, Lease, SendError};
pub use error::Error;
pub use settings::ConnectionSettings;
pub use upstream::Upstream;
