//! `round_robin`: every ready endpoint in turn.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::Policy;
use crate::Load;

/// Hands calls to the ready endpoints in turn.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl<E: Load> Policy<E> for RoundRobin {
    fn pick<'a>(&self, ready: &'a [E]) -> Option<&'a E> {
        if ready.is_empty() {
            return None;
        }
        let at = self.next.fetch_add(1, Ordering::Relaxed) % ready.len();
        ready.get(at)
    }
}
