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
//! Outlier detection (`outlier.rs`) takes an ejected endpoint out of the
//! ready snapshot, unless fewer than the panic threshold of the connected
//! endpoints would remain: then the snapshot holds every connected one,
//! ejected or not (Envoy's panic mode), so ejections alone never leave the
//! policies an empty or overloaded set. Ejecting goes through
//! [`EndpointSet::update`], under the writer lock, so the cap on how many
//! are ejected sees every other ejection.
//!
//! Writers (the discovery task, an endpoint whose state changed) take a
//! lock, rebuild and swap; readers (every call) load the current snapshot.
//! The ready snapshot can be a moment stale: an entry that turns out not
//! ready when leased is the caller's to skip. An endpoint that stays across
//! a `Reset` keeps its handle, so its connections survive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
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
    /// Below this percent of connected endpoints in rotation, ejections
    /// are ignored.
    panic_threshold: AtomicU8,
    /// The last rebuild ignored ejections.
    panicking: AtomicBool,
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
            panic_threshold: AtomicU8::new(
                crate::OutlierSettings::default().panic_threshold_percent,
            ),
            panicking: AtomicBool::new(false),
        }
    }

    /// Sets the panic threshold, in percent (see the module doc); applies
    /// from the next rebuild.
    pub fn set_panic_threshold(&self, percent: u8) {
        self.panic_threshold
            .store(percent.min(100), Ordering::Relaxed);
    }

    /// Whether the ready snapshot ignores ejections now, because too few
    /// endpoints would remain.
    pub fn is_panicking(&self) -> bool {
        self.panicking.load(Ordering::Relaxed)
    }

    /// Runs `f` on every endpoint under the writer lock, then rebuilds the
    /// ready snapshot: for a change that must see the whole set at once,
    /// such as an ejection capped by how many are ejected already. Rare:
    /// never per call.
    pub fn update<R>(&self, f: impl FnOnce(&[E]) -> R) -> R {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let all = self.all.load();
        let result = f(&all);
        self.rebuild_ready(&all);
        result
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
        let mut ready: Vec<E> = all.iter().filter(|e| e.is_ready()).cloned().collect();
        let in_rotation = ready.iter().filter(|e| !e.is_ejected()).count();
        let threshold = usize::from(self.panic_threshold.load(Ordering::Relaxed));
        let panicking = in_rotation < ready.len()
            && (in_rotation == 0 || in_rotation * 100 < ready.len() * threshold);
        if !panicking {
            ready.retain(|e| !e.is_ejected());
        }
        self.panicking.store(panicking, Ordering::Relaxed);
        self.ready.store(Arc::new(ready));
    }

    /// Applies one update. `make` builds the handle of an endpoint that was
    /// not in the set; handles of endpoints that stay are kept. Returns the
    /// handles that left the set, for the caller to drain.
    pub fn apply(&self, update: Update, mut make: impl FnMut(&Endpoint) -> E) -> Vec<E> {
        let endpoints = match update {
            Update::Reset(endpoints) => endpoints,
            // Not the set's business: the upstream picks its policy.
            Update::Policy(_) | Update::Outlier(_) | Update::Retry(_) => return Vec::new(),
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
        ejected: Arc<AtomicBool>,
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
        fn is_ejected(&self) -> bool {
            self.ejected.load(Ordering::Relaxed)
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
                ejected: Arc::default(),
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
            ejected: Arc::default(),
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

    fn handles(n: u16) -> (EndpointSet<Handle>, Vec<Handle>) {
        let set = EndpointSet::new();
        let made: Vec<Handle> = (1..=n)
            .map(|port| Handle {
                addr: ep(port).addr,
                generation: 0,
                ready: Arc::new(AtomicBool::new(true)),
                ejected: Arc::default(),
            })
            .collect();
        let by_port = made.clone();
        set.apply(Update::Reset((1..=n).map(ep).collect()), |e| {
            by_port[usize::from(e.addr.socket_addr().port()) - 1].clone()
        });
        (set, made)
    }

    #[test]
    fn an_ejected_endpoint_leaves_the_ready_snapshot() {
        let (set, h) = handles(3);
        set.update(|_| h[1].ejected.store(true, Ordering::Relaxed));
        assert_eq!(ports(&set.ready()), [(1, 0), (3, 0)]);
        assert!(!set.is_panicking());
        set.update(|_| h[1].ejected.store(false, Ordering::Relaxed));
        assert_eq!(ports(&set.ready()), [(1, 0), (2, 0), (3, 0)]);
    }

    #[test]
    fn too_few_in_rotation_spreads_over_every_connected_endpoint() {
        let (set, h) = handles(3);
        // One ejected and one disconnected: 1 of 2 connected is in
        // rotation, at the threshold: no panic.
        h[2].ready.store(false, Ordering::Relaxed);
        set.update(|_| h[0].ejected.store(true, Ordering::Relaxed));
        assert_eq!(ports(&set.ready()), [(2, 0)]);
        // The last one in rotation disconnects: the ejected one takes calls
        // rather than none.
        h[1].ready.store(false, Ordering::Relaxed);
        set.refresh_ready();
        assert_eq!(ports(&set.ready()), [(1, 0)]);
        assert!(set.is_panicking());
        // Below the threshold (1 of 3 in rotation < 50%): all connected.
        for handle in &h {
            handle.ready.store(true, Ordering::Relaxed);
        }
        set.update(|_| h[1].ejected.store(true, Ordering::Relaxed));
        assert_eq!(ports(&set.ready()), [(1, 0), (2, 0), (3, 0)]);
        assert!(set.is_panicking());
        set.set_panic_threshold(0);
        set.refresh_ready();
        assert_eq!(ports(&set.ready()), [(3, 0)]);
    }
}
