//! Client-side HTTP/2 keepalive, as gRFC A8 specifies: a PING on a quiet
//! connection every interval, and a connection that stays silent after one
//! is dead.
//!
//! ```text
//!        interval passed, nothing read            PONG, or any byte
//!  quiet ─────────────────────────────► PING out ─────────────────► quiet
//!    ▲ │ bytes read during the interval    │ nothing read for keepalive_timeout
//!    └─┘ (the peer is alive: no PING)      ▼
//!                                        dead: the endpoint closes the connection
//!                                        and its driver reconnects
//!
//!  GOAWAY ENHANCE_YOUR_CALM "too_many_pings" ─► the endpoint's interval doubles
//!                                              (every connection of it, from its next PING)
//! ```
//!
//! This module owns the timing only. The endpoint (`endpoint.rs`) runs
//! [`Keepalive::watch`] beside each connection, closes the connection it
//! declares dead, and doubles the endpoint's [`KeepaliveInterval`] when a
//! GOAWAY says "too_many_pings"; the GOAWAY sniffer (`goaway.rs`) marks the
//! [`ReadActivity`] on every read. Nothing here is on a call's path: the
//! sniffer's mark is a relaxed atomic load, and a store once per interval
//! at most; no lock, no allocation.
//!
//! The interval runs from the last byte read (to within one interval), not
//! from the last PING sent: a busy connection is never pinged, and a server
//! whose permitted interval equals ours is never pinged more often than it
//! allows (gRFC A8, "Implementations must not measure from the last
//! keepalive PING sent").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use h2::{Ping, PingPong};

/// The keepalive interval of one endpoint, shared by its connections.
/// It only grows: each "too_many_pings" doubles it.
#[derive(Debug)]
pub(crate) struct KeepaliveInterval {
    /// Milliseconds; 0 is off.
    millis: AtomicU64,
}

impl KeepaliveInterval {
    /// `None` turns keepalive off; an interval under a millisecond counts
    /// as one.
    pub(crate) fn new(interval: Option<Duration>) -> Self {
        let millis = interval.map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        KeepaliveInterval {
            millis: AtomicU64::new(millis),
        }
    }

    /// The interval now; `None` when keepalive is off.
    pub(crate) fn get(&self) -> Option<Duration> {
        match self.millis.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Doubles the interval if it still is `from`, the one the complaining
    /// connection pinged at; returns the new interval if this call doubled
    /// it. Several connections that hear "too_many_pings" for the same
    /// interval thus double it once.
    pub(crate) fn double_from(&self, from: Duration) -> Option<Duration> {
        let from = u64::try_from(from.as_millis()).unwrap_or(u64::MAX);
        let doubled = from.saturating_mul(2);
        self.millis
            .compare_exchange(from, doubled, Ordering::Relaxed, Ordering::Relaxed)
            .ok()
            .map(|_| Duration::from_millis(doubled))
    }
}

/// Whether a connection has read any byte since the keepalive last looked.
#[derive(Debug, Default)]
pub(crate) struct ReadActivity(AtomicBool);

impl ReadActivity {
    /// Notes a read. Called on every read of the connection.
    pub(crate) fn mark(&self) {
        // Load first: the line stays shared (not written) while it is set.
        if !self.0.load(Ordering::Relaxed) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    /// Whether a byte was read since the last call.
    fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// One connection's keepalive.
#[derive(Debug)]
pub(crate) struct Keepalive {
    ping: PingPong,
    timeout: Duration,
    activity: Arc<ReadActivity>,
    /// The interval the last PING was sent at.
    last_interval: Option<Duration>,
}

impl Keepalive {
    /// The keepalive of a connection whose PINGs go through `ping`; a PING
    /// that hears nothing back for `timeout` declares it dead.
    pub(crate) fn new(ping: PingPong, timeout: Duration, activity: Arc<ReadActivity>) -> Self {
        Keepalive {
            ping,
            timeout,
            activity,
            last_interval: None,
        }
    }

    /// The interval the last PING was sent at: the one a "too_many_pings"
    /// complains about. `None` before the first keepalive PING.
    pub(crate) fn last_interval(&self) -> Option<Duration> {
        self.last_interval
    }

    /// Pings while `interval` is set, each time the connection has read
    /// nothing for an interval. Returns only when a PING heard nothing back
    /// for the timeout: the connection is dead. It stops pinging for good
    /// (and never returns) once the connection closes or `stop` says so.
    pub(crate) async fn watch(
        &mut self,
        interval: &KeepaliveInterval,
        stop: impl Fn() -> bool,
    ) -> Dead {
        // The handshake and the first PING were just read: start quiet.
        self.activity.take();
        loop {
            let Some(every) = interval.get() else {
                return std::future::pending().await;
            };
            tokio::time::sleep(every).await;
            if stop() {
                return std::future::pending().await;
            }
            if self.activity.take() {
                continue;
            }
            self.last_interval = Some(every);
            let pong = self.ping.ping(Ping::opaque());
            tokio::pin!(pong);
            loop {
                match tokio::time::timeout(self.timeout, &mut pong).await {
                    Ok(Ok(_)) => break,
                    // The connection is gone; its own task says why.
                    Ok(Err(_)) => return std::future::pending().await,
                    // Bytes but no PONG yet (it may queue behind data): alive.
                    Err(_) if self.activity.take() => {}
                    Err(_) => {
                        return Dead {
                            silent: self.timeout,
                        };
                    }
                }
            }
            // The PONG itself was a read.
            self.activity.take();
        }
    }
}

/// A connection that answered nothing to a keepalive PING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dead {
    /// How long it stayed silent after the PING.
    pub(crate) silent: Duration,
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::Notify;
    use tokio::time::Instant;

    use super::*;
    use crate::goaway::{GoawaySignal, GoawaySniffer};

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u8;
        let mut f = vec![0, 0, len, kind, 0, 0, 0, 0, 0];
        f.extend_from_slice(payload);
        f
    }

    #[tokio::test(start_paused = true)]
    async fn any_byte_answers_a_ping_and_silence_after_one_is_death() {
        let ms = Duration::from_millis;
        let (client, server) = tokio::io::duplex(1 << 16);
        let (mut from_client, mut to_client) = tokio::io::split(server);
        let start = Instant::now();
        // The backend: SETTINGS, then a WINDOW_UPDATE every 50 ms until 1 s
        // (busy), every 250 ms until 2 s (quieter than the interval, not
        // than the timeout), then silence. It never answers a PING.
        tokio::spawn(async move {
            to_client.write_all(&frame(0x4, &[])).await.unwrap();
            for at in (50..1000).step_by(50).chain((1250..=2000).step_by(250)) {
                tokio::time::sleep_until(start + ms(at)).await;
                to_client
                    .write_all(&frame(0x8, &[0, 0, 0, 1]))
                    .await
                    .unwrap();
            }
            std::future::pending::<()>().await;
        });
        let pings = Arc::new(Mutex::new(Vec::new()));
        let seen = pings.clone();
        tokio::spawn(async move {
            let mut preface = [0; 24];
            from_client.read_exact(&mut preface).await.unwrap();
            let mut head = [0; 9];
            while from_client.read_exact(&mut head).await.is_ok() {
                let mut payload =
                    vec![0; u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize];
                from_client.read_exact(&mut payload).await.unwrap();
                if head[3] == 0x6 && head[4] & 0x1 == 0 {
                    seen.lock().unwrap().push(start.elapsed());
                }
            }
        });

        let activity = Arc::new(ReadActivity::default());
        let goaway = Arc::new(GoawaySignal::new(Arc::new(Notify::new())));
        let client = GoawaySniffer::new(client, goaway, activity.clone());
        let (_send, mut connection) = h2::client::handshake(client).await.unwrap();
        let ping = connection.ping_pong().unwrap();
        tokio::spawn(connection);
        let mut keepalive = Keepalive::new(ping, ms(300), activity);
        let dead = keepalive
            .watch(&KeepaliveInterval::new(Some(ms(100))), || false)
            .await;

        let dead_at = start.elapsed();
        let pings = pings.lock().unwrap().clone();
        assert_eq!(pings.len(), 1, "one PING, never answered: {pings:?}");
        assert!(pings[0] >= ms(1000), "a busy connection pinged: {pings:?}");
        assert!(dead_at >= ms(2300), "dead at {dead_at:?} though bytes came");
        assert_eq!(dead.silent, ms(300));
        assert_eq!(keepalive.last_interval(), Some(ms(100)));
    }

    /// A backend on the far end of `server` that answers every PING (and
    /// SETTINGS) at once; returns when each PING arrived, from `start`.
    fn answering_backend(
        server: tokio::io::DuplexStream,
        start: Instant,
    ) -> Arc<Mutex<Vec<Duration>>> {
        let pings = Arc::new(Mutex::new(Vec::new()));
        let seen = pings.clone();
        tokio::spawn(async move {
            let (mut from_client, mut to_client) = tokio::io::split(server);
            let mut preface = [0; 24];
            from_client.read_exact(&mut preface).await.unwrap();
            to_client.write_all(&frame(0x4, &[])).await.unwrap();
            let mut head = [0; 9];
            while from_client.read_exact(&mut head).await.is_ok() {
                let mut payload =
                    vec![0; u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize];
                from_client.read_exact(&mut payload).await.unwrap();
                let (kind, ack) = (head[3], head[4] & 0x1 != 0);
                if kind == 0x4 && !ack {
                    let mut settings_ack = frame(0x4, &[]);
                    settings_ack[4] = 0x1;
                    to_client.write_all(&settings_ack).await.unwrap();
                }
                if kind == 0x6 && !ack {
                    seen.lock().unwrap().push(start.elapsed());
                    let mut pong = frame(0x6, &payload);
                    pong[4] = 0x1;
                    to_client.write_all(&pong).await.unwrap();
                }
            }
        });
        pings
    }

    #[tokio::test(start_paused = true)]
    async fn a_doubled_interval_applies_from_the_wait_after_the_next_ping() {
        let ms = Duration::from_millis;
        let (client, server) = tokio::io::duplex(1 << 16);
        let start = Instant::now();
        let pings = answering_backend(server, start);

        let activity = Arc::new(ReadActivity::default());
        let goaway = Arc::new(GoawaySignal::new(Arc::new(Notify::new())));
        let client = GoawaySniffer::new(client, goaway, activity.clone());
        let (_send, mut connection) = h2::client::handshake(client).await.unwrap();
        let ping = connection.ping_pong().unwrap();
        tokio::spawn(connection);
        let interval = Arc::new(KeepaliveInterval::new(Some(ms(100))));
        // At 250 ms the backend says "too_many_pings" about the 100 ms
        // interval, as the endpoint hears it: the interval doubles.
        tokio::spawn({
            let interval = interval.clone();
            async move {
                tokio::time::sleep_until(start + ms(250)).await;
                assert_eq!(interval.double_from(ms(100)), Some(ms(200)));
            }
        });
        let mut keepalive = Keepalive::new(ping, ms(300), activity);
        let watched = tokio::time::timeout(ms(800), keepalive.watch(&interval, || false)).await;

        assert!(watched.is_err(), "an answering backend was declared dead");
        // Each PING goes an interval after the last byte read. At 100 ms
        // the backend's SETTINGS (read after the watch began) still count:
        // no PING. Then 200 and 300 ms at 100 ms (the wait under way at
        // 250 ms keeps its interval), then 500 and 700 ms at the doubled one.
        let pings = pings.lock().unwrap().clone();
        assert_eq!(pings, [ms(200), ms(300), ms(500), ms(700)]);
        assert_eq!(keepalive.last_interval(), Some(ms(200)));
    }

    #[test]
    fn off_stays_off_and_tiny_intervals_count_as_a_millisecond() {
        assert_eq!(KeepaliveInterval::new(None).get(), None);
        assert_eq!(
            KeepaliveInterval::new(Some(Duration::from_micros(10))).get(),
            Some(Duration::from_millis(1))
        );
    }

    #[test]
    fn too_many_pings_doubles_the_interval_once_per_step() {
        let interval = KeepaliveInterval::new(Some(Duration::from_secs(10)));
        let ten = Duration::from_secs(10);
        assert_eq!(interval.double_from(ten), Some(Duration::from_secs(20)));
        // A second connection that pinged at 10 s complains too: no change.
        assert_eq!(interval.double_from(ten), None);
        assert_eq!(interval.get(), Some(Duration::from_secs(20)));
        // One that pinged at the new interval and still hears it: again.
        assert_eq!(
            interval.double_from(Duration::from_secs(20)),
            Some(Duration::from_secs(40))
        );
    }

    #[test]
    fn activity_is_taken_once() {
        let activity = ReadActivity::default();
        assert!(!activity.take());
        activity.mark();
        activity.mark();
        assert!(activity.take());
        assert!(!activity.take());
    }
}
