//! An upstream: discovery feeding an endpoint set, and the pick of one
//! endpoint connection per call.
//!
//! ```text
//!  discover(target) ─► task: EndpointSet::apply ─► new endpoints spawn their driver,
//!                                                  removed ones drain
//!  call ─► Upstream::lease ─► snapshot ─► Policy::pick ─► EndpointConnection::lease
//! ```

use std::sync::Arc;

use futures_util::StreamExt;
use podlb_balance::{EndpointSet, Policy, PolicyKind};
use podlb_core::Target;
use tokio::task::JoinHandle;

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
        let discovery = tokio::spawn(follow_discovery(
            name.clone(),
            podlb_discovery::discover(&target),
            endpoints.clone(),
            settings,
        ));
        Upstream {
            name,
            target,
            endpoints,
            policy: policy.build(),
            discovery,
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
) {
    while let Some(update) = updates.next().await {
        tracing::debug!(upstream = %name, ?update, "discovery update");
        let removed = endpoints.apply(update, |ep| {
            EndpointConnection::spawn(name.clone(), ep.addr, settings.clone())
        });
        for endpoint in removed {
            endpoint.remove();
        }
    }
}
