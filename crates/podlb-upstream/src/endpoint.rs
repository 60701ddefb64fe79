//! One endpoint's HTTP/2 connections, and the lease a call takes on one.
//!
//! ```text
//!  Upstream ─► EndpointConnection ─┬─ Lifecycle (lifecycle.rs): where it stands, what next
//!                                  ├─ driver task: connect / wait / back off, as told
//!                                  ├─ connections: each with its own task (and keepalive)
//!                                  └─ CallLease: a call's stream on one connection
//! ```
//!
//! A driver task per endpoint opens connections eagerly, reconnects with
//! jittered backoff, and opens one more connection when every one is at the
//! backend's SETTINGS_MAX_CONCURRENT_STREAMS. When and why is the pure
//! [`Lifecycle`]'s to decide; the driver only does the I/O and reports what
//! happened. The lifecycle is the one truth about the endpoint's state: it
//! changes only under its lock (never held across an await, never taken by
//! a call), together with the connection list, and is mirrored in an atomic
//! for lock-free readers. Every change of state rebuilds the upstream's
//! ready snapshot, which policies pick from.
//!
//! `is_ready` is true only while the endpoint is Ready and a connection that
//! has answered a PING and not said GOAWAY exists. A connection that said
//! GOAWAY (or broke) leaves the list when the driver next looks (at once:
//! it is woken); calls already on it hold it through their lease and
//! finish. This module moves no call bytes.
//!
//! Each connection's task also runs its PINGs (`keepalive.rs`): stall
//! detection (on by default: a connection with calls in flight that reads
//! nothing for [`ConnectionSettings::stall_after`] is pinged) and, with
//! [`ConnectionSettings::keepalive_interval`] set, gRFC A8's keepalive. A
//! connection silent after a PING is closed like a broken one: its calls
//! fail at once with UNAVAILABLE naming the endpoint, and the endpoint is
//! not ready until a new connection has answered a PING. A GOAWAY that says
//! "too_many_pings" doubles the endpoint's interval (gRFC A8).
//!
//! Outlier detection and slow start sit beside the lifecycle, not in it
//! (`outlier.rs`): an ejected endpoint stays Ready and connected, it only
//! leaves the ready snapshot, and a call's outcome never touches `life`.

mod health_task;
mod lifecycle;
mod outlier;

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{Reason, SendStream};
use podlb_balance::{Keyed, Load, LoadTracker, OutlierSettings, OutlierTracker, SlowStart};
use podlb_core::EndpointAddr;
use podlb_discovery::Refresh;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use self::lifecycle::EndpointState;
use self::lifecycle::{Decision, Event, Lifecycle};
pub use self::outlier::EjectionStatus;
use crate::ConnectionSettings;
use crate::goaway::{GoawaySignal, GoawaySniffer};
use crate::health::Health;
use crate::http1::Http1Backoff;
use crate::keepalive::{Keepalive, KeepaliveInterval, ReadActivity, StallRule};
use crate::outcome::CallOutcome;
use crate::upstream::Endpoints;
use crate::waiters::Waiters;

/// One backend endpoint and its HTTP/2 connections.
#[derive(Debug)]
pub struct EndpointConnection {
    upstream: Arc<str>,
    addr: EndpointAddr,
    pub(crate) load: LoadTracker,
    /// Where the endpoint stands and what its driver does next. Changed
    /// only under this lock, with `conns`; never held across an await.
    life: Mutex<Lifecycle>,
    /// `life`'s state, and [`STARTING`] while its first connect attempt is
    /// under way, for lock-free readers. Written only under `life`'s lock.
    mirror: AtomicU8,
    /// The connections that can take calls (as of the driver's last look).
    /// Replaced only under `life`'s lock; read by calls without it.
    conns: ArcSwap<Vec<Arc<H2Connection>>>,
    /// Wakes the driver: a connection closed or said GOAWAY, all are full,
    /// or the endpoint was removed.
    wake: Arc<Notify>,
    /// A call found every connection full: a request to the driver (which
    /// reports [`Event::AllFull`]), not state. Keeps calls from waking the
    /// driver more than once per look.
    full: AtomicBool,
    /// Wakes calls waiting on the upstream.
    waiters: Arc<Waiters>,
    /// The upstream's endpoint set, whose ready snapshot each change of
    /// state rebuilds. Weak: the set holds the endpoint.
    set: Weak<Endpoints>,
    /// Whether HTTP/1.1 requests should avoid it for a while (`http1.rs`).
    pub(crate) http1: Http1Backoff,
    /// The keepalive interval of all its connections (off, or doubled by
    /// each "too_many_pings").
    keepalive: KeepaliveInterval,
    /// What active health checks say ([`Health`] as a byte).
    health: AtomicU8,
    /// The active health checks' task, aborted on removal.
    health_task: Mutex<Option<tokio::task::AbortHandle>>,
    /// Told of every new connection (the health checks wait for one).
    connected: Arc<Notify>,
    /// Its health by the outcomes of its calls, and its ejection.
    outlier: OutlierTracker,
    /// The upstream's outlier settings, replaced live when an xDS Cluster
    /// asks for others.
    outlier_settings: SharedOutlier,
    /// Its share ramp after it became ready or came back.
    slow_start: SlowStart,
    slow_start_window: Duration,
}

/// One HTTP/2 connection to an endpoint.
#[derive(Debug)]
struct H2Connection {
    send: SendRequest<Bytes>,
    in_flight: AtomicUsize,
    /// The backend's SETTINGS_MAX_CONCURRENT_STREAMS as last read.
    max_streams: AtomicUsize,
    goaway: Arc<GoawaySignal>,
    closed: Arc<AtomicBool>,
}

impl H2Connection {
    fn is_usable(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && !self.goaway.received()
    }

    /// Whether a stream is free, re-reading the backend's limit only when
    /// the cached one says full (reading it takes h2's lock).
    fn has_free_stream(&self) -> bool {
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        if in_flight < self.max_streams.load(Ordering::Relaxed) {
            return true;
        }
        let max = self.send.current_max_send_streams();
        self.max_streams.store(max, Ordering::Relaxed);
        in_flight < max
    }
}

/// An upstream's outlier settings, shared by its endpoints and replaced
/// as a whole when the source asks for others (read once per call, no
/// lock).
pub(crate) type SharedOutlier = Arc<ArcSwap<OutlierSettings>>;

/// The bit of [`EndpointConnection::mirror`] that says the first connect
/// attempt is under way.
const STARTING: u8 = 0x80;

impl EndpointConnection {
    /// Starts connecting to `addr` at once, in a driver task of its own;
    /// `waiters` hear of every state change, new connection and freed
    /// stream, and `set`'s ready snapshot is rebuilt on every state change.
    pub(crate) fn spawn(
        upstream: Arc<str>,
        addr: EndpointAddr,
        settings: ConnectionSettings,
        waiters: Arc<Waiters>,
        set: Weak<Endpoints>,
        refresh: Refresh,
        outlier_settings: SharedOutlier,
    ) -> Arc<EndpointConnection> {
        let life = Lifecycle::new(settings.backoff_initial, settings.backoff_max);
        let endpoint = Arc::new(EndpointConnection {
            upstream,
            addr,
            load: LoadTracker::new(settings.ewma_decay),
            mirror: AtomicU8::new(mirror_of(&life)),
            life: Mutex::new(life),
            conns: ArcSwap::from_pointee(Vec::new()),
            wake: Arc::new(Notify::new()),
            full: AtomicBool::new(false),
            waiters,
            set,
            http1: Http1Backoff::new(settings.backoff_initial, settings.backoff_max),
            keepalive: KeepaliveInterval::new(settings.keepalive_interval),
            health: AtomicU8::new(match settings.health_check {
                Some(_) => Health::Pending.to_u8(),
                None => Health::Unchecked.to_u8(),
            }),
            health_task: Mutex::new(None),
            connected: Arc::new(Notify::new()),
            outlier: OutlierTracker::default(),
            outlier_settings,
            slow_start: SlowStart::default(),
            slow_start_window: settings.slow_start,
        });
        if let Some(checks) = settings.health_check.clone() {
            let task = tokio::spawn(health_task::run(Arc::downgrade(&endpoint), checks));
            *endpoint
                .health_task
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(task.abort_handle());
        }
        tokio::spawn(drive(endpoint.clone(), settings, refresh));
        endpoint
    }

    /// The endpoint's address.
    pub fn addr(&self) -> EndpointAddr {
        self.addr
    }

    /// Whether the first connect attempt is still under way, or, connected,
    /// it waits for its first health answer (when checks are on).
    pub fn is_starting(&self) -> bool {
        let mirror = self.mirror.load(Ordering::Acquire);
        mirror & STARTING != 0
            || (EndpointState::from_u8(mirror & !STARTING) == EndpointState::Ready
                && self.health() == Health::Pending)
    }

    /// Where the endpoint stands.
    pub fn state(&self) -> EndpointState {
        EndpointState::from_u8(self.mirror.load(Ordering::Acquire) & !STARTING)
    }

    /// What active health checks say of it.
    pub fn health(&self) -> Health {
        Health::from_u8(self.health.load(Ordering::Acquire))
    }

    /// Sets what health checks say; a change rebuilds the ready snapshot.
    fn set_health(&self, health: Health) {
        if self.health.swap(health.to_u8(), Ordering::AcqRel) == health.to_u8() {
            return;
        }
        if let Some(set) = self.set.upgrade() {
            set.refresh_ready();
        }
        self.waiters.changed();
    }

    /// A connection that can take a stream now, for health checks.
    fn usable_send(&self) -> Option<SendRequest<Bytes>> {
        self.conns
            .load()
            .iter()
            .find(|c| c.is_usable())
            .map(|c| c.send.clone())
    }

    /// Stops new calls and reconnects; calls in flight finish, then its
    /// connections close.
    pub fn remove(&self) {
        if let Some(task) = self
            .health_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        self.change(|life, conns| {
            conns.clear();
            life.on(Event::Removed, Instant::now(), 0.0)
        });
        self.wake.notify_one();
    }

    /// A lease on a connection with a free stream.
    pub fn lease(self: &Arc<Self>) -> Lease {
        let conns = self.conns.load();
        let mut usable = false;
        for conn in conns.iter().filter(|c| c.is_usable()) {
            if conn.has_free_stream() {
                return Lease::Leased(CallLease::new(self.clone(), conn.clone()));
            }
            usable = true;
        }
        if !usable {
            return Lease::Unusable;
        }
        // Every connection is at the backend's stream limit: ask the driver
        // for another rather than queue the call behind a busy one.
        if !self.full.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
        Lease::Full
    }

    /// Whether a connection that can take calls exists now.
    fn has_usable_connection(&self) -> bool {
        self.conns.load().iter().any(|c| c.is_usable())
    }

    fn lock(&self) -> MutexGuard<'_, Lifecycle> {
        self.life.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the lifecycle and the connection list together, under the
    /// lock; then, if the state changed, tells the set and the waiters.
    /// Returns what the driver does next.
    fn change(
        &self,
        f: impl FnOnce(&mut Lifecycle, &mut Vec<Arc<H2Connection>>) -> Decision,
    ) -> Decision {
        let (decision, changed) = {
            let mut life = self.lock();
            let before = life.state();
            let mut conns = Vec::clone(&self.conns.load());
            let count = conns.len();
            let decision = f(&mut life, &mut conns);
            if conns.len() != count {
                self.conns.store(Arc::new(conns));
            }
            self.mirror.store(mirror_of(&life), Ordering::Release);
            (decision, life.state() != before)
        };
        if changed {
            if self.state() == EndpointState::Ready {
                // New or reconnected: its share ramps up (slow start).
                self.slow_start.restart(since_epoch(Instant::now()));
            }
            tracing::debug!(upstream = %self.upstream, endpoint = %self.addr, state = ?self.state(), "endpoint state");
            if let Some(set) = self.set.upgrade() {
                set.refresh_ready();
            }
            self.waiters.changed();
        }
        decision
    }

    /// Applies one event.
    fn apply(&self, event: Event) -> Decision {
        self.change(|life, _| life.on(event, Instant::now(), fastrand::f64()))
    }

    /// A connect attempt gave `conn`: it joins the list, unless the
    /// endpoint was removed meanwhile (then it is dropped, and closes).
    fn connected(&self, conn: Arc<H2Connection>) -> Decision {
        let decision = self.change(|life, conns| {
            if life.state() != EndpointState::Removed {
                conns.push(conn);
            }
            life.on(Event::ConnectOk, Instant::now(), 0.0)
        });
        // A waiting call may take a stream on it, even if the state
        // (Ready) did not change.
        self.waiters.changed();
        self.connected.notify_waiters();
        decision
    }

    /// Looks at the connections: drops those that closed or said GOAWAY,
    /// notes whether every one is full, and tells the lifecycle. Returns
    /// what the driver does next.
    fn observe(&self) -> Decision {
        let full = self.full.swap(false, Ordering::AcqRel);
        self.change(|life, conns| {
            let now = Instant::now();
            let before = conns.len();
            let goaway = conns.iter().any(|c| c.goaway.received());
            conns.retain(|c| c.is_usable());
            let remaining = conns.len();
            if remaining < before {
                let event = match goaway {
                    true => Event::Goaway { remaining },
                    false => Event::ConnectionLost { remaining },
                };
                life.on(event, now, 0.0);
            }
            if full && !conns.is_empty() && conns.iter().all(|c| !c.has_free_stream()) {
                life.on(Event::AllFull, now, 0.0);
            }
            life.decision()
        })
    }
}

/// The mirror byte of a lifecycle.
fn mirror_of(life: &Lifecycle) -> u8 {
    let starting = if life.is_starting() { STARTING } else { 0 };
    life.state().to_u8() | starting
}

impl Keyed for EndpointConnection {
    fn addr(&self) -> EndpointAddr {
        self.addr
    }
}

impl Load for EndpointConnection {
    /// Ready, and a usable connection exists right now: a connection that
    /// said GOAWAY or closed counts at once, before the driver has run.
    fn is_ready(&self) -> bool {
        self.state() == EndpointState::Ready
            && self.has_usable_connection()
            && self.health().takes_calls()
    }
    fn in_flight(&self) -> u64 {
        self.load.in_flight()
    }
    fn ewma_cost(&self) -> f64 {
        self.load.ewma_cost(since_epoch(Instant::now()))
    }
    fn is_ejected(&self) -> bool {
        self.outlier.is_ejected()
    }
    fn warmth(&self) -> f64 {
        self.warmth_now()
    }
}

/// What [`EndpointConnection::lease`] found.
#[derive(Debug)]
pub enum Lease {
    /// A stream on a connection is the call's.
    Leased(CallLease),
    /// Every connection is at the backend's stream limit; another is coming.
    Full,
    /// No connection can take calls.
    Unusable,
}

/// The endpoint's driver: a thin I/O loop that does what the lifecycle
/// decides (connect, wait, back off) and reports what happened, until the
/// endpoint is removed.
async fn drive(endpoint: Arc<EndpointConnection>, settings: ConnectionSettings, refresh: Refresh) {
    let mut decision = endpoint.lock().decision();
    loop {
        decision = match decision {
            Decision::Stop => break,
            Decision::Wait => {
                endpoint.wake.notified().await;
                endpoint.observe()
            }
            Decision::SleepUntil(until) => {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => {
                        endpoint.apply(Event::BackoffOver);
                    }
                    () = endpoint.wake.notified() => {}
                }
                endpoint.observe()
            }
            Decision::Connect => {
                let attempt = tokio::select! {
                    attempt = connect(&endpoint, &settings) => Some(attempt),
                    () = wait_removed(&endpoint) => None,
                };
                match attempt {
                    Some(Ok(conn)) => {
                        endpoint.connected(conn);
                        tracing::info!(upstream = %endpoint.upstream, endpoint = %endpoint.addr, "connected");
                    }
                    Some(Err(reason)) => {
                        // A refused or failed connect is the first sign that
                        // a pod moved: DNS discovery looks again now, not at
                        // its next tick.
                        refresh.request();
                        let next = endpoint.apply(Event::ConnectFailed);
                        let retry_in = match next {
                            Decision::SleepUntil(until) => {
                                until.saturating_duration_since(Instant::now())
                            }
                            _ => Duration::ZERO,
                        };
                        tracing::warn!(
                            upstream = %endpoint.upstream, endpoint = %endpoint.addr,
                            ?retry_in, "cannot connect: {reason}"
                        );
                    }
                    None => {}
                }
                // Connections may have closed while this one opened.
                endpoint.observe()
            }
        };
    }
}

async fn wait_removed(endpoint: &EndpointConnection) {
    while endpoint.state() != EndpointState::Removed {
        endpoint.wake.notified().await;
    }
    // Leave the wake-up for the driver loop's own look.
    endpoint.wake.notify_one();
}

/// Opens one connection: TCP connect, HTTP/2 handshake, and a PING answered,
/// which proves the backend's HTTP/2 stack is alive, all within the timeout.
async fn connect(
    endpoint: &Arc<EndpointConnection>,
    settings: &ConnectionSettings,
) -> Result<Arc<H2Connection>, String> {
    let attempt = async {
        let tcp = TcpStream::connect(endpoint.addr.socket_addr())
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let goaway = Arc::new(GoawaySignal::new(endpoint.wake.clone()));
        let activity = Arc::new(ReadActivity::default());
        let io = GoawaySniffer::new(tcp, goaway.clone(), activity.clone());
        let (send, mut connection) = h2::client::Builder::new()
            .initial_window_size(settings.stream_window)
            .initial_connection_window_size(settings.connection_window)
            .max_concurrent_reset_streams(1024)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
        let mut ping = connection
            .ping_pong()
            .ok_or_else(|| "HTTP/2 PING: taken".to_string())?;
        // Drive the connection here until the PING is answered: it gets a
        // task of its own only then, so a backend that never answers (or a
        // timeout) leaves no task holding the socket open behind it.
        tokio::select! {
            pong = ping.ping(h2::Ping::opaque()) => {
                pong.map_err(|e| format!("HTTP/2 PING: {e}"))?;
            }
            ended = &mut connection => {
                return Err(match ended {
                    Ok(()) => "HTTP/2: closed before answering a PING".to_string(),
                    Err(e) => format!("HTTP/2: {e}"),
                });
            }
        }
        let closed = Arc::new(AtomicBool::new(false));
        let stall = settings.stall_after.map(|after| StallRule {
            after,
            timeout: settings.stall_ping_timeout,
        });
        let keepalive = Keepalive::new(ping, settings.keepalive_timeout, stall, activity);
        let max_streams = send.current_max_send_streams();
        let conn = Arc::new(H2Connection {
            send,
            in_flight: AtomicUsize::new(0),
            max_streams: AtomicUsize::new(max_streams),
            goaway: goaway.clone(),
            closed: closed.clone(),
        });
        tokio::spawn(run_connection(
            endpoint.clone(),
            connection,
            Arc::downgrade(&conn),
            goaway,
            closed,
            keepalive,
        ));
        Ok(conn)
    };
    match tokio::time::timeout(settings.connect_timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {:?}", settings.connect_timeout)),
    }
}

/// Drives one connection, and its PINGs, until it closes or a PING finds
/// it dead; then tells the endpoint. `conn` is weak: the calls and the
/// endpoint's list hold the connection, and h2 closes it once they let go.
async fn run_connection(
    endpoint: Arc<EndpointConnection>,
    mut connection: h2::client::Connection<GoawaySniffer<TcpStream>, Bytes>,
    conn: Weak<H2Connection>,
    goaway: Arc<GoawaySignal>,
    closed: Arc<AtomicBool>,
    mut keepalive: Keepalive,
) {
    let in_flight = || {
        conn.upgrade()
            .map_or(0, |c| c.in_flight.load(Ordering::Relaxed))
    };
    let ended = tokio::select! {
        ended = &mut connection => Ok(ended),
        dead = keepalive.watch(&endpoint.keepalive, in_flight, || goaway.too_many_pings()) => Err(dead),
    };
    closed.store(true, Ordering::Release);
    // Closes the socket; calls still on a dead connection fail now rather
    // than at their deadlines.
    drop(connection);
    let (upstream, addr) = (&endpoint.upstream, endpoint.addr);
    match ended {
        Ok(Err(err)) if endpoint.state() != EndpointState::Removed => {
            tracing::info!(upstream = %upstream, endpoint = %addr, "connection lost: {err}");
        }
        Ok(_) => {}
        Err(dead) if dead.stall => tracing::warn!(
            upstream = %upstream, endpoint = %addr,
            "no answer to a PING for {:?} with {} calls in flight: connection closed",
            dead.silent, dead.in_flight
        ),
        Err(dead) => tracing::warn!(
            upstream = %upstream, endpoint = %addr,
            "no answer to a keepalive PING for {:?}: connection closed", dead.silent
        ),
    }
    // gRFC A8: the backend allows fewer PINGs than we sent; slow down for
    // every later PING to this endpoint, and say so where it is seen.
    if goaway.too_many_pings()
        && let Some(pinged_every) = keepalive.last_interval()
        && let Some(doubled) = endpoint.keepalive.double_from(pinged_every)
    {
        tracing::warn!(
            upstream = %upstream, endpoint = %addr, keepalive_interval = ?doubled,
            "the backend said GOAWAY too_many_pings: keepalive interval doubled to {doubled:?}"
        );
    }
    endpoint.wake.notify_one();
}

/// Why a call could not be sent on its lease.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The backend provably never saw the call (the connection was closed
    /// or had said GOAWAY before the stream): it may go to another endpoint.
    #[error("endpoint {addr}: connection unusable before the call was sent: {reason}")]
    Unprocessed {
        /// The endpoint.
        addr: EndpointAddr,
        /// What happened.
        reason: String,
    },
}

/// A call's claim on one connection of one endpoint. While it lives the call
/// counts as in flight on both; dropping it ends the call.
#[derive(Debug)]
pub struct CallLease {
    endpoint: Arc<EndpointConnection>,
    conn: Arc<H2Connection>,
    started: Instant,
    /// The stream was opened after the backend began a graceful GOAWAY
    /// (the lease was taken just before it arrived).
    opened_after_goaway: bool,
    /// How the call went on the endpoint, reported when the lease drops.
    outcome: CallOutcome,
}

/// The epoch of the latency estimates.
pub(crate) fn since_epoch(now: Instant) -> Duration {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    now.saturating_duration_since(*EPOCH.get_or_init(Instant::now))
}

impl CallLease {
    fn new(endpoint: Arc<EndpointConnection>, conn: Arc<H2Connection>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::Relaxed);
        endpoint.load.begin();
        CallLease {
            endpoint,
            conn,
            started: Instant::now(),
            opened_after_goaway: false,
            outcome: CallOutcome::Neutral,
        }
    }

    /// The endpoint this call goes to.
    pub fn addr(&self) -> EndpointAddr {
        self.endpoint.addr
    }

    /// Opens the call's stream on the leased connection.
    pub fn send_request(
        &mut self,
        request: http::Request<()>,
        end_of_stream: bool,
    ) -> Result<(ResponseFuture, SendStream<Bytes>), SendError> {
        let mut send = self.conn.send.clone();
        match send.send_request(request, end_of_stream) {
            Ok((response, mut stream)) => {
                if self.conn.goaway.refused(stream.stream_id().as_u32()) {
                    stream.send_reset(Reason::REFUSED_STREAM);
                    return Err(self.unprocessed("the backend said GOAWAY"));
                }
                self.opened_after_goaway = self.conn.goaway.received();
                Ok((response, stream))
            }
            Err(err) => {
                self.conn.closed.store(true, Ordering::Release);
                self.endpoint.wake.notify_one();
                Err(self.unprocessed(&err.to_string()))
            }
        }
    }

    /// Whether a stream that failed with `err` before any response was
    /// never processed by the backend, so the call may be sent again
    /// elsewhere: REFUSED_STREAM; a stream id above a GOAWAY's
    /// last-stream-id; or a stream opened after a graceful GOAWAY began
    /// whose connection then broke. A draining backend answers every stream
    /// it admitted before it closes, so such a stream was left out; and the
    /// final GOAWAY that says so can be lost when the close resets the
    /// connection under h2's pending writes.
    pub fn is_unprocessed(&self, err: &h2::Error, stream_id: h2::StreamId) -> bool {
        err.reason() == Some(Reason::REFUSED_STREAM)
            || self.conn.goaway.refused(stream_id.as_u32())
            || (self.opened_after_goaway && (err.is_io() || err.is_go_away()))
    }

    /// Resets the call's stream `send` (from [`CallLease::send_request`])
    /// with `reason`, paced so that cancelling many calls at once cannot
    /// make the backend close the connection (`reset_pacer.rs`). Use it,
    /// not `send_reset`, for every reset of a call the backend has not
    /// answered.
    pub fn cancel(&self, send: SendStream<Bytes>, reason: Reason) {
        self.conn.goaway.resets().cancel(send, reason);
    }

    /// Records the time to the backend's response headers in the latency
    /// estimate (`peak_ewma`).
    pub fn observe_response(&self) {
        let now = Instant::now();
        self.endpoint.load.observe(
            now.saturating_duration_since(self.started),
            since_epoch(now),
        );
    }

    /// Records how the call went on the endpoint; the last one recorded is
    /// reported when the lease drops (`outcome.rs`).
    pub fn set_outcome(&mut self, outcome: CallOutcome) {
        self.outcome = outcome;
    }

    /// The outcome recorded so far.
    pub fn outcome(&self) -> CallOutcome {
        self.outcome
    }

    fn unprocessed(&self, reason: &str) -> SendError {
        SendError::Unprocessed {
            addr: self.endpoint.addr,
            reason: reason.to_string(),
        }
    }
}

impl Drop for CallLease {
    fn drop(&mut self) {
        self.conn.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.endpoint.load.end();
        self.endpoint.record_outcome(self.outcome, self.started);
        self.endpoint.waiters.stream_freed();
    }
}
