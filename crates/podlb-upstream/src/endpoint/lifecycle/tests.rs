use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use podlb_balance::{EndpointSet, Keyed, Load, PolicyKind};
use podlb_core::{Endpoint, EndpointAddr, Update};

use super::*;
use EndpointState::*;

/// Jitter in the middle of the spread: a backoff of exactly the doubled
/// delay, below the cap.
const NO_JITTER: f64 = 0.5;

fn lifecycle() -> Lifecycle {
    Lifecycle::new(Duration::from_millis(100), Duration::from_secs(1))
}

/// Applies `event` now, without jitter.
fn on(life: &mut Lifecycle, event: Event) -> Decision {
    life.on(event, Instant::now(), NO_JITTER)
}

/// Sleeps until a backoff decision says, on paused time, and returns how
/// long that was.
async fn sleep_out(decision: Decision) -> Duration {
    let Decision::SleepUntil(until) = decision else {
        panic!("expected a backoff, got {decision:?}");
    };
    let start = Instant::now();
    tokio::time::sleep_until(until).await;
    start.elapsed()
}

#[test]
fn a_new_endpoint_connects_at_once_and_waits_once_ready() {
    let mut life = lifecycle();
    assert_eq!(
        (life.state(), life.decision()),
        (Connecting, Decision::Connect)
    );
    assert!(life.is_starting());
    assert_eq!(on(&mut life, Event::ConnectOk), Decision::Wait);
    assert_eq!(life.state(), Ready);
    assert!(!life.is_starting());
}

#[tokio::test(start_paused = true)]
async fn failed_connects_back_off_doubling_up_to_the_cap_and_a_success_resets_it() {
    let mut life = lifecycle();
    let mut waited = Vec::new();
    for _ in 0..5 {
        let decision = on(&mut life, Event::ConnectFailed);
        assert_eq!(life.state(), BackingOff);
        assert!(!life.is_starting(), "the first attempt has ended");
        waited.push(sleep_out(decision).await);
        assert_eq!(on(&mut life, Event::BackoffOver), Decision::Connect);
        assert_eq!(life.state(), Connecting);
    }
    let ms = Duration::from_millis;
    // Mid-spread jitter: the doubled delay itself, until its spread would
    // pass the 1 s cap; then the middle of [delay / 2, 1 s).
    assert_eq!(waited, [ms(100), ms(200), ms(400), ms(700), ms(750)]);

    on(&mut life, Event::ConnectOk);
    on(&mut life, Event::ConnectionLost { remaining: 0 });
    let decision = on(&mut life, Event::ConnectFailed);
    assert_eq!(sleep_out(decision).await, ms(100), "reset by the success");
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_a_backoff_between_half_and_one_and_a_half_times() {
    let mut life = lifecycle();
    let decision = life.on(Event::ConnectFailed, Instant::now(), 0.0);
    assert_eq!(sleep_out(decision).await, Duration::from_millis(50));
    life.on(Event::BackoffOver, Instant::now(), 0.0);
    let decision = life.on(Event::ConnectFailed, Instant::now(), 0.999);
    let waited = sleep_out(decision).await;
    // The second failure: twice the initial delay, times 1.499 (the timer
    // rounds up to the millisecond).
    assert!(waited > Duration::from_millis(290) && waited <= Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn a_listed_endpoint_that_stays_down_is_tried_again_within_the_cap_whatever_the_jitter() {
    // The defaults: a dead endpoint discovery still lists is tried at least
    // once a second, so it is back in rotation within a second of being
    // reachable (issue 13); the jitter spreads attempts below the cap, never
    // past it.
    let settings = crate::ConnectionSettings::default();
    assert_eq!(settings.backoff_max, Duration::from_secs(1));
    for jitter in [0.0, 0.5, 0.999] {
        let mut life = Lifecycle::new(settings.backoff_initial, settings.backoff_max);
        on(&mut life, Event::ConnectOk);
        on(&mut life, Event::ConnectionLost { remaining: 0 });
        let down = Instant::now();
        let mut waited = Vec::new();
        // Half a minute of refused connects (each answered at once).
        while down.elapsed() < Duration::from_secs(30) {
            let decision = life.on(Event::ConnectFailed, Instant::now(), jitter);
            waited.push(sleep_out(decision).await);
            assert_eq!(on(&mut life, Event::BackoffOver), Decision::Connect);
        }
        let longest = waited.iter().max().copied().unwrap_or_default();
        assert!(
            longest <= Duration::from_secs(1),
            "jitter {jitter}: waited {longest:?} between attempts: {waited:?}"
        );
        // The backend is back: the next attempt connects, and the endpoint
        // takes calls.
        assert_eq!(on(&mut life, Event::ConnectOk), Decision::Wait);
        assert_eq!(life.state(), Ready);
    }
}

#[test]
fn losing_the_last_connection_reconnects_and_a_goaway_drains() {
    let mut life = lifecycle();
    on(&mut life, Event::ConnectOk);
    on(&mut life, Event::ConnectOk);
    assert_eq!(
        on(&mut life, Event::ConnectionLost { remaining: 1 }),
        Decision::Wait
    );
    assert_eq!(life.state(), Ready, "one connection is left");
    assert_eq!(
        on(&mut life, Event::ConnectionLost { remaining: 0 }),
        Decision::Connect
    );
    assert_eq!(life.state(), Connecting);

    on(&mut life, Event::ConnectOk);
    assert_eq!(
        on(&mut life, Event::Goaway { remaining: 0 }),
        Decision::Connect
    );
    assert_eq!(life.state(), Draining);
    on(&mut life, Event::ConnectOk);
    assert_eq!(life.state(), Ready);

    on(&mut life, Event::Goaway { remaining: 0 });
    on(&mut life, Event::ConnectFailed);
    assert_eq!(
        life.state(),
        BackingOff,
        "a draining endpoint that cannot reconnect"
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_endpoint_opens_one_more_connection_and_stays_ready_if_that_fails() {
    let mut life = lifecycle();
    on(&mut life, Event::ConnectOk);
    assert_eq!(on(&mut life, Event::AllFull), Decision::Connect);
    assert_eq!(life.state(), Ready);
    let decision = on(&mut life, Event::ConnectFailed);
    assert_eq!(life.state(), Ready, "its connection still takes calls");
    // While it backs off, full again asks for nothing more.
    assert_eq!(on(&mut life, Event::AllFull), decision);
    // Losing the last connection during the backoff: backing off, not
    // connecting at once.
    assert_eq!(
        on(&mut life, Event::ConnectionLost { remaining: 0 }),
        decision
    );
    assert_eq!(life.state(), BackingOff);
    sleep_out(decision).await;
    assert_eq!(on(&mut life, Event::BackoffOver), Decision::Connect);
    assert_eq!(life.state(), Connecting);
    on(&mut life, Event::ConnectOk);
    on(&mut life, Event::AllFull);
    on(&mut life, Event::ConnectOk);
    assert_eq!(life.decision(), Decision::Wait, "the extra one came");
}

#[test]
fn removed_is_terminal_from_every_state() {
    let every_event = [
        Event::ConnectOk,
        Event::ConnectFailed,
        Event::ConnectionLost { remaining: 0 },
        Event::ConnectionLost { remaining: 3 },
        Event::Goaway { remaining: 0 },
        Event::AllFull,
        Event::BackoffOver,
        Event::Removed,
    ];
    // Reach each state, then remove.
    let paths: [&[Event]; 5] = [
        &[],
        &[Event::ConnectOk],
        &[Event::ConnectOk, Event::Goaway { remaining: 0 }],
        &[Event::ConnectFailed],
        &[Event::ConnectOk, Event::AllFull],
    ];
    for path in paths {
        let mut life = lifecycle();
        for &event in path {
            on(&mut life, event);
        }
        let before = life.state();
        assert_eq!(on(&mut life, Event::Removed), Decision::Stop, "{before:?}");
        assert!(!life.is_starting());
        for event in every_event {
            assert_eq!(on(&mut life, event), Decision::Stop, "{before:?} {event:?}");
            assert_eq!(life.state(), Removed, "{before:?} then {event:?}");
        }
    }
}

/// An endpoint whose readiness is its lifecycle's, mirrored in an atomic
/// as `EndpointConnection` does.
#[derive(Debug)]
struct Member {
    addr: EndpointAddr,
    life: Mutex<Lifecycle>,
    state: AtomicU8,
}

impl Member {
    fn on(&self, event: Event) {
        let mut life = self.life.lock().unwrap();
        on(&mut life, event);
        self.state.store(life.state().to_u8(), Ordering::Relaxed);
    }
}

impl Keyed for Member {
    fn addr(&self) -> EndpointAddr {
        self.addr
    }
}

impl Load for Member {
    fn is_ready(&self) -> bool {
        EndpointState::from_u8(self.state.load(Ordering::Relaxed)) == Ready
    }
    fn in_flight(&self) -> u64 {
        0
    }
    fn ewma_cost(&self) -> f64 {
        1.0
    }
}

#[test]
fn a_removed_or_disconnected_endpoint_is_never_picked() {
    let members: Vec<Arc<Member>> = (1..=6u8)
        .map(|last| {
            Arc::new(Member {
                addr: format!("10.0.0.{last}:80").parse().unwrap(),
                life: Mutex::new(lifecycle()),
                state: AtomicU8::new(Connecting.to_u8()),
            })
        })
        .collect();
    let set = EndpointSet::new();
    let all = members.iter().map(|m| Endpoint::new(m.addr)).collect();
    set.apply(Update::Reset(all), |e| {
        members.iter().find(|m| m.addr == e.addr).unwrap().clone()
    });
    // Every change of state is followed by a rebuild, as the endpoint's
    // driver does.
    let event = |i: usize, event: Event| {
        members[i].on(event);
        set.refresh_ready();
    };
    for i in 0..6 {
        event(i, Event::ConnectOk);
    }
    event(0, Event::ConnectionLost { remaining: 0 }); // disconnected, reconnecting
    event(1, Event::Goaway { remaining: 0 }); // draining
    event(2, Event::ConnectFailed); // never lost its connection: still ready
    event(3, Event::ConnectionLost { remaining: 0 });
    event(3, Event::ConnectFailed); // backing off
    event(4, Event::Removed); // removed while ready
    event(4, Event::ConnectOk); // and a late connect does not revive it
    let states: Vec<EndpointState> = members
        .iter()
        .map(|m| m.life.lock().unwrap().state())
        .collect();
    assert_eq!(
        states,
        [Connecting, Draining, Ready, BackingOff, Removed, Ready]
    );
    for kind in PolicyKind::ALL {
        let policy = kind.build::<Arc<Member>>();
        for _ in 0..1000 {
            let ready = set.ready();
            let picked = policy.pick(&ready).expect("two are ready");
            assert!(
                Arc::ptr_eq(picked, &members[2]) || Arc::ptr_eq(picked, &members[5]),
                "{kind} picked {} in {:?}",
                picked.addr,
                picked.life.lock().unwrap().state()
            );
        }
    }
}
