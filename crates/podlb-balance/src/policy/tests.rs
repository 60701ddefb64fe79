use std::cell::Cell;

use super::*;

#[derive(Debug)]
struct Fake {
    ready: Cell<bool>,
    in_flight: u64,
    cost: f64,
}

impl Fake {
    fn ready(in_flight: u64, cost: f64) -> Self {
        Fake {
            ready: Cell::new(true),
            in_flight,
            cost,
        }
    }
}

impl Load for Fake {
    fn is_ready(&self) -> bool {
        self.ready.get()
    }
    fn in_flight(&self) -> u64 {
        self.in_flight
    }
    fn ewma_cost(&self) -> f64 {
        self.cost
    }
}

fn counts(policy: &dyn Policy<Fake>, eps: &[Fake], n: usize) -> Vec<usize> {
    let mut counts = vec![0; eps.len()];
    for _ in 0..n {
        let picked = policy.pick(eps).expect("a ready endpoint");
        let idx = eps.iter().position(|e| std::ptr::eq(e, picked)).unwrap();
        counts[idx] += 1;
    }
    counts
}

#[test]
fn never_picks_an_endpoint_that_is_not_ready() {
    for kind in PolicyKind::ALL {
        let policy = kind.build::<Fake>();
        let eps: Vec<Fake> = (0..5).map(|_| Fake::ready(0, 1.0)).collect();
        for e in &eps[..4] {
            e.ready.set(false);
        }
        let c = counts(policy.as_ref(), &eps, 1000);
        assert_eq!(c, [0, 0, 0, 0, 1000], "{kind}");
        eps[4].ready.set(false);
        assert!(policy.pick(&eps).is_none(), "{kind}");
        assert!(policy.pick(&[]).is_none(), "{kind}");
    }
}

#[test]
fn round_robin_is_exactly_even() {
    let eps: Vec<Fake> = (0..3).map(|_| Fake::ready(0, 1.0)).collect();
    let c = counts(&RoundRobin::default(), &eps, 3000);
    assert_eq!(c, [1000, 1000, 1000]);
}

#[test]
fn random_spreads_roughly_evenly() {
    let eps: Vec<Fake> = (0..3).map(|_| Fake::ready(0, 1.0)).collect();
    let c = counts(&Random, &eps, 30_000);
    assert!(c.iter().all(|&n| (9_000..11_000).contains(&n)), "{c:?}");
}

#[test]
fn least_request_avoids_the_busiest_endpoint() {
    let eps = vec![
        Fake::ready(0, 1.0),
        Fake::ready(0, 1.0),
        Fake::ready(50, 1.0),
    ];
    let c = counts(&LeastRequest, &eps, 3000);
    // The busy one only wins when drawn against itself, which p2c never does.
    assert_eq!(c[2], 0, "{c:?}");
}

#[test]
fn peak_ewma_prefers_the_cheaper_endpoint() {
    let eps = vec![
        Fake::ready(0, 1.0),
        Fake::ready(0, 1.0),
        Fake::ready(0, 100.0),
    ];
    let c = counts(&PeakEwma, &eps, 3000);
    assert_eq!(c[2], 0, "{c:?}");
}

#[test]
fn names_round_trip_and_unknown_names_are_rejected() {
    for kind in PolicyKind::ALL {
        assert_eq!(kind.name().parse::<PolicyKind>(), Ok(kind));
    }
    assert_eq!(
        "fastest".parse::<PolicyKind>(),
        Err(Error::UnknownPolicy {
            name: "fastest".into()
        })
    );
}
