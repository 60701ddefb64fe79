//! An upstream: discovery feeding an endpoint set, and the pick of one
//! endpoint connection per call.
//!
//! ```text
//!  Discovery (Resolution) ─► task: routable() ─► EndpointSet::apply ─► new endpoints
//!                                                 spawn their driver, removed ones drain
//!  call ─► Upstream::lease ─► ready snapshot ─► Policy::pick ─► EndpointConnection::lease
//!              │ none ready while starting, or every stream taken
//!              ▼
//!          Upstream::lease_waiting (until a change, bounded)
//!
//!  HTTP/1.1 request ─► Upstream::lease_http1 ─► Http1Lease (see http1.rs)
//! ```
//!
//! The ready snapshot is rebuilt by each endpoint whenever its state
//! changes; a pick from it that turns out stale (a connection closed since)
//! is retried once, then every endpoint is looked at.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use podlb_balance::{
    EndpointSet, Keyed, Load, OutlierSettings, PolicyChoice, PolicyKind, PolicySet,
};
use podlb_core::{EndpointAddr, RouteRetry, Target, Update};
use podlb_discovery::{Discovery, Resolution};
use tokio::task::JoinHandle;

use crate::endpoint::{Lease, SharedOutlier};
use crate::retry::RetryPolicy;
use crate::waiters::{Waiters, deadline_after};
use crate::{CallLease, ConnectionSettings, EndpointConnection, Error, Http1Lease};

/// The endpoint set of an upstream.
pub(crate) type Endpoints = EndpointSet<Arc<EndpointConnection>>;
type Policies = PolicySet<Arc<EndpointConnection>>;

/// A named set of endpoints that calls are balanced over.
#[derive(Debug)]
pub struct Upstream {
    name: Arc<str>,
    target: Target,
    endpoints: Arc<Endpoints>,
    /// Picks per call; the follower switches it when the choice is the
    /// source's and the source names another.
    policies: Arc<Policies>,
    /// The outlier settings the endpoints judge calls by now.
    outlier: SharedOutlier,
    /// The retry policy the source asks for (an xDS route's), for calls
    /// whose user gave none.
    source_retry: Arc<ArcSwapOption<RetryPolicy>>,
    follower: JoinHandle<()>,
    discovery: Discovery,
    /// The follower has applied discovery's first answer to the set (which
    /// can lag the answer itself on a multi-threaded runtime).
    applied: Arc<AtomicBool>,
    waiters: Arc<Waiters>,
    connect_timeout: Duration,
}

/// How many policy picks a call makes before it looks at every endpoint: a
/// pick can race with a connection closing or filling up.
const PICK_ATTEMPTS: usize = 2;

impl Upstream {
    /// Follows `discovery`; endpoints connect as they appear. Balances by
    /// `policy`: a [`PolicyKind`] (the user's choice), or
    /// [`PolicyChoice::FromSource`] to follow the policy an xDS Cluster
    /// names. Must be called within a tokio runtime.
    pub fn start(
        name: &str,
        discovery: Discovery,
        policy: impl Into<PolicyChoice>,
        settings: ConnectionSettings,
    ) -> Upstream {
        let name: Arc<str> = Arc::from(name);
        let choice = policy.into();
        let policies = Arc::new(Policies::new(choice.resolve(&[])));
        let endpoints = Arc::new(Endpoints::new());
        endpoints.set_panic_threshold(settings.outlier.panic_threshold_percent);
        let waiters = Arc::new(Waiters::default());
        let connect_timeout = settings.connect_timeout;
        let applied = Arc::new(AtomicBool::new(false));
        let policy = PolicyFollower {
            choice,
            policies: policies.clone(),
            named: Arc::from([]),
        };
        let outlier: SharedOutlier = Arc::new(ArcSwap::from_pointee(settings.outlier));
        let outlier_follower = OutlierFollower {
            own: settings.outlier,
            from_source: settings.outlier_from_source,
            shared: outlier.clone(),
            endpoints: endpoints.clone(),
            named: None,
        };
        let source_retry = Arc::new(ArcSwapOption::empty());
        let retry_follower = RetryFollower {
            shared: source_retry.clone(),
            named: None,
        };
        let follower = tokio::spawn(follow_discovery(
            name.clone(),
            discovery.clone(),
            endpoints.clone(),
            settings,
            waiters.clone(),
            applied.clone(),
            (policy, outlier_follower, retry_follower),
        ));
        Upstream {
            name,
            target: discovery.target().clone(),
            endpoints,
            policies,
            outlier,
            source_retry,
            follower,
            discovery,
            applied,
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

    /// The policy that picks now.
    pub fn policy(&self) -> PolicyKind {
        self.policies.active()
    }

    /// The outlier settings the endpoints judge calls by now: the user's,
    /// or podlb's defaults, or what the xDS Cluster asks for.
    pub fn outlier_settings(&self) -> OutlierSettings {
        **self.outlier.load()
    }

    /// The retry policy the source asks for now (an xDS route's
    /// `retry_policy`, gRFC A44), if any. The call engine follows it for
    /// calls whose user gave no retry or hedging policy.
    pub fn source_retry_policy(&self) -> Option<Arc<RetryPolicy>> {
        self.source_retry.load_full()
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
        !self.applied.load(Ordering::Acquire)
            || self.endpoints.snapshot().iter().any(|e| e.is_starting())
    }

    /// Picks an endpoint by the policy and leases a stream on one of its
    /// connections, without waiting.
    pub fn lease(&self) -> Result<CallLease, Error> {
        let mut saturated = false;
        {
            let ready = self.endpoints.ready();
            for _ in 0..PICK_ATTEMPTS {
                let Some(endpoint) = self.policies.pick(&ready) else {
                    break;
                };
                match endpoint.lease() {
                    Lease::Leased(lease) => return Ok(lease),
                    Lease::Full => saturated = true,
                    Lease::Unusable => {}
                }
            }
        }
        // The picks raced with connections closing or filling up (or the
        // ready snapshot has not caught up yet): take any endpoint that can
        // take the call.
        let all = self.endpoints.snapshot();
        for endpoint in all.iter().filter(|e| e.is_ready() && !e.is_ejected()) {
            match endpoint.lease() {
                Lease::Leased(lease) => return Ok(lease),
                Lease::Full => saturated = true,
                Lease::Unusable => {}
            }
        }
        Err(self.no_lease(all.len(), saturated))
    }

    /// [`Upstream::lease`], but passing over the endpoints in `tried` while
    /// another is ready: a retry or a hedge goes to an endpoint the call has
    /// not been on. When every ready endpoint was tried, any will do. With
    /// `tried` empty it is [`Upstream::lease`] (no allocation either way).
    pub fn lease_excluding(&self, tried: &[EndpointAddr]) -> Result<CallLease, Error> {
        if tried.is_empty() {
            return self.lease();
        }
        {
            let ready = self.endpoints.ready();
            let untried = |e: &&Arc<EndpointConnection>| !tried.contains(&e.addr());
            for _ in 0..PICK_ATTEMPTS {
                if let Some(endpoint) = self.policies.pick(&ready).filter(untried)
                    && let Lease::Leased(lease) = endpoint.lease()
                {
                    return Ok(lease);
                }
            }
            // The policy keeps choosing a tried one (two of three are, say):
            // the untried ones in turn, from a random place.
            let n = ready.len();
            let start = if n > 0 { fastrand::usize(..n) } else { 0 };
            for i in 0..n {
                let endpoint = &ready[(start + i) % n];
                if untried(&endpoint)
                    && let Lease::Leased(lease) = endpoint.lease()
                {
                    return Ok(lease);
                }
            }
        }
        self.lease()
    }

    /// [`Upstream::lease`], but a call that finds every stream taken waits
    /// for one (up to `max_wait`), and one that finds the upstream
    /// [starting](Self::is_starting) waits for its first connections (up to
    /// `max_wait` and the connect timeout).
    pub async fn lease_waiting(&self, max_wait: Duration) -> Result<CallLease, Error> {
        // Whether the upstream is starting is read before each lease: it
        // only ever stops starting, so a lease that fails after it had
        // stopped saw the settled set. Read after, it could have stopped
        // in between (answered and connected) and make a stale failure final.
        let starting = self.is_starting();
        let first = match self.lease() {
            Ok(lease) => return Ok(lease),
            Err(err) => err,
        };
        let wait = match first {
            Error::Saturated { .. } => max_wait,
            _ if starting => max_wait.min(self.connect_timeout),
            err => return Err(err),
        };
        let mut last = first;
        let waited = self
            .waiters
            .wait_for(deadline_after(wait), || {
                let starting = self.is_starting();
                match self.lease() {
                    Ok(lease) => Some(Ok(lease)),
                    Err(err @ Error::Saturated { .. }) => {
                        last = err;
                        None
                    }
                    Err(err) if starting => {
                        last = err;
                        None
                    }
                    Err(err) => Some(Err(err)),
                }
            })
            .await;
        waited.unwrap_or(Err(last))
    }

    /// A stream on any endpoint, waiting (up to `max_wait`) for one to
    /// become ready or free however long the upstream has been failing:
    /// gRPC's wait-for-ready.
    pub async fn lease_until_ready(&self, max_wait: Duration) -> Result<CallLease, Error> {
        let mut last = match self.lease() {
            Ok(lease) => return Ok(lease),
            Err(err) => err,
        };
        let waited = self
            .waiters
            .wait_for(deadline_after(max_wait), || match self.lease() {
                Ok(lease) => Some(Ok(lease)),
                Err(err) => {
                    last = err;
                    None
                }
            })
            .await;
        waited.unwrap_or(Err(last))
    }

    /// A lease for one HTTP/1.1 request, which rides hyper's pool rather
    /// than the endpoint's HTTP/2 connections but counts as in flight on
    /// the endpoint like a call. The endpoint is the policy's pick among
    /// the ready endpoints; when none is ready (a backend that speaks only
    /// HTTP/1.1 never becomes ready for HTTP/2), the policy's pick among
    /// every known endpoint, passing over one that is backing off after a
    /// failed HTTP/1.1 connect when another is not.
    pub fn lease_http1(&self) -> Result<Http1Lease, Error> {
        if let Some(endpoint) = self.policies.pick(&self.endpoints.ready()) {
            return Ok(Http1Lease::new(endpoint.clone()));
        }
        let all = self.endpoints.snapshot();
        let Some(picked) = self.policies.pick(&all) else {
            return Err(self.no_lease(0, false));
        };
        let now = tokio::time::Instant::now();
        if !picked.http1.is_backing_off(now) {
            return Ok(Http1Lease::new(picked.clone()));
        }
        // From a random place, so the next one is not always the same
        // neighbour.
        let start = fastrand::usize(..all.len());
        let endpoint = (0..all.len())
            .map(|i| &all[(start + i) % all.len()])
            .find(|e| !e.http1.is_backing_off(now))
            .unwrap_or(picked);
        Ok(Http1Lease::new(endpoint.clone()))
    }

    fn no_lease(&self, endpoints: usize, saturated: bool) -> Error {
        let (upstream, target) = (self.name.to_string(), self.target.to_string());
        match (endpoints, saturated) {
            (0, _) => {
                let resolution = self.discovery.current();
                Error::NoEndpoint {
                    upstream,
                    target,
                    answered: resolution.resolved,
                    discovery_error: resolution.error.map(|e| e.to_string()),
                }
            }
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
        self.follower.abort();
        for endpoint in self.endpoints.snapshot().iter() {
            endpoint.remove();
        }
    }
}

/// Applies each new resolution's routable endpoints to the endpoint set,
/// and the policy it names, for as long as discovery runs.
async fn follow_discovery(
    name: Arc<str>,
    discovery: Discovery,
    endpoints: Arc<Endpoints>,
    settings: ConnectionSettings,
    waiters: Arc<Waiters>,
    applied: Arc<AtomicBool>,
    (mut policy, mut outlier, mut retry): (PolicyFollower, OutlierFollower, RetryFollower),
) {
    let mut resolutions = discovery.subscribe();
    loop {
        let resolution: Resolution = resolutions.borrow_and_update().clone();
        // Before the endpoints: the first calls on them use the new policy.
        policy.follow(&name, &resolution);
        outlier.follow(&name, &resolution);
        retry.follow(&name, &resolution);
        let removed = apply_resolution(&endpoints, &resolution, |ep| {
            EndpointConnection::spawn(
                name.clone(),
                ep.addr,
                settings.clone(),
                waiters.clone(),
                Arc::downgrade(&endpoints),
                discovery.refresh().clone(),
                outlier.shared.clone(),
            )
        });
        for endpoint in removed {
            tracing::info!(
                upstream = %name, endpoint = %endpoint.addr(),
                "endpoint left discovery: no new calls; calls in flight finish"
            );
            endpoint.remove();
        }
        if resolution.resolved {
            applied.store(true, Ordering::Release);
        }
        waiters.changed();
        if resolutions.changed().await.is_err() {
            return;
        }
    }
}

/// The policy an upstream balances with, and the source's choice it
/// follows when the user made none.
#[derive(Debug)]
struct PolicyFollower {
    choice: PolicyChoice,
    policies: Arc<Policies>,
    /// The policies the source named last.
    named: Arc<[String]>,
}

impl PolicyFollower {
    /// Switches to what the choice makes of the policies `resolution`
    /// names, if they changed; a fixed choice never switches.
    fn follow(&mut self, upstream: &str, resolution: &Resolution) {
        if matches!(self.choice, PolicyChoice::Fixed(_)) || resolution.policies == self.named {
            return;
        }
        self.named = resolution.policies.clone();
        let kind = self.choice.resolve(&self.named);
        self.policies.activate(kind);
        let named = self.named.join(", ");
        if self.named.iter().any(|n| n == kind.name()) {
            tracing::info!(upstream, policy = %kind, "balancing with the policy the xDS Cluster names");
        } else if self.named.is_empty() {
            tracing::info!(upstream, policy = %kind, "the source names no policy any more: balancing with the default");
        } else {
            tracing::warn!(
                upstream, policy = %kind, named = %named,
                "the xDS Cluster names only policies podlb does not have: balancing with the default (give --lb or `policy:` to choose)"
            );
        }
    }
}

/// The retry policy the source asks for, as the call engine reads it.
#[derive(Debug)]
struct RetryFollower {
    shared: Arc<ArcSwapOption<RetryPolicy>>,
    /// What the source asked for last.
    named: Option<RouteRetry>,
}

impl RetryFollower {
    /// Publishes the policy `resolution` asks for, if it changed; calls
    /// that start from then on use it (those under way keep theirs).
    fn follow(&mut self, upstream: &str, resolution: &Resolution) {
        if resolution.retry == self.named {
            return;
        }
        self.named.clone_from(&resolution.retry);
        let policy = self.named.as_ref().map(RetryPolicy::from_source);
        match &policy {
            Some(p) => tracing::info!(
                upstream, codes = ?p.retryable_codes.names(), max_attempts = p.max_attempts,
                initial_backoff = ?p.initial_backoff, max_backoff = ?p.max_backoff,
                "following the retry policy the xDS route asks for (calls without one of their own)"
            ),
            None => tracing::info!(upstream, "the xDS route asks for no retry policy"),
        }
        self.shared.store(policy.map(Arc::new));
    }
}

/// The outlier settings of an upstream's endpoints, and the source's it
/// follows when the user gave none.
#[derive(Debug)]
struct OutlierFollower {
    /// The user's settings, or podlb's defaults.
    own: OutlierSettings,
    /// Whether the source's replace them (the user gave none).
    from_source: bool,
    shared: SharedOutlier,
    endpoints: Arc<Endpoints>,
    /// What the source asked for last.
    named: Option<OutlierSettings>,
}

impl OutlierFollower {
    /// Applies the settings `resolution` asks for, if they changed, to
    /// every endpoint at once (each reads them per call); a source that
    /// asks for none gets the upstream's own back. An ejection under way
    /// runs to its end.
    fn follow(&mut self, upstream: &str, resolution: &Resolution) {
        if !self.from_source || resolution.outlier == self.named {
            return;
        }
        self.named = resolution.outlier;
        let settings = self.named.unwrap_or(self.own);
        self.shared.store(Arc::new(settings));
        self.endpoints
            .set_panic_threshold(settings.panic_threshold_percent);
        match self.named {
            Some(s) => tracing::info!(
                upstream, enabled = s.enabled, consecutive_failures = ?s.consecutive_failures,
                failure_rate = ?s.failure_rate, base_ejection_time = ?s.base_ejection_time,
                max_ejected_percent = s.max_ejected_percent,
                "outlier detection as the xDS Cluster asks"
            ),
            None => tracing::info!(
                upstream,
                "the xDS Cluster asks for no outlier detection any more: podlb's own settings again"
            ),
        }
    }
}

/// The seam between discovery and balancing: the routable endpoints of a
/// resolution become the set calls pick from. Before discovery's first
/// answer nothing changes. Returns the handles that left, to drain.
fn apply_resolution<E: Keyed + Load + Clone>(
    endpoints: &EndpointSet<E>,
    resolution: &Resolution,
    make: impl FnMut(&podlb_core::Endpoint) -> E,
) -> Vec<E> {
    if !resolution.resolved {
        return Vec::new();
    }
    let routable = podlb_core::routable(&resolution.endpoints);
    endpoints.apply(Update::Reset(routable), make)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::{StreamExt, stream};
    use podlb_core::{Endpoint, EndpointAddr, EndpointState};
    use podlb_discovery::{Discovery, Error as DiscoveryError, Refresh};

    use super::*;

    #[derive(Debug, Clone)]
    struct Handle(EndpointAddr);
    impl Keyed for Handle {
        fn addr(&self) -> EndpointAddr {
            self.0
        }
    }
    impl Load for Handle {
        fn is_ready(&self) -> bool {
            true
        }
        fn in_flight(&self) -> u64 {
            0
        }
        fn ewma_cost(&self) -> f64 {
            0.0
        }
    }

    fn ep(last: u8, state: EndpointState) -> Endpoint {
        Endpoint::new(format!("10.0.0.{last}:80").parse().unwrap()).with_state(state)
    }

    fn shown(set: &EndpointSet<Handle>) -> Vec<String> {
        set.snapshot().iter().map(|h| h.0.to_string()).collect()
    }

    /// A source that says each of `steps` one second after the last, on
    /// tokio's paused clock: no sockets, no real time.
    fn scripted(steps: Vec<Result<Update, DiscoveryError>>) -> Discovery {
        let updates = stream::iter(steps)
            .then(|step| async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                step
            })
            .chain(stream::pending())
            .boxed();
        let target: Target = "static:///10.0.0.1:80".parse().unwrap();
        Discovery::from_updates(target, updates, Refresh::default())
    }

    #[tokio::test(start_paused = true)]
    async fn the_balancer_follows_routable_endpoints_through_a_rollout() {
        use EndpointState::*;
        let discovery = scripted(vec![
            Ok(Update::Reset(vec![
                ep(1, Ready),
                ep(2, Ready),
                ep(3, NotReady),
            ])),
            // Pod 1 starts terminating; pod 3 becomes ready.
            Ok(Update::Reset(vec![
                ep(1, ServingTerminating),
                ep(2, Ready),
                ep(3, Ready),
            ])),
            // The API server goes away: the set stays.
            Err(DiscoveryError::KubeApi {
                target: "t".into(),
                reason: "down".into(),
            }),
            // Every pod terminating: fall back to those still serving.
            Ok(Update::Reset(vec![
                ep(2, ServingTerminating),
                ep(3, Terminating),
            ])),
            // The Service is gone.
            Ok(Update::Reset(vec![])),
        ]);
        let set = EndpointSet::new();
        let mut resolutions = discovery.subscribe();
        let mut seen = Vec::new();
        let mut left = Vec::new();
        for _ in 0..5 {
            resolutions.changed().await.unwrap();
            let res = resolutions.borrow_and_update().clone();
            let removed = apply_resolution(&set, &res, |e| Handle(e.addr));
            left.extend(removed.iter().map(|h| h.0.to_string()));
            seen.push(shown(&set));
        }
        assert_eq!(
            seen,
            [
                vec!["10.0.0.1:80", "10.0.0.2:80"],
                vec!["10.0.0.2:80", "10.0.0.3:80"],
                vec!["10.0.0.2:80", "10.0.0.3:80"],
                vec!["10.0.0.2:80"],
                vec![],
            ]
        );
        assert_eq!(left, ["10.0.0.1:80", "10.0.0.3:80", "10.0.0.2:80"]);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_changes_before_discovery_answers() {
        let discovery = scripted(vec![Err(DiscoveryError::KubeApi {
            target: "t".into(),
            reason: "refused".into(),
        })]);
        let set: EndpointSet<Handle> = EndpointSet::new();
        set.apply(Update::Reset(vec![ep(9, EndpointState::Ready)]), |e| {
            Handle(e.addr)
        });
        let mut resolutions = discovery.subscribe();
        resolutions.changed().await.unwrap();
        let res = resolutions.borrow_and_update().clone();
        assert!(res.error.is_some());
        assert!(apply_resolution(&set, &res, |e| Handle(e.addr)).is_empty());
        assert_eq!(shown(&set), ["10.0.0.9:80"]);
    }
}
