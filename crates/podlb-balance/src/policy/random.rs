//! `random`: a ready endpoint chosen uniformly.

use super::Policy;
use crate::Load;

/// Picks uniformly among the ready endpoints.
#[derive(Debug, Default)]
pub struct Random;

impl<E: Load> Policy<E> for Random {
    fn pick<'a>(&self, ready: &'a [E]) -> Option<&'a E> {
        if ready.is_empty() {
            return None;
        }
        ready.get(fastrand::usize(..ready.len()))
    }
}
