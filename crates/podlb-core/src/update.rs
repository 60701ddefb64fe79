//! The discovery vocabulary: what a discovery source tells the balancer.
//!
//! A source yields a stream of [`Update`]s. `Reset` replaces the whole set
//! (a static list, a DNS answer, the merged slices of a Kubernetes Service,
//! an xDS ClusterLoadAssignment): every source speaks in whole sets, so
//! there is no partial `Add`/`Remove`. `Policy` carries the policies a
//! source names, `Outlier` the outlier detection it asks for, `Retry` the retry
//! policy. Endpoints carry their state as the
//! source sees it, not-ready ones included, so tools can show them; which of
//! them take calls is decided once, by [`routable`].

use std::fmt;

use crate::{EndpointAddr, OutlierSettings, RouteRetry};

/// One backend endpoint as discovery sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Endpoint {
    /// Where to connect.
    pub addr: EndpointAddr,
    /// Whether it may take calls.
    pub state: EndpointState,
    /// Where it runs, for zone-aware routing.
    pub topology: Topology,
    /// Where discovery found it (an EndpointSlice's name, a DNS name), for
    /// people reading `podlb resolve`.
    pub source: Option<String>,
}

/// An endpoint's readiness, from Kubernetes' endpoint conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointState {
    /// Ready: takes new calls.
    Ready,
    /// Terminating but still serving: takes new calls only when no
    /// endpoint is ready, as kube-proxy does.
    ServingTerminating,
    /// Terminating and no longer serving: takes none.
    Terminating,
    /// Not ready (starting, failing its probe): takes none.
    NotReady,
}

impl EndpointState {
    /// From the three conditions of an EndpointSlice endpoint. Unset
    /// `ready` and `serving` mean true, unset `terminating` false, as the
    /// API documents.
    pub fn from_conditions(
        ready: Option<bool>,
        serving: Option<bool>,
        terminating: Option<bool>,
    ) -> EndpointState {
        let ready = ready.unwrap_or(true);
        let serving = serving.unwrap_or(ready);
        let terminating = terminating.unwrap_or(false);
        match (ready && !terminating, serving, terminating) {
            (true, _, _) => EndpointState::Ready,
            (false, true, true) => EndpointState::ServingTerminating,
            (false, false, true) => EndpointState::Terminating,
            (false, _, false) => EndpointState::NotReady,
        }
    }
}

impl fmt::Display for EndpointState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndpointState::Ready => "ready",
            EndpointState::ServingTerminating => "serving-terminating",
            EndpointState::Terminating => "terminating",
            EndpointState::NotReady => "not-ready",
        })
    }
}

/// Where an endpoint runs, as its EndpointSlice says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Topology {
    /// `topology.kubernetes.io/zone` of its node.
    pub zone: Option<String>,
    /// The node it runs on.
    pub node_name: Option<String>,
    /// `hints.forZones`: the zones the EndpointSlice controller suggests it
    /// serves.
    pub for_zones: Vec<String>,
}

impl Topology {
    /// A topology from its parts.
    pub fn new(zone: Option<String>, node_name: Option<String>, for_zones: Vec<String>) -> Self {
        Topology {
            zone,
            node_name,
            for_zones,
        }
    }
}

impl Endpoint {
    /// A ready endpoint at `addr`, with nothing else known about it.
    pub fn new(addr: EndpointAddr) -> Self {
        Endpoint {
            addr,
            state: EndpointState::Ready,
            topology: Topology::default(),
            source: None,
        }
    }

    /// The same endpoint in `state`.
    pub fn with_state(mut self, state: EndpointState) -> Self {
        self.state = state;
        self
    }

    /// The same endpoint with its topology.
    pub fn with_topology(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self
    }

    /// The same endpoint, found at `source`.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }
}

/// The endpoints that take new calls: the ready ones or, when none is
/// ready, the serving-terminating ones (so a rollout whose every pod is
/// terminating still answers, as kube-proxy does). Each address once; a
/// ready entry wins over another state of the same address (dual listings
/// happen when a pod moves between slices).
pub fn routable(endpoints: &[Endpoint]) -> Vec<Endpoint> {
    let best = endpoints
        .iter()
        .filter(|e| e.state <= EndpointState::ServingTerminating)
        .map(|e| e.state)
        .min();
    let mut seen = std::collections::HashSet::new();
    let mut chosen: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|e| Some(e.state) == best)
        .filter(|e| seen.insert(e.addr))
        .collect();
    chosen.sort_by_key(|e| e.addr);
    chosen.into_iter().cloned().collect()
}

/// A change to an upstream's endpoint set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// The set is exactly these endpoints; any other is gone.
    Reset(Vec<Endpoint>),
    /// The source names the policies to balance with, the preferred first,
    /// as an xDS Cluster does (`least_request`, then `round_robin`): take
    /// the first you have. Empty: it names none. The endpoints are
    /// unchanged. Whether the upstream follows it is the user's choice (a
    /// policy the user gave wins).
    Policy(Vec<String>),
    /// The outlier detection the source asks for, as an xDS Cluster's
    /// `outlier_detection` does; `None`: it asks for none, and the
    /// upstream keeps its own settings (podlb's defaults unless the user
    /// gave some). The endpoints are unchanged. Settings the user gave win
    /// over it.
    Outlier(Option<OutlierSettings>),
    /// The retry policy the source asks for, as an xDS route's
    /// `retry_policy` does; `None`: it asks for none. The endpoints are
    /// unchanged. A retry or hedging policy the user gave wins over it.
    Retry(Option<RouteRetry>),
}

impl Update {
    /// Applies this update to a full list of endpoints, in place.
    pub fn apply_to(self, endpoints: &mut Vec<Endpoint>) {
        match self {
            Update::Reset(all) => *endpoints = all,
            Update::Policy(_) | Update::Outlier(_) | Update::Retry(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(last: u8, state: EndpointState) -> Endpoint {
        Endpoint::new(format!("10.0.0.{last}:80").parse().unwrap()).with_state(state)
    }

    fn addrs(endpoints: &[Endpoint]) -> Vec<String> {
        endpoints.iter().map(|e| e.addr.to_string()).collect()
    }

    #[test]
    fn conditions_map_as_kubernetes_documents_them() {
        use EndpointState::*;
        let state = EndpointState::from_conditions;
        assert_eq!(state(None, None, None), Ready);
        assert_eq!(state(Some(true), Some(true), Some(false)), Ready);
        assert_eq!(state(Some(false), None, None), NotReady);
        assert_eq!(
            state(Some(false), Some(true), Some(true)),
            ServingTerminating
        );
        assert_eq!(state(Some(false), Some(false), Some(true)), Terminating);
        // v1beta1 before serving existed: not ready while terminating.
        assert_eq!(state(Some(false), None, Some(true)), Terminating);
    }

    #[test]
    fn routable_prefers_ready_then_falls_back_to_serving_terminating() {
        use EndpointState::*;
        let all = vec![
            ep(3, ServingTerminating),
            ep(1, Ready),
            ep(2, NotReady),
            ep(4, Terminating),
        ];
        assert_eq!(addrs(&routable(&all)), ["10.0.0.1:80"]);
        let draining = vec![
            ep(3, ServingTerminating),
            ep(2, NotReady),
            ep(5, ServingTerminating),
        ];
        assert_eq!(addrs(&routable(&draining)), ["10.0.0.3:80", "10.0.0.5:80"]);
        assert!(routable(&[ep(2, NotReady), ep(4, Terminating)]).is_empty());
    }

    #[test]
    fn routable_lists_each_address_once() {
        let all = vec![ep(1, EndpointState::Ready), ep(1, EndpointState::Ready)];
        assert_eq!(addrs(&routable(&all)), ["10.0.0.1:80"]);
    }

    #[test]
    fn a_reset_replaces_the_list_and_a_policy_leaves_it() {
        use EndpointState::*;
        let mut list = vec![ep(1, Ready), ep(2, NotReady)];
        Update::Policy(vec!["round_robin".into()]).apply_to(&mut list);
        assert_eq!(addrs(&list), ["10.0.0.1:80", "10.0.0.2:80"]);
        Update::Reset(vec![ep(9, Ready)]).apply_to(&mut list);
        assert_eq!(addrs(&list), ["10.0.0.9:80"]);
    }
}
