//! The balancing core: which endpoint gets the next call.
//!
//! ```text
//! Update stream ──► EndpointSet::apply ──► all ──► ready snapshot ──► Policy::pick ──► E
//!                                                  ▲ rebuilt on every        │
//!   an endpoint changes state ─► refresh_ready ────┘ change of state         │
//!                                         Load (in flight? latency?) ◄───────┘
//! ```
//!
//! It owns the endpoint set (applying discovery updates), the per-endpoint
//! load counters and the policies. It is generic over the endpoint handle
//! through [`Load`], so it never touches sockets: the connection crate plugs
//! its endpoint type in, and tests and benchmarks plug in plain structs.

mod endpoint_set;
mod error;
mod load;
pub mod outlier;
pub mod policy;

pub use endpoint_set::{EndpointSet, Keyed};
pub use error::Error;
pub use load::{FAILURE_PENALTY, LoadTracker};
pub use outlier::{OutlierSettings, OutlierTracker, SlowStart, Verdict};
pub use policy::{Policy, PolicyChoice, PolicyKind, PolicySet};

/// What a policy may ask of an endpoint. Every method is a cheap atomic read.
pub trait Load {
    /// Whether the endpoint can take a call now (it has a usable connection).
    /// The [`EndpointSet`]'s ready snapshot holds the endpoints for which
    /// this was true at their last change of state; policies pick only
    /// from it.
    fn is_ready(&self) -> bool;
    /// Calls in flight on the endpoint.
    fn in_flight(&self) -> u64;
    /// Peak-EWMA cost: the latency estimate weighted by calls in flight.
    fn ewma_cost(&self) -> f64;
    /// Whether outlier detection took the endpoint out of rotation
    /// (`outlier.rs`). The ready snapshot leaves it out, unless too few
    /// would remain (the panic threshold). Default: never.
    fn is_ejected(&self) -> bool {
        false
    }
    /// The endpoint's share factor while it warms up after becoming ready
    /// (slow start, `outlier.rs`), in 0.1..=1; 1 when warm. Default: warm.
    fn warmth(&self) -> f64 {
        1.0
    }
}

impl<T: Load + ?Sized> Load for std::sync::Arc<T> {
    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }
    fn in_flight(&self) -> u64 {
        (**self).in_flight()
    }
    fn ewma_cost(&self) -> f64 {
        (**self).ewma_cost()
    }
    fn is_ejected(&self) -> bool {
        (**self).is_ejected()
    }
    fn warmth(&self) -> f64 {
        (**self).warmth()
    }
}
