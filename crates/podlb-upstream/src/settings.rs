//! Settings of an upstream's endpoint connections, with their defaults.

use std::time::Duration;

use podlb_balance::OutlierSettings;

use crate::HealthCheckSettings;

/// How podlb connects to, and keeps connected to, each endpoint of an upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSettings {
    /// How long one TCP connect plus HTTP/2 handshake may take. Default 5s.
    pub connect_timeout: Duration,
    /// The first reconnect delay after a failure; it doubles on each further
    /// failure, with jitter. Default 100ms.
    pub backoff_initial: Duration,
    /// The longest reconnect delay, jitter included: an endpoint that
    /// discovery still lists is tried again at least this often while it is
    /// down. Default 1s.
    ///
    /// One second, not gRPC's 120 s nor the 10 s podlb had: a pod restarted
    /// in place (same address) gets calls again within a second of
    /// listening, where a longer cap leaves it idle for as long while the
    /// others carry its load. The cost is one connect attempt per second per
    /// dead endpoint that is still listed; a refused connect costs a SYN and
    /// a RST, and discovery drops a pod that is really gone.
    pub backoff_max: Duration,
    /// Time constant of the `peak_ewma` latency estimate. Default 10s.
    pub ewma_decay: Duration,
    /// HTTP/2 initial stream window the proxy advertises to backends, in
    /// bytes. Default 1 MiB.
    pub stream_window: u32,
    /// HTTP/2 connection window the proxy advertises to backends, in bytes.
    /// Default 16 MiB.
    pub connection_window: u32,
    /// How long a connection may read nothing before podlb sends it an
    /// HTTP/2 PING to check that the backend is still there (gRFC A8's
    /// client-side keepalive, `KEEPALIVE_TIME`). `None`, the default, sends
    /// none, as gRPC clients do by default.
    ///
    /// Off by default because servers limit how often they may be pinged:
    /// grpc-go and grpc-java permit one PING per 5 minutes by default, and
    /// on a connection without calls one per 2 hours unless told otherwise.
    /// A client that pings more often is sent GOAWAY `ENHANCE_YOUR_CALM`
    /// "too_many_pings" and its calls on that connection fail. Each such
    /// GOAWAY doubles the interval for that endpoint, as gRFC A8 asks. Set
    /// it only to what the backends permit, and above a minute unless they
    /// say otherwise.
    ///
    /// Idle connections are pinged too: podlb opens connections ahead of
    /// calls, and a dead one must be found before a call is sent on it. A
    /// backend that does not permit PINGs without calls (grpc-go's
    /// `PermitWithoutStream: false`, its default) answers them with
    /// "too_many_pings" until the interval has doubled past its limit.
    pub keepalive_interval: Option<Duration>,
    /// How long a connection may stay silent after a keepalive PING before
    /// it is deemed dead, closed (its calls fail) and replaced by a new
    /// connection (gRFC A8's `KEEPALIVE_TIMEOUT`). Any byte read counts as
    /// an answer. Used only with `keepalive_interval`. Default 20s.
    pub keepalive_timeout: Duration,
    /// Active health checks (`grpc.health.v1`) of each endpoint. `None`,
    /// the default, checks nothing: not every backend serves the health
    /// service, and passive checks (outlier detection) need none.
    pub health_check: Option<HealthCheckSettings>,
    /// How long a connection that has calls in flight may read nothing
    /// before podlb sends it an HTTP/2 PING to check that the backend is
    /// not frozen. `None` turns stall detection off. Default `Some(1s)`.
    ///
    /// A frozen backend (a stopped process, a hung node) keeps its TCP
    /// connections open and its kernel ACKs what is sent: without this,
    /// calls wait for their deadlines and new ones keep coming. A second
    /// is short next to the deadlines gRPC calls carry, and long next to
    /// the gap between frames of a backend at work; a backend that takes
    /// longer to answer a call is pinged, answers, and is left alone.
    ///
    /// On by default because it cannot earn a GOAWAY "too_many_pings": a
    /// connection gets no further stall PING after one is answered until
    /// the backend sends HEADERS or DATA (which resets a gRPC server's
    /// ping strikes) or 5 minutes pass (its permitted interval), so at most
    /// one PING can count as a strike where servers allow two.
    pub stall_after: Option<Duration>,
    /// How long a stall PING may go unanswered, with nothing at all read,
    /// before the connection is closed: its calls fail at once with
    /// UNAVAILABLE naming the endpoint, and the endpoint takes no calls
    /// until a new connection answers a PING. Default 1s.
    ///
    /// Any HTTP/2 stack answers a PING at once, whatever its calls are
    /// doing; a backend silent for a second after one is frozen, or paused
    /// longer than its callers' patience (set it above the longest pause
    /// the backends take, such as a stop-the-world GC).
    pub stall_ping_timeout: Duration,
    /// Passive outlier detection: endpoints whose calls fail are ejected
    /// for a while (`podlb_balance::outlier`). On by default; each field
    /// documents its default and why.
    pub outlier: OutlierSettings,
    /// Whether the outlier detection an xDS Cluster asks for
    /// (`outlier_detection`) replaces `outlier`, live, while the upstream
    /// runs. Default true; the config and the client builder set it false
    /// when the user gives outlier settings, which then win (as a policy
    /// the user chose wins over the Cluster's). A Cluster without
    /// `outlier_detection` leaves `outlier` as it is.
    pub outlier_from_source: bool,
    /// How long a new, reconnected or returning endpoint takes to ramp up
    /// to its full share of `least_request` and `peak_ewma` picks, from a
    /// tenth of it. Zero turns it off. Default 5s: long enough for a
    /// pod's caches and JIT to warm under a growing share, short enough
    /// that a scale-up pays off at once; and a returning pod takes calls
    /// from its first second (a tenth, then a fifth of its share), so it is
    /// back in rotation within a second.
    pub slow_start: Duration,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            connect_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            ewma_decay: Duration::from_secs(10),
            stream_window: 1 << 20,
            connection_window: 16 << 20,
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(20),
            health_check: None,
            stall_after: Some(Duration::from_secs(1)),
            stall_ping_timeout: Duration::from_secs(1),
            outlier: OutlierSettings::default(),
            outlier_from_source: true,
            slow_start: Duration::from_secs(5),
        }
    }
}
