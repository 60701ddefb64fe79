//! How long one pick takes for each policy over a snapshot of ready
//! endpoints: the policy alone (`pick/KIND/16`), through the `PolicySet` an
//! upstream picks with (`pick/set/KIND/16`: one more atomic load and an
//! indirect call), so the cost of following an xDS Cluster's policy shows,
//! and as an upstream picks per call (`pick/ready/KIND/16of24`: loading the
//! `EndpointSet`'s ready snapshot of 16 ready among 24, then the set's pick).
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use podlb_balance::{EndpointSet, Keyed, Load, LoadTracker, PolicyKind, PolicySet};
use podlb_core::{EndpointAddr, Update};

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
        let (endpoints, policies) = (upstream_set(), PolicySet::<Arc<Member>>::new(kind));
        c.bench_function(&format!("pick/ready/{kind}/16of24"), |b| {
            b.iter(|| {
                let ready = black_box(&endpoints).ready();
                if let Some(e) = policies.pick(&ready) {
                    e.load.begin();
                    e.load.end();
                }
            })
        });
    }
}

/// An endpoint of an upstream's set: every third one is not ready.
struct Member {
    addr: EndpointAddr,
    ready: bool,
    load: LoadTracker,
}

impl Keyed for Member {
    fn addr(&self) -> EndpointAddr {
        self.addr
    }
}

impl Load for Member {
    fn is_ready(&self) -> bool {
        self.ready
    }
    fn in_flight(&self) -> u64 {
        self.load.in_flight()
    }
    fn ewma_cost(&self) -> f64 {
        self.load.ewma_cost(Duration::from_secs(1))
    }
}

/// 24 endpoints, 16 of them ready, as an upstream holds them.
fn upstream_set() -> EndpointSet<Arc<Member>> {
    let set = EndpointSet::new();
    let endpoints = (0..24u16)
        .map(|i| {
            podlb_core::Endpoint::new(EndpointAddr::from(std::net::SocketAddr::from((
                [10, 0, 0, 1],
                1000 + i,
            ))))
        })
        .collect();
    set.apply(Update::Reset(endpoints), |e| {
        Arc::new(Member {
            addr: e.addr,
            ready: e.addr.socket_addr().port() % 3 != 0,
            load: LoadTracker::new(Duration::from_secs(10)),
        })
    });
    set
}

criterion_group!(benches, pick);
criterion_main!(benches);
