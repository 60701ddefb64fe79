//! `round_robin`: every ready endpoint in turn.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Policy, first_ready_from};
use crate::Load;

/// Hands calls to ready endpoints in turn, skipping those not ready.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl<E: Load> Policy<E> for RoundRobin {
    fn pick<'a>(&self, endpoints: &'a [E]) -> Option<&'a E> {
        if endpoints.is_empty() {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % endpoints.len();
        first_ready_from(endpoints, start)
    }
}
