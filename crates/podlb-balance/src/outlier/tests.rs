//! The detectors, the ejection schedule, the cap and slow start, on a fake
//! clock (a `Duration` since an epoch the test chooses).

use super::*;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn failures(t: &OutlierTracker, n: u32, now: Duration, s: &OutlierSettings) -> Vec<Trip> {
    (0..n)
        .filter_map(|_| t.record(Verdict::Failure, now, s))
        .collect()
}

#[test]
fn the_default_fault_codes_are_the_endpoints_troubles_not_answers_about_the_call() {
    let s = OutlierSettings::default();
    let faults: Vec<&str> = s.fault_codes.names().collect();
    assert_eq!(faults, ["UNKNOWN", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"]);
    for name in [
        "OK",
        "NOT_FOUND",
        "INVALID_ARGUMENT",
        "PERMISSION_DENIED",
        "FAILED_PRECONDITION",
        "ALREADY_EXISTS",
        "UNAUTHENTICATED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "RESOURCE_EXHAUSTED",
        "CANCELLED",
        "DEADLINE_EXCEEDED",
        "ABORTED",
    ] {
        let code = CODE_NAMES.iter().position(|n| n == &name).unwrap() as i32;
        assert_eq!(s.verdict_of_status(code), Verdict::Success, "{name}");
    }
    let custom = FaultCodes::from_codes([14, 8, 99]);
    assert_eq!(
        custom.names().collect::<Vec<_>>(),
        ["RESOURCE_EXHAUSTED", "UNAVAILABLE"]
    );
}

#[test]
fn five_failures_in_a_row_trip_and_a_success_starts_the_count_again() {
    let s = OutlierSettings::default();
    let t = OutlierTracker::default();
    assert!(failures(&t, 4, secs(1.0), &s).is_empty());
    assert_eq!(t.record(Verdict::Success, secs(1.0), &s), None);
    assert!(failures(&t, 4, secs(1.0), &s).is_empty());
    assert_eq!(
        t.record(Verdict::Failure, secs(1.0), &s),
        Some(Trip::ConsecutiveFailures { failures: 5 })
    );
    // Not on every further failure (a refused ejection is not asked again
    // on each call), but every fifth.
    assert_eq!(
        failures(&t, 5, secs(1.0), &s),
        [Trip::ConsecutiveFailures { failures: 10 }]
    );
    // Ignored calls neither count nor break the run.
    assert_eq!(t.record(Verdict::Ignored, secs(1.0), &s), None);
}

#[test]
fn a_failure_rate_over_the_threshold_trips_when_its_interval_ends() {
    let s = OutlierSettings {
        consecutive_failures: None,
        ..OutlierSettings::default()
    };
    let t = OutlierTracker::default();
    // 30 calls in the interval [10 s, 20 s), every other one failing.
    for i in 0..30 {
        let verdict = if i % 2 == 0 {
            Verdict::Failure
        } else {
            Verdict::Success
        };
        assert_eq!(t.record(verdict, secs(10.0 + i as f64 / 10.0), &s), None);
    }
    assert_eq!(t.recent(secs(15.0), &s), (15, 30));
    assert_eq!(
        t.record(Verdict::Success, secs(20.5), &s),
        Some(Trip::FailureRate {
            failed: 15,
            calls: 30
        })
    );
    // Too few calls in an interval never trip.
    for _ in 0..10 {
        t.record(Verdict::Failure, secs(21.0), &s);
    }
    assert_eq!(t.record(Verdict::Success, secs(30.5), &s), None);
    // After an idle gap the old counts are forgotten.
    assert_eq!(t.recent(secs(55.0), &s), (0, 0));
}

#[test]
fn the_cap_ejects_one_of_two_and_one_of_three_but_never_all() {
    assert_eq!(max_ejected(1, 50), 0);
    assert_eq!(max_ejected(2, 50), 1);
    assert_eq!(max_ejected(3, 50), 1);
    assert_eq!(max_ejected(4, 50), 2);
    assert_eq!(max_ejected(10, 10), 1);
    assert_eq!(max_ejected(3, 100), 2);
    assert_eq!(max_ejected(3, 0), 0);
    let s = OutlierSettings::default();
    assert_eq!(ejection_allowed(&s, 3, 0, (0, 10)), Ok(()));
    assert_eq!(
        ejection_allowed(&s, 3, 1, (0, 10)),
        Err(Refusal::Cap { ejected: 1, max: 1 })
    );
}

#[test]
fn nobody_is_ejected_when_the_others_fail_as_much() {
    let s = OutlierSettings::default();
    assert_eq!(
        ejection_allowed(&s, 3, 0, (12, 20)),
        Err(Refusal::SharedOutage {
            failed: 12,
            calls: 20
        })
    );
    assert_eq!(ejection_allowed(&s, 3, 0, (2, 20)), Ok(()));
    // Others with no calls yet say nothing; the cap still bounds the harm.
    assert_eq!(ejection_allowed(&s, 3, 0, (0, 0)), Ok(()));
}

#[test]
fn ejections_in_a_row_last_longer_up_to_the_cap_and_the_count_decays_while_healthy() {
    let s = OutlierSettings {
        base_ejection_time: secs(10.0),
        max_ejection_time: secs(25.0),
        ..OutlierSettings::default()
    };
    let t = OutlierTracker::default();
    let trip = Trip::ConsecutiveFailures { failures: 5 };
    let first = t.eject(trip, secs(100.0), &s);
    assert_eq!((first.count, first.until), (1, secs(110.0)));
    assert!(t.is_ejected());
    assert_eq!(t.ejection(), Some(first));
    // A timer that fires early (or belongs to an older ejection) does nothing.
    assert_eq!(t.end_ejection(secs(109.0)), None);
    assert!(t.is_ejected());
    assert_eq!(t.end_ejection(secs(110.0)), Some(first));
    assert!(!t.is_ejected());
    assert_eq!(t.ejection(), None);
    // Failing again at once: twice as long.
    let second = t.eject(trip, secs(111.0), &s);
    assert_eq!((second.count, second.until), (2, secs(131.0)));
    t.end_ejection(secs(131.0));
    // A third in a row would be 30 s: capped at 25.
    let third = t.eject(trip, secs(132.0), &s);
    assert_eq!((third.count, third.until), (3, secs(157.0)));
    t.end_ejection(secs(157.0));
    // Healthy for 20 s (two base times): the count drops by two.
    let fourth = t.eject(trip, secs(177.0), &s);
    assert_eq!((fourth.count, fourth.until), (2, secs(197.0)));
}

#[test]
fn a_returning_endpoint_is_watched_afresh() {
    let s = OutlierSettings::default();
    let t = OutlierTracker::default();
    assert_eq!(failures(&t, 5, secs(1.0), &s).len(), 1);
    t.eject(
        Trip::ConsecutiveFailures { failures: 5 },
        secs(1.0),
        &OutlierSettings::default(),
    );
    // Calls in flight at the ejection that fail later trip nothing.
    assert!(failures(&t, 5, secs(2.0), &s).is_empty());
    t.end_ejection(secs(11.0));
    assert_eq!(t.recent(secs(11.0), &s), (0, 0));
    assert!(failures(&t, 4, secs(12.0), &s).is_empty());
    assert_eq!(failures(&t, 1, secs(12.0), &s).len(), 1);
}

#[test]
fn disabled_detection_never_trips() {
    let s = OutlierSettings::disabled();
    let t = OutlierTracker::default();
    assert!(failures(&t, 100, secs(1.0), &s).is_empty());
}

#[test]
fn slow_start_ramps_from_a_tenth_to_full_share_over_its_window() {
    let w = SlowStart::default();
    let window = secs(10.0);
    assert!(!w.is_warming());
    assert_eq!(w.warmth(secs(0.0), window), 1.0);
    w.restart(secs(100.0));
    assert!(w.is_warming());
    assert_eq!(w.warmth(secs(100.0), window), MIN_WARMTH);
    assert!((w.warmth(secs(105.0), window) - 0.5).abs() < 1e-9);
    assert_eq!(w.warmth(secs(110.0), window), 1.0);
    assert!(!w.is_warming(), "warm for good once the window passed");
    w.restart(secs(200.0));
    assert_eq!(w.warmth(secs(200.0), Duration::ZERO), 1.0, "off");
}
