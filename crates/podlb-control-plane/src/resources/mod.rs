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

use crate::catalog::{Catalog, CatalogService, ServiceName};
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

/// A Service's resources, and the catalog entry they were built from.
#[derive(Debug, Clone)]
struct BuiltService {
    from: Arc<CatalogService>,
    ports: Arc<HashMap<String, Arc<PortResources>>>,
}

/// Builds snapshots, re-encoding only the Services that changed.
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    settings: Arc<ResourceSettings>,
    built: HashMap<ServiceName, BuiltService>,
}

impl SnapshotBuilder {
    /// A builder for `settings`.
    pub fn new(settings: ResourceSettings) -> SnapshotBuilder {
        SnapshotBuilder {
            settings: Arc::new(settings),
            built: HashMap::new(),
        }
    }

    /// The snapshot of `catalog`.
    pub fn build(&mut self, catalog: &Catalog) -> CatalogSnapshot {
        let mut built = HashMap::with_capacity(catalog.len());
        let mut clusters = HashMap::new();
        for service in catalog.services() {
            let entry = match self.built.remove(&service.name) {
                Some(old) if Arc::ptr_eq(&old.from, service) => old,
                _ => build_service(service),
            };
            for (name, port) in entry.ports.iter() {
                clusters.insert(name.clone(), Arc::clone(port));
            }
            built.insert(service.name.clone(), entry);
        }
        self.built = built;
        let gateway = self
            .settings
            .gateway
            .map(|addr| pack_any(gateway(addr, catalog)));
        CatalogSnapshot {
            catalog: catalog.clone(),
            settings: Arc::clone(&self.settings),
            clusters,
            gateway,
        }
    }
}

fn build_service(service: &Arc<CatalogService>) -> BuiltService {
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
    BuiltService {
        from: Arc::clone(service),
        ports: Arc::new(ports),
    }
}

fn port_resources(
    service: &CatalogService,
    name: &ServicePortName,
    as_named: &str,
) -> PortResources {
    let endpoints = service.endpoints(&name.port).unwrap_or_default();
    PortResources {
        cluster: pack_any(cluster::cluster(as_named, service.policy)),
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
    /// Every Service port's resources, by canonical Cluster name.
    clusters: HashMap<String, Arc<PortResources>>,
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
        if let Some(port) = self.clusters.get(name) {
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
                    .clusters
                    .iter()
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
