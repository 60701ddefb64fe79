//! A connection's PINGs: gRFC A8's keepalive on a quiet connection, and
//! stall detection on a connection that has calls in flight but reads
//! nothing. One schedule decides both, so there is one PINGer per
//! connection (h2 gives one PING handle) and one rule for how often.
//!
//! ```text
//!                 look (every stall_after / 2, and when keepalive is due)
//!   quiet ───────────────────────────────────────────────────────────┐
//!     ▲    calls in flight, nothing read for stall_after, armed      │
//!     │    ──► stall PING: answered within stall_ping_timeout? ──────┤
//!     │    nothing read for keepalive_interval (gRFC A8)             │
//!     │    ──► keepalive PING: answered within keepalive_timeout? ───┤
//!     │                                                              │
//!     └──── PONG, or any byte (then wait on for the PONG) ◄──── yes ─┘
//!                                          no: dead, the endpoint closes
//!                                          the connection and reconnects
//!
//!  a stall PING answered ─► disarmed until the backend sends HEADERS or DATA
//!                           after that PONG, or 5 minutes pass
//!  GOAWAY ENHANCE_YOUR_CALM "too_many_pings" ─► no more PINGs on it, and the
//!                           endpoint's keepalive interval doubles
//! ```
//!
//! **Stalls** (on by default): a frozen backend (SIGSTOP, a hung kernel
//! thread) keeps its TCP connections open and the kernel ACKs what is
//! sent, so calls wait for their deadlines and new ones keep coming. A
//! connection with calls in flight that read nothing for `stall_after` is
//! sent a PING; one that reads nothing for `stall_ping_timeout` after it is
//! closed like a broken one.
//!
//! **Why stall PINGs never get a connection GOAWAY "too_many_pings"**:
//! grpc-go, grpc-java and C-core (grpcio) servers count a strike for a PING
//! that comes sooner than 5 minutes after the previous one, reset the
//! count when they send HEADERS or DATA, and say GOAWAY after more than 2
//! strikes. So after a stall PING is answered no other is sent until a
//! HEADERS or DATA frame is read after its PONG (the server then reset its
//! count after our PING, so the next is not a strike), or 5 minutes passed
//! (not a strike either). Only the first stall PING after a quiet spell can
//! be a strike: at most one between two resets, where a server allows two.
//! A backend that answers a call after 30 s, or holds an idle stream for
//! hours, is pinged once per answer, or once per 5 minutes.
//!
//! **Keepalive** (off by default, gRFC A8): the interval runs from the last
//! byte read, not from the last PING sent: a busy connection is never
//! pinged, and a server whose permitted interval equals ours is never
//! pinged more often than it allows (gRFC A8, "Implementations must not
//! measure from the last keepalive PING sent").
//!
//! This module owns the timing only ([`Schedule`] is pure and decides; the
//! async [`Keepalive::watch`] sends the PINGs and waits). The endpoint
//! (`endpoint.rs`) runs it beside each connection, closes the connection it
//! declares dead, and doubles the endpoint's [`KeepaliveInterval`] when a
//! GOAWAY says "too_many_pings"; the GOAWAY sniffer (`goaway.rs`) marks the
//! [`ReadActivity`] on every read. Nothing here is on a call's path: the
//! calls in flight are the connection's own counter, read at each look;
//! the sniffer's marks are relaxed atomic loads, and a store when a flag
//! changes; no lock, no allocation.

mod schedule;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use h2::{Ping, PingPong};
use tokio::time::Instant;

pub(crate) use self::schedule::StallRule;
use self::schedule::{Look, Next, PingKind, Schedule};
use crate::goaway::FrameHead;

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

/// What a connection has read, as its reader (the GOAWAY sniffer) marks it.
#[derive(Debug, Default)]
pub(crate) struct ReadActivity {
    /// A byte was read since the watch last looked.
    read: AtomicBool,
    /// HEADERS or DATA was read since the last PING ACK.
    spoke: AtomicBool,
}

impl ReadActivity {
    /// Notes a read. Called on every read of the connection.
    pub(crate) fn mark(&self) {
        set(&self.read, true);
    }

    /// Notes a frame read, in the order frames came.
    pub(crate) fn frame(&self, head: FrameHead) {
        if head.is_ping_ack() {
            set(&self.spoke, false);
        } else if head.resets_ping_strikes() {
            set(&self.spoke, true);
        }
    }

    /// Whether a byte was read since the last call.
    fn take(&self) -> bool {
        self.read.swap(false, Ordering::Relaxed)
    }

    /// Whether HEADERS or DATA came after the last PING ACK.
    fn spoke_since_pong(&self) -> bool {
        self.spoke.load(Ordering::Relaxed)
    }
}

/// Sets `flag`, loading first: on every read of a busy connection the line
/// stays shared (not written) while the flag already holds the value.
fn set(flag: &AtomicBool, value: bool) {
    if flag.load(Ordering::Relaxed) != value {
        flag.store(value, Ordering::Relaxed);
    }
}

/// One connection's PINGs.
#[derive(Debug)]
pub(crate) struct Keepalive {
    ping: PingPong,
    timeout: Duration,
    stall: Option<StallRule>,
    activity: Arc<ReadActivity>,
    /// The interval the last keepalive PING was sent at.
    last_interval: Option<Duration>,
}

impl Keepalive {
    /// The PINGs of a connection, sent through `ping`: a keepalive PING
    /// that hears nothing back for `timeout` declares it dead, and `stall`
    /// (if any) says when one with calls in flight is pinged for a stall.
    pub(crate) fn new(
        ping: PingPong,
        timeout: Duration,
        stall: Option<StallRule>,
        activity: Arc<ReadActivity>,
    ) -> Self {
        Keepalive {
            ping,
            timeout,
            stall,
            activity,
            last_interval: None,
        }
    }

    /// The interval the last keepalive PING was sent at: the one a
    /// "too_many_pings" complains about. `None` before the first.
    pub(crate) fn last_interval(&self) -> Option<Duration> {
        self.last_interval
    }

    /// Pings as the [`Schedule`] says: on a quiet connection while
    /// `interval` is set, and on a stalled one (`in_flight` calls, nothing
    /// read). Returns only when a PING heard nothing back for its timeout:
    /// the connection is dead. It stops pinging for good (and never
    /// returns) once the connection closes or `stop` says so.
    pub(crate) async fn watch(
        &mut self,
        interval: &KeepaliveInterval,
        in_flight: impl Fn() -> usize,
        stop: impl Fn() -> bool,
    ) -> Dead {
        // The handshake and the first PING were just read: start quiet.
        self.activity.take();
        let mut schedule = Schedule::new(Instant::now(), self.stall, interval.get());
        loop {
            let next = schedule.look(
                Instant::now(),
                Look {
                    read: self.activity.take(),
                    busy: in_flight() > 0,
                    spoke: self.activity.spoke_since_pong(),
                },
                interval.get(),
            );
            let kind = match next {
                Next::Sleep => return std::future::pending().await,
                Next::LookAt(at) => {
                    tokio::time::sleep_until(at).await;
                    if stop() {
                        return std::future::pending().await;
                    }
                    continue;
                }
                Next::Ping(kind) => kind,
            };
            let timeout = match kind {
                PingKind::Keepalive { interval } => {
                    self.last_interval = Some(interval);
                    self.timeout
                }
                PingKind::Stall { timeout } => timeout,
            };
            if let Some(silent) = self.answered(timeout).await {
                return Dead {
                    silent,
                    stall: matches!(kind, PingKind::Stall { .. }),
                    in_flight: in_flight(),
                };
            }
            schedule.answered(Instant::now(), kind, interval.get());
        }
    }

    /// Sends a PING and waits for its answer; returns how long it stayed
    /// silent if nothing at all was read for `timeout`. Never returns if
    /// the connection closes (its own task says why).
    async fn answered(&mut self, timeout: Duration) -> Option<Duration> {
        let pong = self.ping.ping(Ping::opaque());
        tokio::pin!(pong);
        loop {
            match tokio::time::timeout(timeout, &mut pong).await {
                Ok(Ok(_)) => break,
                Ok(Err(_)) => return std::future::pending().await,
                // Bytes but no PONG yet (it may queue behind data): alive.
                Err(_) if self.activity.take() => {}
                Err(_) => {
                    // This process may have been the slow one: let the
                    // connection's task read what the kernel holds before
                    // calling the backend dead.
                    tokio::task::yield_now().await;
                    if !self.activity.take() {
                        return Some(timeout);
                    }
                }
            }
        }
        // The PONG itself was a read.
        self.activity.take();
        None
    }
}

/// A connection that answered nothing to a PING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dead {
    /// How long it stayed silent after the PING.
    pub(crate) silent: Duration,
    /// Whether it was a stall PING (else a keepalive one).
    pub(crate) stall: bool,
    /// Its calls in flight when it was found dead.
    pub(crate) in_flight: usize,
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
        let mut keepalive = Keepalive::new(ping, ms(300), None, activity);
        let dead = keepalive
            .watch(&KeepaliveInterval::new(Some(ms(100))), || 1, || false)
            .await;

        let dead_at = start.elapsed();
        let pings = pings.lock().unwrap().clone();
        assert_eq!(pings.len(), 1, "one PING, never answered: {pings:?}");
        assert!(pings[0] >= ms(1000), "a busy connection pinged: {pings:?}");
        assert!(dead_at >= ms(2300), "dead at {dead_at:?} though bytes came");
        assert_eq!(dead.silent, ms(300));
        assert!(!dead.stall);
        assert_eq!(keepalive.last_interval(), Some(ms(100)));
    }

    /// A backend on the far end of `server` that answers every PING (and
    /// SETTINGS) at once; returns when each PING arrived, from `start`.
    fn answering_backend(
        server: tokio::io::DuplexStream,
        start: Instant,
    ) -> Arc<Mutex<Vec<Duration>>> {
        answering_backend_until(server, start, Arc::new(AtomicBool::new(false)))
    }

    /// [`answering_backend`], frozen (it reads and answers nothing more)
    /// once `frozen` is set.
    fn answering_backend_until(
        server: tokio::io::DuplexStream,
        start: Instant,
        frozen: Arc<AtomicBool>,
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
                if frozen.load(Ordering::SeqCst) {
                    return std::future::pending().await;
                }
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
        let mut keepalive = Keepalive::new(ping, ms(300), None, activity);
        let watched =
            tokio::time::timeout(ms(800), keepalive.watch(&interval, || 0, || false)).await;

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

    #[test]
    fn only_headers_or_data_after_the_last_ping_ack_count_as_spoken() {
        let head = |kind: u8, flags: u8| FrameHead {
            kind,
            flags,
            stream: 1,
        };
        let activity = ReadActivity::default();
        assert!(!activity.spoke_since_pong());
        activity.frame(head(0x1, 0x4)); // HEADERS
        assert!(activity.spoke_since_pong());
        activity.frame(head(0x6, 0x1)); // PING ACK
        assert!(!activity.spoke_since_pong());
        for other in [head(0x4, 0), head(0x8, 0), head(0x3, 0), head(0x6, 0)] {
            activity.frame(other); // SETTINGS, WINDOW_UPDATE, RST_STREAM, PING
        }
        assert!(!activity.spoke_since_pong(), "no strike reset in those");
        activity.frame(head(0x0, 0)); // DATA
        assert!(activity.spoke_since_pong());
    }

    #[tokio::test(start_paused = true)]
    async fn a_frozen_backend_with_calls_in_flight_is_dead_after_a_stall_ping_and_its_timeout() {
        let ms = Duration::from_millis;
        let (client, server) = tokio::io::duplex(1 << 16);
        let start = Instant::now();
        // The backend answers PINGs until it freezes at 2 s: after that it
        // reads nothing and sends nothing, as a SIGSTOPped process.
        let frozen = Arc::new(AtomicBool::new(false));
        let pings = answering_backend_until(server, start, frozen.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(start + ms(2000)).await;
            frozen.store(true, Ordering::SeqCst);
        });

        let activity = Arc::new(ReadActivity::default());
        let goaway = Arc::new(GoawaySignal::new(Arc::new(Notify::new())));
        let client = GoawaySniffer::new(client, goaway, activity.clone());
        let (_send, mut connection) = h2::client::handshake(client).await.unwrap();
        let ping = connection.ping_pong().unwrap();
        tokio::spawn(connection);
        let stall = StallRule {
            after: ms(1000),
            timeout: ms(1000),
        };
        let mut keepalive = Keepalive::new(ping, ms(20_000), Some(stall), activity);
        // A call is in flight from the start; keepalive is off.
        let dead = keepalive
            .watch(&KeepaliveInterval::new(None), || 3, || false)
            .await;

        let dead_at = start.elapsed();
        let pings = pings.lock().unwrap().clone();
        // One stall PING answered (about a second in), none after it: the
        // backend sent no HEADERS or DATA since its PONG.
        assert_eq!(pings.len(), 1, "{pings:?}");
        assert!(pings[0] >= ms(1000) && pings[0] <= ms(1500), "{pings:?}");
        assert_eq!(
            dead,
            Dead {
                silent: ms(1000),
                stall: true,
                in_flight: 3
            }
        );
        // The stall PING that found it frozen went 5 minutes after the
        // first, when it could be no ping strike.
        assert!(dead_at >= ms(300_000), "dead at {dead_at:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_backend_that_stops_sending_with_calls_in_flight_is_dead_within_stall_after_and_timeout()
     {
        let ms = Duration::from_millis;
        let (client, server) = tokio::io::duplex(1 << 16);
        let (mut from_client, mut to_client) = tokio::io::split(server);
        let start = Instant::now();
        // The backend sends a frame every 100 ms until 3 s, then nothing,
        // and never answers a PING.
        tokio::spawn(async move {
            to_client.write_all(&frame(0x4, &[])).await.unwrap();
            for at in (100..=3000).step_by(100) {
                tokio::time::sleep_until(start + ms(at)).await;
                to_client
                    .write_all(&frame(0x8, &[0, 0, 0, 1]))
                    .await
                    .unwrap();
            }
            std::future::pending::<()>().await;
        });
        tokio::spawn(async move {
            let mut sink = vec![0; 1 << 16];
            while from_client.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        });

        let activity = Arc::new(ReadActivity::default());
        let goaway = Arc::new(GoawaySignal::new(Arc::new(Notify::new())));
        let client = GoawaySniffer::new(client, goaway, activity.clone());
        let (_send, mut connection) = h2::client::handshake(client).await.unwrap();
        let ping = connection.ping_pong().unwrap();
        tokio::spawn(connection);
        let stall = StallRule {
            after: ms(1000),
            timeout: ms(1000),
        };
        let mut keepalive = Keepalive::new(ping, ms(20_000), Some(stall), activity);
        let dead = keepalive
            .watch(&KeepaliveInterval::new(None), || 1, || false)
            .await;
        let dead_at = start.elapsed();
        assert!(dead.stall);
        // Silent from 3 s: seen stalled by 4.5 s, dead a second later.
        assert!(
            dead_at >= ms(5000) && dead_at <= ms(5600),
            "dead at {dead_at:?}"
        );
    }
}
