//! The proxy's validated configuration: what to listen on, how to route
//! calls, and where upstreams are. Built by `podlb-config` from YAML, or
//! directly by [`ProxyConfig::single`] for the command line's quick form.

use std::time::Duration;

use podlb_balance::PolicyChoice;
use podlb_core::{ListenAddr, Target};
use podlb_discovery::DiscoveryOptions;
use podlb_upstream::ConnectionSettings;

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
}

/// Sends calls whose path matches to an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Which calls.
    pub matcher: RouteMatch,
    /// The name of the upstream they go to.
    pub upstream: String,
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
                }],
            }],
            upstreams: vec![UpstreamConfig {
                name: "default".into(),
                target,
                policy: policy.into(),
                discovery: DiscoveryOptions::default(),
                connection: ConnectionSettings::default(),
                max_message_bytes: None,
            }],
            grace_period: DEFAULT_GRACE_PERIOD,
        }
    }
}
