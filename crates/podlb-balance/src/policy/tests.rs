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

#[test]
fn a_policy_set_switches_policy_and_keeps_each_ones_state() {
    let set = PolicySet::<Fake>::new(PolicyKind::LeastRequest);
    for kind in PolicyKind::ALL {
        set.activate(kind);
        assert_eq!(set.active(), kind);
    }
    let eps = vec![
        Fake::ready(0, 1.0),
        Fake::ready(0, 1.0),
        Fake::ready(0, 1.0),
    ];
    set.activate(PolicyKind::RoundRobin);
    let first: Vec<*const Fake> = (0..2)
        .map(|_| set.pick(&eps).unwrap() as *const _)
        .collect();
    set.activate(PolicyKind::LeastRequest);
    let busy = vec![Fake::ready(9, 1.0), Fake::ready(0, 1.0)];
    for _ in 0..50 {
        assert!(std::ptr::eq(set.pick(&busy).unwrap(), &busy[1]));
    }
    // Back to round robin: it goes on where it stopped, to the third.
    set.activate(PolicyKind::RoundRobin);
    let third = set.pick(&eps).unwrap() as *const Fake;
    assert!(
        !first.contains(&third),
        "round robin resumed, not restarted"
    );
}

#[test]
fn a_choice_from_the_source_takes_the_first_policy_podlb_has() {
    let named = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let from_source = PolicyChoice::FromSource;
    assert_eq!(
        from_source.resolve(&[]),
        PolicyKind::LeastRequest,
        "none named"
    );
    assert_eq!(
        from_source.resolve(&named(&["ring_hash", "round_robin"])),
        PolicyKind::RoundRobin
    );
    assert_eq!(
        from_source.resolve(&named(&["maglev"])),
        PolicyKind::default()
    );
    let fixed = PolicyChoice::from(PolicyKind::PeakEwma);
    assert_eq!(
        fixed.resolve(&named(&["round_robin"])),
        PolicyKind::PeakEwma
    );
}
