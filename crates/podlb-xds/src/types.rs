//! The four xDS resource types podlb speaks, by type URL, shared by the
//! client here and podlb's control plane. It owns the names of the types
//! and nothing else: no decoding, no validation.

use std::fmt;

/// Type URL of a Listener (LDS).
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// Type URL of a RouteConfiguration (RDS).
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// Type URL of a Cluster (CDS).
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// Type URL of a ClusterLoadAssignment (EDS).
pub const ENDPOINTS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// One of the four resource types, in the order a client resolves them:
/// Listener, then RouteConfiguration, then Cluster, then its endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// LDS: a Listener; for a proxyless client, the one named by the target.
    Listener,
    /// RDS: a RouteConfiguration a Listener names.
    Route,
    /// CDS: a Cluster a route sends calls to.
    Cluster,
    /// EDS: a ClusterLoadAssignment, the endpoints of a Cluster.
    Endpoints,
}

impl ResourceType {
    /// Every type, in resolution order (and the order a client subscribes
    /// in after a reconnect).
    pub const ALL: [ResourceType; 4] = [
        ResourceType::Listener,
        ResourceType::Route,
        ResourceType::Cluster,
        ResourceType::Endpoints,
    ];

    /// The type URL, as in `DiscoveryRequest.type_url`.
    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Listener => LISTENER,
            ResourceType::Route => ROUTE,
            ResourceType::Cluster => CLUSTER,
            ResourceType::Endpoints => ENDPOINTS,
        }
    }

    /// The type of a type URL, if it is one of the four.
    pub fn from_type_url(type_url: &str) -> Option<ResourceType> {
        ResourceType::ALL
            .into_iter()
            .find(|t| t.type_url() == type_url)
    }

    /// The type's place in [`ResourceType::ALL`], for tables by type.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Whether a state-of-the-world response lists every subscribed
    /// resource of this type, so that one it leaves out has been deleted
    /// (LDS and CDS); RDS and EDS responses may carry only some.
    pub fn absence_means_deletion(self) -> bool {
        matches!(self, ResourceType::Listener | ResourceType::Cluster)
    }
}

impl fmt::Display for ResourceType {
    /// The message name, for people: `Listener`, `RouteConfiguration`,
    /// `Cluster`, `ClusterLoadAssignment`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceType::Listener => "Listener",
            ResourceType::Route => "RouteConfiguration",
            ResourceType::Cluster => "Cluster",
            ResourceType::Endpoints => "ClusterLoadAssignment",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::{
        cluster::v3::Cluster, endpoint::v3::ClusterLoadAssignment, listener::v3::Listener,
        route::v3::RouteConfiguration,
    };
    use prost::Name;

    #[test]
    fn type_urls_are_the_generated_messages_own() {
        assert_eq!(LISTENER, Listener::type_url());
        assert_eq!(ROUTE, RouteConfiguration::type_url());
        assert_eq!(CLUSTER, Cluster::type_url());
        assert_eq!(ENDPOINTS, ClusterLoadAssignment::type_url());
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::from_type_url(t.type_url()), Some(t));
        }
        assert_eq!(ResourceType::from_type_url("type.googleapis.com/x"), None);
    }
}
