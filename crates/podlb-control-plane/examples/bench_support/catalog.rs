//! The synthetic catalog every benchmark serves: Services `svc-0000`,
//! `svc-0001`, ... each with one port (`grpc`, 50051) and one EndpointSlice
//! of M ready endpoints in three zones, in the same shape whether it is
//! written to the API server or handed to `Source::Fixed` (as the
//! `ServiceView` the Kubernetes watch would have built), so the two
//! measurements differ only by Kubernetes.
//!
//! A change is a new *generation*: the endpoints keep their addresses and
//! move to port `10000 + generation`, so whoever receives a
//! ClusterLoadAssignment can tell which change it carries from its first
//! endpoint.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use podlb_control_plane::catalog::{
    CatalogService, LbPolicy, ServiceEndpoints, ServiceName, ServicePort,
};
use podlb_core::{EndpointState, PortRef, Topology};
use podlb_discovery::{ServiceKey, ServiceView};

/// The port clients name (`svc-0000.NS:50051`).
pub(crate) const SERVICE_PORT: u16 = 50051;
/// The Service port's name, which maps it to the slices' port.
pub(crate) const PORT_NAME: &str = "grpc";

/// Service number `i`'s name.
pub(crate) fn service_name(i: usize) -> String {
    format!("svc-{i:04}")
}

/// Its one EndpointSlice's name.
pub(crate) fn slice_name(i: usize) -> String {
    format!("svc-{i:04}-1")
}

/// The name a client asks for: its Listener, Cluster and
/// ClusterLoadAssignment all go by it (the canonical `NAME.NS:PORT`).
pub(crate) fn resource_name(namespace: &str, i: usize) -> String {
    format!("{}.{namespace}:{SERVICE_PORT}", service_name(i))
}

/// The endpoints' port in `generation`.
pub(crate) fn endpoint_port(generation: u16) -> u16 {
    10_000 + generation
}

/// Endpoint `j` of Service `i`: `10.(i/256).(i%256).(j+1)`, documentation
/// addresses nobody dials.
pub(crate) fn endpoint_addr(i: usize, j: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        10,
        (i / 256 % 256) as u8,
        (i % 256) as u8,
        (j % 250 + 1) as u8,
    )
}

/// Service `i`'s `count` endpoints with their zones, as written to its slice.
pub(crate) fn slice_endpoints(i: usize, count: usize) -> Vec<(IpAddr, String)> {
    (0..count)
        .map(|j| (IpAddr::V4(endpoint_addr(i, j)), zone(j)))
        .collect()
}

/// Endpoint `j`'s zone: three zones, as a regional cluster has.
pub(crate) fn zone(j: usize) -> String {
    format!("zone-{}", j % 3)
}

/// Service `i` of `namespace` with `endpoints` endpoints in `generation`,
/// as the Kubernetes source would hand it to the catalog.
pub(crate) fn service(
    namespace: &str,
    i: usize,
    endpoints: usize,
    generation: u16,
) -> CatalogService {
    let key = ServiceKey::new(namespace, service_name(i));
    let port = podlb_discovery::ServicePort::new(
        Some(PORT_NAME.to_string()),
        SERVICE_PORT,
        PortRef::Name(PORT_NAME.to_string()),
    );
    let view = ServiceView::new(key, BTreeMap::new(), vec![port]).with_slice(
        &slice_name(i),
        &[(PORT_NAME, endpoint_port(generation))],
        (0..endpoints).map(|j| {
            (
                IpAddr::V4(endpoint_addr(i, j)),
                EndpointState::Ready,
                Topology::new(Some(zone(j)), None, Vec::new()),
            )
        }),
    );
    CatalogService {
        name: ServiceName {
            namespace: namespace.to_string(),
            name: service_name(i),
        },
        policy: LbPolicy::RoundRobin,
        hash_header: None,
        ports: vec![ServicePort {
            number: SERVICE_PORT,
            name: Some(PORT_NAME.to_string()),
        }],
        endpoints: ServiceEndpoints::Kubernetes(Arc::new(view)),
        outlier: podlb_core::OutlierSettings::default(),
        retry: None,
    }
}

/// Services `0..count`, each with `endpoints` endpoints in `generation`.
pub(crate) fn services(
    namespace: &str,
    count: usize,
    endpoints: usize,
    generation: u16,
) -> Vec<CatalogService> {
    (0..count)
        .map(|i| service(namespace, i, endpoints, generation))
        .collect()
}
