//! The balancing policies: one small trait, one short file per policy.
//!
//! A policy is handed the snapshot of the endpoints that are ready
//! ([`EndpointSet::ready`](crate::EndpointSet::ready)) and returns one of
//! them; it never looks at readiness itself, so endpoints that are not ready
//! take no share, not even their neighbour's. It keeps at most an atomic
//! counter of its own; it never locks, allocates or blocks, since it runs
//! once per call.

mod least_request;
mod peak_ewma;
mod random;
mod round_robin;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use least_request::LeastRequest;
pub use peak_ewma::PeakEwma;
pub use random::Random;
pub use round_robin::RoundRobin;

use crate::{Error, Load};

/// Picks the endpoint for the next call.
pub trait Policy<E: Load>: Send + Sync + fmt::Debug {
    /// One endpoint of `ready` (the endpoints ready now), or `None` when
    /// it is empty.
    fn pick<'a>(&self, ready: &'a [E]) -> Option<&'a E>;
}

/// The policies podlb has, by the name users write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyKind {
    /// `round_robin`: each ready endpoint in turn.
    RoundRobin,
    /// `random`: a ready endpoint chosen uniformly.
    Random,
    /// `least_request`: the less loaded of two random choices (calls in flight).
    #[default]
    LeastRequest,
    /// `peak_ewma`: the cheaper of two random choices, by latency EWMA x load.
    PeakEwma,
}

impl PolicyKind {
    /// Every policy, in the order documentation lists them.
    pub const ALL: [PolicyKind; 4] = [
        PolicyKind::RoundRobin,
        PolicyKind::Random,
        PolicyKind::LeastRequest,
        PolicyKind::PeakEwma,
    ];

    /// The name users write in configs and flags.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::RoundRobin => "round_robin",
            PolicyKind::Random => "random",
            PolicyKind::LeastRequest => "least_request",
            PolicyKind::PeakEwma => "peak_ewma",
        }
    }

    /// Its position in [`PolicyKind::ALL`].
    fn index(self) -> usize {
        match self {
            PolicyKind::RoundRobin => 0,
            PolicyKind::Random => 1,
            PolicyKind::LeastRequest => 2,
            PolicyKind::PeakEwma => 3,
        }
    }

    /// A fresh policy of this kind.
    pub fn build<E: Load>(self) -> Box<dyn Policy<E>> {
        match self {
            PolicyKind::RoundRobin => Box::new(RoundRobin::default()),
            PolicyKind::Random => Box::new(Random),
            PolicyKind::LeastRequest => Box::new(LeastRequest),
            PolicyKind::PeakEwma => Box::new(PeakEwma),
        }
    }
}

impl FromStr for PolicyKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        PolicyKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::UnknownPolicy { name: s.into() })
    }
}

/// Which policy an upstream balances with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyChoice {
    /// This one, whatever the source names: the user chose it.
    Fixed(PolicyKind),
    /// The first policy the source names that podlb has (an xDS Cluster's
    /// `lb_policy`), else [`PolicyKind::default`]. Sources other than xDS
    /// name none.
    #[default]
    FromSource,
}

impl From<PolicyKind> for PolicyChoice {
    fn from(kind: PolicyKind) -> Self {
        PolicyChoice::Fixed(kind)
    }
}

impl PolicyChoice {
    /// The policy to balance with when the source names `named` (the
    /// preferred first).
    pub fn resolve(self, named: &[String]) -> PolicyKind {
        match self {
            PolicyChoice::Fixed(kind) => kind,
            PolicyChoice::FromSource => named
                .iter()
                .find_map(|name| name.parse().ok())
                .unwrap_or_default(),
        }
    }
}

/// One policy of each kind, built once, and which of them picks now: an
/// upstream that follows its source's choice switches without a lock, and
/// each policy keeps its own state (round robin's position) across
/// switches.
#[derive(Debug)]
pub struct PolicySet<E: Load> {
    policies: [Box<dyn Policy<E>>; PolicyKind::ALL.len()],
    active: AtomicUsize,
}

impl<E: Load> PolicySet<E> {
    /// Every policy, `active` picking.
    pub fn new(active: PolicyKind) -> Self {
        PolicySet {
            policies: PolicyKind::ALL.map(PolicyKind::build),
            active: AtomicUsize::new(active.index()),
        }
    }

    /// The policy that picks now.
    pub fn active(&self) -> PolicyKind {
        PolicyKind::ALL[self.active.load(Ordering::Relaxed) % PolicyKind::ALL.len()]
    }

    /// From now on, `kind` picks.
    pub fn activate(&self, kind: PolicyKind) {
        self.active.store(kind.index(), Ordering::Relaxed);
    }

    /// One endpoint of `ready` (the endpoints ready now), by the active
    /// policy.
    pub fn pick<'a>(&self, ready: &'a [E]) -> Option<&'a E> {
        let active = self.active.load(Ordering::Relaxed);
        self.policies[active % PolicyKind::ALL.len()].pick(ready)
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Power of two choices: two distinct random endpoints, the one with the
/// lower `cost` wins, tempered by slow start.
fn p2c<E: Load>(ready: &[E], cost: impl Fn(&E) -> f64) -> Option<&E> {
    match ready.len() {
        0 => None,
        1 => ready.first(),
        n => {
            let i = fastrand::usize(..n);
            let j = (i + 1 + fastrand::usize(..n - 1)) % n;
            let (a, b) = (&ready[i], &ready[j]);
            let (winner, loser) = if cost(b) < cost(a) { (b, a) } else { (a, b) };
            Some(warm_pick(winner, loser))
        }
    }
}

/// Slow start in a p2c pick: a winner that is still warming up (a new or
/// returning endpoint, [`Load::warmth`]) keeps its win only with the
/// probability of its warmth relative to the loser's. Scaling the cost
/// instead would starve it: an idle endpoint's cost (0 in flight, or an
/// optimistic first latency) stays below its peers' whatever the factor,
/// or, at low load, above it until the window ends. So a warming endpoint
/// gets about `warmth` of the share it would win, from the first pick on,
/// and a warm pair costs two relaxed loads.
fn warm_pick<'a, E: Load>(winner: &'a E, loser: &'a E) -> &'a E {
    let (w, l) = (winner.warmth(), loser.warmth());
    if w < l && fastrand::f64() * l >= w {
        loser
    } else {
        winner
    }
}

#[cfg(test)]
mod tests;
