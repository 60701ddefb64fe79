use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use podlb_core::Update;

use super::*;
use crate::EndpointSet;

/// A ready endpoint with a fixed load.
#[derive(Debug)]
struct Fake {
    in_flight: u64,
    cost: f64,
    warmth: f64,
}

impl Fake {
    fn ready(in_flight: u64, cost: f64) -> Self {
        Fake {
            in_flight,
            cost,
            warmth: 1.0,
        }
    }

    fn warming(in_flight: u64, cost: f64, warmth: f64) -> Self {
        Fake {
            in_flight,
            cost,
            warmth,
        }
    }
}

impl Load for Fake {
    fn is_ready(&self) -> bool {
        true
    }
    fn in_flight(&self) -> u64 {
        self.in_flight
    }
    fn ewma_cost(&self) -> f64 {
        self.cost
    }
    fn warmth(&self) -> f64 {
        self.warmth
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

/// An endpoint of a set, ready or connecting.
#[derive(Debug)]
struct Member {
    addr: podlb_core::EndpointAddr,
    ready: AtomicBool,
    in_flight: AtomicU64,
}

impl Load for Member {
    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
    fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }
    fn ewma_cost(&self) -> f64 {
        1.0
    }
}

impl crate::Keyed for Member {
    fn addr(&self) -> podlb_core::EndpointAddr {
        self.addr
    }
}

/// A set of eight endpoints in address order, `ready` of them ready: in
/// the layout of a scale-up, where the new pods sort between old ones.
fn scale_up(ready: &[u8]) -> (EndpointSet<Arc<Member>>, Vec<Arc<Member>>) {
    let members: Vec<Arc<Member>> = (1..=8u8)
        .map(|last| {
            Arc::new(Member {
                addr: format!("10.0.0.{last}:80").parse().unwrap(),
                ready: AtomicBool::new(ready.contains(&last)),
                in_flight: AtomicU64::new(0),
            })
        })
        .collect();
    let set = EndpointSet::new();
    let by_addr = members.clone();
    let endpoints = members
        .iter()
        .map(|m| podlb_core::Endpoint::new(m.addr))
        .collect();
    set.apply(Update::Reset(endpoints), |e| {
        by_addr.iter().find(|m| m.addr == e.addr).unwrap().clone()
    });
    (set, members)
}

/// How many of `n` picks from the set's ready snapshot each member got.
fn picks_per_member(
    policy: &dyn Policy<Arc<Member>>,
    set: &EndpointSet<Arc<Member>>,
    members: &[Arc<Member>],
    n: usize,
) -> Vec<usize> {
    let mut counts = vec![0; members.len()];
    for _ in 0..n {
        let ready = set.ready();
        let picked = policy.pick(&ready).expect("a ready endpoint");
        let idx = members.iter().position(|m| Arc::ptr_eq(m, picked)).unwrap();
        counts[idx] += 1;
    }
    counts
}

#[test]
fn three_ready_endpoints_share_evenly_while_five_are_connecting() {
    // Connecting pods sit before each ready one and in a block of four: a
    // policy that fell through to "the next ready one" would hand 10.0.0.6
    // the block's share.
    let ready = [2, 6, 8];
    for kind in PolicyKind::ALL {
        let policy = kind.build::<Arc<Member>>();
        let (set, members) = scale_up(&ready);
        let n = 30_000;
        let counts = picks_per_member(policy.as_ref(), &set, &members, n);
        for (member, &count) in members.iter().zip(&counts) {
            let last = member.addr.socket_addr().ip().to_string();
            if member.is_ready() {
                let third = n / 3;
                assert!(
                    count.abs_diff(third) <= third / 10,
                    "{kind}: {last} got {count} of {n}, not a third ±10%: {counts:?}"
                );
            } else {
                assert_eq!(count, 0, "{kind}: {last} is connecting: {counts:?}");
            }
        }
    }
}

#[test]
fn least_request_spreads_calls_that_stay_in_flight_over_the_ready_endpoints() {
    // Calls that do not end: least_request must count them and keep the
    // ready endpoints level, and give the connecting ones nothing.
    let (set, members) = scale_up(&[2, 6, 8]);
    let policy = LeastRequest;
    for _ in 0..300 {
        let ready = set.ready();
        let picked = policy.pick(&ready).unwrap();
        picked.in_flight.fetch_add(1, Ordering::Relaxed);
    }
    let in_flight: Vec<u64> = members.iter().map(|m| m.in_flight()).collect();
    assert_eq!(in_flight.iter().sum::<u64>(), 300);
    for (m, &n) in members.iter().zip(&in_flight) {
        if m.is_ready() {
            assert!((90..=110).contains(&n), "{in_flight:?}");
        } else {
            assert_eq!(n, 0, "{in_flight:?}");
        }
    }
}

#[test]
fn a_policy_picks_only_from_the_ready_snapshot_and_none_from_an_empty_one() {
    for kind in PolicyKind::ALL {
        let policy = kind.build::<Arc<Member>>();
        let (set, members) = scale_up(&[5]);
        let counts = picks_per_member(policy.as_ref(), &set, &members, 1000);
        assert_eq!(counts, [0, 0, 0, 0, 1000, 0, 0, 0], "{kind}");
        members[4].ready.store(false, Ordering::Relaxed);
        set.refresh_ready();
        assert!(policy.pick(&set.ready()).is_none(), "{kind}");
        assert!(policy.pick(&[]).is_none(), "{kind}");
        members[0].ready.store(true, Ordering::Relaxed);
        set.refresh_ready();
        let counts = picks_per_member(policy.as_ref(), &set, &members, 100);
        assert_eq!(counts, [100, 0, 0, 0, 0, 0, 0, 0], "{kind}");
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
fn a_warming_endpoint_gets_about_its_warmth_of_what_it_would_win() {
    // Idle and cheapest, it would win every pick it is drawn in (2 of 3);
    // at warmth 0.2 it keeps about a fifth of those: some calls at once,
    // not a flood.
    for policy in [&LeastRequest as &dyn Policy<Fake>, &PeakEwma] {
        let eps = vec![
            Fake::warming(0, 0.5, 0.2),
            Fake::ready(4, 5.0),
            Fake::ready(4, 5.0),
        ];
        let c = counts(policy, &eps, 30_000);
        let expected = 30_000.0 * (2.0 / 3.0) * 0.2;
        let share = c[0] as f64;
        assert!(
            (expected * 0.8..expected * 1.2).contains(&share),
            "{policy:?}: {c:?}"
        );
    }
    // Two equally warm endpoints compare by cost alone.
    let eps = vec![
        Fake::warming(0, 1.0, 0.3),
        Fake::warming(0, 1.0, 0.3),
        Fake::warming(50, 100.0, 0.3),
    ];
    assert_eq!(counts(&LeastRequest, &eps, 3000)[2], 0);
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
