//! The lifecycle of one endpoint's connections, as a pure state machine:
//! it is told what happened (and when), and says where the endpoint stands
//! and what its driver does next. No I/O, no clock, no randomness of its
//! own, so every transition is unit-tested on paused time.
//!
//! ```text
//!                          ConnectOk
//!       ┌─────────────────────────────────────────────┐
//!       │              ConnectionLost(0)              ▼
//!   Connecting ◄────────────────────────────────── Ready ◄─┐ AllFull: opens one
//!    │     ▲                                      │  ▲  └──┘ more connection,
//!    │     │ BackoffOver                 Goaway(0)│  │ConnectOk  stays Ready
//!    │     │                                      ▼  │
//!    │  BackingOff ◄────── ConnectFailed ─────── Draining
//!    │     ▲
//!    └─────┘ ConnectFailed
//!
//!   any state ── Removed ──► Removed   (terminal: nothing leaves it)
//! ```
//!
//! - **Connecting**: no connection can take calls; one is being opened.
//! - **Ready**: at least one connection can take calls. When every one is
//!   at the backend's stream limit (`AllFull`) another is opened; a failure
//!   to open it backs off without leaving Ready.
//! - **Draining**: every connection said GOAWAY; calls on them finish while
//!   a new connection is opened. No new calls.
//! - **BackingOff**: the last connect failed and no connection can take
//!   calls; the next attempt waits for a jittered, doubling delay.
//! - **Removed**: discovery dropped the endpoint; calls in flight finish on
//!   their leases, no new ones, no reconnects. Nothing leaves it.
//!
//! Only Ready takes calls, so "a removed or disconnected endpoint is never
//! picked" holds as long as the ready snapshot is rebuilt on every change
//! of state (tested below, with the endpoint set).
//!
//! The driver (`drive` in `endpoint.rs`) is a thin I/O loop over it: it does
//! what [`Lifecycle::decision`] says, then reports the outcome as an
//! [`Event`].

use std::time::Duration;

use tokio::time::Instant;

use crate::Backoff;

/// Where an endpoint stands, for logs and status views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointState {
    /// Opening its first connection, or a new one after losing them all.
    Connecting,
    /// At least one connection can take calls.
    Ready,
    /// Every connection said GOAWAY: their calls finish while a new one
    /// opens; no new calls.
    Draining,
    /// The last connect failed; waiting before the next attempt.
    BackingOff,
    /// Discovery removed it; calls in flight finish, no new ones.
    Removed,
}

impl EndpointState {
    /// The state as one byte, for a lock-free mirror.
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            EndpointState::Connecting => 0,
            EndpointState::Ready => 1,
            EndpointState::Draining => 2,
            EndpointState::BackingOff => 3,
            EndpointState::Removed => 4,
        }
    }

    /// The inverse of [`EndpointState::to_u8`].
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            0 => EndpointState::Connecting,
            1 => EndpointState::Ready,
            2 => EndpointState::Draining,
            3 => EndpointState::BackingOff,
            _ => EndpointState::Removed,
        }
    }
}

/// Something that happened to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A connect attempt ended with a connection that can take calls.
    ConnectOk,
    /// A connect attempt failed.
    ConnectFailed,
    /// Connections broke or closed; `remaining` can still take calls.
    ConnectionLost {
        /// Connections that can still take calls.
        remaining: usize,
    },
    /// Connections said GOAWAY; `remaining` can still take calls.
    Goaway {
        /// Connections that can still take calls.
        remaining: usize,
    },
    /// Every connection is at the backend's stream limit.
    AllFull,
    /// The backoff delay is over.
    BackoffOver,
    /// Discovery dropped the endpoint.
    Removed,
}

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Open a connection now.
    Connect,
    /// Nothing to do until something happens.
    Wait,
    /// Back off until then (something may still happen meanwhile), then
    /// report [`Event::BackoffOver`].
    SleepUntil(Instant),
    /// The endpoint is removed: the driver ends.
    Stop,
}

/// One endpoint's lifecycle. Pure: told the time and its jitter.
#[derive(Debug, Clone)]
pub(crate) struct Lifecycle {
    state: EndpointState,
    /// Connections that can take calls.
    usable: usize,
    /// Every connection is full: open one more.
    want_more: bool,
    /// Backing off until then after a failed connect.
    backoff_until: Option<Instant>,
    backoff: Backoff,
    /// Whether the first connect attempt has ended (either way).
    settled: bool,
}

impl Lifecycle {
    /// A new endpoint: connecting at once; failed connects back off from
    /// `backoff_initial`, doubling up to `backoff_max`.
    pub(crate) fn new(backoff_initial: Duration, backoff_max: Duration) -> Self {
        Lifecycle {
            state: EndpointState::Connecting,
            usable: 0,
            want_more: false,
            backoff_until: None,
            backoff: Backoff::new(backoff_initial, backoff_max),
            settled: false,
        }
    }

    /// Where the endpoint stands.
    pub(crate) fn state(&self) -> EndpointState {
        self.state
    }

    /// Whether the first connect attempt is still under way.
    pub(crate) fn is_starting(&self) -> bool {
        !self.settled
    }

    /// What the driver does next, from where the endpoint stands.
    pub(crate) fn decision(&self) -> Decision {
        if self.state == EndpointState::Removed {
            Decision::Stop
        } else if let Some(until) = self.backoff_until {
            Decision::SleepUntil(until)
        } else if self.usable == 0 || self.want_more {
            Decision::Connect
        } else {
            Decision::Wait
        }
    }

    /// Applies `event`, which happened at `now`; `jitter` in `[0, 1)`
    /// spreads a backoff. Returns what the driver does next.
    pub(crate) fn on(&mut self, event: Event, now: Instant, jitter: f64) -> Decision {
        if self.state == EndpointState::Removed {
            return Decision::Stop;
        }
        match event {
            Event::ConnectOk => {
                self.usable += 1;
                self.want_more = false;
                self.backoff_until = None;
                self.backoff.reset();
                self.settled = true;
                self.state = EndpointState::Ready;
            }
            Event::ConnectFailed => {
                self.want_more = false;
                self.settled = true;
                self.backoff_until = Some(now + self.backoff.next_delay_with(jitter));
                if self.usable == 0 {
                    self.state = EndpointState::BackingOff;
                }
            }
            Event::ConnectionLost { remaining } => self.lost(remaining, EndpointState::Connecting),
            Event::Goaway { remaining } => self.lost(remaining, EndpointState::Draining),
            Event::AllFull => {
                // Only a Ready endpoint not backing off opens one more.
                if self.usable > 0 && self.backoff_until.is_none() {
                    self.want_more = true;
                }
            }
            Event::BackoffOver => {
                self.backoff_until = None;
                if self.usable == 0 {
                    self.state = EndpointState::Connecting;
                }
            }
            Event::Removed => {
                self.state = EndpointState::Removed;
                self.usable = 0;
                self.settled = true;
            }
        }
        self.decision()
    }

    /// Connections went away; with none left the endpoint is `reconnecting`
    /// (Connecting or Draining), or still BackingOff.
    fn lost(&mut self, remaining: usize, reconnecting: EndpointState) {
        self.usable = remaining;
        if remaining > 0 {
            return;
        }
        self.want_more = false;
        self.state = match self.backoff_until {
            Some(_) => EndpointState::BackingOff,
            None => reconnecting,
        };
    }
}

#[cfg(test)]
mod tests;
