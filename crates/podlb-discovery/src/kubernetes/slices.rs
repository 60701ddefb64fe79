//! EndpointSlices to endpoints: the fields podlb reads from one slice, and
//! the merge of every slice of a Service into one set.
//!
//! A Service has many slices (one per 100 endpoints, one per address
//! family), so no single slice is the whole set: the set is the union of
//! the current slices, and deleting a slice removes only its own endpoints.
//! The Go kuberesolver took each slice event for the whole set; this module
//! exists so podlb never does.
//!
//! The body is read with podlb's own serde types rather than k8s-openapi's:
//! those have no `discovery.k8s.io/v1beta1` (the only version Kubernetes
//! 1.20 serves), and one type reads both, `topology` (v1beta1) and
//! `zone`/`nodeName` (v1) alike.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use podlb_core::{Endpoint, EndpointAddr, EndpointState, PortRef, Topology};
use serde::Deserialize;

/// The fields of an EndpointSlice podlb uses.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SliceBody {
    #[serde(default)]
    address_type: String,
    /// `null` for a Service scaled to zero (Go writes an empty list so).
    #[serde(default)]
    endpoints: Option<Vec<SliceEndpoint>>,
    #[serde(default)]
    ports: Option<Vec<SlicePort>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SliceEndpoint {
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    conditions: Conditions,
    zone: Option<String>,
    node_name: Option<String>,
    hints: Option<Hints>,
    /// v1beta1's place for the zone and the node.
    #[serde(default)]
    topology: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct Conditions {
    ready: Option<bool>,
    serving: Option<bool>,
    terminating: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Hints {
    #[serde(default)]
    for_zones: Vec<ZoneName>,
}

#[derive(Debug, Default, Deserialize)]
struct ZoneName {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
struct SlicePort {
    name: Option<String>,
    port: Option<u16>,
}

const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

impl SliceBody {
    /// The endpoints of this slice named `slice`, on `port`. A slice whose
    /// ports lack the named port, or of the FQDN address type, gives none.
    pub(crate) fn endpoints(&self, slice: &str, port: &PortRef) -> Vec<Endpoint> {
        if self.address_type.eq_ignore_ascii_case("FQDN") {
            return Vec::new();
        }
        let Some(port) = self.port_number(port) else {
            return Vec::new();
        };
        self.endpoints
            .iter()
            .flatten()
            .flat_map(|e| e.to_endpoints(slice, port))
            .collect()
    }

    fn port_number(&self, port: &PortRef) -> Option<u16> {
        match port {
            PortRef::Number(n) => Some(*n),
            PortRef::Name(name) => self
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| p.port),
        }
    }
}

impl SliceEndpoint {
    fn to_endpoints(&self, slice: &str, port: u16) -> impl Iterator<Item = Endpoint> + '_ {
        let state = EndpointState::from_conditions(
            self.conditions.ready,
            self.conditions.serving,
            self.conditions.terminating,
        );
        let topology = Topology::new(
            self.zone
                .clone()
                .or_else(|| self.topology.get(ZONE_LABEL).cloned()),
            self.node_name
                .clone()
                .or_else(|| self.topology.get(HOSTNAME_LABEL).cloned()),
            self.hints
                .iter()
                .flat_map(|h| h.for_zones.iter().map(|z| z.name.clone()))
                .collect(),
        );
        let slice = slice.to_string();
        self.addresses
            .iter()
            .filter_map(|a| a.parse::<IpAddr>().ok())
            .map(move |ip| {
                Endpoint::new(EndpointAddr::from(std::net::SocketAddr::new(ip, port)))
                    .with_state(state)
                    .with_topology(topology.clone())
                    .with_source(slice.clone())
            })
    }
}

/// The current slices of one Service, merged. While a (re-)list is under
/// way its slices are gathered aside and swapped in whole when it is done,
/// so subscribers never see a half-listed set.
#[derive(Debug, Default)]
pub(crate) struct ServiceSlices {
    current: HashMap<String, Vec<Endpoint>>,
    listing: Option<HashMap<String, Vec<Endpoint>>>,
}

impl ServiceSlices {
    /// A (re-)list begins.
    pub(crate) fn begin_list(&mut self) {
        self.listing = Some(HashMap::new());
    }

    /// A slice of the list under way.
    pub(crate) fn listed(&mut self, slice: String, endpoints: Vec<Endpoint>) {
        self.listing
            .get_or_insert_with(HashMap::new)
            .insert(slice, endpoints);
    }

    /// The list is complete: it replaces every slice known before.
    pub(crate) fn end_list(&mut self) {
        self.current = self.listing.take().unwrap_or_default();
    }

    /// A slice was added or changed.
    pub(crate) fn apply(&mut self, slice: String, endpoints: Vec<Endpoint>) {
        self.current.insert(slice, endpoints);
    }

    /// A slice was deleted: only its endpoints go.
    pub(crate) fn delete(&mut self, slice: &str) {
        self.current.remove(slice);
    }

    /// Every endpoint of every current slice, in a stable order.
    pub(crate) fn merged(&self) -> Vec<Endpoint> {
        let mut all: Vec<Endpoint> = self.current.values().flatten().cloned().collect();
        all.sort_by(|a, b| (a.addr, &a.source).cmp(&(b.addr, &b.source)));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: serde_json::Value) -> SliceBody {
        serde_json::from_value(value).unwrap()
    }

    fn shown(endpoints: &[Endpoint]) -> Vec<String> {
        endpoints
            .iter()
            .map(|e| format!("{} {}", e.addr, e.state))
            .collect()
    }

    #[test]
    fn reads_v1_conditions_zone_node_and_hints() {
        let slice = body(json!({
            "addressType": "IPv4",
            "ports": [{"name": "grpc", "port": 50051, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true}, "zone": "a",
                 "nodeName": "n1", "hints": {"forZones": [{"name": "a"}]}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": false}}
            ]
        }));
        let eps = slice.endpoints("greeter-abc", &PortRef::Name("grpc".into()));
        assert_eq!(
            shown(&eps),
            [
                "10.0.0.1:50051 ready",
                "10.0.0.2:50051 serving-terminating",
                "10.0.0.3:50051 not-ready"
            ]
        );
        assert_eq!(eps[0].topology.zone.as_deref(), Some("a"));
        assert_eq!(eps[0].topology.node_name.as_deref(), Some("n1"));
        assert_eq!(eps[0].topology.for_zones, ["a"]);
        assert_eq!(eps[0].source.as_deref(), Some("greeter-abc"));
    }

    #[test]
    fn reads_v1beta1_topology() {
        let slice = body(json!({
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "topology": {
                "topology.kubernetes.io/zone": "b", "kubernetes.io/hostname": "n2"}}]
        }));
        let eps = slice.endpoints("s", &PortRef::Number(80));
        assert_eq!(eps[0].topology.zone.as_deref(), Some("b"));
        assert_eq!(eps[0].topology.node_name.as_deref(), Some("n2"));
        assert_eq!(
            eps[0].state,
            EndpointState::Ready,
            "unset ready means ready"
        );
    }

    #[test]
    fn a_missing_named_port_or_fqdn_slice_gives_nothing() {
        let slice = body(json!({
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["10.0.0.1"]}]
        }));
        assert!(
            slice
                .endpoints("s", &PortRef::Name("grpc".into()))
                .is_empty()
        );
        assert_eq!(slice.endpoints("s", &PortRef::Number(9)).len(), 1);
        let fqdn =
            body(json!({"addressType": "FQDN", "endpoints": [{"addresses": ["a.example"]}]}));
        assert!(fqdn.endpoints("s", &PortRef::Number(9)).is_empty());
    }

    #[test]
    fn a_slice_scaled_to_zero_reads_as_empty() {
        let slice = body(json!({"addressType": "IPv4", "endpoints": null, "ports": null}));
        assert!(slice.endpoints("s", &PortRef::Number(1)).is_empty());
    }

    #[test]
    fn ipv6_slices_give_bracketed_addresses() {
        let slice = body(json!({"addressType": "IPv6", "endpoints": [{"addresses": ["fd00::1"]}]}));
        let eps = slice.endpoints("s", &PortRef::Number(50051));
        assert_eq!(eps[0].addr.to_string(), "[fd00::1]:50051");
    }

    fn ep(last: u8) -> Endpoint {
        Endpoint::new(format!("10.0.0.{last}:1").parse().unwrap())
    }

    #[test]
    fn slices_merge_and_a_deleted_slice_takes_only_its_own() {
        let mut slices = ServiceSlices::default();
        slices.begin_list();
        slices.listed("a".into(), vec![ep(1), ep(2)]);
        assert!(
            slices.merged().is_empty(),
            "nothing shows before the list is done"
        );
        slices.listed("b".into(), vec![ep(3)]);
        slices.end_list();
        assert_eq!(slices.merged().len(), 3);
        slices.delete("a");
        assert_eq!(slices.merged(), [ep(3)]);
        slices.apply("c".into(), vec![ep(4)]);
        assert_eq!(slices.merged(), [ep(3), ep(4)]);
    }

    #[test]
    fn a_relist_replaces_slices_that_vanished_meanwhile() {
        let mut slices = ServiceSlices::default();
        slices.apply("old".into(), vec![ep(1)]);
        slices.begin_list();
        slices.listed("new".into(), vec![ep(2)]);
        assert_eq!(
            slices.merged(),
            [ep(1)],
            "the old set serves until the list is done"
        );
        slices.end_list();
        assert_eq!(slices.merged(), [ep(2)]);
    }
}
