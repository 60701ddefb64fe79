//! `random`: a ready endpoint chosen uniformly.

use super::{Policy, first_ready_from};
use crate::Load;

/// Picks uniformly among endpoints (the next ready one when the draw is not).
#[derive(Debug, Default)]
pub struct Random;

impl<E: Load> Policy<E> for Random {
    fn pick<'a>(&self, endpoints: &'a [E]) -> Option<&'a E> {
        if endpoints.is_empty() {
            return None;
        }
        first_ready_from(endpoints, fastrand::usize(..endpoints.len()))
    }
}
