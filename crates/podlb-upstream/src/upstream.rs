//! An upstream: discovery feeding an endpoint set, and the pick of one
//! endpoint connection per call.
//!
//! ```text
//!  discover(target) ─► task: EndpointSet::apply ─► new endpoints spawn their driver,
//!                                                  removed ones drain
//!  call ─► Upstream::lease ─► snapshot ─► Policy::pick ─► EndpointConnection::lease
//!              │ none ready while starting, or every stream taken
//!              ▼
//!          Upstream::lease_waiting (until a change, bounded)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use podlb_balance::{EndpointSet, Load, Policy, PolicyKind};
use podlb_core::{EndpointAddr, Target};
use tokio::task::JoinHandle;

use crate::endpoint::Lease;
use crate::waiters::{Waiters, deadline_after};
use crate::{CallLease, ConnectionSettings, EndpointConnection, Error};

type Endpoints = EndpointSet<Arc<EndpointConnection>>;

/// A named set of endpoints that calls are balanced over.
#[derive(Debug)]
pub struct Upstream {
    name: Arc<str>,
    target: Target,
    endpoints: Arc<Endpoints>,
    policy: Box<dyn Policy<Arc<EndpointConnection>>>,
    discovery: JoinHandle<()>,
    /// Discovery has delivered its first update.
    resolved: Arc<AtomicBool>,
    waiters: Arc<Waiters>,
    connect_timeout: Duration,
}

/// How many policy picks a call makes before it looks at every endpoint: a
/// pick can race with a connection closing.
const PICK_ATTEMPTS: usize = 2;

impl Upstream {
    /// Starts discovery for `target`; endpoints connect as they appear.
    /// Must be called within a tokio runtime.
    pub fn start(
        name: &str,
        target: Target,
        policy: PolicyKind,
        settings: ConnectionSettings,
    ) -> Upstream {
        let name: Arc<str> = Arc::from(name);
        let endpoints = Arc::new(Endpoints::new());
        let resolved = Arc::new(AtomicBool::new(false));
        let waiters = Arc::new(Waiters::default());
        let connect_timeout = settings.connect_timeout;
        let discovery = tokio::spawn(follow_discovery(
            name.clone(),
            podlb_discovery::discover(&target),
            endpoints.clone(),
            settings,
            resolved.clone(),
            waiters.clone(),
        ));
        Upstream {
            name,
            target,
            endpoints,
            policy: policy.build(),
            discovery,
            resolved,
            waiters,
            connect_timeout,
        }
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The upstream's target URI.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The endpoints now, with their states.
    pub fn endpoints(&self) -> Vec<Arc<EndpointConnection>> {
        self.endpoints.snapshot().as_ref().clone()
    }

    /// Whether a call that found no ready endpoint should wait rather than
    /// fail: discovery has not answered yet, or an endpoint's first connect
    /// attempt is under way (a proxy that just started). Once every endpoint
    /// has been tried, calls fail fast.
    pub fn is_starting(&self) -> bool {
        !self.resolved.load(Ordering::Acquire)
            || self.endpoints.snapshot().iter().any(|e| e.is_starting())
    }

    /// Picks an endpoint by the policy and leases a stream on one of its
    /// connections, without waiting.
    pub fn lease(&self) -> Result<CallLease, Error> {
        let snapshot = self.endpoints.snapshot();
        let mut saturated = false;
        for _ in 0..PICK_ATTEMPTS {
            let Some(endpoint) = self.policy.pick(&snapshot) else {
                break;
            };
            match endpoint.lease() {
                Lease::Leased(lease) => return Ok(lease),
                Lease::Full => saturated = true,
                Lease::Unusable => {}
            }
        }
        // The picks raced with connections closing or filling up: take any
        // endpoint that can take the call.
        for endpoint in snapshot.iter().filter(|e| e.is_ready()) {
            match endpoint.lease() {
                Lease::Leased(lease) => return Ok(lease),
                Lease::Full => saturated = true,
                Lease::Unusable => {}
            }
        }
        Err(self.no_lease(snapshot.len(), saturated))
    }

    /// [`Upstream::lease`], but a call that finds every stream taken waits
    /// for one (up to `max_wait`), and one that finds the upstream
    /// [starting](Self::is_starting) waits for its first connections (up to
    /// `max_wait` and the connect timeout).
    pub async fn lease_waiting(&self, max_wait: Duration) -> Result<CallLease, Error> {
        let first = match self.lease() {
            Ok(lease) => return Ok(lease),
            Err(err) => err,
        };
        let wait = match first {
            Error::Saturated { .. } => max_wait,
            _ if self.is_starting() => max_wait.min(self.connect_timeout),
            err => return Err(err),
        };
        let mut last = first;
        let waited = self
            .waiters
            .wait_for(deadline_after(wait), || match self.lease() {
                Ok(lease) => Some(Ok(lease)),
                Err(err @ Error::Saturated { .. }) => {
                    last = err;
                    None
                }
                Err(err) if self.is_starting() => {
                    last = err;
                    None
                }
                Err(err) => Some(Err(err)),
            })
            .await;
        waited.unwrap_or(Err(last))
    }

    /// The endpoint for a call that does not ride the HTTP/2 connections
    /// (HTTP/1.1): the policy's pick among ready endpoints or, when none is
    /// ready, any known endpoint, since a backend may speak only HTTP/1.1
    /// and so never become ready for HTTP/2.
    pub fn pick_addr(&self) -> Result<EndpointAddr, Error> {
        let snapshot = self.endpoints.snapshot();
        if let Some(endpoint) = self.policy.pick(&snapshot) {
            return Ok(endpoint.addr());
        }
        match snapshot.len() {
            0 => Err(self.no_lease(0, false)),
            n => Ok(snapshot[fastrand::usize(..n)].addr()),
        }
    }

    fn no_lease(&self, endpoints: usize, saturated: bool) -> Error {
        let (upstream, target) = (self.name.to_string(), self.target.to_string());
        match (endpoints, saturated) {
            (0, _) => Error::NoEndpoint { upstream, target },
            (_, true) => Error::Saturated { upstream, target },
            (endpoints, false) => Error::NoReadyEndpoint {
                upstream,
                target,
                endpoints,
            },
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.discovery.abort();
        for endpoint in self.endpoints.snapshot().iter() {
            endpoint.remove();
        }
    }
}

/// Applies discovery updates to the endpoint set for as long as they come.
async fn follow_discovery(
    name: Arc<str>,
    mut updates: podlb_discovery::UpdateStream,
    endpoints: Arc<Endpoints>,
    settings: ConnectionSettings,
    resolved: Arc<AtomicBool>,
    waiters: Arc<Waiters>,
) {
    while let Some(update) = updates.next().await {
        tracing::debug!(upstream = %name, ?update, "discovery update");
        let removed = endpoints.apply(update, |ep| {
            EndpointConnection::spawn(name.clone(), ep.addr, settings.clone(), waiters.clone())
        });
        for endpoint in removed {
            endpoint.remove();
        }
        resolved.store(true, Ordering::Release);
        waiters.changed();
    }
}
