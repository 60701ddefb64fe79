//! The discovery vocabulary: what a discovery source tells the balancer.
//!
//! A source yields a stream of [`Update`]s. `Reset` replaces the whole set
//! (a static list, a DNS answer, a Kubernetes relist); `Add` and `Remove`
//! change part of it (watch events). The balancer applies them in order.

use crate::EndpointAddr;

/// One backend endpoint as discovery sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Endpoint {
    /// Where to connect.
    pub addr: EndpointAddr,
}

impl Endpoint {
    /// An endpoint at `addr`.
    pub fn new(addr: EndpointAddr) -> Self {
        Endpoint { addr }
    }
}

/// A change to an upstream's endpoint set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// The set is exactly these endpoints; any other is gone.
    Reset(Vec<Endpoint>),
    /// These endpoints join the set (or replace their entry).
    Add(Vec<Endpoint>),
    /// These endpoints leave the set.
    Remove(Vec<EndpointAddr>),
}
