//! The L7 proxy: balances every gRPC call (every HTTP/2 stream) on its own.
//!
//! ```text
//!  listener ─► detect (h2 / HTTP/1.1) ─► route (/pkg.Service/Method) ─► upstream
//!     upstream = discovery ─► endpoint set ─► policy ─► endpoint connection ─► backend
//! ```
//!
//! This crate owns the listeners, protocol detection, routes and the
//! forwarding of each call; `podlb-upstream` owns the backend connections
//! and `podlb-balance` the choice of endpoint. Each call runs on the call
//! engine of `podlb-upstream`, which the client library shares; the statuses
//! the proxy answers calls with are made in `podlb_upstream::status` only.

mod config;
mod detect;
mod error;
mod forward;
#[doc(hidden)]
pub mod fuzzing;
mod http1;
mod listener;
mod route;
mod upstream;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use podlb_discovery::{DiscoveryHub, DiscoveryOptions, DnsOptions, KubernetesOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{
    DEFAULT_GRACE_PERIOD, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_HTTP1_HEADER_READ_TIMEOUT,
    DEFAULT_MAX_CONCURRENT_STREAMS, DEFAULT_MAX_HEADER_LIST_BYTES, ListenerConfig, ListenerLimits,
    ProxyConfig, RouteConfig, RouteMatch, UpstreamConfig,
};
pub use error::Error;
/// Retry and hedging policies, the retry budget and throttling (gRFC A6),
/// as [`UpstreamConfig::resend`] and [`RouteConfig::resend`] hold them.
pub use podlb_upstream::retry;

use listener::ListenerShared;
use route::RouteTable;
use upstream::ProxyUpstream;

/// A proxy with its listeners bound and its upstreams connecting.
#[derive(Debug)]
pub struct Proxy {
    listeners: Vec<(TcpListener, Arc<ListenerShared>)>,
    addrs: Vec<(String, SocketAddr)>,
    grace_period: Duration,
    upstreams: Vec<Arc<ProxyUpstream>>,
}

/// A view of a running proxy's upstreams, valid while it runs.
#[derive(Debug, Clone)]
pub struct ProxyHandle {
    upstreams: Vec<Arc<ProxyUpstream>>,
}

/// One endpoint as the proxy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointStatus {
    /// The upstream it belongs to.
    pub upstream: String,
    /// Its address.
    pub addr: podlb_core::EndpointAddr,
    /// Whether it can take calls.
    pub state: EndpointState,
    /// Calls in flight on it now.
    pub in_flight: u64,
    /// What active health checks say of it (`Unchecked` without them).
    pub health: Health,
    /// Why and until when outlier detection took it out of rotation, if it
    /// did (it stays connected, and `state` stays Ready).
    pub ejection: Option<EjectionStatus>,
}

pub use podlb_upstream::{EjectionStatus, EndpointState, Health, HealthCheckSettings};

impl ProxyHandle {
    /// Every endpoint of every upstream, with its state.
    pub fn endpoints(&self) -> Vec<EndpointStatus> {
        use podlb_balance::Load;
        self.upstreams
            .iter()
            .flat_map(|u| {
                u.upstream.endpoints().into_iter().map(|e| EndpointStatus {
                    upstream: u.name().to_string(),
                    addr: e.addr(),
                    state: e.state(),
                    in_flight: e.in_flight(),
                    health: e.health(),
                    ejection: e.ejection(),
                })
            })
            .collect()
    }
}

/// A listening socket on `addr`, optionally with SO_REUSEPORT.
fn listen(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

impl Proxy {
    /// Binds every listener and starts every upstream's discovery and
    /// connections. Must be called within a tokio runtime.
    pub async fn bind(config: ProxyConfig) -> Result<Proxy, Error> {
        Self::bind_with(config, false, &DiscoveryHub::new()).await
    }

    /// Like [`Proxy::bind`], with SO_REUSEPORT on the listeners when
    /// `reuse_port` is set, so that several workers (each a proxy on its own
    /// single-threaded runtime) share the same addresses and the kernel
    /// spreads connections across them.
    pub async fn bind_with(
        config: ProxyConfig,
        reuse_port: bool,
        discovery: &DiscoveryHub,
    ) -> Result<Proxy, Error> {
        let upstreams: HashMap<&str, Arc<ProxyUpstream>> = config
            .upstreams
            .iter()
            .map(|u| {
                (
                    u.name.as_str(),
                    Arc::new(ProxyUpstream::start(u, discovery)),
                )
            })
            .collect();
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for lc in &config.listeners {
            let routes = lc
                .routes
                .iter()
                .map(|r| match upstreams.get(r.upstream.as_str()) {
                    Some(u) => Ok(route::Route {
                        matcher: r.matcher.clone(),
                        upstream: u.clone(),
                        resend: podlb_upstream::retry::Resend {
                            policy: r.resend.clone().unwrap_or_else(|| u.resend.policy.clone()),
                            limits: u.resend.limits.clone(),
                        },
                    }),
                    None => Err(Error::UnknownUpstream {
                        listener: lc.name.clone(),
                        upstream: r.upstream.clone(),
                    }),
                })
                .collect::<Result<Vec<_>, Error>>()?;
            let listener =
                listen(lc.address.socket_addr(), reuse_port).map_err(|source| Error::Bind {
                    name: lc.name.clone(),
                    address: lc.address,
                    source,
                })?;
            let local = listener.local_addr().map_err(|source| Error::Bind {
                name: lc.name.clone(),
                address: lc.address,
                source,
            })?;
            addrs.push((lc.name.clone(), local));
            let shared = ListenerShared {
                name: lc.name.clone(),
                routes: Arc::new(RouteTable::new(routes)),
                limits: lc.limits.clone(),
            };
            listeners.push((listener, Arc::new(shared)));
        }
        Ok(Proxy {
            listeners,
            addrs,
            grace_period: config.grace_period,
            upstreams: upstreams.into_values().collect(),
        })
    }

    /// A view of the upstreams, for status and tests.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            upstreams: self.upstreams.clone(),
        }
    }

    /// Each listener's name and the address it is bound to.
    pub fn local_addrs(&self) -> &[(String, SocketAddr)] {
        &self.addrs
    }

    /// Serves until `shutdown` resolves, then stops accepting, sends GOAWAY
    /// to every client and waits up to the grace period for calls in flight.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let http1_client = http1::client();
        let mut accept_loops = Vec::new();
        for (listener, shared) in self.listeners {
            tracing::debug!(listener = %shared.name, address = ?listener.local_addr().ok(), "listening");
            accept_loops.push(tokio::spawn(listener::accept_loop(
                listener,
                shared,
                http1_client.clone(),
                stop.clone(),
                tracker.clone(),
            )));
        }
        shutdown.await;
        tracing::debug!(grace_period = ?self.grace_period, "shutting down: no new connections, GOAWAY sent, waiting for calls in flight");
        stop.cancel();
        for accept in accept_loops {
            let _ = accept.await;
        }
        tracker.close();
        if tokio::time::timeout(self.grace_period, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = tracker.len(),
                "grace period over with calls still in flight; exiting anyway"
            );
        }
        Ok(())
    }
}
