//! Catalog → xDS resources: the [`Snapshot`] the ADS server serves.
//!
//! ```text
//!  Catalog ─► SnapshotBuilder (per Service port: Cluster + ClusterLoadAssignment, encoded once,
//!             reused while the Service is unchanged) ─► CatalogSnapshot ─► ads
//!                                                          │ Listeners: built per asked-for name
//! ```
//!
//! Encoding a Service's resources once per change, not once per client,
//! keeps a push to thousands of streams cheap. Listeners are built on
//! demand, because a client may ask for one under any of its names.

mod cluster;
mod listener;
pub mod names;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;

use imbl::OrdMap;

use crate::catalog::{Catalog, CatalogService, ServiceChange, ServiceName};
use crate::snapshot::{self, Resource, Snapshot};
pub use listener::GATEWAY_LISTENER;
use listener::RouteTarget;
use names::ServicePortName;

/// What the resources depend on besides the catalog.
#[derive(Debug, Clone)]
pub struct ResourceSettings {
    /// The namespace of names that give none (`xds:///greeter:50051`).
    pub default_namespace: String,
    /// Where Envoy's gateway Listener binds; `None`: no socket Listener is
    /// served, and wildcard Listener subscribers get none.
    pub gateway: Option<SocketAddr>,
}

impl Default for ResourceSettings {
    fn default() -> Self {
        ResourceSettings {
            default_namespace: "default".into(),
            gateway: None,
        }
    }
}

/// One Service port's encoded resources.
#[derive(Debug)]
struct PortResources {
    cluster: Any,
    endpoints: Any,
}

/// A Service's encoded resources, by canonical Cluster name.
type BuiltService = Arc<HashMap<String, Arc<PortResources>>>;

/// Builds snapshots, re-encoding only the Services that changed since the
/// last one: the work per snapshot follows the change, not the catalog.
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    settings: Arc<ResourceSettings>,
    /// The catalog of the last snapshot, to diff the next one against.
    last: Catalog,
    built: OrdMap<ServiceName, BuiltService>,
    /// The gateway Listener, rebuilt only when a Service's routes change
    /// (a new or removed Service, other ports or hash header), not when
    /// only its endpoints do.
    gateway: Option<Any>,
}

impl SnapshotBuilder {
    /// A builder for `settings`.
    pub fn new(settings: ResourceSettings) -> SnapshotBuilder {
        SnapshotBuilder {
            settings: Arc::new(settings),
            ..SnapshotBuilder::default()
        }
    }

    /// The snapshot of `catalog`.
    pub fn build(&mut self, catalog: &Catalog) -> CatalogSnapshot {
        let mut routes_changed = false;
        for change in catalog.changes_since(&self.last) {
            match change {
                ServiceChange::Upserted { now, was } => {
                    routes_changed |= was.is_none_or(|was| !same_routes(was, now));
                    self.built.insert(now.name.clone(), build_service(now));
                }
                ServiceChange::Removed(name) => {
                    routes_changed = true;
                    self.built.remove(name);
                }
            }
        }
        self.last = catalog.clone();
        if let Some(addr) = self.settings.gateway
            && (routes_changed || self.gateway.is_none())
        {
            self.gateway = Some(pack_any(gateway(addr, catalog)));
        }
        CatalogSnapshot {
            catalog: catalog.clone(),
            settings: Arc::clone(&self.settings),
            built: self.built.clone(),
            gateway: self.gateway.clone(),
        }
    }
}

/// Whether the gateway routes `was` and `now` the same way: the same ports
/// under the same names, and the same hash header.
fn same_routes(was: &CatalogService, now: &CatalogService) -> bool {
    was.ports == now.ports && was.hash_header == now.hash_header
}

fn build_service(service: &CatalogService) -> BuiltService {
    let ports = service
        .ports
        .iter()
        .map(|port| {
            let name = ServicePortName {
                service: service.name.clone(),
                port: podlb_core::PortRef::Number(port.number),
            };
            let cluster_name = name.cluster_name();
            let resources = port_resources(service, &name, &cluster_name);
            (cluster_name, Arc::new(resources))
        })
        .collect();
    Arc::new(ports)
}

fn port_resources(
    service: &CatalogService,
    name: &ServicePortName,
    as_named: &str,
) -> PortResources {
    let endpoints = service.endpoints(&name.port).unwrap_or_default();
    PortResources {
        cluster: pack_any(cluster::cluster(as_named, service.policy, &service.outlier)),
        endpoints: pack_any(podlb_xds::cluster_load_assignment(as_named, &endpoints)),
    }
}

fn gateway(
    addr: SocketAddr,
    catalog: &Catalog,
) -> envoy_types::pb::envoy::config::listener::v3::Listener {
    let mut hosts = Vec::new();
    for service in catalog.services() {
        for (i, port) in service.ports.iter().enumerate() {
            let target = RouteTarget {
                cluster: ServicePortName {
                    service: service.name.clone(),
                    port: podlb_core::PortRef::Number(port.number),
                }
                .cluster_name(),
                hash_header: service.hash_header.clone(),
                retry: service.retry.as_deref().cloned(),
            };
            hosts.push((names::authorities(&service.name, port, i == 0), target));
        }
    }
    listener::gateway_listener(addr, hosts)
}

/// The resources of one catalog moment.
#[derive(Debug, Clone)]
pub struct CatalogSnapshot {
    catalog: Catalog,
    settings: Arc<ResourceSettings>,
    /// Every Service's resources, by Service.
    built: OrdMap<ServiceName, BuiltService>,
    gateway: Option<Any>,
}

impl CatalogSnapshot {
    /// The Service and port `name` names, if the catalog has them.
    fn service_port(&self, name: &str) -> Option<(&Arc<CatalogService>, ServicePortName)> {
        let parsed = ServicePortName::parse(name, &self.settings.default_namespace)?;
        let service = self.catalog.get(&parsed.service)?;
        service.endpoints(&parsed.port)?;
        Some((service, parsed))
    }

    /// The Cluster or ClusterLoadAssignment named `name`: the pre-encoded
    /// one under its canonical name, else built for the name asked.
    fn port_resource(&self, name: &str, pick: fn(&PortResources) -> &Any) -> Option<Any> {
        let encoded = names::canonical_service(name)
            .and_then(|service| self.built.get(&service))
            .and_then(|ports| ports.get(name));
        if let Some(port) = encoded {
            return Some(pick(port).clone());
        }
        let (service, parsed) = self.service_port(name)?;
        Some(pick(&port_resources(service, &parsed, name)).clone())
    }

    fn listener(&self, name: &str) -> Option<Any> {
        if name == GATEWAY_LISTENER {
            return self.gateway.clone();
        }
        let (service, parsed) = self.service_port(name)?;
        let target = RouteTarget {
            cluster: parsed.cluster_name(),
            hash_header: service.hash_header.clone(),
            retry: service.retry.as_deref().cloned(),
        };
        Some(pack_any(listener::api_listener(name, &target)))
    }
}

impl Snapshot for CatalogSnapshot {
    fn get(&self, type_url: &str, name: &str) -> Option<Resource> {
        let body = match type_url {
            snapshot::LISTENER => self.listener(name),
            snapshot::CLUSTER => self.port_resource(name, |p| &p.cluster),
            snapshot::ENDPOINTS => self.port_resource(name, |p| &p.endpoints),
            // Routes are inline in their Listener.
            _ => None,
        }?;
        Some(Resource {
            name: name.to_string(),
            body,
        })
    }

    fn wildcard(&self, type_url: &str) -> Vec<Resource> {
        match type_url {
            snapshot::LISTENER => self
                .gateway
                .iter()
                .map(|body| Resource {
                    name: GATEWAY_LISTENER.to_string(),
                    body: body.clone(),
                })
                .collect(),
            snapshot::CLUSTER => {
                let mut all: Vec<Resource> = self
                    .built
                    .values()
                    .flat_map(|ports| ports.iter())
                    .map(|(name, port)| Resource {
                        name: name.clone(),
                        body: port.cluster.clone(),
                    })
                    .collect();
                all.sort_by(|a, b| a.name.cmp(&b.name));
                all
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::catalog::{CatalogChange, LbPolicy, ServicePort};
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use prost::Message;

    fn service(name: &str, endpoint_port: u16) -> CatalogService {
        let addr = SocketAddr::from(([127, 0, 0, 1], endpoint_port));
        let endpoint = podlb_core::Endpoint::new(addr.into());
        CatalogService::fixed(
            ServiceName {
                namespace: "default".into(),
                name: name.into(),
            },
            ServicePort {
                number: 50051,
                name: Some("grpc".into()),
            },
            LbPolicy::RoundRobin,
            vec![endpoint],
        )
    }

    fn catalog_of(services: &[(&str, u16)]) -> Catalog {
        let mut catalog = Catalog::default();
        catalog.apply(CatalogChange::Reset(
            services.iter().map(|(n, p)| service(n, *p)).collect(),
        ));
        catalog
    }

    fn endpoint_port(snapshot: &CatalogSnapshot, name: &str) -> Option<u16> {
        let resource = snapshot.get(snapshot::ENDPOINTS, name)?;
        let cla = ClusterLoadAssignment::decode(resource.body.value.as_slice()).unwrap();
        assert_eq!(
            cla.cluster_name, name,
            "the body carries the asked-for name"
        );
        let endpoints = podlb_xds::endpoints_from_cla(&cla).unwrap();
        Some(endpoints[0].addr.socket_addr().port())
    }

    fn built(snapshot: &CatalogSnapshot, name: &str) -> BuiltService {
        let key = ServiceName {
            namespace: "default".into(),
            name: name.into(),
        };
        Arc::clone(snapshot.built.get(&key).unwrap())
    }

    /// The `retry_policy` of the one route of the API listener `name`.
    fn route_retry(
        snapshot: &CatalogSnapshot,
        name: &str,
    ) -> Option<envoy_types::pb::envoy::config::route::v3::RetryPolicy> {
        use envoy_types::pb::envoy::config::listener::v3::Listener;
        use envoy_types::pb::envoy::config::route::v3::route::Action;
        use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
            HttpConnectionManager, http_connection_manager::RouteSpecifier,
        };
        let resource = snapshot.get(snapshot::LISTENER, name).unwrap();
        let listener = Listener::decode(resource.body.value.as_slice()).unwrap();
        let hcm = listener.api_listener.unwrap().api_listener.unwrap();
        let hcm = HttpConnectionManager::decode(hcm.value.as_slice()).unwrap();
        let Some(RouteSpecifier::RouteConfig(routes)) = hcm.route_specifier else {
            panic!("an inline route configuration");
        };
        let route = routes.virtual_hosts[0].routes[0].clone();
        let Some(Action::Route(action)) = route.action else {
            panic!("a route action");
        };
        action.retry_policy
    }

    #[test]
    fn a_route_carries_a_retry_policy_only_when_the_service_has_one() {
        let mut catalog = catalog_of(&[("a", 1)]);
        let mut builder = SnapshotBuilder::new(ResourceSettings::default());
        let first = builder.build(&catalog);
        assert_eq!(route_retry(&first, "a.default:50051"), None);

        let mut with = service("a", 1);
        with.retry = Some(Box::new(podlb_core::RouteRetry {
            codes: vec![14],
            max_attempts: 3,
            initial_backoff: std::time::Duration::from_millis(25),
            max_backoff: std::time::Duration::from_millis(250),
        }));
        catalog.apply(CatalogChange::Upsert(with));
        let second = builder.build(&catalog);
        let retry = route_retry(&second, "a.default:50051").unwrap();
        assert_eq!(retry.retry_on, "unavailable");
        assert_eq!(retry.num_retries.unwrap().value, 2);
    }

    #[test]
    fn only_the_changed_service_is_encoded_again() {
        let mut catalog = catalog_of(&[("a", 1), ("b", 2), ("c", 3)]);
        let mut builder = SnapshotBuilder::new(ResourceSettings::default());
        let first = builder.build(&catalog);
        catalog.apply(CatalogChange::Upsert(service("b", 20)));
        let second = builder.build(&catalog);
        assert!(Arc::ptr_eq(&built(&first, "a"), &built(&second, "a")));
        assert!(Arc::ptr_eq(&built(&first, "c"), &built(&second, "c")));
        assert!(!Arc::ptr_eq(&built(&first, "b"), &built(&second, "b")));
        // Each snapshot keeps serving its own moment.
        assert_eq!(endpoint_port(&first, "b.default:50051"), Some(2));
        assert_eq!(endpoint_port(&second, "b.default:50051"), Some(20));
    }

    #[test]
    fn every_form_of_a_name_is_served_and_removed_services_are_not() {
        let mut catalog = catalog_of(&[("a", 1), ("b", 2)]);
        let mut builder = SnapshotBuilder::new(ResourceSettings::default());
        let snapshot = builder.build(&catalog);
        for name in [
            "a.default:50051",
            "a.default.svc.cluster.local:50051",
            "a:50051",
            "a.default:grpc",
        ] {
            assert_eq!(endpoint_port(&snapshot, name), Some(1), "{name}");
            assert!(snapshot.get(snapshot::CLUSTER, name).is_some(), "{name}");
            assert!(snapshot.get(snapshot::LISTENER, name).is_some(), "{name}");
        }
        for name in ["a.default:80", "nope.default:50051", "a.other:50051"] {
            assert_eq!(endpoint_port(&snapshot, name), None, "{name}");
        }
        catalog.apply(CatalogChange::Remove(service("a", 1).name));
        let after = builder.build(&catalog);
        assert_eq!(endpoint_port(&after, "a.default:50051"), None);
        let wildcard: Vec<String> = after
            .wildcard(snapshot::CLUSTER)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(wildcard, ["b.default:50051"]);
    }

    #[test]
    fn the_gateway_listener_follows_services_not_endpoints() {
        let settings = ResourceSettings {
            gateway: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            ..ResourceSettings::default()
        };
        let gateway = |snapshot: &CatalogSnapshot| {
            snapshot
                .get(snapshot::LISTENER, GATEWAY_LISTENER)
                .unwrap()
                .body
        };
        let mut catalog = catalog_of(&[("a", 1)]);
        let mut builder = SnapshotBuilder::new(settings);
        let first = gateway(&builder.build(&catalog));
        catalog.apply(CatalogChange::Upsert(service("a", 10)));
        assert_eq!(gateway(&builder.build(&catalog)), first, "endpoints only");
        catalog.apply(CatalogChange::Upsert(service("b", 2)));
        let with_b = gateway(&builder.build(&catalog));
        assert_ne!(with_b, first, "a new Service gets routes");
        let mut renamed_port = service("b", 2);
        renamed_port.ports[0].name = Some("h2c".into());
        catalog.apply(CatalogChange::Upsert(renamed_port));
        assert_ne!(gateway(&builder.build(&catalog)), with_b, "a port changed");
        catalog.apply(CatalogChange::Remove(service("b", 2).name));
        assert_eq!(gateway(&builder.build(&catalog)), first, "b is gone again");
    }
}
