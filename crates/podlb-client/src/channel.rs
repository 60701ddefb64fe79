//! [`Channel`]: what a tonic client is built on, balancing each call over
//! the endpoints of a target; [`Builder`]: its settings.
//!
//! It owns the wiring only: discovery (`podlb-discovery`) feeds an upstream
//! (`podlb-upstream`: endpoint connections, policy picks), and each call
//! goes through `call.rs`. It must not grow its own connection or
//! balancing logic; the proxy and the client share those.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use podlb_balance::{Load, PolicyChoice, PolicyKind};
use podlb_core::{EndpointAddr, Target, TargetKind};
use podlb_discovery::{BootstrapSource, Discovery, DiscoveryOptions, DnsOptions};
use podlb_upstream::retry::{
    BudgetConfig, CallPolicy, HedgingPolicy, Resend, ResendSettings, RetryPolicy, ThrottleConfig,
};
use podlb_upstream::{ConnectionSettings, EjectionStatus, Health, HealthCheckSettings, Upstream};

use crate::body::{BoxError, ResponseBody};
use crate::call::{self, CallContext};
use crate::{Error, OutlierSettings};

pub use podlb_upstream::EndpointState;

/// A gRPC channel that balances every call over the endpoints of a target:
/// one HTTP/2 connection per endpoint (more when a server's
/// SETTINGS_MAX_CONCURRENT_STREAMS is reached), a policy's pick per call,
/// and calls the server never processed sent again elsewhere.
///
/// Use it wherever tonic takes a `Channel`: `GreeterClient::new(channel)`.
/// Cheap to clone; every clone shares the connections. Build it inside a
/// tokio runtime: discovery and connections are tasks on that runtime.
#[derive(Clone)]
pub struct Channel {
    ctx: Arc<CallContext>,
    _discovery: Discovery,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("target", &self.ctx.upstream.target().uri())
            .finish_non_exhaustive()
    }
}

/// One endpoint as the channel sees it, for the application to log or
/// export.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EndpointStatus {
    /// Its address.
    pub addr: EndpointAddr,
    /// Whether it can take calls now.
    pub state: EndpointState,
    /// Calls in flight on it.
    pub in_flight: u64,
    /// What active health checks say of it (`Unchecked` without them).
    pub health: Health,
    /// Why and until when outlier detection took it out of rotation, if
    /// it did (it stays connected, and `state` stays Ready).
    pub ejection: Option<EjectionStatus>,
}

impl Channel {
    /// A channel to `target` with the default settings: `least_request`
    /// (or an `xds:///` target's own policy), fail fast. For example `kubernetes:///greeter.default:50051`,
    /// `dns:///greeter.default.svc.cluster.local:50051` or
    /// `static:///10.0.0.1:50051,10.0.0.2:50051`.
    pub fn from_target(target: &str) -> Result<Channel, Error> {
        Builder::new(target)?.build()
    }

    /// A builder for a channel to `target`.
    pub fn builder(target: &str) -> Result<Builder, Error> {
        Builder::new(target)
    }

    /// The target.
    pub fn target(&self) -> &Target {
        self.ctx.upstream.target()
    }

    /// The endpoints the channel balances over now, with their state and
    /// load.
    pub fn endpoints(&self) -> Vec<EndpointStatus> {
        self.ctx
            .upstream
            .endpoints()
            .iter()
            .map(|e| EndpointStatus {
                addr: e.addr(),
                state: e.state(),
                in_flight: e.in_flight(),
                health: e.health(),
                ejection: e.ejection(),
            })
            .collect()
    }

    /// The policy that picks each call's endpoint now (see
    /// [`Builder::policy`]).
    pub fn policy(&self) -> PolicyKind {
        self.ctx.upstream.policy()
    }

    /// The outlier detection its servers are judged by now: the settings
    /// given to [`Builder::outlier_detection`], else what an `xds:///`
    /// target's Cluster asks for, else podlb's defaults.
    pub fn outlier_settings(&self) -> OutlierSettings {
        self.ctx.upstream.outlier_settings()
    }
}

/// Settings of a [`Channel`].
#[derive(Debug, Clone)]
pub struct Builder {
    target: Target,
    policy: PolicyChoice,
    connection: ConnectionSettings,
    discovery: DiscoveryOptions,
    wait_for_ready: bool,
    resend: ResendSettings,
}

impl Builder {
    /// Settings for a channel to `target`, all at their defaults.
    pub fn new(target: &str) -> Result<Builder, Error> {
        let target: Target = target.parse()?;
        #[cfg(not(feature = "kubernetes"))]
        if matches!(target.kind(), TargetKind::Kubernetes(_)) {
            return Err(Error::KubernetesDisabled {
                target: target.uri().to_string(),
            });
        }
        #[cfg(not(feature = "xds"))]
        if matches!(target.kind(), TargetKind::Xds(_)) {
            return Err(Error::XdsDisabled {
                target: target.uri().to_string(),
            });
        }
        Ok(Builder {
            target,
            policy: PolicyChoice::FromSource,
            connection: ConnectionSettings::default(),
            discovery: DiscoveryOptions::default(),
            wait_for_ready: false,
            resend: ResendSettings::new(),
        })
    }

    /// How each call's endpoint is picked: `least_request`, `round_robin`,
    /// `random` or `peak_ewma`. Without it, an `xds:///` target balances
    /// with the policy its Cluster names, if podlb has it, and every other
    /// target (and that one otherwise) with `least_request`.
    pub fn policy(mut self, policy: PolicyKind) -> Self {
        self.policy = PolicyChoice::Fixed(policy);
        self
    }

    /// How long one connect plus HTTP/2 handshake may take. Default 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connection.connect_timeout = timeout;
        self
    }

    /// Per-endpoint connection settings (backoff, windows, ...), whole.
    pub fn connection_settings(mut self, settings: ConnectionSettings) -> Self {
        self.connection = settings;
        self
    }

    /// HTTP/2 windows advertised to the servers, in bytes: per stream and
    /// per connection. Defaults 1 MiB and 16 MiB.
    pub fn windows(mut self, stream: u32, connection: u32) -> Self {
        self.connection.stream_window = stream;
        self.connection.connection_window = connection;
        self
    }

    /// HTTP/2 keepalive (gRFC A8): a PING on each connection every
    /// `interval`, and the connection taken for dead when one is not
    /// answered within `timeout`. Off by default, as in gRPC: servers limit
    /// how often they may be pinged and answer more with GOAWAY
    /// `too_many_pings`, after which the interval doubles for that server.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.connection.keepalive_interval = Some(interval);
        self.connection.keepalive_timeout = timeout;
        self
    }

    /// Active health checks (`grpc.health.v1`, Watch else Check) of every
    /// endpoint: one whose server says NOT_SERVING takes no calls until it
    /// says SERVING again. Off by default (passive outlier detection needs
    /// nothing of the servers); a server without the health service is
    /// not checked, and takes calls.
    pub fn health_check(mut self, checks: HealthCheckSettings) -> Self {
        self.connection.health_check = Some(checks);
        self
    }

    /// Stalled connections: a connection that has calls in flight and reads
    /// nothing for `after` is sent a PING, and closed (its calls fail with
    /// UNAVAILABLE, the endpoint takes no calls until it answers again) if
    /// nothing is read for `ping_timeout` after it. `None` turns it off.
    /// Defaults 1 s and 1 s: on, so a frozen server (a stopped process, its
    /// kernel still accepting) leaves rotation within about 2.5 s. It never
    /// earns a GOAWAY `too_many_pings`: after an answered PING the next
    /// waits for the server to send HEADERS or DATA, or 5 minutes.
    pub fn stall_detection(mut self, after: Option<Duration>, ping_timeout: Duration) -> Self {
        self.connection.stall_after = after;
        self.connection.stall_ping_timeout = ping_timeout;
        self
    }

    /// Passive outlier detection: which statuses count as a server's
    /// fault, the detectors, how long and how many servers are ejected.
    /// On by default ([`OutlierSettings::default`] says each value and
    /// why); [`OutlierSettings::disabled`] turns it off. Settings given
    /// here win over what an `xds:///` target's Cluster asks for; without
    /// them, the Cluster's `outlier_detection` replaces the defaults.
    pub fn outlier_detection(mut self, settings: OutlierSettings) -> Self {
        self.connection.outlier = settings;
        self.connection.outlier_from_source = false;
        self
    }

    /// How long a new, reconnected or returning server takes to ramp up
    /// from a tenth to its full share of `least_request` and `peak_ewma`
    /// picks. Default 5 s; zero turns slow start off.
    pub fn slow_start(mut self, window: Duration) -> Self {
        self.connection.slow_start = window;
        self
    }

    /// When no endpoint is ready: `false` (the default, gRPC's fail fast)
    /// answers UNAVAILABLE at once after the channel has started; `true`
    /// (gRPC's wait-for-ready) waits for an endpoint until the call's
    /// deadline.
    pub fn wait_for_ready(mut self, wait: bool) -> Self {
        self.wait_for_ready = wait;
        self
    }

    /// gRFC A6 retries: a call that failed before its response headers
    /// (a trailers-only answer with a retryable status, a stream broken
    /// before headers, no headers within `per_try_timeout`) is sent again
    /// to another endpoint, while its request body fits the 64 KiB replay
    /// buffer. Replaces [`Builder::hedging`]. Default: none, only calls no
    /// server processed are sent again (safe for any method), unless an
    /// `xds:///` target's route has a `retry_policy` (gRFC A44), which is
    /// followed then. A policy given here (or hedging) wins over the
    /// route's.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.resend.policy = CallPolicy::Retry(policy);
        self
    }

    /// gRFC A6 hedging: while no attempt has answered, another goes to
    /// another endpoint every `hedging_delay`; the first answer wins, the
    /// others are cancelled. Only for methods safe to run more than once.
    /// Replaces [`Builder::retry`]. Default: none.
    pub fn hedging(mut self, policy: HedgingPolicy) -> Self {
        self.resend.policy = CallPolicy::Hedge(policy);
        self
    }

    /// The retry budget: retries and hedges at most `ratio` of the calls
    /// plus `min_per_second`; `None` turns it off. Default 20% + 10/s
    /// (Linkerd's and Finagle's).
    pub fn retry_budget(mut self, budget: Option<BudgetConfig>) -> Self {
        self.resend.budget = budget;
        self
    }

    /// gRFC A6 retry throttling (`maxTokens`, `tokenRatio`). Default: off.
    pub fn retry_throttling(mut self, throttle: ThrottleConfig) -> Self {
        self.resend.throttle = Some(throttle);
        self
    }

    /// `dns:///` targets: the least and the most time between two lookups
    /// (the TTL is clamped between them). Defaults 2 s and 30 s.
    pub fn dns_intervals(mut self, min: Duration, max: Duration) -> Self {
        self.discovery.dns = DnsOptions {
            min_interval: min,
            max_interval: max.max(min),
        };
        self
    }

    /// `kubernetes:///` targets: the kubeconfig file to use instead of
    /// `KUBECONFIG`, `~/.kube/config` or the pod's service account.
    pub fn kubeconfig(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.discovery.kubernetes.kubeconfig = Some(path.into());
        self
    }

    /// `xds:///` targets: read the gRPC xDS bootstrap from this file
    /// instead of `GRPC_XDS_BOOTSTRAP` / `GRPC_XDS_BOOTSTRAP_CONFIG`.
    pub fn xds_bootstrap_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.discovery.xds.bootstrap = BootstrapSource::File(path.into());
        self
    }

    /// `xds:///` targets: this gRPC xDS bootstrap JSON instead of the one
    /// the environment names.
    pub fn xds_bootstrap_json(mut self, json: impl Into<String>) -> Self {
        self.discovery.xds.bootstrap = BootstrapSource::Json(json.into());
        self
    }

    /// Starts discovery and connections; calls can be made at once (they
    /// wait for the first connections).
    pub fn build(self) -> Result<Channel, Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoRuntime);
        }
        let discovery = Discovery::start(&self.target, &self.discovery);
        // Named by its target: messages then say which channel failed.
        let upstream = Upstream::start(
            self.target.uri(),
            discovery.clone(),
            self.policy,
            self.connection,
        );
        let ctx = CallContext {
            authority: authority_of(&self.target),
            upstream,
            wait_for_ready: self.wait_for_ready,
            resend: Resend {
                limits: self.resend.limits(),
                policy: self.resend.policy,
            },
        };
        Ok(Channel {
            ctx: Arc::new(ctx),
            _discovery: discovery,
        })
    }
}

/// The `:authority` of calls, as gRPC derives it from the target: the
/// name and port (the first address for a static list).
fn authority_of(target: &Target) -> http::uri::Authority {
    let text = match target.kind() {
        TargetKind::Static(addrs) => addrs.first().map(|a| a.to_string()).unwrap_or_default(),
        TargetKind::Dns(dns) => format!("{}:{}", dns.host, dns.port),
        TargetKind::Kubernetes(kube) => match &kube.namespace {
            Some(ns) => format!("{}.{ns}:{}", kube.service, kube.port),
            None => format!("{}:{}", kube.service, kube.port),
        },
        // gRPC's default for xDS: the name, which the Listener's virtual
        // hosts are matched against.
        TargetKind::Xds(xds) => xds.name.clone(),
    };
    text.parse()
        .unwrap_or_else(|_| http::uri::Authority::from_static("localhost"))
}

impl<B> tower_service::Service<Request<B>> for Channel
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Always ready: the endpoint is picked per call, and a call that
        // finds none waits or fails by itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let ctx = self.ctx.clone();
        Box::pin(async move { Ok(call::call(ctx, request).await) })
    }
}
