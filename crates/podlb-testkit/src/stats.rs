//! Call counters of one test backend, and the drop guard that feeds them.
//!
//! Every call a handler starts holds a [`CallGuard`]; the guard counts the
//! call as finished when the handler says so, and as cancelled when it is
//! dropped first (hyper drops the handler's future, or the response stream,
//! when the client resets the stream, the deadline passes or the connection
//! dies). Tests read the counts or await them through a `watch` channel, so
//! they never sleep to see a cancel.

use std::sync::Arc;

use tokio::sync::watch;

use crate::targeting::AttemptRecord;

/// A snapshot of a backend's call counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// Calls whose handler started.
    pub started: u64,
    /// Calls that ended with a status (OK or an error) sent by the handler.
    pub finished: u64,
    /// Calls whose handler future or response stream was dropped before it
    /// finished: the backend saw the cancel.
    pub cancelled: u64,
}

impl CallCounts {
    /// Calls started and neither finished nor cancelled yet.
    pub fn in_flight(&self) -> u64 {
        self.started - self.finished - self.cancelled
    }
}

/// Shared, cloneable view of a backend's call counters; it outlives the
/// backend, so a test can still read it after a kill or a shutdown.
#[derive(Debug, Clone, Default)]
pub struct CallStats {
    counts: Arc<watch::Sender<CallCounts>>,
    attempts: Arc<std::sync::Mutex<Vec<AttemptRecord>>>,
}

impl CallStats {
    /// The counters now.
    pub fn counts(&self) -> CallCounts {
        *self.counts.borrow()
    }

    /// Calls whose handler started.
    pub fn calls_started(&self) -> u64 {
        self.counts().started
    }

    /// Calls that ended with a status sent by the handler.
    pub fn calls_finished(&self) -> u64 {
        self.counts().finished
    }

    /// Calls the backend saw cancelled.
    pub fn calls_cancelled(&self) -> u64 {
        self.counts().cancelled
    }

    /// Calls started and not yet ended.
    pub fn calls_in_flight(&self) -> u64 {
        self.counts().in_flight()
    }

    /// Waits until `pred` holds for the counters and returns them.
    pub async fn wait_for(&self, mut pred: impl FnMut(&CallCounts) -> bool) -> CallCounts {
        let mut rx = self.counts.subscribe();
        let counts = rx
            .wait_for(|c| pred(c))
            .await
            .expect("the stats hold the sender, so it is never closed");
        *counts
    }

    /// Waits until at least `n` calls have started.
    pub async fn wait_for_started(&self, n: u64) -> CallCounts {
        self.wait_for(|c| c.started >= n).await
    }

    /// Waits until at least `n` calls have finished.
    pub async fn wait_for_finished(&self, n: u64) -> CallCounts {
        self.wait_for(|c| c.finished >= n).await
    }

    /// Waits until the backend has seen at least `n` cancelled calls.
    pub async fn wait_for_cancelled(&self, n: u64) -> CallCounts {
        self.wait_for(|c| c.cancelled >= n).await
    }

    /// Every call the handlers recorded, in the order they ended: its
    /// `grpc-previous-rpc-attempts` and the messages it read.
    pub fn attempts(&self) -> Vec<AttemptRecord> {
        self.attempts.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Records what one call looked like (see [`CallStats::attempts`]).
    pub(crate) fn record_attempt(&self, record: AttemptRecord) {
        if let Ok(mut attempts) = self.attempts.lock() {
            attempts.push(record);
        }
    }

    /// Counts a call as started and returns the guard that ends it.
    pub(crate) fn start_call(&self) -> CallGuard {
        self.counts.send_modify(|c| c.started += 1);
        CallGuard {
            stats: self.clone(),
            ended: false,
        }
    }
}

/// Held by one call; counts it cancelled if dropped before [`CallGuard::finish`].
#[derive(Debug)]
pub(crate) struct CallGuard {
    stats: CallStats,
    ended: bool,
}

impl CallGuard {
    /// The handler produced the call's final status.
    pub(crate) fn finish(&mut self) {
        if !self.ended {
            self.ended = true;
            self.stats.counts.send_modify(|c| c.finished += 1);
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if !self.ended {
            self.ended = true;
            self.stats.counts.send_modify(|c| c.cancelled += 1);
        }
    }
}
