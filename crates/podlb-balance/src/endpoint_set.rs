//! The endpoint set of one upstream: applies discovery [`Update`]s and
//! publishes two immutable snapshots that calls read without locking:
//! every endpoint, and the endpoints that are ready now, which policies
//! pick from.
//!
//! ```text
//!  discovery Reset ──► apply ──────────┐
//!                                      ├─► (writer lock) rebuild ──► all:   [a b c d e f g h]
//!  an endpoint changes state ─► refresh_ready                        ready: [a   c     f    ]
//!  (connected, lost, GOAWAY, removed)                                           │
//!                                                         every call: Policy::pick(ready)
//! ```
//!
//! Picking among ready endpoints only keeps the spread even whatever the
//! mix of ready and connecting endpoints (tower's `ReadyCache`, pingora's
//! selector swapped on a health change). Picking among all of them and
//! falling through to the next ready one would hand a block of connecting
//! endpoints' share to their neighbour.
//!
//! Writers (the discovery task, an endpoint whose state changed) take a
//! lock, rebuild and swap; readers (every call) load the current snapshot.
//! The ready snapshot can be a moment stale: an entry that turns out not
//! ready when leased is the caller's to skip. An endpoint that stays across
//! a `Reset` keeps its handle, so its connections survive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use podlb_core::{Endpoint, EndpointAddr, Update};

use crate::Load;

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

/// The current endpoints of an upstream, and the ready ones among them, as
/// swappable snapshots.
#[derive(Debug)]
pub struct EndpointSet<E> {
    all: ArcSwap<Vec<E>>,
    /// The endpoints of `all` whose [`Load::is_ready`] was true at the last
    /// rebuild, in the same order.
    ready: ArcSwap<Vec<E>>,
    /// Serializes writers, so the last rebuild saw every change before it.
    writer: Mutex<()>,
}

impl<E: Keyed + Load + Clone> Default for EndpointSet<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Keyed + Load + Clone> EndpointSet<E> {
    /// An empty set.
    pub fn new() -> Self {
        EndpointSet {
            all: ArcSwap::from_pointee(Vec::new()),
            ready: ArcSwap::from_pointee(Vec::new()),
            writer: Mutex::new(()),
        }
    }

    /// Every endpoint now, ready or not. Cheap: no lock, no allocation.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Vec<E>>> {
        self.all.load()
    }

    /// The endpoints that were ready at the last change of state: what
    /// policies pick from. Cheap: no lock, no allocation.
    pub fn ready(&self) -> arc_swap::Guard<Arc<Vec<E>>> {
        self.ready.load()
    }

    /// Rebuilds the ready snapshot. Call it after any endpoint of the set
    /// became ready or stopped being ready; it is cheap enough for every
    /// change of state, not for every call.
    pub fn refresh_ready(&self) {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.rebuild_ready(&self.all.load());
    }

    fn rebuild_ready(&self, all: &[E]) {
        let ready: Vec<E> = all.iter().filter(|e| e.is_ready()).cloned().collect();
        self.ready.store(Arc::new(ready));
    }

    /// Applies one update. `make` builds the handle of an endpoint that was
    /// not in the set; handles of endpoints that stay are kept. Returns the
    /// handles that left the set, for the caller to drain.
    pub fn apply(&self, update: Update, mut make: impl FnMut(&Endpoint) -> E) -> Vec<E> {
        let endpoints = match update {
            Update::Reset(endpoints) => endpoints,
            // Not the set's business: the upstream picks its policy.
            Update::Policy(_) => return Vec::new(),
        };
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.all.load_full();
        let mut by_addr: HashMap<EndpointAddr, E> =
            current.iter().map(|e| (e.addr(), e.clone())).collect();
        let mut next: Vec<E> = Vec::with_capacity(endpoints.len());
        for ep in dedup(&endpoints) {
            next.push(by_addr.remove(&ep.addr).unwrap_or_else(|| make(ep)));
        }
        self.rebuild_ready(&next);
        self.all.store(Arc::new(next));
        by_addr.into_values().collect()
    }
}

/// The endpoints of a list, each address once, in first-seen order.
fn dedup(endpoints: &[Endpoint]) -> impl Iterator<Item = &Endpoint> {
    let mut seen = std::collections::HashSet::new();
    endpoints.iter().filter(move |e| seen.insert(e.addr))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[derive(Debug, Clone)]
    struct Handle {
        addr: EndpointAddr,
        generation: u32,
        ready: Arc<AtomicBool>,
    }
    impl Keyed for Handle {
        fn addr(&self) -> EndpointAddr {
            self.addr
        }
    }
    impl Load for Handle {
        fn is_ready(&self) -> bool {
            self.ready.load(Ordering::Relaxed)
        }
        fn in_flight(&self) -> u64 {
            0
        }
        fn ewma_cost(&self) -> f64 {
            0.0
        }
    }

    fn ep(port: u16) -> Endpoint {
        Endpoint::new(format!("127.0.0.1:{port}").parse().unwrap())
    }

    fn ports(handles: &[Handle]) -> Vec<(u16, u32)> {
        handles
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
                ready: Arc::new(AtomicBool::new(true)),
            }
        };
        set.apply(Update::Reset(vec![ep(1), ep(2)]), &mut make);
        let removed = set.apply(Update::Reset(vec![ep(2), ep(3), ep(3)]), &mut make);
        assert_eq!(ports(&set.snapshot()), [(2, 2), (3, 3)]);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].addr.socket_addr().port(), 1);
    }

    #[test]
    fn the_ready_snapshot_follows_resets_and_changes_of_state() {
        let set = EndpointSet::new();
        let ready = Arc::new(AtomicBool::new(false));
        let make = |e: &Endpoint| Handle {
            addr: e.addr,
            generation: 0,
            // Port 2 starts not ready, the others ready.
            ready: if e.addr.socket_addr().port() == 2 {
                ready.clone()
            } else {
                Arc::new(AtomicBool::new(true))
            },
        };
        set.apply(Update::Reset(vec![ep(1), ep(2), ep(3)]), make);
        assert_eq!(ports(&set.ready()), [(1, 0), (3, 0)]);
        ready.store(true, Ordering::Relaxed);
        assert_eq!(ports(&set.ready()), [(1, 0), (3, 0)], "until refreshed");
        set.refresh_ready();
        assert_eq!(ports(&set.ready()), [(1, 0), (2, 0), (3, 0)]);
        set.apply(Update::Reset(vec![ep(2)]), make);
        assert_eq!(
            ports(&set.ready()),
            [(2, 0)],
            "a removed one leaves at once"
        );
        set.apply(Update::Policy(vec!["random".into()]), make);
        assert_eq!(ports(&set.snapshot()), [(2, 0)], "a policy leaves the set");
    }
}
