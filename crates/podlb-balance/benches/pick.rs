//! How long one pick takes for each policy over a snapshot of endpoints:
//! the policy alone (`pick/KIND/16`), and through the `PolicySet` an
//! upstream picks with (`pick/set/KIND/16`: one more atomic load and an
//! indirect call), so the cost of following an xDS Cluster's policy shows.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use podlb_balance::{Load, LoadTracker, PolicyKind, PolicySet};

struct Endpoint(LoadTracker);

impl Load for Endpoint {
    fn is_ready(&self) -> bool {
        true
    }
    fn in_flight(&self) -> u64 {
        self.0.in_flight()
    }
    fn ewma_cost(&self) -> f64 {
        self.0.ewma_cost(Duration::from_secs(1))
    }
}

fn pick(c: &mut Criterion) {
    let eps: Vec<Endpoint> = (0..16)
        .map(|_| Endpoint(LoadTracker::new(Duration::from_secs(10))))
        .collect();
    for kind in PolicyKind::ALL {
        let policy = kind.build::<Endpoint>();
        c.bench_function(&format!("pick/{kind}/16"), |b| {
            b.iter(|| {
                if let Some(e) = policy.pick(black_box(&eps)) {
                    e.0.begin();
                    e.0.end();
                }
            })
        });
        let set = PolicySet::<Endpoint>::new(kind);
        c.bench_function(&format!("pick/set/{kind}/16"), |b| {
            b.iter(|| {
                if let Some(e) = set.pick(black_box(&eps)) {
                    e.0.begin();
                    e.0.end();
                }
            })
        });
    }
}

criterion_group!(benches, pick);
criterion_main!(benches);
