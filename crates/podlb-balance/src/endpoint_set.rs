//! The endpoint set of one upstream: applies discovery [`Update`]s and
//! publishes an immutable snapshot that policies pick from without locking.
//!
//! Writers (the one discovery task of an upstream) build a new snapshot and
//! swap it in; readers (every call) load the current one. An endpoint that
//! stays across a `Reset` keeps its handle, so its connections survive.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use podlb_core::{Endpoint, EndpointAddr, Update};

/// A handle that knows its endpoint's address.
pub trait Keyed {
    /// The endpoint's address, unique within a set.
    fn addr(&self) -> EndpointAddr;
}

impl<T: Keyed + ?Sized> Keyed for Arc<T> {
    fn addr(&self) -> EndpointAddr {
        (**self).addr()
    }
}

/// The current endpoints of an upstream, as a swappable snapshot.
#[derive(Debug)]
pub struct EndpointSet<E> {
    snapshot: ArcSwap<Vec<E>>,
}

impl<E: Keyed + Clone> Default for EndpointSet<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Keyed + Clone> EndpointSet<E> {
    /// An empty set.
    pub fn new() -> Self {
        EndpointSet {
            snapshot: ArcSwap::from_pointee(Vec::new()),
        }
    }

    /// The endpoints now. Cheap: no lock, no allocation.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Vec<E>>> {
        self.snapshot.load()
    }

    /// Applies one update. `make` builds the handle of an endpoint that was
    /// not in the set; handles of endpoints that stay are kept. Returns the
    /// handles that left the set, for the caller to drain.
    pub fn apply(&self, update: Update, mut make: impl FnMut(&Endpoint) -> E) -> Vec<E> {
        let current = self.snapshot.load_full();
        let mut by_addr: HashMap<EndpointAddr, E> =
            current.iter().map(|e| (e.addr(), e.clone())).collect();
        let mut next: Vec<E> = Vec::with_capacity(current.len());
        let removed = match update {
            Update::Reset(endpoints) => {
                for ep in dedup(&endpoints) {
                    next.push(by_addr.remove(&ep.addr).unwrap_or_else(|| make(ep)));
                }
                by_addr.into_values().collect()
            }
            // Not the set's business: the upstream picks its policy.
            Update::Policy(_) => return Vec::new(),
        };
        self.snapshot.store(Arc::new(next));
        removed
    }
}

/// The endpoints of a list, each address once, in first-seen order.
fn dedup(endpoints: &[Endpoint]) -> impl Iterator<Item = &Endpoint> {
    let mut seen = std::collections::HashSet::new();
    endpoints.iter().filter(move |e| seen.insert(e.addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Handle {
        addr: EndpointAddr,
        generation: u32,
    }
    impl Keyed for Handle {
        fn addr(&self) -> EndpointAddr {
            self.addr
        }
    }

    fn ep(port: u16) -> Endpoint {
        Endpoint::new(format!("127.0.0.1:{port}").parse().unwrap())
    }

    fn ports(set: &EndpointSet<Handle>) -> Vec<(u16, u32)> {
        set.snapshot()
            .iter()
            .map(|h| (h.addr.socket_addr().port(), h.generation))
            .collect()
    }

    #[test]
    fn reset_replaces_endpoints_and_keeps_handles_of_those_that_stay() {
        let set = EndpointSet::new();
        let mut generation = 0;
        let mut make = |e: &Endpoint| {
            generation += 1;
            Handle {
                addr: e.addr,
                generation,
            }
        };
        set.apply(Update::Reset(vec![ep(1), ep(2)]), &mut make);
        let removed = set.apply(Update::Reset(vec![ep(2), ep(3), ep(3)]), &mut make);
        assert_eq!(ports(&set), [(2, 2), (3, 3)]);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].addr.socket_addr().port(), 1);
    }
}
