//! `peak_ewma`: power of two random choices over a peak-sensitive latency
//! EWMA weighted by calls in flight, as Linkerd and Finagle balance.

use super::{Policy, p2c};
use crate::Load;

/// Of two random ready endpoints, the one with the lower EWMA cost.
#[derive(Debug, Default)]
pub struct PeakEwma;

impl<E: Load> Policy<E> for PeakEwma {
    fn pick<'a>(&self, ready: &'a [E]) -> Option<&'a E> {
        p2c(ready, |e| e.ewma_cost())
    }
}
