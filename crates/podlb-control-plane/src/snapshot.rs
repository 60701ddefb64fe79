//! The seam between what the control plane knows and what it serves: a
//! [`Snapshot`] answers "which resource of this type has this name" for one
//! moment of the catalog. The ADS server reads snapshots and never builds
//! resources; the resource builder never sees a stream.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;

/// Type URL of a Listener (LDS).
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// Type URL of a RouteConfiguration (RDS).
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// Type URL of a Cluster (CDS).
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// Type URL of a ClusterLoadAssignment (EDS).
pub const ENDPOINTS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// One xDS resource, encoded, under the name a client asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The name the client subscribed to (a resource may answer to several
    /// names, e.g. `greeter.default:50051` and
    /// `greeter.default.svc.cluster.local:50051`; its body then carries the
    /// asked-for name).
    pub name: String,
    /// The encoded resource, with its type URL.
    pub body: Any,
}

/// The resources of one moment. Cheap to share: the ADS server holds the
/// latest behind an `Arc` and every stream reads it.
pub trait Snapshot: Send + Sync + 'static {
    /// The resource of `type_url` named `name`, if it exists.
    fn get(&self, type_url: &str, name: &str) -> Option<Resource>;

    /// Every resource of `type_url` a wildcard subscriber gets (Envoy asks
    /// for all Listeners and all Clusters so).
    fn wildcard(&self, type_url: &str) -> Vec<Resource>;
}

/// The latest snapshot, as the ADS server receives it.
pub type SharedSnapshot = Arc<dyn Snapshot>;

/// A snapshot that is a fixed table: for tests, and for nothing else that
/// needs aliases. Wildcard subscribers get every resource of the type.
#[derive(Debug, Default, Clone)]
pub struct FixedSnapshot {
    resources: BTreeMap<(String, String), Any>,
}

impl FixedSnapshot {
    /// Adds (or replaces) `body` under `name`, typed by its own type URL.
    pub fn insert(&mut self, name: impl Into<String>, body: Any) {
        self.resources
            .insert((body.type_url.clone(), name.into()), body);
    }
}

impl Snapshot for FixedSnapshot {
    fn get(&self, type_url: &str, name: &str) -> Option<Resource> {
        self.resources
            .get(&(type_url.to_string(), name.to_string()))
            .map(|body| Resource {
                name: name.to_string(),
                body: body.clone(),
            })
    }

    fn wildcard(&self, type_url: &str) -> Vec<Resource> {
        self.resources
            .iter()
            .filter(|((t, _), _)| t == type_url)
            .map(|((_, name), body)| Resource {
                name: name.clone(),
                body: body.clone(),
            })
            .collect()
    }
}
