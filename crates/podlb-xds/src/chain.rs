//! The client's resource chain for one target, as a pure state machine:
//! what it has accepted, what it subscribes to, what it answers each
//! response with, and what the target's endpoints are. It is told the time
//! and handed responses; it sends nothing and sleeps on nothing (the ADS
//! loop in `client` does), so every rule here is tested without a socket.
//!
//! ```text
//!   response (type T) ─► decode each resource (resources::decode)
//!        │                 valid   → cached (replaces the last good one)
//!        │                 invalid → NACKed; the last good one stays
//!        │                 absent from an LDS/CDS response → deleted
//!        ├─► ACK or NACK for T (version_info, response_nonce)
//!        ├─► subscriptions of the types after T follow the chain
//!        │     LDS {NAME} → RDS {route} → CDS {clusters} → EDS {services}
//!        │     (new names get a 15 s does-not-exist timer; dropped names
//!        │      are forgotten and unsubscribed)
//!        └─► resolve: Listener → routes → clusters → endpoints
//!              complete and changed → Reset(endpoints), then the errors
//!              that explain what is missing
//! ```
//!
//! A link that is pending (asked, not yet answered), missing or invalid
//! leaves the subscriptions after it as they are, so a route that moves to
//! another RouteConfiguration keeps its clusters subscribed meanwhile.
//! Until the whole chain is known nothing is emitted (the does-not-exist
//! timer bounds that wait); after that, the last emitted endpoints stand
//! until a complete chain says otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::{Code, Status};
use podlb_core::{Endpoint, OutlierSettings, RouteRetry, Update};
use tokio::time::Instant;

use crate::resources::{self, ListenerRoutes, Resource};
use crate::{Error, ResourceType};

/// What the chain knows of one subscribed resource.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// The last good version.
    Valid(Resource),
    /// Sent, but never in a usable form: why.
    Invalid(String),
    /// Deleted, or never sent within the does-not-exist timeout.
    Absent(Error),
}

/// One type's side of the protocol on the current stream.
#[derive(Debug, Clone, Default)]
struct Subscription {
    /// The names wanted now.
    names: BTreeSet<String>,
    /// The names last sent on this stream; `None`: nothing sent yet, so
    /// a response of this type is not ours to answer.
    sent: Option<BTreeSet<String>>,
    /// The last accepted `version_info`, kept across streams.
    version: String,
    /// The last response nonce on this stream.
    nonce: String,
}

/// The endpoints of a complete chain, with the errors that explain what
/// is missing from it, and what its (first) Cluster asks for.
type Resolved = (Vec<Endpoint>, Vec<Error>, Asks);

/// What the route and its Cluster ask of the balancing beyond the
/// endpoints. Weighted clusters are balanced as one set: the first one
/// speaks for all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Asks {
    /// The policies it names, the preferred first.
    policies: Vec<String>,
    /// Its outlier detection; `None`: it has none.
    outlier: Option<OutlierSettings>,
    /// The route's retry policy; `None`: it has none.
    retry: Option<RouteRetry>,
}

/// What to do after an event: requests to send, in order, and items for
/// the target's update stream.
#[derive(Debug, Default)]
pub(crate) struct Step {
    pub(crate) requests: Vec<DiscoveryRequest>,
    pub(crate) items: Vec<Result<Update, Error>>,
}

/// The resource chain of one `xds:///NAME` target.
#[derive(Debug)]
pub(crate) struct Chain {
    target: String,
    server: String,
    ignore_deletion: bool,
    resource_timeout: Duration,
    /// Indexed by [`ResourceType::index`].
    subscriptions: [Subscription; 4],
    entries: BTreeMap<(ResourceType, String), Entry>,
    deadlines: BTreeMap<(ResourceType, String), Instant>,
    /// What was last emitted; `None`: nothing since the start or since
    /// the last stream error, so the next resolution is emitted even if
    /// unchanged (which clears the error downstream).
    emitted: Option<Resolved>,
    /// Whether anything was ever emitted.
    ever_emitted: bool,
    /// What the route and Cluster ask for that changed since last taken.
    cluster_changes: Vec<Update>,
    /// What the route and Cluster asked for, as last emitted.
    emitted_asks: Asks,
}

impl Chain {
    /// The chain of Listener `target`, served by `server` (for messages).
    pub(crate) fn new(
        target: &str,
        server: &str,
        ignore_deletion: bool,
        resource_timeout: Duration,
    ) -> Chain {
        let mut subscriptions: [Subscription; 4] = Default::default();
        subscriptions[ResourceType::Listener.index()]
            .names
            .insert(target.to_string());
        Chain {
            target: target.to_string(),
            server: server.to_string(),
            ignore_deletion,
            resource_timeout,
            subscriptions,
            entries: BTreeMap::new(),
            deadlines: BTreeMap::new(),
            emitted: None,
            ever_emitted: false,
            cluster_changes: Vec::new(),
            emitted_asks: Asks::default(),
        }
    }

    /// A new stream begins at `now`: the requests that subscribe to
    /// everything wanted, in chain order, with the versions accepted
    /// before. Nonces belong to a stream and start empty.
    pub(crate) fn start_stream(&mut self, now: Instant) -> Vec<DiscoveryRequest> {
        self.deadlines.clear();
        let mut requests = Vec::new();
        for kind in ResourceType::ALL {
            let sub = self.subscription_mut(kind);
            sub.nonce.clear();
            sub.sent = None;
            if !sub.names.is_empty() {
                requests.push(self.request(kind, None));
            }
        }
        self.start_timers(now);
        requests
    }

    /// The server accepted the stream: if the last thing said downstream
    /// was an error, the known endpoints are said again, to clear it.
    pub(crate) fn stream_established(&mut self) -> Vec<Result<Update, Error>> {
        self.emit()
    }

    /// The stream failed with `error`. Before any endpoints were known the
    /// target has none (so calls fail fast with the error); after, the
    /// last ones stay.
    pub(crate) fn stream_lost(&mut self, error: Error) -> Vec<Result<Update, Error>> {
        // Timers run only while the server can answer.
        self.deadlines.clear();
        let mut items = Vec::new();
        if !self.ever_emitted {
            items.push(Ok(Update::Reset(Vec::new())));
            self.ever_emitted = true;
        }
        items.push(Err(error));
        self.emitted = None;
        items
    }

    /// When the next does-not-exist timer runs out.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.values().min().copied()
    }

    /// Resources still unknown at `now` whose timer ran out do not exist.
    pub(crate) fn on_deadline(&mut self, now: Instant) -> Step {
        let expired: Vec<(ResourceType, String)> = self
            .deadlines
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            self.deadlines.remove(&key);
            if !self.entries.contains_key(&key) {
                let error = Error::DoesNotExist {
                    server: self.server.clone(),
                    kind: key.0,
                    name: key.1.clone(),
                };
                tracing::warn!(target = %self.target, %error, "xDS resource does not exist");
                self.entries.insert(key, Entry::Absent(error));
            }
        }
        let now_known = self.follow_chain(now);
        Step {
            requests: now_known,
            items: self.emit(),
        }
    }

    /// Applies one response: caches what is valid, answers it (ACK or
    /// NACK), moves the later subscriptions, and emits what changed.
    pub(crate) fn on_response(&mut self, response: DiscoveryResponse, now: Instant) -> Step {
        let Some(kind) = ResourceType::from_type_url(&response.type_url) else {
            tracing::warn!(type_url = %response.type_url, "xDS response of a type podlb never asked for; ignored");
            return Step::default();
        };
        if self.subscription(kind).sent.is_none() {
            tracing::warn!(%kind, "xDS response of a type not subscribed on this stream; ignored");
            return Step::default();
        }
        self.subscription_mut(kind).nonce = response.nonce.clone();
        let rejected = self.apply(kind, &response.resources);
        let mut step = Step::default();
        if rejected.is_empty() {
            self.subscription_mut(kind).version = response.version_info.clone();
            step.requests.push(self.request(kind, None));
        } else {
            step.requests
                .push(self.request(kind, Some(nack_status(&rejected))));
            step.items.extend(self.kept_last_good(kind, &rejected));
        }
        step.requests.extend(self.follow_chain(now));
        let mut items = self.emit();
        items.append(&mut step.items);
        step.items = items;
        step
    }

    /// Caches a response's resources; returns the rejected ones as (name,
    /// reason).
    fn apply(
        &mut self,
        kind: ResourceType,
        resources: &[envoy_types::pb::google::protobuf::Any],
    ) -> Vec<(String, String)> {
        let wanted = self.subscription(kind).names.clone();
        let mut rejected = Vec::new();
        let mut present = BTreeSet::new();
        let mut unreadable = false;
        for any in resources {
            let decoded = match resources::decode(kind, any, &self.target) {
                Ok(decoded) => decoded,
                Err(reason) => {
                    unreadable = true;
                    rejected.push((String::new(), reason));
                    continue;
                }
            };
            if !wanted.contains(&decoded.name) {
                continue;
            }
            present.insert(decoded.name.clone());
            let key = (kind, decoded.name.clone());
            self.deadlines.remove(&key);
            match decoded.resource {
                Ok(resource) => {
                    self.entries.insert(key, Entry::Valid(resource));
                }
                Err(reason) => {
                    rejected.push((decoded.name, reason.clone()));
                    if !matches!(self.entries.get(&key), Some(Entry::Valid(_))) {
                        self.entries.insert(key, Entry::Invalid(reason));
                    }
                }
            }
        }
        // An unreadable resource may be one of ours: deletions cannot be
        // told apart from it.
        if kind.absence_means_deletion() && !unreadable {
            for name in wanted.difference(&present) {
                self.deleted(kind, name);
            }
        }
        rejected
    }

    fn deleted(&mut self, kind: ResourceType, name: &str) {
        let key = (kind, name.to_string());
        if !matches!(
            self.entries.get(&key),
            Some(Entry::Valid(_) | Entry::Invalid(_))
        ) {
            // Never seen: the does-not-exist timer decides.
            return;
        }
        if self.ignore_deletion {
            tracing::warn!(
                target = %self.target, %kind, name,
                "xDS server deleted a resource; ignored, as its ignore_resource_deletion feature asks (gRFC A53)"
            );
            return;
        }
        let error = Error::Deleted {
            server: self.server.clone(),
            kind,
            name: name.to_string(),
        };
        tracing::warn!(target = %self.target, %error, "xDS resource deleted");
        self.entries.insert(key, Entry::Absent(error));
    }

    /// Errors for rejected resources whose last good version stays (the
    /// others show in the resolution itself).
    fn kept_last_good(
        &self,
        kind: ResourceType,
        rejected: &[(String, String)],
    ) -> Vec<Result<Update, Error>> {
        rejected
            .iter()
            .filter(|(name, _)| {
                name.is_empty()
                    || matches!(
                        self.entries.get(&(kind, name.clone())),
                        Some(Entry::Valid(_))
                    )
            })
            .map(|(name, reason)| {
                tracing::warn!(target = %self.target, %kind, name, reason, "NACKed an xDS resource");
                Err(self.rejected(kind, name, reason))
            })
            .collect()
    }

    fn rejected(&self, kind: ResourceType, name: &str, reason: &str) -> Error {
        Error::Rejected {
            server: self.server.clone(),
            kind,
            name: name.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Moves the subscriptions after the Listener to what the chain now
    /// names, in chain order (each depends only on those before it);
    /// returns the requests that tell the server.
    fn follow_chain(&mut self, now: Instant) -> Vec<DiscoveryRequest> {
        let mut requests = Vec::new();
        for kind in ResourceType::ALL {
            let Some(names) = self.names_from_chain(kind) else {
                continue;
            };
            if names == self.subscription(kind).names {
                continue;
            }
            self.entries
                .retain(|(k, name), _| *k != kind || names.contains(name));
            self.deadlines
                .retain(|(k, name), _| *k != kind || names.contains(name));
            self.subscription_mut(kind).names = names;
            requests.push(self.request(kind, None));
        }
        self.start_timers(now);
        requests
    }

    /// The names of `kind` the chain before it asks for, or `None` while a
    /// link before it is pending, missing or invalid (the subscription
    /// then stays as it is). EDS names come from the subscribed clusters:
    /// a missing or invalid cluster names none, a pending one keeps the
    /// EDS subscription as it is until it is known.
    fn names_from_chain(&self, kind: ResourceType) -> Option<BTreeSet<String>> {
        match kind {
            ResourceType::Listener => None,
            ResourceType::Route => match self.listener()? {
                ListenerRoutes::Rds(route) => Some(BTreeSet::from([route.clone()])),
                ListenerRoutes::Inline(_) => Some(BTreeSet::new()),
            },
            ResourceType::Cluster => Some(self.route_clusters()?.iter().cloned().collect()),
            ResourceType::Endpoints => {
                let clusters = &self.subscription(ResourceType::Cluster).names;
                let mut names = BTreeSet::new();
                for cluster in clusters {
                    match self
                        .entries
                        .get(&(ResourceType::Cluster, cluster.clone()))?
                    {
                        Entry::Valid(Resource::Cluster(link)) => {
                            names.insert(link.eds.clone());
                        }
                        Entry::Valid(_) | Entry::Invalid(_) | Entry::Absent(_) => {}
                    }
                }
                Some(names)
            }
        }
    }

    fn valid(&self, kind: ResourceType, name: &str) -> Option<&Resource> {
        match self.entries.get(&(kind, name.to_string())) {
            Some(Entry::Valid(resource)) => Some(resource),
            _ => None,
        }
    }

    fn listener(&self) -> Option<&ListenerRoutes> {
        match self.valid(ResourceType::Listener, &self.target) {
            Some(Resource::Listener(routes)) => Some(routes),
            _ => None,
        }
    }

    fn route_clusters(&self) -> Option<&Vec<String>> {
        match self.listener()? {
            ListenerRoutes::Inline(routed) => Some(&routed.clusters),
            ListenerRoutes::Rds(route) => match self.valid(ResourceType::Route, route) {
                Some(Resource::Route(routed)) => Some(&routed.clusters),
                _ => None,
            },
        }
    }

    /// Starts the does-not-exist timer of every wanted resource that is
    /// unknown and has none running.
    fn start_timers(&mut self, now: Instant) {
        let at = now + self.resource_timeout;
        for (kind, sub) in ResourceType::ALL.into_iter().zip(&self.subscriptions) {
            for name in &sub.names {
                let key = (kind, name.clone());
                if !self.entries.contains_key(&key) {
                    self.deadlines.entry(key).or_insert(at);
                }
            }
        }
    }

    /// The request for `kind` with the current names, version and nonce;
    /// `error` makes it a NACK.
    fn request(&mut self, kind: ResourceType, error: Option<Status>) -> DiscoveryRequest {
        let sub = self.subscription_mut(kind);
        sub.sent = Some(sub.names.clone());
        DiscoveryRequest {
            version_info: sub.version.clone(),
            resource_names: sub.names.iter().cloned().collect(),
            type_url: kind.type_url().to_string(),
            response_nonce: sub.nonce.clone(),
            error_detail: error,
            ..Default::default()
        }
    }

    /// The items to emit if the resolution is complete and differs from
    /// the last emitted.
    fn emit(&mut self) -> Vec<Result<Update, Error>> {
        let Some(resolved) = self.resolve() else {
            return Vec::new();
        };
        if self.emitted.as_ref() == Some(&resolved) {
            return Vec::new();
        }
        let (endpoints, errors, asks) = resolved.clone();
        self.emitted = Some(resolved);
        self.ever_emitted = true;
        if asks.policies != self.emitted_asks.policies {
            self.cluster_changes
                .push(Update::Policy(asks.policies.clone()));
        }
        if asks.outlier != self.emitted_asks.outlier {
            self.cluster_changes.push(Update::Outlier(asks.outlier));
        }
        if asks.retry != self.emitted_asks.retry {
            self.cluster_changes.push(Update::Retry(asks.retry.clone()));
        }
        self.emitted_asks = asks;
        std::iter::once(Ok(Update::Reset(endpoints)))
            .chain(errors.into_iter().map(Err))
            .collect()
    }

    /// What the target's route and Cluster ask for (policies, outlier
    /// detection, retry policy) that changed since the last call; the client sends them ahead of the
    /// step's items.
    pub(crate) fn take_cluster_changes(&mut self) -> Vec<Update> {
        std::mem::take(&mut self.cluster_changes)
    }

    /// The target's endpoints, if the chain is complete: each link known
    /// (valid, or found missing or invalid, which yields no endpoints and
    /// an error).
    fn resolve(&self) -> Option<Resolved> {
        let routes = match self.link(ResourceType::Listener, &self.target)? {
            Ok(Resource::Listener(routes)) => routes,
            Ok(_) => return None,
            Err(error) => return Some((Vec::new(), vec![error], Asks::default())),
        };
        let routed = match routes {
            ListenerRoutes::Inline(routed) => routed,
            ListenerRoutes::Rds(route) => match self.link(ResourceType::Route, route)? {
                Ok(Resource::Route(routed)) => routed,
                Ok(_) => return None,
                Err(error) => return Some((Vec::new(), vec![error], Asks::default())),
            },
        };
        let mut endpoints = Vec::new();
        let mut errors = Vec::new();
        let mut asks = None;
        for cluster in &routed.clusters {
            let eds = match self.link(ResourceType::Cluster, cluster)? {
                Ok(Resource::Cluster(link)) => {
                    // Weighted clusters are balanced as one set: the first
                    // one's policy speaks for all.
                    asks.get_or_insert_with(|| Asks {
                        policies: link.policies.clone(),
                        outlier: link.outlier,
                        retry: None,
                    });
                    &link.eds
                }
                Ok(_) => return None,
                Err(error) => {
                    errors.push(error);
                    continue;
                }
            };
            match self.link(ResourceType::Endpoints, eds)? {
                Ok(Resource::Endpoints(found)) => endpoints.extend(found.iter().cloned()),
                Ok(_) => return None,
                Err(error) => errors.push(error),
            }
        }
        endpoints.sort_by_key(|e| e.addr);
        let asks = Asks {
            retry: routed.retry.clone(),
            ..asks.unwrap_or_default()
        };
        Some((endpoints, errors, asks))
    }

    /// One link of the chain: `None` while pending; `Err` if missing or
    /// invalid.
    fn link(&self, kind: ResourceType, name: &str) -> Option<Result<&Resource, Error>> {
        match self.entries.get(&(kind, name.to_string()))? {
            Entry::Valid(resource) => Some(Ok(resource)),
            Entry::Invalid(reason) => Some(Err(self.rejected(kind, name, reason))),
            Entry::Absent(error) => Some(Err(error.clone())),
        }
    }

    fn subscription(&self, kind: ResourceType) -> &Subscription {
        &self.subscriptions[kind.index()]
    }

    fn subscription_mut(&mut self, kind: ResourceType) -> &mut Subscription {
        &mut self.subscriptions[kind.index()]
    }
}

/// The `error_detail` of a NACK: INVALID_ARGUMENT, naming each rejected
/// resource and what is wrong with it.
fn nack_status(rejected: &[(String, String)]) -> Status {
    let message = rejected
        .iter()
        .map(|(name, reason)| match name.as_str() {
            "" => reason.clone(),
            name => format!("{name:?}: {reason}"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    Status {
        code: Code::InvalidArgument as i32,
        message,
        details: Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
