//! The proxy's validated configuration: what to listen on, how to route
//! calls, and where upstreams are. Built by `podlb-config` from YAML, or
//! directly by [`ProxyConfig::single`] for the command line's quick form.

use std::time::Duration;

use podlb_balance::PolicyChoice;
use podlb_core::{ListenAddr, Target};
use podlb_discovery::DiscoveryOptions;
use podlb_upstream::ConnectionSettings;
use podlb_upstream::retry::{CallPolicy, ResendSettings};

/// Everything the proxy runs with.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The listeners; each has its own routes.
    pub listeners: Vec<ListenerConfig>,
    /// The upstreams routes send to, by name.
    pub upstreams: Vec<UpstreamConfig>,
    /// On SIGTERM, how long calls in flight may take to finish before the
    /// proxy exits anyway. Default 30s.
    pub grace_period: Duration,
}

/// One listening socket.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// A name for logs.
    pub name: String,
    /// Where to listen.
    pub address: ListenAddr,
    /// Routes, tried in order; the first that matches wins.
    pub routes: Vec<RouteConfig>,
    /// What a client connection may ask of the listener.
    pub limits: ListenerLimits,
}

/// The limits a listener puts on each client connection, so that no client
/// can hold the proxy's CPU or memory by what it leaves unsaid or asks for
/// in bulk. The defaults, and why each is what it is, are in the README
/// ("Limits at the edge").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerLimits {
    /// How long a new connection may take to show its protocol and, for
    /// HTTP/2, to send its preface and SETTINGS; then it is closed.
    /// Default [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// How long an HTTP/1.1 client may take to send a request's headers
    /// (slowloris); then the connection is closed. Default
    /// [`DEFAULT_HTTP1_HEADER_READ_TIMEOUT`].
    pub http1_header_read_timeout: Duration,
    /// SETTINGS_MAX_CONCURRENT_STREAMS advertised to each HTTP/2 client:
    /// the calls one connection may have in flight. A stream over it is
    /// refused (REFUSED_STREAM). Default [`DEFAULT_MAX_CONCURRENT_STREAMS`].
    pub max_concurrent_streams: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE advertised to each HTTP/2 client, in
    /// bytes (names and values plus 32 per field, RFC 9113 6.5.2); a call
    /// whose headers are larger is answered 431. Default
    /// [`DEFAULT_MAX_HEADER_LIST_BYTES`].
    pub max_header_list_bytes: u32,
}

/// The default [`ListenerLimits::handshake_timeout`]: 10 s, Linkerd's
/// protocol-detection timeout. A real client sends its preface at once.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default [`ListenerLimits::http1_header_read_timeout`]: 30 s,
/// hyper's own default (off in podlb until now, for want of a timer).
pub const DEFAULT_HTTP1_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The default [`ListenerLimits::max_concurrent_streams`]: 1000. gRPC
/// clients multiplex every call to a target on one connection and queue
/// calls over the limit, so a proxy's limit is a client's concurrency:
/// HAProxy's 100 and nginx's 128 would throttle a busy client; Envoy's and
/// grpc-go's 2^31-1 bound nothing. Memory per connection stays bounded by
/// the 16 MiB connection window whatever the count.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 1000;
/// The default [`ListenerLimits::max_header_list_bytes`]: 16 KiB, what a
/// tonic (hyper) backend accepts, and twice gRPC C++/Java's 8 KiB, so no
/// call a backend would take is refused by the proxy first.
pub const DEFAULT_MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            http1_header_read_timeout: DEFAULT_HTTP1_HEADER_READ_TIMEOUT,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_header_list_bytes: DEFAULT_MAX_HEADER_LIST_BYTES,
        }
    }
}

/// Sends calls whose path matches to an upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// Which calls.
    pub matcher: RouteMatch,
    /// The name of the upstream they go to.
    pub upstream: String,
    /// The retry or hedging policy of these calls, in place of the
    /// upstream's; `None` keeps the upstream's. The upstream's budget and
    /// throttle apply either way.
    pub resend: Option<CallPolicy>,
}

/// What part of the gRPC path `/pkg.Service/Method` a route matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    /// Exactly this path, `/pkg.Service/Method`.
    Method(String),
    /// Every method of this service, `pkg.Service` (written without slashes).
    Service(String),
    /// Every path starting with this prefix.
    Prefix(String),
    /// Every call.
    Any,
}

/// One upstream: where its endpoints come from and how calls are spread.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The name routes use, and logs and errors show.
    pub name: String,
    /// Where endpoints come from.
    pub target: Target,
    /// How the endpoint of each call is picked: the user's policy, or the
    /// one the source names (an xDS Cluster's), else least request.
    pub policy: PolicyChoice,
    /// How discovery follows the target (DNS intervals).
    pub discovery: DiscoveryOptions,
    /// How endpoints are connected to.
    pub connection: ConnectionSettings,
    /// The largest gRPC message accepted in either direction, in bytes;
    /// larger ones end the call with RESOURCE_EXHAUSTED. `None` (the
    /// default) passes messages of any size.
    pub max_message_bytes: Option<u64>,
    /// What calls are sent again (retries, hedging) and the retry budget
    /// and throttle. Default: only calls no backend processed, budget on.
    pub resend: ResendSettings,
}

/// The default grace period on shutdown.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);

impl ProxyConfig {
    /// The quick form: one listener sending every call to one upstream.
    pub fn single(address: ListenAddr, target: Target, policy: impl Into<PolicyChoice>) -> Self {
        ProxyConfig {
            listeners: vec![ListenerConfig {
                name: "default".into(),
                address,
                routes: vec![RouteConfig {
                    matcher: RouteMatch::Any,
                    upstream: "default".into(),
                    resend: None,
                }],
                limits: ListenerLimits::default(),
            }],
            upstreams: vec![UpstreamConfig {
                name: "default".into(),
                target,
                policy: policy.into(),
                discovery: DiscoveryOptions::default(),
                connection: ConnectionSettings::default(),
                max_message_bytes: None,
                resend: ResendSettings::new(),
            }],
            grace_period: DEFAULT_GRACE_PERIOD,
        }
    }
}
