//! When a connection is pinged, as a pure state machine: told what each
//! look saw (and when), it says when to look next or which PING to send.
//! No I/O, no clock of its own: every rule of `keepalive.rs` is tested
//! here on paused time.
//!
//! ```text
//!  look(now, read?, calls in flight?, HEADERS/DATA since the last PONG?)
//!    ├─ keepalive due (nothing read for the interval)  ─► Ping(Keepalive)
//!    ├─ stalled (calls in flight, nothing read for
//!    │  stall_after) and armed                         ─► Ping(Stall)
//!    └─ else                                           ─► LookAt(next look)
//!  answered(now, kind)  ─► quiet again; a stall PING disarms until
//!                          HEADERS/DATA after its PONG, or REARM_AFTER
//! ```

use std::time::Duration;

use tokio::time::Instant;

/// After this long since the last PING, another is never a ping strike:
/// the default minimum interval of grpc-go, grpc-java and C-core servers
/// (`min_time`, `permitKeepAliveTime`,
/// `GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS`).
pub(crate) const REARM_AFTER: Duration = Duration::from_secs(5 * 60);

/// When a connection with calls in flight is pinged for a stall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StallRule {
    /// How long it may read nothing, with calls in flight, before a PING.
    pub(crate) after: Duration,
    /// How long the PING may go unanswered (nothing read) before the
    /// connection is dead.
    pub(crate) timeout: Duration,
}

/// What one look at the connection saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Look {
    /// A byte was read since the previous look.
    pub(crate) read: bool,
    /// Calls are in flight on it.
    pub(crate) busy: bool,
    /// HEADERS or DATA was read after the last PING ACK.
    pub(crate) spoke: bool,
}

/// Which PING to send, and for what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PingKind {
    /// gRFC A8's keepalive, due after `interval` of silence.
    Keepalive {
        /// The interval it was due at.
        interval: Duration,
    },
    /// Calls in flight and silence: answered within `timeout` or dead.
    Stall {
        /// How long it may go unanswered.
        timeout: Duration,
    },
}

/// What the watch does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Look again then.
    LookAt(Instant),
    /// Send this PING now, then report [`Schedule::answered`].
    Ping(PingKind),
    /// Neither keepalive nor stall detection is on: nothing, ever.
    Sleep,
}

/// One connection's PING schedule.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    stall: Option<StallRule>,
    /// A keepalive PING is due then, at this interval: the interval after
    /// the last look that saw a read (the wait under way keeps its
    /// interval when the endpoint's doubles).
    keepalive_due: Option<(Instant, Duration)>,
    /// Since when calls have been in flight with nothing read: the first
    /// look of the run that saw it (a call that began between two looks
    /// counts from the second).
    stalled_since: Option<Instant>,
    /// A stall PING may be sent.
    armed: bool,
    /// When the last PING of either kind went out.
    last_ping: Option<Instant>,
}

impl Schedule {
    /// A connection that has just been heard from, at `now`.
    pub(crate) fn new(now: Instant, stall: Option<StallRule>, interval: Option<Duration>) -> Self {
        Schedule {
            stall,
            keepalive_due: interval.map(|every| (now + every, every)),
            stalled_since: None,
            armed: true,
            last_ping: None,
        }
    }

    /// What `seen` at `now` calls for; `interval` is the endpoint's
    /// keepalive interval now.
    pub(crate) fn look(&mut self, now: Instant, seen: Look, interval: Option<Duration>) -> Next {
        if seen.read {
            self.heard(now, interval);
        }
        if seen.spoke || self.last_ping.is_some_and(|at| now >= at + REARM_AFTER) {
            self.armed = true;
        }
        self.stalled_since = match (seen.busy, seen.read) {
            (false, _) => None,
            (true, true) => Some(now),
            (true, false) => Some(self.stalled_since.unwrap_or(now)),
        };
        if let (Some(stall), Some(since)) = (self.stall, self.stalled_since)
            && self.armed
            && now >= since + stall.after
        {
            return self.ping(
                now,
                PingKind::Stall {
                    timeout: stall.timeout,
                },
            );
        }
        if let Some((due, every)) = self.keepalive_due
            && now >= due
        {
            return self.ping(now, PingKind::Keepalive { interval: every });
        }
        // Looks at half the stall time: a stall is seen between
        // `after` and 1.5 x `after` after the last read, at two wake-ups a
        // second per connection by default.
        let stall_look = self
            .stall
            .map(|stall| now + (stall.after / 2).max(MIN_LOOK));
        match (stall_look, self.keepalive_due.map(|(due, _)| due)) {
            (Some(a), Some(b)) => Next::LookAt(a.min(b)),
            (Some(at), None) | (None, Some(at)) => Next::LookAt(at),
            (None, None) => Next::Sleep,
        }
    }

    /// The PING of `kind` was answered at `now`: the connection is quiet
    /// again from here, and a stall PING disarms.
    pub(crate) fn answered(&mut self, now: Instant, kind: PingKind, interval: Option<Duration>) {
        self.heard(now, interval);
        self.stalled_since = None;
        if let PingKind::Stall { .. } = kind {
            self.armed = false;
        }
    }

    fn ping(&mut self, now: Instant, kind: PingKind) -> Next {
        self.last_ping = Some(now);
        Next::Ping(kind)
    }

    fn heard(&mut self, now: Instant, interval: Option<Duration>) {
        self.keepalive_due = interval.map(|every| (now + every, every));
    }
}

/// The shortest time between two looks, whatever `stall_after` says: a
/// timer per connection firing faster than this costs more than it finds.
const MIN_LOOK: Duration = Duration::from_millis(10);

#[cfg(test)]
mod tests;
