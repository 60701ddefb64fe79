//! The catalog: every Service the control plane serves, with its ports,
//! its balancing policy and its endpoints, whichever source it came from.
//!
//! Sources (`source::kubernetes`, `source::static_file`) speak
//! [`CatalogChange`]s; the resource builder reads the [`Catalog`]. This
//! module knows nothing of xDS messages, and nothing of how a source learns
//! what it knows.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use imbl::OrdMap;
use imbl::ordmap::DiffItem;
use podlb_core::{Endpoint, OutlierSettings, PortRef, RouteRetry};

/// A Service's name and namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName {
    /// The namespace.
    pub namespace: String,
    /// The Service's name within it.
    pub name: String,
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.name, self.namespace)
    }
}

/// The annotation that picks a Service's balancing policy.
pub const POLICY_ANNOTATION: &str = "podlb.io/lb-policy";
/// The annotation that turns a Service's outlier detection off (`off`);
/// without it, or with `on`, its Clusters carry podlb's defaults.
pub const OUTLIER_ANNOTATION: &str = "podlb.io/outlier-detection";
/// The annotation that names the header `ring_hash` hashes (e.g.
/// `x-user-id`); without it each call hashes at random.
pub const HASH_HEADER_ANNOTATION: &str = "podlb.io/hash-header";

/// The policy a client (or Envoy) balances a Service's calls with: the
/// Cluster's `lb_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LbPolicy {
    /// Each endpoint in turn. The default, as in gRPC and Envoy.
    #[default]
    RoundRobin,
    /// The endpoint with the fewest calls in flight, of two picked at random
    /// (gRFC A48).
    LeastRequest,
    /// A consistent hash of a header (gRFC A42), so one key keeps one pod.
    RingHash,
}

impl LbPolicy {
    /// Every policy's name, for messages.
    pub const NAMES: &'static str = "round_robin, least_request, ring_hash";

    /// The name as written in annotations and the catalog file.
    pub fn name(self) -> &'static str {
        match self {
            LbPolicy::RoundRobin => "round_robin",
            LbPolicy::LeastRequest => "least_request",
            LbPolicy::RingHash => "ring_hash",
        }
    }
}

impl FromStr for LbPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "round_robin" => Ok(LbPolicy::RoundRobin),
            "least_request" => Ok(LbPolicy::LeastRequest),
            "ring_hash" => Ok(LbPolicy::RingHash),
            _ => Err(format!(
                "{s:?} is not a balancing policy (expected one of {})",
                LbPolicy::NAMES
            )),
        }
    }
}

/// A port a client may name: its number, and its name if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The number clients put in the xDS name (`greeter.default:50051`).
    pub number: u16,
    /// The name, so `greeter.default:grpc` works too.
    pub name: Option<String>,
}

impl ServicePort {
    fn is(&self, port: &PortRef) -> bool {
        match port {
            PortRef::Number(n) => *n == self.number,
            PortRef::Name(name) => self.name.as_deref() == Some(name),
        }
    }
}

/// One Service, as served.
#[derive(Debug, Clone)]
pub struct CatalogService {
    /// Its name and namespace.
    pub name: ServiceName,
    /// How its calls are balanced.
    pub policy: LbPolicy,
    /// For `ring_hash`: the request header to hash.
    pub hash_header: Option<String>,
    /// The ports clients may name; the gateway and wildcard clients get one
    /// Cluster per port.
    pub ports: Vec<ServicePort>,
    /// Where its endpoints come from.
    pub endpoints: ServiceEndpoints,
    /// The outlier detection its Clusters ask for (`outlier_detection`):
    /// podlb's defaults unless the catalog file or an annotation says
    /// otherwise; [`OutlierSettings::disabled`] asks for none to be done.
    pub outlier: OutlierSettings,
    /// The retry policy its routes carry (`retry_policy`, gRFC A44); none
    /// unless the catalog file gives one, as retrying is not safe for
    /// every method. Boxed: most Services have none.
    pub retry: Option<Box<RouteRetry>>,
}

/// A Service's endpoints, per port, as its source knows them.
#[derive(Debug, Clone)]
pub enum ServiceEndpoints {
    /// The same endpoints on every port of [`CatalogService::ports`] (a
    /// catalog file entry has one port).
    Fixed(Arc<[Endpoint]>),
    /// A Kubernetes Service and its merged EndpointSlices: a port is mapped
    /// through the Service's ports to the slices' ports.
    #[cfg(feature = "kubernetes")]
    Kubernetes(Arc<podlb_discovery::ServiceView>),
}

impl CatalogService {
    /// A Service with one port and a fixed list of endpoints, as a catalog
    /// file entry gives it; for [`Source::Fixed`](crate::Source::Fixed)
    /// and [`ControlPlane::apply`](crate::ControlPlane::apply).
    pub fn fixed(
        name: ServiceName,
        port: ServicePort,
        policy: LbPolicy,
        endpoints: Vec<Endpoint>,
    ) -> CatalogService {
        CatalogService {
            name,
            policy,
            hash_header: None,
            ports: vec![port],
            endpoints: ServiceEndpoints::Fixed(Arc::from(endpoints)),
            outlier: OutlierSettings::default(),
            retry: None,
        }
    }

    /// The endpoints of `port`, or `None` when the Service has no such port
    /// (the resource then does not exist, and clients are told so).
    pub fn endpoints(&self, port: &PortRef) -> Option<Vec<Endpoint>> {
        let known = self.ports.iter().any(|p| p.is(port));
        match &self.endpoints {
            ServiceEndpoints::Fixed(endpoints) => known.then(|| endpoints.to_vec()),
            #[cfg(feature = "kubernetes")]
            ServiceEndpoints::Kubernetes(view) => {
                // A port may also be an endpoint port (the targetPort), as
                // in `kubernetes:///` targets.
                let endpoints = view.endpoints(port);
                (known || !endpoints.is_empty()).then_some(endpoints)
            }
        }
    }

    /// The policy and hash header a Service's annotations ask for; a bad
    /// value is logged and the default kept, since one typo must not take a
    /// Service off the mesh.
    pub fn policy_from_annotations(
        name: &ServiceName,
        annotations: &BTreeMap<String, String>,
    ) -> (LbPolicy, Option<String>) {
        let policy = match annotations.get(POLICY_ANNOTATION) {
            None => LbPolicy::default(),
            Some(value) => value.parse().unwrap_or_else(|err| {
                tracing::warn!(
                    service = %name,
                    annotation = POLICY_ANNOTATION,
                    "{err}; using round_robin"
                );
                LbPolicy::default()
            }),
        };
        let hash_header = annotations
            .get(HASH_HEADER_ANNOTATION)
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty());
        (policy, hash_header)
    }

    /// The outlier detection a Service's annotations ask for: podlb's
    /// defaults, or none with `podlb.io/outlier-detection: off`. A bad value
    /// is logged and the defaults kept.
    pub fn outlier_from_annotations(
        name: &ServiceName,
        annotations: &BTreeMap<String, String>,
    ) -> OutlierSettings {
        match annotations.get(OUTLIER_ANNOTATION).map(|v| v.trim()) {
            None | Some("on") => OutlierSettings::default(),
            Some("off") => OutlierSettings::disabled(),
            Some(other) => {
                tracing::warn!(
                    service = %name, annotation = OUTLIER_ANNOTATION,
                    "{other:?} is neither on nor off; keeping podlb's outlier detection defaults"
                );
                OutlierSettings::default()
            }
        }
    }
}

/// What a source tells the catalog.
#[derive(Debug, Clone)]
pub enum CatalogChange {
    /// The whole set, replacing what was there (after a source's first
    /// list, a re-list, or a file reload).
    Reset(Vec<CatalogService>),
    /// One Service, new or changed.
    Upsert(CatalogService),
    /// One Service is gone.
    Remove(ServiceName),
}

/// Every Service served now. Cheap to clone and to compare with an earlier
/// copy: the map is persistent, so a clone shares every node, a change
/// copies only the path to it, and a comparison skips the nodes both
/// share. That keeps a snapshot per change proportional to the change, not
/// to the catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    services: OrdMap<ServiceName, Entry>,
}

/// A catalog entry. Equal only to itself (the same `Arc`): a source's
/// upsert is a change, and comparing endpoint lists would cost what the
/// persistent map saves.
#[derive(Debug, Clone)]
struct Entry(Arc<CatalogService>);

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// How a Service differs between two catalogs.
#[derive(Debug)]
pub(crate) enum ServiceChange<'a> {
    /// New, or replaced: the Service as it is now, and as it was.
    Upserted {
        now: &'a Arc<CatalogService>,
        was: Option<&'a Arc<CatalogService>>,
    },
    /// Gone.
    Removed(&'a ServiceName),
}

impl Catalog {
    /// Applies one change.
    pub fn apply(&mut self, change: CatalogChange) {
        match change {
            CatalogChange::Reset(services) => {
                self.services = services
                    .into_iter()
                    .map(|s| (s.name.clone(), Entry(Arc::new(s))))
                    .collect();
            }
            CatalogChange::Upsert(service) => {
                self.services
                    .insert(service.name.clone(), Entry(Arc::new(service)));
            }
            CatalogChange::Remove(name) => {
                self.services.remove(&name);
            }
        }
    }

    /// The Service named so.
    pub fn get(&self, name: &ServiceName) -> Option<&Arc<CatalogService>> {
        self.services.get(name).map(|entry| &entry.0)
    }

    /// Every Service, by name.
    pub fn services(&self) -> impl Iterator<Item = &Arc<CatalogService>> {
        self.services.values().map(|entry| &entry.0)
    }

    /// How many Services there are.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// What changed from `earlier` to this catalog, visiting only what the
    /// two do not share.
    pub(crate) fn changes_since<'a>(
        &'a self,
        earlier: &'a Catalog,
    ) -> impl Iterator<Item = ServiceChange<'a>> {
        earlier
            .services
            .diff(&self.services)
            .map(|item| match item {
                DiffItem::Add(_, now) => ServiceChange::Upserted {
                    now: &now.0,
                    was: None,
                },
                DiffItem::Update {
                    old: (_, was),
                    new: (_, now),
                } => ServiceChange::Upserted {
                    now: &now.0,
                    was: Some(&was.0),
                },
                DiffItem::Remove(name, _) => ServiceChange::Removed(name),
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fixed(ports: Vec<ServicePort>) -> CatalogService {
        CatalogService {
            name: ServiceName {
                namespace: "default".into(),
                name: "greeter".into(),
            },
            policy: LbPolicy::RoundRobin,
            hash_header: None,
            ports,
            endpoints: ServiceEndpoints::Fixed(Arc::from(vec![Endpoint::new(
                "127.0.0.1:1".parse().unwrap(),
            )])),
            outlier: OutlierSettings::default(),
            retry: None,
        }
    }

    #[test]
    fn a_port_is_named_by_number_or_by_name() {
        let service = fixed(vec![ServicePort {
            number: 50051,
            name: Some("grpc".into()),
        }]);
        assert!(service.endpoints(&PortRef::Number(50051)).is_some());
        assert!(service.endpoints(&PortRef::Name("grpc".into())).is_some());
        assert!(service.endpoints(&PortRef::Number(80)).is_none());
        assert!(service.endpoints(&PortRef::Name("http".into())).is_none());
    }

    #[test]
    fn policies_parse_from_their_names_and_a_bad_annotation_keeps_the_default() {
        assert_eq!("least_request".parse(), Ok(LbPolicy::LeastRequest));
        assert_eq!("RING-HASH".parse(), Ok(LbPolicy::RingHash));
        assert!("fastest".parse::<LbPolicy>().is_err());
        let name = fixed(vec![]).name;
        let mut annotations = BTreeMap::new();
        annotations.insert(POLICY_ANNOTATION.to_string(), "fastest".to_string());
        annotations.insert(HASH_HEADER_ANNOTATION.to_string(), "X-User".to_string());
        let (policy, header) = CatalogService::policy_from_annotations(&name, &annotations);
        assert_eq!(policy, LbPolicy::RoundRobin);
        assert_eq!(header.as_deref(), Some("x-user"));
    }

    #[test]
    fn the_outlier_annotation_turns_detection_off_and_a_typo_keeps_the_defaults() {
        let name = fixed(vec![]).name;
        let with = |value: &str| {
            let annotations = BTreeMap::from([(OUTLIER_ANNOTATION.to_string(), value.to_string())]);
            CatalogService::outlier_from_annotations(&name, &annotations)
        };
        assert_eq!(
            CatalogService::outlier_from_annotations(&name, &BTreeMap::new()),
            OutlierSettings::default()
        );
        assert!(!with("off").enabled);
        assert_eq!(with("on"), OutlierSettings::default());
        assert_eq!(with("of"), OutlierSettings::default());
    }

    #[test]
    fn reset_replaces_and_remove_removes() {
        let mut catalog = Catalog::default();
        catalog.apply(CatalogChange::Reset(vec![fixed(vec![])]));
        assert_eq!(catalog.len(), 1);
        let name = fixed(vec![]).name;
        catalog.apply(CatalogChange::Remove(name.clone()));
        assert!(catalog.get(&name).is_none());
    }

    fn named(name: &str) -> CatalogService {
        let mut service = fixed(vec![]);
        service.name.name = name.into();
        service
    }

    fn change_names(now: &Catalog, earlier: &Catalog) -> Vec<String> {
        now.changes_since(earlier)
            .map(|change| match change {
                ServiceChange::Upserted { now, was: None } => format!("+{}", now.name.name),
                ServiceChange::Upserted { now, was: Some(_) } => format!("~{}", now.name.name),
                ServiceChange::Removed(name) => format!("-{}", name.name),
            })
            .collect()
    }

    #[test]
    fn changes_since_names_each_upsert_and_removal_once() {
        let mut earlier = Catalog::default();
        earlier.apply(CatalogChange::Reset(
            (0..300).map(|i| named(&format!("s{i:03}"))).collect(),
        ));
        assert!(change_names(&earlier, &earlier.clone()).is_empty());
        let mut now = earlier.clone();
        now.apply(CatalogChange::Upsert(named("s007")));
        now.apply(CatalogChange::Upsert(named("new")));
        now.apply(CatalogChange::Remove(named("s200").name));
        assert_eq!(change_names(&now, &earlier), ["+new", "~s007", "-s200"]);
        // An upsert of an equal Service is still a change: the source said so.
        let mut again = now.clone();
        again.apply(CatalogChange::Upsert(named("s007")));
        assert_eq!(change_names(&again, &now), ["~s007"]);
    }
}
