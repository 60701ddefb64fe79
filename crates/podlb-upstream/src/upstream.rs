//! An upstream: discovery feeding an endpoint set, and the pick of one
//! endpoint connection per call.
//!
//! ```text
//!  discover(target) ─► task: EndpointSet::apply ─► new endpoints spawn their driver,
//!                                                  removed ones drain
//!  call ─► Upstream::lease ─► snapshot ─► Policy::pick ─► EndpointConnection::lease
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use podlb_balance::{EndpointSet, Policy, PolicyKind};
use podlb_core::Target;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

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
    /// What a call waiting for a first connection watches.
    startup: Arc<Startup>,
    connect_timeout: Duration,
}

/// Whether the upstream is still starting, and a wake-up when anything changes.
#[derive(Debug, Default)]
struct Startup {
    /// Discovery has delivered its first update.
    resolved: AtomicBool,
    /// Notified on every discovery update and endpoint state change.
    changed: Arc<Notify>,
}

/// How many picks a call may make before it is told no endpoint is ready:
/// a pick can race with a connection closing.
const PICK_ATTEMPTS: usize = 4;

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
        let startup = Arc::new(Startup::default());
        let connect_timeout = settings.connect_timeout;
        let discovery = tokio::spawn(follow_discovery(
            name.clone(),
            podlb_discovery::discover(&target),
            endpoints.clone(),
            settings,
            startup.clone(),
        ));
        Upstream {
            name,
            target,
            endpoints,
            policy: policy.build(),
            discovery,
            startup,
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

    /// The endpoint for a call that does not ride the HTTP/2 connections
    /// (HTTP/1.1): the policy's pick among ready endpoints or, when none is
    /// ready, any known endpoint, since a backend may speak only HTTP/1.1
    /// and so never become ready for HTTP/2.
    pub fn pick_addr(&self) -> Result<podlb_core::EndpointAddr, Error> {
        let snapshot = self.endpoints.snapshot();
        if let Some(endpoint) = self.policy.pick(&snapshot) {
            return Ok(endpoint.addr());
        }
        match snapshot.len() {
            0 => Err(Error::NoEndpoint {
                upstream: self.name.to_string(),
                target: self.target.to_string(),
            }),
            n => Ok(snapshot[fastrand::usize(..n)].addr()),
        }
    }

    /// Whether a call that found no ready endpoint should wait rather than
    /// fail: discovery has not answered yet, or an endpoint's first connect
    /// attempt is under way (a proxy that just started). Once every endpoint
    /// has been tried, calls fail fast.
    pub fn is_starting(&self) -> bool {
        !self.startup.resolved.load(Ordering::Acquire)
            || self.endpoints.snapshot().iter().any(|e| e.is_starting())
    }

    /// [`Upstream::lease`], waiting up to `max_wait` (and at most the
    /// connect timeout) while the upstream [is starting](Self::is_starting).
    pub async fn lease_when_started(&self, max_wait: Duration) -> Result<CallLease, Error> {
        let give_up = Instant::now() + max_wait.min(self.connect_timeout);
        loop {
            let changed = self.startup.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.lease() {
                Ok(lease) => return Ok(lease),
                Err(err) if !self.is_starting() => return Err(err),
                Err(_) => {}
            }
            if tokio::time::timeout_at(give_up, changed).await.is_err() {
                return self.lease();
            }
        }
    }

    /// Picks an endpoint by the policy and leases a connection to it.
    pub fn lease(&self) -> Result<CallLease, Error> {
        let snapshot = self.endpoints.snapshot();
        for _ in 0..PICK_ATTEMPTS {
            let Some(endpoint) = self.policy.pick(&snapshot) else {
                break;
            };
            if let Some(lease) = endpoint.lease() {
                return Ok(lease);
            }
        }
        Err(if snapshot.is_empty() {
            Error::NoEndpoint {
                upstream: self.name.to_string(),
                target: self.target.to_string(),
            }
        } else {
            Error::NoReadyEndpoint {
                upstream: self.name.to_string(),
                target: self.target.to_string(),
                endpoints: snapshot.len(),
            }
        })
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
    startup: Arc<Startup>,
) {
    while let Some(update) = updates.next().await {
        tracing::debug!(upstream = %name, ?update, "discovery update");
        let removed = endpoints.apply(update, |ep| {
            EndpointConnection::spawn(
                name.clone(),
                ep.addr,
                settings.clone(),
                startup.changed.clone(),
            )
        });
        for endpoint in removed {
            endpoint.remove();
        }
        startup.resolved.store(true, Ordering::Release);
        startup.changed.notify_waiters();
    }
}
