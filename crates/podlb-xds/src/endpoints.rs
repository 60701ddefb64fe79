//! `ClusterLoadAssignment` ⇄ podlb endpoints, both ways: the client reads
//! EDS resources into [`Endpoint`]s, and podlb's control plane builds its
//! EDS resources from them with [`cluster_load_assignment`], so the two
//! ends agree by construction. Pure: no I/O, no subscriptions.
//!
//! | podlb [`EndpointState`] | xDS `HealthStatus` |
//! |---|---|
//! | `Ready` | `HEALTHY` (read: `HEALTHY` or `UNKNOWN`) |
//! | `ServingTerminating` | `DRAINING` |
//! | `Terminating`, `NotReady` | left out (read: every other status) |
//!
//! A locality carries the zone ([`Topology::zone`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, HealthStatus, Locality, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as XdsEndpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use podlb_core::{Endpoint, EndpointAddr, EndpointState, Topology};

/// The EDS resource of `cluster_name` for `endpoints`: one locality per
/// zone (`locality.zone`; endpoints with no zone share a locality with an
/// empty one), all at priority 0.
///
/// Only serving endpoints are listed: ready ones as `HEALTHY`,
/// serving-terminating ones as `DRAINING`. A locality's
/// `load_balancing_weight` is the number of its endpoints that take calls
/// ([`podlb_core::routable`]); gRPC clients fail every call without a
/// locality weight, and Envoy rejects a weight of 0, so a locality with
/// none routable (only draining endpoints while others are ready) is left
/// out. Localities and endpoints are sorted, so equal sets encode equally.
pub fn cluster_load_assignment(
    cluster_name: &str,
    endpoints: &[Endpoint],
) -> ClusterLoadAssignment {
    let routable: std::collections::HashSet<EndpointAddr> = podlb_core::routable(endpoints)
        .into_iter()
        .map(|e| e.addr)
        .collect();
    let mut zones: BTreeMap<String, BTreeMap<EndpointAddr, EndpointState>> = BTreeMap::new();
    for endpoint in endpoints {
        let health = match endpoint.state {
            EndpointState::Ready | EndpointState::ServingTerminating => endpoint.state,
            EndpointState::Terminating | EndpointState::NotReady => continue,
        };
        let zone = endpoint.topology.zone.clone().unwrap_or_default();
        let best = zones
            .entry(zone)
            .or_default()
            .entry(endpoint.addr)
            .or_insert(health);
        // An address listed twice (a pod between slices): the better state.
        *best = (*best).min(health);
    }
    let localities = zones
        .into_iter()
        .filter_map(|(zone, members)| {
            let weight = members.keys().filter(|a| routable.contains(a)).count();
            (weight > 0).then(|| locality(zone, &members, weight))
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: cluster_name.to_string(),
        endpoints: localities,
        ..Default::default()
    }
}

fn locality(
    zone: String,
    members: &BTreeMap<EndpointAddr, EndpointState>,
    weight: usize,
) -> LocalityLbEndpoints {
    LocalityLbEndpoints {
        locality: Some(Locality {
            zone,
            ..Default::default()
        }),
        lb_endpoints: members
            .iter()
            .map(|(addr, state)| lb_endpoint(addr.socket_addr(), *state))
            .collect(),
        load_balancing_weight: Some(UInt32Value {
            value: u32::try_from(weight).unwrap_or(u32::MAX),
        }),
        priority: 0,
        ..Default::default()
    }
}

fn lb_endpoint(addr: SocketAddr, state: EndpointState) -> LbEndpoint {
    let health = match state {
        EndpointState::Ready => HealthStatus::Healthy,
        _ => HealthStatus::Draining,
    };
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(XdsEndpoint {
            address: Some(Address {
                address: Some(AddressKind::SocketAddress(SocketAddress {
                    address: addr.ip().to_string(),
                    port_specifier: Some(PortSpecifier::PortValue(u32::from(addr.port()))),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })),
        health_status: health as i32,
        ..Default::default()
    }
}

/// The endpoints of an EDS resource, each with its state, its locality's
/// zone, and the resource's `cluster_name` as its source.
///
/// Of several priorities, the endpoints of the first (lowest number) that
/// has a serving endpoint are taken, so a failover priority is used only
/// when the preferred one has nothing to call, roughly as gRPC's priority
/// policy does; podlb's balancer knows no priorities. Locality weights are
/// not read: podlb balances over endpoints, not localities, and a missing
/// weight (which makes gRPC clients fail) is no reason for podlb to.
///
/// `Err` says what is wrong, for the NACK: an address that is not an IP
/// literal with a port (gRPC resolves no names in EDS either).
pub fn endpoints_from_cla(cla: &ClusterLoadAssignment) -> Result<Vec<Endpoint>, String> {
    let mut by_priority: BTreeMap<u32, Vec<Endpoint>> = BTreeMap::new();
    for (i, group) in cla.endpoints.iter().enumerate() {
        let zone = group
            .locality
            .as_ref()
            .map(|l| l.zone.clone())
            .filter(|z| !z.is_empty());
        let members = by_priority.entry(group.priority).or_default();
        for (j, lb_endpoint) in group.lb_endpoints.iter().enumerate() {
            let addr = lb_endpoint_addr(lb_endpoint)
                .map_err(|problem| format!("endpoints[{i}].lb_endpoints[{j}]: {problem}"))?;
            let endpoint = Endpoint::new(addr)
                .with_state(state_of(lb_endpoint.health_status))
                .with_topology(Topology::new(zone.clone(), None, Vec::new()))
                .with_source(cla.cluster_name.clone());
            members.push(endpoint);
        }
    }
    let serving = |e: &Endpoint| e.state <= EndpointState::ServingTerminating;
    let first_serving = by_priority
        .values()
        .position(|members| members.iter().any(serving))
        .unwrap_or(0);
    Ok(by_priority
        .into_values()
        .nth(first_serving)
        .unwrap_or_default())
}

/// HEALTHY and UNKNOWN take calls (gRFC A27); DRAINING is podlb's
/// serving-terminating; UNHEALTHY, TIMEOUT, DEGRADED and unknown values do
/// not.
fn state_of(health_status: i32) -> EndpointState {
    match HealthStatus::try_from(health_status) {
        Ok(HealthStatus::Healthy | HealthStatus::Unknown) => EndpointState::Ready,
        Ok(HealthStatus::Draining) => EndpointState::ServingTerminating,
        _ => EndpointState::NotReady,
    }
}

fn lb_endpoint_addr(lb_endpoint: &LbEndpoint) -> Result<EndpointAddr, String> {
    let Some(HostIdentifier::Endpoint(endpoint)) = &lb_endpoint.host_identifier else {
        return Err("no endpoint (named endpoints are not supported)".into());
    };
    let Some(AddressKind::SocketAddress(socket)) =
        endpoint.address.as_ref().and_then(|a| a.address.as_ref())
    else {
        return Err("no socket_address (pipes and internal addresses are not supported)".into());
    };
    let ip: IpAddr = socket
        .address
        .parse()
        .map_err(|_| format!("address {:?} is not an IP address", socket.address))?;
    let port = match socket.port_specifier {
        Some(PortSpecifier::PortValue(port)) => u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("port_value {port} is not a port"))?,
        _ => return Err("no port_value (named ports are not supported)".into()),
    };
    Ok(EndpointAddr::from(SocketAddr::new(ip, port)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
