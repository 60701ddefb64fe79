//! Passive outlier detection: which endpoints are sick by how they answer
//! calls, how long they stay out of rotation, and slow start for those that
//! come back. Pure: it is told each call's [`Verdict`] and the time, and
//! says when a detector trips; the upstream crate does the I/O (the timer
//! that brings an endpoint back, the logs).
//!
//! ```text
//!  every call ─► Verdict ─► OutlierTracker::record (relaxed atomics only)
//!                               │ a detector trips (rare)
//!                               ▼
//!           EndpointSet::update (writer lock) ─► ejection_allowed? (cap, shared outage)
//!                               │ yes
//!                               ▼
//!        InRotation ──eject──► Ejected{until} ──timer: until──► InRotation (watched,
//!            ▲                                                  slow start, counters
//!            └──────── healthy for base_ejection_time: ejection count − 1   cleared)
//! ```
//!
//! Two detectors, as Envoy and Linkerd have them:
//! - **consecutive failures**: `consecutive_failures` failed calls in a row
//!   (default 5). It catches a pod that fails every call within a handful of
//!   calls, before it has taken a real share of the traffic.
//! - **failure rate**: over one `interval`, at least `min_calls` calls of
//!   which at least `threshold_percent` failed. It catches a pod that fails
//!   often but not always, which the first detector misses.
//!
//! Both are relative: an endpoint is ejected only while the *other*
//! endpoints fail less than the rate threshold. When every endpoint fails
//! (a shared dependency is down) ejecting some would only pile their share
//! on the others, which fail too; nobody is ejected. The cap and the panic
//! threshold bound the harm when that check is fooled.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The gRPC status codes by number, as written in configs
/// (`UNAVAILABLE`), for [`FaultCodes::names`]; users' names are read by
/// `podlb_upstream::retry::Codes::parse_code`, the one parser of codes.
pub const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The gRPC status codes that count as the endpoint's fault, as a set.
///
/// The default, UNAVAILABLE, INTERNAL, UNKNOWN and DATA_LOSS, are what a
/// server says when *it* is in trouble: it cannot serve now (UNAVAILABLE,
/// also what gRPC servers answer while shutting down or when a dependency is
/// down), it broke an invariant or crashed in a handler (INTERNAL, UNKNOWN:
/// an unhandled exception in grpcio or grpc-java) or lost data (DATA_LOSS).
/// The others answer the *call*, and another pod would answer the same:
/// NOT_FOUND, INVALID_ARGUMENT, ALREADY_EXISTS, OUT_OF_RANGE,
/// FAILED_PRECONDITION, ABORTED (a transaction conflict) are about the
/// request and the data; PERMISSION_DENIED and UNAUTHENTICATED about the
/// caller; UNIMPLEMENTED about the method (a rollout in progress would eject
/// every new pod); RESOURCE_EXHAUSTED is a quota or rate limit, usually per
/// caller; CANCELLED and DEADLINE_EXCEEDED sent by the backend mean the
/// caller gave up or its deadline was short. Counting them would eject
/// healthy pods for their clients' mistakes. (A backend that stays silent
/// until the deadline is counted separately, as an endpoint failure.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultCodes(u32);

impl FaultCodes {
    /// UNKNOWN (2), INTERNAL (13), UNAVAILABLE (14), DATA_LOSS (15).
    pub const DEFAULT: FaultCodes = FaultCodes((1 << 2) | (1 << 13) | (1 << 14) | (1 << 15));

    /// The set of the codes `codes` (numbers 0..=16; others are ignored).
    pub fn from_codes(codes: impl IntoIterator<Item = i32>) -> FaultCodes {
        let bits = codes
            .into_iter()
            .filter(|c| (0..CODE_NAMES.len() as i32).contains(c))
            .fold(0, |bits, c| bits | (1 << c));
        FaultCodes(bits)
    }

    /// Whether code number `code` counts as the endpoint's fault.
    pub fn contains(self, code: i32) -> bool {
        (0..32).contains(&code) && self.0 & (1 << code) != 0
    }

    /// The names of the codes in the set, in number order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        (0..CODE_NAMES.len()).filter_map(move |i| self.contains(i as i32).then_some(CODE_NAMES[i]))
    }
}

impl Default for FaultCodes {
    fn default() -> Self {
        FaultCodes::DEFAULT
    }
}

/// How one call counts for its endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The endpoint did its job (any status not in [`FaultCodes`]).
    Success,
    /// The endpoint failed the call: a status in [`FaultCodes`], a broken
    /// stream or connection, or silence until the deadline.
    Failure,
    /// Says nothing about the endpoint (the caller cancelled, the call
    /// never reached it).
    Ignored,
}

/// The failure-rate detector's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRate {
    /// The share of failed calls, in percent, at or above which an endpoint
    /// is ejected. Default 50: a pod failing every other call is sick;
    /// below that, retries (which go to another endpoint) cope better than
    /// losing a pod's capacity.
    pub threshold_percent: u8,
    /// The fewest calls in one interval for the rate to count. Default 20:
    /// at fewer, a handful of unlucky calls would look like 50%.
    pub min_calls: u32,
    /// The window the rate is measured over. Default 10 s, Envoy's
    /// `interval`: long enough for `min_calls` at modest load, short enough
    /// to react within seconds.
    pub interval: Duration,
}

impl Default for FailureRate {
    fn default() -> Self {
        FailureRate {
            threshold_percent: 50,
            min_calls: 20,
            interval: Duration::from_secs(10),
        }
    }
}

/// Outlier detection of one upstream. On by default; every value below is
/// its default, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierSettings {
    /// Whether endpoints are ejected at all. Default true. Off, outcomes
    /// are still classified (for the `peak_ewma` failure penalty) but no
    /// endpoint leaves rotation.
    pub enabled: bool,
    /// Which gRPC statuses count as the endpoint's fault; see [`FaultCodes`].
    pub fault_codes: FaultCodes,
    /// Failed calls in a row that eject an endpoint; `None` turns this
    /// detector off. Default 5 (Envoy's; Linkerd's failure accrual uses 7):
    /// few enough that a pod failing fast costs a handful of calls, enough
    /// that a couple of unlucky calls do not eject a healthy pod.
    pub consecutive_failures: Option<u32>,
    /// The failure-rate detector; `None` turns it off.
    pub failure_rate: Option<FailureRate>,
    /// How long a first ejection lasts; the n-th in a row lasts n times as
    /// long. Default 10 s: a pod whose dependency blipped is back soon, and
    /// one that is still sick fails a few calls every 10 s, then 20, 30...
    pub base_ejection_time: Duration,
    /// The longest ejection. Default 5 min (Envoy's `max_ejection_time`):
    /// even a pod that keeps failing is tried again now and then.
    pub max_ejection_time: Duration,
    /// The most endpoints that may be ejected at once, in percent of the
    /// upstream's endpoints, but always at least one when there are two or
    /// more (and never all). Default 50: one of 2 and one of 3 pods can be
    /// ejected (Envoy's 10% ejects none of fewer than 10), and at least
    /// half the pods always take calls.
    pub max_ejected_percent: u8,
    /// When fewer than this percent of the connected endpoints are in
    /// rotation, ejections are ignored and calls go to every connected
    /// endpoint (Envoy's panic threshold, same default 50): spreading over
    /// sick pods beats piling everything on one or failing every call.
    pub panic_threshold_percent: u8,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        OutlierSettings {
            enabled: true,
            fault_codes: FaultCodes::DEFAULT,
            consecutive_failures: Some(5),
            failure_rate: Some(FailureRate::default()),
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(300),
            max_ejected_percent: 50,
            panic_threshold_percent: 50,
        }
    }
}

impl OutlierSettings {
    /// Outlier detection off: no endpoint is ever ejected.
    pub fn disabled() -> Self {
        OutlierSettings {
            enabled: false,
            ..OutlierSettings::default()
        }
    }

    /// The verdict on a call the endpoint answered with status number `code`.
    pub fn verdict_of_status(&self, code: i32) -> Verdict {
        match self.fault_codes.contains(code) {
            true => Verdict::Failure,
            false => Verdict::Success,
        }
    }

    /// The failure share, in percent, at or above which the *other*
    /// endpoints count as failing too (a shared outage): the rate
    /// detector's threshold, or 50 when that detector is off.
    fn shared_outage_percent(&self) -> u8 {
        self.failure_rate.map_or(50, |r| r.threshold_percent)
    }
}

/// Which detector tripped, with what it counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trip {
    /// This many failed calls in a row.
    ConsecutiveFailures {
        /// Failed calls in a row.
        failures: u32,
    },
    /// `failed` of `calls` calls in one interval.
    FailureRate {
        /// Failed calls in the interval.
        failed: u32,
        /// Calls in the interval.
        calls: u32,
    },
}

impl std::fmt::Display for Trip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Trip::ConsecutiveFailures { failures } => {
                write!(f, "{failures} consecutive failures")
            }
            Trip::FailureRate { failed, calls } => write!(
                f,
                "failure rate {failed} of {calls} calls ({}%)",
                failed * 100 / calls.max(1)
            ),
        }
    }
}

/// One ejection: why, how many in a row, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ejection {
    /// The detector that tripped.
    pub trip: Trip,
    /// The ejection's number in a row (1 for the first; decays by one per
    /// `base_ejection_time` in rotation).
    pub count: u32,
    /// When it began, as time since the caller's epoch.
    pub since: Duration,
    /// When it ends, as time since the caller's epoch.
    pub until: Duration,
}

/// Why a tripped detector did not eject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Ejecting one more would exceed the cap.
    Cap {
        /// Endpoints ejected now.
        ejected: usize,
        /// The most that may be.
        max: usize,
    },
    /// The other endpoints fail as much: a shared dependency, not this pod.
    SharedOutage {
        /// Failed calls of the others, in their recent windows.
        failed: u64,
        /// Calls of the others.
        calls: u64,
    },
}

/// The most of `total` endpoints that may be ejected at once with a cap of
/// `percent`: at least one of two or more (so small Services are
/// protected), never all.
pub fn max_ejected(total: usize, percent: u8) -> usize {
    if percent == 0 || total < 2 {
        return 0;
    }
    (total * usize::from(percent.min(100)) / 100)
        .max(1)
        .min(total - 1)
}

/// Whether an endpoint whose detector tripped may be ejected, given how
/// many of `total` are ejected now and the `(failed, calls)` of the others.
pub fn ejection_allowed(
    settings: &OutlierSettings,
    total: usize,
    ejected: usize,
    others: (u64, u64),
) -> Result<(), Refusal> {
    let max = max_ejected(total, settings.max_ejected_percent);
    if ejected >= max {
        return Err(Refusal::Cap { ejected, max });
    }
    let (failed, calls) = others;
    if calls > 0 && failed * 100 >= u64::from(settings.shared_outage_percent()) * calls {
        return Err(Refusal::SharedOutage { failed, calls });
    }
    Ok(())
}

/// The health counters of one endpoint. Recording a call is a few relaxed
/// atomics; only an ejection (rare) takes a lock.
#[derive(Debug, Default)]
pub struct OutlierTracker {
    consecutive: AtomicU32,
    /// The index of the interval the current counters belong to (time
    /// since the epoch / interval).
    window: AtomicU64,
    ok: AtomicU32,
    failed: AtomicU32,
    prev_ok: AtomicU32,
    prev_failed: AtomicU32,
    /// When the current ejection ends, nanoseconds since the epoch; 0 when
    /// in rotation. The hot path's only view of ejection.
    ejected_until: AtomicU64,
    history: Mutex<History>,
}

/// What an endpoint's past ejections leave behind; changed only on an
/// ejection or a return.
#[derive(Debug, Default, Clone, Copy)]
struct History {
    /// Ejections in a row, before decay.
    count: u32,
    /// When it last returned to rotation.
    returned: Duration,
    /// The ejection under way.
    current: Option<Ejection>,
}

impl OutlierTracker {
    /// Counts one call at `now` (time since a fixed epoch). Returns the
    /// detector that tripped, if one did: the caller then asks the set
    /// whether to eject ([`ejection_allowed`]) and calls
    /// [`OutlierTracker::eject`].
    pub fn record(
        &self,
        verdict: Verdict,
        now: Duration,
        settings: &OutlierSettings,
    ) -> Option<Trip> {
        if !settings.enabled || verdict == Verdict::Ignored {
            return None;
        }
        // The windows roll even with the rate detector off: the shared
        // outage check reads them.
        let rate = settings.failure_rate.unwrap_or_default();
        let rate_trip = self
            .roll(now, &rate)
            .filter(|_| settings.failure_rate.is_some());
        let consecutive_trip = match verdict {
            Verdict::Success => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                self.consecutive.store(0, Ordering::Relaxed);
                None
            }
            _ => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let failures = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
                // Tripping again every further `threshold` failures (not on
                // each) bounds how often a refused ejection is asked again.
                settings
                    .consecutive_failures
                    .filter(|&t| t > 0 && failures.is_multiple_of(t))
                    .map(|_| Trip::ConsecutiveFailures { failures })
            }
        };
        if self.is_ejected() {
            // Calls that were in flight when it was ejected say nothing new.
            return None;
        }
        consecutive_trip.or(rate_trip)
    }

    /// Moves the counters to a new interval when `now` is in one; returns a
    /// trip if the interval that just ended had too many failures.
    fn roll(&self, now: Duration, rate: &FailureRate) -> Option<Trip> {
        let index = window_index(now, rate.interval);
        let current = self.window.load(Ordering::Relaxed);
        if index == current
            || self
                .window
                .compare_exchange(current, index, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        // A call counted between these swaps lands in the wrong interval:
        // one sample, harmless.
        let (ok, failed) = (
            self.ok.swap(0, Ordering::Relaxed),
            self.failed.swap(0, Ordering::Relaxed),
        );
        let adjacent = index == current + 1;
        let (ok, failed) = if adjacent { (ok, failed) } else { (0, 0) };
        self.prev_ok.store(ok, Ordering::Relaxed);
        self.prev_failed.store(failed, Ordering::Relaxed);
        let calls = ok + failed;
        (calls >= rate.min_calls.max(1)
            && u64::from(failed) * 100 >= u64::from(rate.threshold_percent) * u64::from(calls))
        .then_some(Trip::FailureRate { failed, calls })
    }

    /// `(failed, calls)` over the last interval and the current one, as of
    /// `now`: what the other endpoints are compared by.
    pub fn recent(&self, now: Duration, settings: &OutlierSettings) -> (u64, u64) {
        let interval = settings.failure_rate.unwrap_or_default().interval;
        let index = window_index(now, interval);
        let window = self.window.load(Ordering::Relaxed);
        let load = |a: &AtomicU32| u64::from(a.load(Ordering::Relaxed));
        let (cur_ok, cur_failed) = (load(&self.ok), load(&self.failed));
        let (prev_ok, prev_failed) = (load(&self.prev_ok), load(&self.prev_failed));
        let (failed, ok) = match index.saturating_sub(window) {
            0 => (cur_failed + prev_failed, cur_ok + prev_ok),
            1 => (cur_failed, cur_ok),
            _ => (0, 0),
        };
        (failed, failed + ok)
    }

    /// Whether the endpoint is out of rotation now.
    pub fn is_ejected(&self) -> bool {
        self.ejected_until.load(Ordering::Relaxed) != 0
    }

    /// The ejection under way, if any.
    pub fn ejection(&self) -> Option<Ejection> {
        self.history().current
    }

    /// Ejects the endpoint at `now` for `trip`: for `base_ejection_time`
    /// times the ejections in a row, which decay by one per
    /// `base_ejection_time` spent in rotation since the last return;
    /// capped at `max_ejection_time`. Returns the ejection; its `until` is
    /// when the caller's timer calls [`OutlierTracker::end_ejection`].
    pub fn eject(&self, trip: Trip, now: Duration, settings: &OutlierSettings) -> Ejection {
        let mut history = self.history();
        let base = settings.base_ejection_time.max(Duration::from_millis(1));
        let healthy_for = now.saturating_sub(history.returned);
        let decay = (healthy_for.as_nanos() / base.as_nanos()).min(u128::from(u32::MAX)) as u32;
        let count = history.count.saturating_sub(decay).saturating_add(1);
        let length = base
            .saturating_mul(count)
            .min(settings.max_ejection_time.max(base));
        let ejection = Ejection {
            trip,
            count,
            since: now,
            until: now + length,
        };
        history.count = count;
        history.current = Some(ejection);
        self.ejected_until
            .store(nanos(ejection.until).max(1), Ordering::Relaxed);
        *self.history.lock().unwrap_or_else(PoisonError::into_inner) = history;
        ejection
    }

    /// Brings the endpoint back into rotation at `now`, if its ejection is
    /// over (a stale timer of an earlier ejection does nothing). Its
    /// counters start afresh, so it is watched anew: failing again ejects it
    /// for longer. Returns the ejection that ended.
    pub fn end_ejection(&self, now: Duration) -> Option<Ejection> {
        let mut guard = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        let ejection = guard.current.filter(|e| e.until <= now)?;
        guard.current = None;
        guard.returned = now;
        self.consecutive.store(0, Ordering::Relaxed);
        for counter in [&self.ok, &self.failed, &self.prev_ok, &self.prev_failed] {
            counter.store(0, Ordering::Relaxed);
        }
        self.ejected_until.store(0, Ordering::Relaxed);
        Some(ejection)
    }

    fn history(&self) -> History {
        *self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn window_index(now: Duration, interval: Duration) -> u64 {
    (now.as_nanos() / interval.as_nanos().max(1)).min(u128::from(u64::MAX)) as u64
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

/// The smallest share a warming endpoint gets, so that one that just came
/// back takes *some* calls at once (a pod back in rotation must see calls
/// within a second).
pub const MIN_WARMTH: f64 = 0.1;

/// Slow start of one endpoint: after it becomes ready (new, reconnected, or
/// back from an ejection) its share ramps up linearly from
/// [`MIN_WARMTH`] to full over a window, as Envoy's `slow_start_config`
/// does. Reading it is one relaxed atomic when it is not warming.
#[derive(Debug, Default)]
pub struct SlowStart {
    /// When the ramp began, nanoseconds since the epoch, plus one; 0 when
    /// the endpoint is at full share.
    since: AtomicU64,
}

impl SlowStart {
    /// Starts the ramp at `now`.
    pub fn restart(&self, now: Duration) {
        self.since.store(nanos(now) + 1, Ordering::Relaxed);
    }

    /// Whether a ramp is under way (cheap; no clock needed).
    pub fn is_warming(&self) -> bool {
        self.since.load(Ordering::Relaxed) != 0
    }

    /// The endpoint's share factor at `now`, in [`MIN_WARMTH`]..=1, over a
    /// ramp of `window`.
    pub fn warmth(&self, now: Duration, window: Duration) -> f64 {
        let since = self.since.load(Ordering::Relaxed);
        if since == 0 {
            return 1.0;
        }
        let elapsed = nanos(now).saturating_sub(since - 1);
        if window.is_zero() || elapsed >= nanos(window) {
            // Warm: later reads skip the clock.
            let _ = self
                .since
                .compare_exchange(since, 0, Ordering::Relaxed, Ordering::Relaxed);
            return 1.0;
        }
        (elapsed as f64 / window.as_nanos() as f64).max(MIN_WARMTH)
    }
}

#[cfg(test)]
mod tests;
