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

use super::relist::Relisted;

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

/// One EndpointSlice as podlb keeps it: its ports, and its endpoints'
/// addresses with their state and topology, before any port is chosen.
/// Much smaller than the object the API server sends; the catalog keeps
/// one per slice of every watched namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Slice {
    name: String,
    ports: Vec<NamedPort>,
    endpoints: Vec<SliceAddresses>,
}

/// A port of a slice; an unnamed port (a Service with one unnamed port)
/// has the empty name, as in the API.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NamedPort {
    name: String,
    port: u16,
}

/// One endpoint of a slice: its addresses share a state and a topology.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SliceAddresses {
    addresses: Vec<IpAddr>,
    state: EndpointState,
    topology: Topology,
}

impl Slice {
    /// The slice named `name` with this body. An FQDN slice has no
    /// endpoints podlb can use; addresses that are not IPs are dropped.
    pub(crate) fn from_body(name: String, body: SliceBody) -> Slice {
        let fqdn = body.address_type.eq_ignore_ascii_case("FQDN");
        let endpoints = match fqdn {
            true => Vec::new(),
            false => body
                .endpoints
                .into_iter()
                .flatten()
                .map(SliceEndpoint::into_addresses)
                .filter(|e| !e.addresses.is_empty())
                .collect(),
        };
        let ports = body
            .ports
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some(NamedPort {
                    name: p.name.unwrap_or_default(),
                    port: p.port?,
                })
            })
            .collect();
        Slice {
            name,
            ports,
            endpoints,
        }
    }

    /// A slice from its parts: ports by name (`""`: unnamed) and number,
    /// and one entry per address.
    pub(crate) fn from_parts(
        name: &str,
        ports: &[(&str, u16)],
        endpoints: impl IntoIterator<Item = (IpAddr, EndpointState, Topology)>,
    ) -> Slice {
        Slice {
            name: name.into(),
            ports: ports
                .iter()
                .map(|(name, port)| NamedPort {
                    name: (*name).into(),
                    port: *port,
                })
                .collect(),
            endpoints: endpoints
                .into_iter()
                .map(|(ip, state, topology)| SliceAddresses {
                    addresses: vec![ip],
                    state,
                    topology,
                })
                .collect(),
        }
    }

    /// The slice's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The number of its port named `name` (`""`: the unnamed port).
    pub(crate) fn port_named(&self, name: &str) -> Option<u16> {
        self.ports.iter().find(|p| p.name == name).map(|p| p.port)
    }

    /// Its endpoints on `port`, as a `kubernetes:///` target names it: a
    /// number is the endpoints' port itself, a name is looked up in the
    /// slice's ports (none if the slice lacks it).
    pub(crate) fn endpoints(&self, port: &PortRef) -> Vec<Endpoint> {
        let number = match port {
            PortRef::Number(n) => Some(*n),
            PortRef::Name(name) => self.port_named(name),
        };
        number
            .map(|n| self.endpoints_on(n).collect())
            .unwrap_or_default()
    }

    /// Its endpoints, each address on `port`.
    pub(crate) fn endpoints_on(&self, port: u16) -> impl Iterator<Item = Endpoint> + '_ {
        self.endpoints.iter().flat_map(move |e| {
            e.addresses.iter().map(move |ip| {
                Endpoint::new(EndpointAddr::from(std::net::SocketAddr::new(*ip, port)))
                    .with_state(e.state)
                    .with_topology(e.topology.clone())
                    .with_source(self.name.clone())
            })
        })
    }
}

impl SliceEndpoint {
    fn into_addresses(self) -> SliceAddresses {
        let state = EndpointState::from_conditions(
            self.conditions.ready,
            self.conditions.serving,
            self.conditions.terminating,
        );
        let mut topology = self.topology;
        let topology = Topology::new(
            self.zone.or_else(|| topology.remove(ZONE_LABEL)),
            self.node_name.or_else(|| topology.remove(HOSTNAME_LABEL)),
            self.hints
                .into_iter()
                .flat_map(|h| h.for_zones.into_iter().map(|z| z.name))
                .collect(),
        );
        SliceAddresses {
            addresses: self
                .addresses
                .iter()
                .filter_map(|a| a.parse::<IpAddr>().ok())
                .collect(),
            state,
            topology,
        }
    }
}

/// The current slices of one `kubernetes:///` Service on its port, merged.
/// A (re-)list replaces them whole when it is done.
#[derive(Debug, Default)]
pub(crate) struct ServiceSlices(Relisted<HashMap<String, Vec<Endpoint>>>);

impl ServiceSlices {
    /// A (re-)list begins.
    pub(crate) fn begin_list(&mut self) {
        self.0.begin_list();
    }

    /// A slice of the list under way.
    pub(crate) fn listed(&mut self, slice: String, endpoints: Vec<Endpoint>) {
        self.0.listing_mut().insert(slice, endpoints);
    }

    /// The list is complete: it replaces every slice known before.
    pub(crate) fn end_list(&mut self) {
        self.0.end_list();
    }

    /// A slice was added or changed.
    pub(crate) fn apply(&mut self, slice: String, endpoints: Vec<Endpoint>) {
        self.0.current_mut().insert(slice, endpoints);
    }

    /// A slice was deleted: only its endpoints go.
    pub(crate) fn delete(&mut self, slice: &str) {
        self.0.current_mut().remove(slice);
    }

    /// Every endpoint of every current slice, in a stable order.
    pub(crate) fn merged(&self) -> Vec<Endpoint> {
        let mut all: Vec<Endpoint> = self.0.current().values().flatten().cloned().collect();
        sort_endpoints(&mut all);
        all
    }
}

/// The order podlb lists a Service's endpoints in: by address, then slice.
pub(crate) fn sort_endpoints(endpoints: &mut [Endpoint]) {
    endpoints.sort_by(|a, b| (a.addr, &a.source).cmp(&(b.addr, &b.source)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A slice body as the API server sends it, read as the watch reads it.
    struct Body(serde_json::Value);

    impl Body {
        fn slice(&self, name: &str) -> Slice {
            Slice::from_body(name.into(), serde_json::from_value(self.0.clone()).unwrap())
        }

        fn endpoints(&self, name: &str, port: &PortRef) -> Vec<Endpoint> {
            self.slice(name).endpoints(port)
        }
    }

    fn body(value: serde_json::Value) -> Body {
        Body(value)
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

    #[test]
    fn ports_are_found_by_name_and_an_unnamed_port_by_the_empty_name() {
        let named = body(json!({"addressType": "IPv4", "ports": [
            {"name": "grpc", "port": 50051}, {"name": "metrics", "port": 9090}]}))
        .slice("s");
        assert_eq!(named.port_named("metrics"), Some(9090));
        assert_eq!(named.port_named("http"), None);
        let unnamed = body(json!({"addressType": "IPv4", "ports": [{"port": 8080}]})).slice("s");
        assert_eq!(unnamed.port_named(""), Some(8080));
        assert_eq!(unnamed.name(), "s");
    }

    #[test]
    fn a_slice_read_twice_is_equal_and_a_changed_condition_is_not() {
        let ready = json!({"addressType": "IPv4", "endpoints": [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": true}}]});
        let mut not_ready = ready.clone();
        not_ready["endpoints"][0]["conditions"]["ready"] = json!(false);
        assert_eq!(
            body(ready.clone()).slice("s"),
            body(ready.clone()).slice("s")
        );
        assert_ne!(body(ready).slice("s"), body(not_ready).slice("s"));
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
