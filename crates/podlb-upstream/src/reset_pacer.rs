//! Paces the cancels of a connection's streams the backend may not have
//! accepted yet, so that a client dropping hundreds of calls never makes the
//! backend close a connection other calls are using.
//!
//! Why: an h2 (hyper, tonic) server counts RST_STREAMs for streams still in
//! its accept queue (read, not yet taken by the server's accept loop), and
//! past `max_pending_accept_reset_streams` (20 by default) answers GOAWAY
//! ENHANCE_YOUR_CALM "too_many_resets" and closes the connection, failing
//! every call on it. A busy backend reads many HEADERS in one go; when a
//! client drops a connection with calls in flight, the proxy resets every
//! one of their backend streams at once, and the resets of the youngest
//! land in that queue. It is the rapid-reset defence (CVE-2023-44487)
//! seeing a proxy's honest cancels as an attack.
//!
//! How: streams are accepted in the order they were opened, so once the
//! backend has sent HEADERS on stream `n` (the GOAWAY sniffer sees every
//! frame read, `goaway.rs`), every stream up to `n` has left its accept
//! queue and a reset of it is free. A reset of a younger stream is sent at
//! once only while fewer than [`MAX_UNCONFIRMED`] such resets are
//! unconfirmed; the others wait in order. A reset is confirmed when the
//! backend answers its stream or a later one, or [`SETTLE`] after it was
//! sent (a backend reading at all takes a stream it has read within
//! microseconds; the wait only covers one that answers nothing).
//!
//! ```text
//!  cancel(stream n) ─┬─ n <= answered            ─► RST now
//!                    ├─ unconfirmed < MAX, none queued ─► RST now, unconfirmed += n
//!                    └─ else                      ─► queued (the stream stays open)
//!  HEADERS read on stream m (answered = m) ─┐
//!  SETTLE passed since an unconfirmed RST  ─┴─► confirm, release queued in order
//! ```
//!
//! Nothing here is on a call's ordinary path: the sniffer's cost is one
//! atomic `fetch_max` per HEADERS frame read, and a load of a flag.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use h2::{Reason, SendStream};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Resets of possibly unaccepted streams allowed unconfirmed at once: half
/// of h2's default `max_pending_accept_reset_streams` (20), so that even two
/// rounds landing in one accept queue stay under it.
pub(crate) const MAX_UNCONFIRMED: usize = 10;
/// How long after it was sent a reset counts as confirmed without an answer
/// from the backend.
pub(crate) const SETTLE: Duration = Duration::from_millis(500);

/// The reset pacing of one HTTP/2 connection to a backend.
#[derive(Debug, Default)]
pub(crate) struct ResetPacer {
    /// The highest stream id the backend has sent HEADERS on.
    answered: AtomicU32,
    /// Resets are queued: the sniffer wakes the pacing task.
    waiting: AtomicBool,
    wake: Notify,
    pacing: Mutex<Paced>,
}

#[derive(Debug, Default)]
struct Paced {
    pacing: Pacing<(SendStream<Bytes>, Reason)>,
    /// The task releasing queued resets runs.
    task: bool,
}

impl ResetPacer {
    /// Notes HEADERS from the backend on stream `id`. Called by the
    /// connection's reader for every HEADERS frame.
    pub(crate) fn answered(&self, id: u32) {
        let id = id & 0x7fff_ffff;
        if self.answered.load(Ordering::Relaxed) < id {
            self.answered.fetch_max(id, Ordering::Release);
            if self.waiting.load(Ordering::Relaxed) {
                self.wake.notify_one();
            }
        }
    }

    /// Resets `stream` with `reason` now, or as soon as that cannot make the
    /// backend close the connection (see the module doc).
    pub(crate) fn cancel(self: &Arc<Self>, stream: SendStream<Bytes>, reason: Reason) {
        let id = stream.stream_id().as_u32();
        let answered = self.answered.load(Ordering::Acquire);
        let mut paced = self.lock();
        match paced
            .pacing
            .cancel(id, (stream, reason), answered, Instant::now())
        {
            Some(reset) => {
                drop(paced);
                send_reset(reset);
            }
            None => {
                self.waiting.store(true, Ordering::Release);
                if !paced.task {
                    // A cancel can come from a drop outside any runtime
                    // (one shutting down): then nothing can wait, so the
                    // queue goes at once rather than never.
                    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                        let queued = std::mem::take(&mut paced.pacing.queued);
                        drop(paced);
                        queued.into_iter().for_each(|(_, reset)| send_reset(reset));
                        return;
                    };
                    paced.task = true;
                    runtime.spawn(self.clone().release_queued());
                }
            }
        }
    }

    /// Releases queued resets as they are confirmed; ends when none is left.
    async fn release_queued(self: Arc<Self>) {
        loop {
            let answered = self.answered.load(Ordering::Acquire);
            let (ready, next) = {
                let mut paced = self.lock();
                let ready = paced.pacing.release(answered, Instant::now());
                if paced.pacing.queued.is_empty() {
                    paced.task = false;
                    self.waiting.store(false, Ordering::Release);
                    (ready, None)
                } else {
                    (ready, paced.pacing.next_settle())
                }
            };
            for reset in ready {
                send_reset(reset);
            }
            let Some(next) = next else { return };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(next) => {}
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Paced> {
        // A panic elsewhere under the lock leaves consistent state.
        self.pacing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn send_reset((mut stream, reason): (SendStream<Bytes>, Reason)) {
    stream.send_reset(reason);
}

/// The pacing rules over stream ids, without I/O; `S` is what is reset.
#[derive(Debug)]
struct Pacing<S> {
    /// Resets sent for streams the backend had not answered: id, when.
    unconfirmed: VecDeque<(u32, Instant)>,
    /// Resets not sent yet, in the order asked: id, stream.
    queued: VecDeque<(u32, S)>,
}

impl<S> Default for Pacing<S> {
    fn default() -> Self {
        Pacing {
            unconfirmed: VecDeque::new(),
            queued: VecDeque::new(),
        }
    }
}

impl<S> Pacing<S> {
    /// A reset of stream `id`: `Some` to send it now, `None` when queued.
    fn cancel(&mut self, id: u32, stream: S, answered: u32, now: Instant) -> Option<S> {
        self.confirm(answered, now);
        if id <= answered {
            return Some(stream);
        }
        if self.queued.is_empty() && self.unconfirmed.len() < MAX_UNCONFIRMED {
            self.unconfirmed.push_back((id, now));
            return Some(stream);
        }
        self.queued.push_back((id, stream));
        None
    }

    /// The queued resets that may be sent now.
    fn release(&mut self, answered: u32, now: Instant) -> Vec<S> {
        self.confirm(answered, now);
        let mut ready = Vec::new();
        let mut kept = VecDeque::with_capacity(self.queued.len());
        for (id, stream) in self.queued.drain(..) {
            if id <= answered {
                ready.push(stream);
            } else if self.unconfirmed.len() < MAX_UNCONFIRMED {
                self.unconfirmed.push_back((id, now));
                ready.push(stream);
            } else {
                kept.push_back((id, stream));
            }
        }
        self.queued = kept;
        ready
    }

    /// When the oldest unconfirmed reset settles.
    fn next_settle(&self) -> Option<Instant> {
        self.unconfirmed
            .iter()
            .map(|&(_, sent)| sent + SETTLE)
            .min()
    }

    /// Forgets the resets the backend answered past, or that settled.
    fn confirm(&mut self, answered: u32, now: Instant) {
        self.unconfirmed
            .retain(|&(id, sent)| id > answered && sent + SETTLE > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cancels of streams 1, 3, 5... (client stream ids); returns those sent now.
    fn cancel_many(pacing: &mut Pacing<u32>, n: u32, answered: u32, now: Instant) -> Vec<u32> {
        (0..n)
            .map(|i| 2 * i + 1)
            .filter_map(|id| pacing.cancel(id, id, answered, now))
            .collect()
    }

    #[test]
    fn resets_of_answered_streams_go_at_once() {
        let now = Instant::now();
        let mut pacing = Pacing::default();
        let sent = cancel_many(&mut pacing, 100, 199, now);
        assert_eq!(sent.len(), 100);
        assert!(pacing.unconfirmed.is_empty());
    }

    #[test]
    fn at_most_ten_unanswered_resets_are_unconfirmed() {
        let now = Instant::now();
        let mut pacing = Pacing::default();
        let sent = cancel_many(&mut pacing, 100, 0, now);
        assert_eq!(sent, (0..10).map(|i| 2 * i + 1).collect::<Vec<_>>());
        assert_eq!(pacing.queued.len(), 90);
        // Nothing changed: nothing more goes.
        assert!(pacing.release(0, now).is_empty());
    }

    #[test]
    fn an_answer_on_a_later_stream_releases_the_earlier_ones() {
        let now = Instant::now();
        let mut pacing = Pacing::default();
        cancel_many(&mut pacing, 100, 0, now);
        // The backend answered stream 41: streams 1..=41 left its queue.
        let released = pacing.release(41, now);
        // 21..=41 are free (answered past), then ten more unconfirmed.
        let free: Vec<u32> = (21..=41).step_by(2).collect();
        let paced: Vec<u32> = (43..=61).step_by(2).collect();
        assert_eq!(released, [free, paced].concat());
        assert_eq!(pacing.unconfirmed.len(), MAX_UNCONFIRMED);
        assert_eq!(pacing.queued.front().map(|q| q.0), Some(63));
    }

    #[test]
    fn a_silent_backend_gets_ten_resets_per_settle() {
        let start = Instant::now();
        let mut pacing = Pacing::default();
        cancel_many(&mut pacing, 30, 0, start);
        assert_eq!(pacing.next_settle(), Some(start + SETTLE));
        assert!(pacing.release(0, start + SETTLE / 2).is_empty());
        assert_eq!(pacing.release(0, start + SETTLE).len(), MAX_UNCONFIRMED);
        assert_eq!(pacing.release(0, start + SETTLE * 2).len(), MAX_UNCONFIRMED);
        assert!(pacing.queued.is_empty());
    }

    #[test]
    fn a_new_cancel_waits_behind_the_queued_ones() {
        let now = Instant::now();
        let mut pacing = Pacing::default();
        cancel_many(&mut pacing, 11, 0, now);
        assert_eq!(pacing.cancel(101, 101, 0, now), None);
        // Answered streams never wait.
        assert_eq!(pacing.cancel(101, 7, 200, now), Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn the_sniffer_wakes_a_waiting_pacer() {
        let pacer = Arc::new(ResetPacer::default());
        pacer.waiting.store(true, Ordering::Relaxed);
        pacer.answered(5);
        assert_eq!(pacer.answered.load(Ordering::Relaxed), 5);
        // A stale, lower id changes nothing.
        pacer.answered(3);
        assert_eq!(pacer.answered.load(Ordering::Relaxed), 5);
        tokio::time::timeout(Duration::from_secs(1), pacer.wake.notified())
            .await
            .unwrap();
    }
}
