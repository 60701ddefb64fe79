//! The file format: what a config file may say, field by field, as it is
//! written. These types only mirror the YAML (unknown fields are errors);
//! `validate` turns them into a [`podlb_proxy::ProxyConfig`], and is where
//! every value is checked. Values the checks point at are [`Spanned`], so an
//! error can name their line and column.
//!
//! A complete example, with every field: `examples/configs/podlb.yaml`.
//!
//! ```yaml
//! listeners:
//!   - name: public
//!     address: 127.0.0.1:7000
//!     routes:
//!       - match: { service: helloworld.Greeter }
//!         upstream: greeter
//! upstreams:
//!   - name: greeter
//!     target: static:///127.0.0.1:50051,127.0.0.1:50052
//! ```
//!
//! Durations are written as a number and a unit (`250ms`, `5s`, `1m`), sizes
//! as a number of bytes.

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A whole config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// The sockets to listen on, each with its routes. Required, at least one.
    pub listeners: Spanned<Vec<Listener>>,
    /// The upstreams that routes send calls to. Required.
    pub upstreams: Vec<Upstream>,
    /// How the proxy stops. Optional.
    #[serde(default)]
    pub shutdown: Shutdown,
}

/// One listening socket: `listeners[i]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// A name for logs and errors. Required, unique among listeners.
    pub name: Spanned<String>,
    /// Where to listen, `IP:PORT` (`0.0.0.0:7000`, `[::]:7000`); host names
    /// are not accepted. Required, unique among listeners.
    pub address: Spanned<String>,
    /// The routes, tried in order; the first that matches a call wins and a
    /// call no route matches ends with UNIMPLEMENTED. Required, at least one.
    pub routes: Spanned<Vec<Route>>,
    /// What each client connection may ask of the listener.
    #[serde(default)]
    pub limits: Limits,
}

/// Limits on each client connection: `listeners[i].limits`. A client over
/// one is disconnected, or has the stream refused; other clients do not
/// notice. The README's "Limits at the edge" says why each default is what
/// it is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// How long a new connection may take to show its protocol and, for
    /// HTTP/2, to send its preface and SETTINGS, a duration; then it is
    /// closed. Default `10s`.
    pub handshake_timeout: Option<Spanned<String>>,
    /// How long an HTTP/1.1 client may take to send a request's headers, a
    /// duration; then the connection is closed. Default `30s`.
    pub http1_header_read_timeout: Option<Spanned<String>>,
    /// The calls (HTTP/2 streams) one client connection may have in flight,
    /// advertised as SETTINGS_MAX_CONCURRENT_STREAMS; a stream over it is
    /// refused with REFUSED_STREAM. At least 1. Default 1000.
    pub max_concurrent_streams: Option<Spanned<u64>>,
    /// The largest header list of a call, in bytes (names and values plus
    /// 32 per field), advertised as SETTINGS_MAX_HEADER_LIST_SIZE; a larger
    /// one is answered with HTTP status 431. At least 1024. Default 16384
    /// (16 KiB).
    pub max_header_list_bytes: Option<Spanned<u64>>,
}

/// One route: `listeners[i].routes[j]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Which calls, by their gRPC path `/pkg.Service/Method`. Leave it out to
    /// match every call.
    #[serde(rename = "match", default)]
    pub matcher: Option<Spanned<Match>>,
    /// The `name` of the upstream the calls go to. Required.
    pub upstream: Spanned<String>,
    /// Retries for these calls, in place of the upstream's policy. At most
    /// one of `retry` and `hedging`.
    pub retry: Option<Spanned<Retry>>,
    /// Hedging for these calls, in place of the upstream's policy.
    pub hedging: Option<Spanned<Hedging>>,
}

/// A6 retries: `upstreams[i].retry` or `listeners[i].routes[j].retry`. A
/// call is sent again, to another endpoint, when it failed before its
/// response headers reached the client: a trailers-only answer with a
/// retryable status, a stream broken before headers (UNAVAILABLE), or no
/// headers within `per_try_timeout`. Never after response headers, and
/// only while the request body fits the 64 KiB replay buffer. Off by
/// default: only calls no backend processed are re-sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Sends in all, the first included: at least 2; above 5 is taken as 5
    /// (gRFC A6). Default 4.
    pub max_attempts: Option<Spanned<u64>>,
    /// The first backoff's ceiling, a duration; each delay is random below
    /// its ceiling. Default `100ms`.
    pub initial_backoff: Option<Spanned<String>>,
    /// The highest ceiling, a duration. Default `1s`.
    pub max_backoff: Option<Spanned<String>>,
    /// The ceiling's growth per retry, above 0. Default 2.
    pub backoff_multiplier: Option<Spanned<f64>>,
    /// The statuses that are retried, by name (`UNAVAILABLE`) or number
    /// (`14`); not empty. Default `[UNAVAILABLE]`.
    pub retryable_status_codes: Option<Spanned<Vec<Spanned<String>>>>,
    /// How long one attempt may wait for response headers, a duration;
    /// then it is cancelled and retried. Default: the call's deadline only.
    pub per_try_timeout: Option<Spanned<String>>,
}

/// A6 hedging: `upstreams[i].hedging` or `listeners[i].routes[j].hedging`.
/// While no attempt has answered, another goes to another endpoint every
/// `hedging_delay`; the first answer wins and the others are cancelled.
/// Only for calls that are safe to run more than once. Off by default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hedging {
    /// Sends in all, the first included: at least 2; above 5 is taken as 5.
    /// Default 2.
    pub max_attempts: Option<Spanned<u64>>,
    /// How long to wait for response headers before the next attempt, a
    /// duration (`0s` sends them all at once). Default `100ms`.
    pub hedging_delay: Option<Spanned<String>>,
    /// Statuses that do not end the call: an answer with one makes the next
    /// attempt go at once. Default `[UNAVAILABLE]`.
    pub non_fatal_status_codes: Option<Spanned<Vec<Spanned<String>>>>,
}

/// The retry budget: `upstreams[i].retry_budget`. Retries and hedges are
/// at most `ratio` of the upstream's calls plus `min_retries_per_second`,
/// so that retries cannot multiply the load of an outage. On by default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudget {
    /// Whether the budget applies. Default `true`.
    pub enabled: Option<bool>,
    /// Retries per call, on average, 0 to 1000. Default 0.2.
    pub ratio: Option<Spanned<f64>>,
    /// Retries per second allowed whatever the traffic. Default 10.
    pub min_retries_per_second: Option<Spanned<u64>>,
}

/// A6 retry throttling: `upstreams[i].retry_throttling`. Each failed
/// attempt takes a token, each other answer gives back `token_ratio`;
/// retries and hedges stop while half the tokens or fewer are left. Off
/// unless set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryThrottling {
    /// The number of tokens, 1 to 1000. Required.
    pub max_tokens: Spanned<u64>,
    /// What each answer that is not a failure gives back, above 0 (three
    /// decimals are kept). Required.
    pub token_ratio: Spanned<f64>,
}

/// What part of a call's path a route matches; exactly one field is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Exactly this method, written `/pkg.Service/Method`.
    pub method: Option<Spanned<String>>,
    /// Every method of this service, written `pkg.Service` (no slashes).
    pub service: Option<Spanned<String>>,
    /// Every path that starts with this text, which starts with `/`
    /// (`/helloworld.` matches every service of package `helloworld`).
    pub prefix: Option<Spanned<String>>,
}

/// One upstream: `upstreams[i]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// The name routes use, and logs and errors show. Required, unique among
    /// upstreams.
    pub name: Spanned<String>,
    /// Where the endpoints come from, a target URI:
    /// `static:///IP:PORT,IP:PORT,...`, `dns:///NAME:PORT` or
    /// `kubernetes:///SERVICE.NAMESPACE:PORT`. Required.
    pub target: Spanned<String>,
    /// How the endpoint of each call is picked: `round_robin`, `random`,
    /// `least_request` (the less loaded of two random endpoints) or
    /// `peak_ewma` (the cheaper of two by latency and load). Default: the
    /// policy an `xds:///` target's Cluster names, if podlb has it; else
    /// `least_request`.
    pub policy: Option<Spanned<String>>,
    /// How long one TCP connect plus HTTP/2 handshake to an endpoint may
    /// take, a duration. Default `5s`.
    pub connect_timeout: Option<Spanned<String>>,
    /// How long to wait before reconnecting to an endpoint that failed.
    #[serde(default)]
    pub backoff: Backoff,
    /// When a `dns:///` target is looked up again.
    #[serde(default)]
    pub dns: Dns,
    /// HTTP/2 keepalive PINGs to the endpoints (off by default).
    #[serde(default)]
    pub keepalive: Keepalive,
    /// Active health checks (`grpc.health.v1`) of each endpoint; off
    /// unless the section is given.
    pub health_check: Option<HealthCheck>,
    /// PINGs to connections that have calls in flight but read nothing
    /// (on by default): how a frozen endpoint is found.
    #[serde(default)]
    pub stall_detection: StallDetection,
    /// Settings of the `peak_ewma` policy.
    #[serde(default)]
    pub peak_ewma: PeakEwma,
    /// HTTP/2 flow control towards the endpoints.
    #[serde(default)]
    pub http2: Http2,
    /// Passive outlier detection: endpoints whose calls fail are taken out
    /// of rotation for a while. On by default.
    #[serde(default)]
    pub outlier_detection: OutlierDetection,
    /// How long a new, reconnected or returning endpoint takes to ramp up
    /// from a tenth to its full share of `least_request` and `peak_ewma`
    /// picks, a duration; `0s` turns slow start off. Default `5s`.
    pub slow_start: Option<Spanned<String>>,
    /// The largest gRPC message accepted in either direction, in bytes;
    /// larger ones end the call with RESOURCE_EXHAUSTED. Default: no limit.
    pub max_message_bytes: Option<u64>,
    /// Retries of the upstream's calls (routes may have their own). At
    /// most one of `retry` and `hedging`. Default: none, or for an
    /// `xds:///` target the `retry_policy` of its route (gRFC A44), which
    /// `retry` or `hedging` here (or on the route) replaces.
    pub retry: Option<Spanned<Retry>>,
    /// Hedging of the upstream's calls. Default: none.
    pub hedging: Option<Spanned<Hedging>>,
    /// The budget of retries and hedges. Default: on, 20% + 10/s.
    #[serde(default)]
    pub retry_budget: RetryBudget,
    /// A6 throttling of retries and hedges. Default: off.
    pub retry_throttling: Option<Spanned<RetryThrottling>>,
}

/// DNS lookup intervals: `upstreams[i].dns`. A name is looked up again
/// when its records' TTL runs out, clamped to `[min_interval, max_interval]`,
/// and at once (no sooner than `min_interval`) when an endpoint refuses a
/// connection.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// The TTL's floor and the least time between lookups. Default `2s`.
    pub min_interval: Option<Spanned<String>>,
    /// The TTL's ceiling. Default `30s`.
    pub max_interval: Option<Spanned<String>>,
}

/// Keepalive PINGs on each endpoint connection: `upstreams[i].keepalive`,
/// as gRPC's client keepalive (gRFC A8). Off unless `interval` is set:
/// servers limit how often they may be pinged (grpc-go: once per 5 minutes
/// by default) and answer more with GOAWAY `too_many_pings`, after which
/// podlb doubles the interval for that endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keepalive {
    /// How long a connection may be idle before a PING, a duration. Default:
    /// no keepalive.
    pub interval: Option<Spanned<String>>,
    /// How long to wait for the PING's answer before the connection is
    /// taken for dead. Default `20s`.
    pub timeout: Option<Spanned<String>>,
}

/// Active health checks: `upstreams[i].health_check`. Each endpoint asks
/// its backend's `grpc.health.v1.Health` service (Watch, else Check every
/// `interval`); one that says NOT_SERVING takes no new calls. A backend
/// without the health service is not checked, and takes calls.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// The service name asked about. Default `""`: the whole server.
    pub service: Option<String>,
    /// Between two Checks, and before a broken Watch is opened again, a
    /// duration. Default `5s`.
    pub interval: Option<Spanned<String>>,
    /// How long a Check, or a Watch's first answer, may take. Default `1s`.
    pub timeout: Option<Spanned<String>>,
    /// Failed checks in a row (timed out, broken) before the endpoint takes
    /// no calls. Default 2. An explicit NOT_SERVING counts at once.
    pub unhealthy_threshold: Option<Spanned<u64>>,
    /// SERVING answers in a row before an unhealthy endpoint takes calls
    /// again. Default 1.
    pub healthy_threshold: Option<Spanned<u64>>,
}

/// Stalled connections: `upstreams[i].stall_detection`. A connection that
/// has calls in flight and reads nothing for `after` is sent an HTTP/2
/// PING; if nothing at all is read for `ping_timeout` after it, the
/// connection is closed (its calls fail with UNAVAILABLE) and the endpoint
/// takes no calls until it answers again. After an answered PING the next
/// waits for the endpoint to send HEADERS or DATA (or 5 minutes), so gRPC
/// servers never count it toward GOAWAY `too_many_pings`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StallDetection {
    /// How long a connection with calls in flight may read nothing before
    /// a PING, a duration, or `off` for no stall detection. Default `1s`.
    pub after: Option<Spanned<String>>,
    /// How long the PING may go unanswered before the connection is
    /// closed, a duration. Default `1s`.
    pub ping_timeout: Option<Spanned<String>>,
}

/// Reconnect delays: `upstreams[i].backoff`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// The delay after the first failure, a duration; it doubles on each
    /// further failure, with jitter. Default `100ms`; not longer than `max`.
    pub initial: Option<Spanned<String>>,
    /// The longest delay, jitter included, a duration: an endpoint that is
    /// still listed but down is tried again at least this often, so it is
    /// back in rotation within `max` of coming back. Default `1s`.
    pub max: Option<Spanned<String>>,
}

/// The `peak_ewma` policy: `upstreams[i].peak_ewma`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeakEwma {
    /// Time constant of the latency estimate, a duration: how fast an old
    /// latency is forgotten. Default `10s`.
    pub decay: Option<Spanned<String>>,
}

/// Passive outlier detection: `upstreams[i].outlier_detection`. Every
/// call's outcome counts: its gRPC status (in headers or trailers), a
/// stream the backend resets, or silence until the deadline (a lost
/// connection is not counted: the endpoint is out until it reconnects). The
/// README's "Sick pods" says why each default is what it is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetection {
    /// `false` never ejects an endpoint. Default `true`.
    pub enabled: Option<bool>,
    /// The gRPC statuses that count as the endpoint's fault, by name
    /// (`UNAVAILABLE`); every other status counts as a success. Default
    /// `[UNAVAILABLE, INTERNAL, UNKNOWN, DATA_LOSS]`.
    pub fault_codes: Option<Vec<Spanned<String>>>,
    /// Failed calls in a row that eject an endpoint; `0` turns this
    /// detector off. Default 5.
    pub consecutive_failures: Option<Spanned<u64>>,
    /// The failure-rate detector.
    #[serde(default)]
    pub failure_rate: FailureRateDetection,
    /// How long a first ejection lasts, a duration; the n-th in a row lasts
    /// n times as long. Default `10s`.
    pub base_ejection_time: Option<Spanned<String>>,
    /// The longest ejection, a duration. Default `5m`.
    pub max_ejection_time: Option<Spanned<String>>,
    /// The most endpoints ejected at once, in percent of the upstream's,
    /// but at least one of two or more and never all; `0` ejects none.
    /// Default 50.
    pub max_ejected_percent: Option<Spanned<u64>>,
    /// Below this percent of connected endpoints in rotation, ejections
    /// are ignored and calls spread over every connected endpoint.
    /// Default 50.
    pub panic_threshold_percent: Option<Spanned<u64>>,
}

impl OutlierDetection {
    /// Whether the user wrote none of it: an xDS Cluster's
    /// `outlier_detection` may then replace podlb's defaults.
    pub fn is_unset(&self) -> bool {
        let rate = &self.failure_rate;
        self.enabled.is_none()
            && self.fault_codes.is_none()
            && self.consecutive_failures.is_none()
            && rate.threshold_percent.is_none()
            && rate.min_calls.is_none()
            && rate.interval.is_none()
            && self.base_ejection_time.is_none()
            && self.max_ejection_time.is_none()
            && self.max_ejected_percent.is_none()
            && self.panic_threshold_percent.is_none()
    }
}

/// `upstreams[i].outlier_detection.failure_rate`: an endpoint is ejected
/// when, over one interval with at least `min_calls` calls, at least
/// `threshold_percent` of them failed, while the other endpoints failed
/// less than that.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureRateDetection {
    /// The failed share that ejects, in percent; `0` turns this detector
    /// off. Default 50.
    pub threshold_percent: Option<Spanned<u64>>,
    /// The fewest calls in an interval for the rate to count. Default 20.
    pub min_calls: Option<Spanned<u64>>,
    /// The interval, a duration. Default `10s`.
    pub interval: Option<Spanned<String>>,
}

/// HTTP/2 windows the proxy advertises to the endpoints:
/// `upstreams[i].http2`. Both lie in 65535..=2147483647 bytes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http2 {
    /// Initial window of each stream (call), in bytes. Default 1048576 (1 MiB).
    pub stream_window: Option<Spanned<u64>>,
    /// Window of the whole connection, in bytes. Default 16777216 (16 MiB).
    pub connection_window: Option<Spanned<u64>>,
}

/// Shutdown: `shutdown`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {
    /// On SIGTERM, how long calls in flight may take to finish before the
    /// proxy exits anyway, a duration. Default `30s`.
    pub grace_period: Option<Spanned<String>>,
}
