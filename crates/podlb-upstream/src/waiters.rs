//! Wake-ups for calls waiting on an upstream: while it starts (discovery
//! has not answered, first connections are under way) or while every
//! connection is at its backend's stream limit.
//!
//! Endpoints signal every state change and every new connection. A call
//! ending signals only when someone waits, so the common path pays one
//! atomic load and no lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The wake-up point shared by an upstream and its endpoints.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    notify: Notify,
    waiting: AtomicUsize,
}

impl Waiters {
    /// Something that may let a waiting call through has happened.
    pub(crate) fn changed(&self) {
        self.notify.notify_waiters();
    }

    /// A stream was freed: wake waiters, if there are any.
    pub(crate) fn stream_freed(&self) {
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.notify.notify_waiters();
        }
    }

    /// Calls `attempt` until it returns `Some`, waiting for a change between
    /// attempts, until `give_up`. `None` when time ran out.
    pub(crate) async fn wait_for<T>(
        &self,
        give_up: Option<Instant>,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let _registered = Registered(&self.waiting);
        loop {
            let changed = self.notify.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(value) = attempt() {
                return Some(value);
            }
            // Re-check now and then even without a wake-up: a missed one
            // must not strand a call.
            let recheck = Instant::now() + RECHECK;
            let until = give_up.map_or(recheck, |at| at.min(recheck));
            if tokio::time::timeout_at(until, changed).await.is_err()
                && give_up.is_some_and(|at| Instant::now() >= at)
            {
                return attempt();
            }
        }
    }
}

/// The longest a waiting call goes without looking again.
const RECHECK: Duration = Duration::from_millis(100);

/// Counts one waiter for as long as it lives.
struct Registered<'a>(&'a AtomicUsize);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `now + wait`, or `None` when that is beyond any clock.
pub(crate) fn deadline_after(wait: Duration) -> Option<Instant> {
    Instant::now().checked_add(wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gets_through_after_a_change_and_gives_up_at_its_deadline() {
        let waiters = Arc::new(Waiters::default());
        let open = Arc::new(AtomicBool::new(false));
        let task = {
            let (w, o) = (waiters.clone(), open.clone());
            tokio::spawn(async move {
                w.wait_for(None, || o.load(Ordering::Acquire).then_some(7))
                    .await
            })
        };
        tokio::task::yield_now().await;
        open.store(true, Ordering::Release);
        waiters.stream_freed();
        assert_eq!(task.await.unwrap(), Some(7));

        let gave_up = waiters
            .wait_for(deadline_after(Duration::from_secs(1)), || None::<()>)
            .await;
        assert_eq!(gave_up, None);
        assert_eq!(waiters.waiting.load(Ordering::Acquire), 0);
    }
}
