//! `least_request` (the default): power of two random choices over calls in
//! flight, as Envoy's LEAST_REQUEST and tower's p2c do.

use super::{Policy, p2c};
use crate::Load;

/// Of two random ready endpoints, the one with fewer calls in flight.
#[derive(Debug, Default)]
pub struct LeastRequest;

impl<E: Load> Policy<E> for LeastRequest {
    fn pick<'a>(&self, ready: &'a [E]) -> Option<&'a E> {
        p2c(ready, |e| e.in_flight() as f64)
    }
}
