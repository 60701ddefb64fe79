//! An endpoint's side of outlier detection and slow start: each call's
//! outcome is judged, counted and, rarely, ejects the endpoint; a timer
//! brings it back. The detectors, the schedule and the cap are the pure
//! `podlb_balance::outlier`; this module does the I/O around them (the
//! set's writer lock, the timer task, the logs).
//!
//! ```text
//!  CallLease dropped ─► record_outcome ─► verdict (fault codes) ─┬─► failure: peak_ewma penalty
//!                                                               └─► OutlierTracker::record
//!                                  a detector tripped (rare) ◄──────────┘
//!   set.update (writer lock): cap, shared outage? ─► eject ─► ready snapshot rebuilt, log
//!   tokio sleep until the end ─► end_ejection ─► snapshot rebuilt, slow start, log
//! ```
//!
//! The per-call path is a few relaxed atomics; only an ejection or a return
//! takes a lock or spawns a task.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use podlb_balance::outlier::{Ejection, Refusal, Trip, ejection_allowed};
use podlb_balance::{Load, Verdict};
use tokio::time::Instant;

use super::{EndpointConnection, since_epoch};
use crate::outcome::CallOutcome;

/// Why and until when an endpoint is out of rotation, for status views
/// (`podlb resolve`, `Channel::endpoints()`, the proxy's handle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectionStatus {
    /// The detector that tripped, with the count or rate it saw.
    pub trip: Trip,
    /// Its number among the ejections in a row (each lasts longer).
    pub count: u32,
    /// When it returns to rotation, by the wall clock.
    pub until: SystemTime,
    /// How long until then, from when the status was read.
    pub remaining: Duration,
}

impl std::fmt::Display for EjectionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ejected after {} (ejection {} in a row), back at {} (in {})",
            self.trip,
            self.count,
            humantime::format_rfc3339_millis(self.until),
            humantime::format_duration(round_ms(self.remaining)),
        )
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().min(u128::from(u64::MAX)) as u64)
}

/// How a call's outcome counts for its endpoint, by `codes`.
fn verdict(outcome: CallOutcome, settings: &podlb_balance::OutlierSettings) -> Verdict {
    match outcome {
        CallOutcome::Neutral => Verdict::Ignored,
        CallOutcome::EndpointFailed => Verdict::Failure,
        CallOutcome::Status(code) => settings.verdict_of_status(code as i32),
    }
}

impl EndpointConnection {
    /// Counts how a call that began at `started` went on the endpoint, once
    /// per call (from its lease's drop): a failure's latency penalty for
    /// `peak_ewma`, and the outlier detectors, which may eject it.
    pub(super) fn record_outcome(self: &Arc<Self>, outcome: CallOutcome, started: Instant) {
        let settings = **self.outlier_settings.load();
        let verdict = verdict(outcome, &settings);
        if verdict == Verdict::Ignored {
            return;
        }
        let now = Instant::now();
        let since = since_epoch(now);
        if verdict == Verdict::Failure {
            self.load
                .observe_failure(now.saturating_duration_since(started), since);
        }
        if let Some(trip) = self.outlier.record(verdict, since, &settings) {
            self.try_eject(trip);
        }
    }

    /// A detector tripped: ejects the endpoint unless the cap is reached or
    /// the others fail as much. Under the set's writer lock, so two
    /// endpoints tripping at once cannot both pass the cap.
    fn try_eject(self: &Arc<Self>, trip: Trip) {
        let Some(set) = self.set.upgrade() else {
            return;
        };
        let settings = **self.outlier_settings.load();
        let decided = set.update(|all| {
            if self.outlier.is_ejected() {
                return None;
            }
            let now = since_epoch(Instant::now());
            let ejected = all.iter().filter(|e| e.is_ejected()).count();
            let others = all
                .iter()
                .filter(|e| !Arc::ptr_eq(e, self) && !e.is_ejected())
                .map(|e| e.outlier.recent(now, &settings))
                .fold((0, 0), |(f, c), (ef, ec)| (f + ef, c + ec));
            Some(
                ejection_allowed(&settings, all.len(), ejected, others)
                    .map(|()| self.outlier.eject(trip, now, &settings)),
            )
        });
        match decided {
            None => {}
            Some(Ok(ejection)) => self.ejected(ejection, set.is_panicking()),
            Some(Err(refusal)) => self.refused(trip, refusal),
        }
    }

    /// Logs the ejection and starts the timer that brings it back.
    fn ejected(self: &Arc<Self>, ejection: Ejection, panicking: bool) {
        let status = self.status_of(ejection);
        let length = ejection.until.saturating_sub(ejection.since);
        tracing::warn!(
            upstream = %self.upstream, endpoint = %self.addr, detector = %ejection.trip,
            ejection = ejection.count, ejected_for = ?length,
            until = %humantime::format_rfc3339_millis(status.until),
            "endpoint ejected after {}: out of rotation for {} (ejection {} in a row), until {}{}",
            ejection.trip, humantime::format_duration(round_ms(length)), ejection.count,
            humantime::format_rfc3339_millis(status.until),
            if panicking { "; too few endpoints left in rotation: calls still go to every connected one (panic threshold)" } else { "" },
        );
        let endpoint = Arc::downgrade(self);
        let wake_at = instant_of(ejection.until);
        // One sleep per ejection (rare), not a check on every call.
        tokio::spawn(async move {
            tokio::time::sleep_until(wake_at).await;
            if let Some(endpoint) = endpoint.upgrade() {
                endpoint.end_ejection();
            }
        });
    }

    fn refused(&self, trip: Trip, refusal: Refusal) {
        match refusal {
            Refusal::Cap { ejected, max } => tracing::info!(
                upstream = %self.upstream, endpoint = %self.addr, detector = %trip,
                "not ejected after {trip}: {ejected} of at most {max} endpoints are ejected already"
            ),
            Refusal::SharedOutage { failed, calls } => tracing::debug!(
                upstream = %self.upstream, endpoint = %self.addr, detector = %trip,
                "not ejected after {trip}: the other endpoints failed {failed} of {calls} calls too (a shared outage)"
            ),
        }
    }

    /// The ejection is over: back in rotation, with fresh counters, a
    /// neutral latency estimate and slow start.
    fn end_ejection(&self) {
        let now = since_epoch(Instant::now());
        let Some(ejection) = self.outlier.end_ejection(now) else {
            return;
        };
        self.load.reset_estimate(now);
        self.slow_start.restart(now);
        if let Some(set) = self.set.upgrade() {
            set.refresh_ready();
        }
        self.waiters.changed();
        tracing::info!(
            upstream = %self.upstream, endpoint = %self.addr,
            "endpoint back in rotation after ejection {} (for {}); failing again ejects it for longer",
            ejection.count, ejection.trip,
        );
    }

    /// Why and until when the endpoint is out of rotation, if it is.
    pub fn ejection(&self) -> Option<EjectionStatus> {
        self.outlier.ejection().map(|e| self.status_of(e))
    }

    fn status_of(&self, ejection: Ejection) -> EjectionStatus {
        let remaining = ejection.until.saturating_sub(since_epoch(Instant::now()));
        EjectionStatus {
            trip: ejection.trip,
            count: ejection.count,
            until: SystemTime::now() + remaining,
            remaining,
        }
    }

    /// The slow-start share factor now (1 when warm).
    pub(super) fn warmth_now(&self) -> f64 {
        if !self.slow_start.is_warming() {
            return 1.0;
        }
        self.slow_start
            .warmth(since_epoch(Instant::now()), self.slow_start_window)
    }
}

/// The instant at `offset` after the latency estimates' epoch.
fn instant_of(offset: Duration) -> Instant {
    let now = Instant::now();
    now + offset.saturating_sub(since_epoch(now))
}
