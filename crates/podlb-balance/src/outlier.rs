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

pub use podlb_core::outlier::{CODE_NAMES, FailureRate, FaultCodes, OutlierSettings, Verdict};

/// The failure share, in percent, at or above which the *other* endpoints
/// count as failing too (a shared outage): the rate detector's threshold,
/// or 50 when that detector is off.
fn shared_outage_percent(settings: &OutlierSettings) -> u8 {
    settings.failure_rate.map_or(50, |r| r.threshold_percent)
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
    if calls > 0 && failed * 100 >= u64::from(shared_outage_percent(settings)) * calls {
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
