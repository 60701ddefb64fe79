//! One Service of the catalog as its consumer sees it: its key, ports,
//! annotations and merged slices, and the endpoints of any port a client
//! may name. Pure: it reads what the watch stored and must not talk to the
//! API server.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use podlb_core::{Endpoint, EndpointState, PortRef, Topology};

use crate::kubernetes::slices::{Slice, sort_endpoints};

/// A Service's namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
}

impl ServiceKey {
    /// The Service `name` in `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// `name.namespace`, as a `kubernetes:///` target names a Service.
impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.name, self.namespace)
    }
}

/// One of a Service's `spec.ports`. Only TCP ports are kept: podlb
/// balances gRPC, which runs on TCP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ServicePort {
    /// The port's name; `None` for the one unnamed port a Service may have.
    pub name: Option<String>,
    /// The Service's port number (what clients of the ClusterIP dial).
    pub port: u16,
    /// The pods' port: a number, or the name of a container port. Unset in
    /// the Service means the same number as `port`.
    pub target_port: PortRef,
}

impl ServicePort {
    /// A Service port.
    pub fn new(name: Option<String>, port: u16, target_port: PortRef) -> Self {
        ServicePort {
            name,
            port,
            target_port,
        }
    }

    /// The port of `slice` this Service port sends to: the slice's port of
    /// the same name (the EndpointSlice controller names them so, and has
    /// resolved a named target port there), else a numeric target port.
    fn on_slice(&self, slice: &Slice) -> Option<u16> {
        let name = self.name.as_deref().unwrap_or_default();
        slice.port_named(name).or(match self.target_port {
            PortRef::Number(n) => Some(n),
            PortRef::Name(_) => None,
        })
    }
}

/// One selected Service: what the catalog knows of it at one moment.
/// Cheap to clone (its slices are shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    /// Which Service.
    pub key: ServiceKey,
    /// The Service's annotations (e.g. `podlb.io/lb-policy`).
    pub annotations: BTreeMap<String, String>,
    /// The Service's TCP ports, in the order of its spec.
    pub ports: Vec<ServicePort>,
    /// Its current EndpointSlices, by name.
    slices: Vec<Arc<Slice>>,
}

impl ServiceView {
    /// A Service with these annotations and ports and no endpoints yet.
    /// Add endpoints with [`with_slice`](Self::with_slice); the watch
    /// builds views itself, so this is for other sources and tests.
    pub fn new(
        key: ServiceKey,
        annotations: BTreeMap<String, String>,
        ports: Vec<ServicePort>,
    ) -> Self {
        ServiceView {
            key,
            annotations,
            ports,
            slices: Vec::new(),
        }
    }

    /// The same Service with one more EndpointSlice, named `name`, with
    /// `ports` (name and number; `""` for an unnamed port) and `endpoints`
    /// (an address, its state and its topology).
    pub fn with_slice(
        mut self,
        name: &str,
        ports: &[(&str, u16)],
        endpoints: impl IntoIterator<Item = (IpAddr, EndpointState, Topology)>,
    ) -> Self {
        let slice = Slice::from_parts(name, ports, endpoints);
        self.slices.push(Arc::new(slice));
        self.slices.sort_by(|a, b| a.name().cmp(b.name()));
        self
    }

    /// The view of the Service `key` with these slices (in any order).
    pub(super) fn from_store(
        key: ServiceKey,
        annotations: BTreeMap<String, String>,
        ports: Vec<ServicePort>,
        slices: Vec<Arc<Slice>>,
    ) -> Self {
        let mut view = ServiceView::new(key, annotations, ports);
        view.slices = slices;
        view.slices.sort_by(|a, b| a.name().cmp(b.name()));
        view
    }

    /// Endpoints for a port a client names, every state included (the
    /// balancer keeps the [routable](podlb_core::routable) ones), in a
    /// stable order:
    ///
    /// - a Service port number: mapped through that port's name to each
    ///   slice's port of that name, or else to its numeric target port;
    /// - else any other number: the endpoints' port itself;
    /// - a name: each slice's port of that name.
    ///
    /// The last two are what a `kubernetes:///` target means by its port.
    pub fn endpoints(&self, port: &PortRef) -> Vec<Endpoint> {
        let service_port = match port {
            PortRef::Number(n) => self.ports.iter().find(|p| p.port == *n),
            PortRef::Name(_) => None,
        };
        let mut all: Vec<Endpoint> = match service_port {
            Some(service_port) => self
                .slices
                .iter()
                .flat_map(|slice| {
                    service_port
                        .on_slice(slice)
                        .into_iter()
                        .flat_map(|n| slice.endpoints_on(n))
                })
                .collect(),
            None => self.slices.iter().flat_map(|s| s.endpoints(port)).collect(),
        };
        sort_endpoints(&mut all);
        all
    }

    /// Every port a client may name for this Service (for listing clusters
    /// to Envoy): the Service ports.
    pub fn service_ports(&self) -> &[ServicePort] {
        &self.ports
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn ready(last: u8) -> (IpAddr, EndpointState, Topology) {
        (ip(last), EndpointState::Ready, Topology::default())
    }

    fn addrs(endpoints: &[Endpoint]) -> Vec<String> {
        endpoints.iter().map(|e| e.addr.to_string()).collect()
    }

    fn grpc_service(target_port: PortRef) -> ServiceView {
        ServiceView::new(
            ServiceKey::new("shop", "cart"),
            BTreeMap::new(),
            vec![ServicePort::new(Some("grpc".into()), 80, target_port)],
        )
    }

    #[test]
    fn a_service_port_maps_to_the_slices_port_of_its_name() {
        let view = grpc_service(PortRef::Number(50051))
            .with_slice("cart-a", &[("grpc", 50051)], [ready(1)])
            .with_slice("cart-b", &[("grpc", 50051)], [ready(2)]);
        let want = ["10.0.0.1:50051", "10.0.0.2:50051"];
        assert_eq!(addrs(&view.endpoints(&PortRef::Number(80))), want);
        assert_eq!(addrs(&view.endpoints(&PortRef::Name("grpc".into()))), want);
        assert_eq!(addrs(&view.endpoints(&PortRef::Number(50051))), want);
    }

    #[test]
    fn a_named_target_port_is_resolved_by_the_slices() {
        let view = grpc_service(PortRef::Name("grpc-port".into()))
            .with_slice("cart-a", &[("grpc", 9000)], [ready(1)])
            .with_slice("cart-b", &[("http", 8080)], [ready(2)]);
        assert_eq!(
            addrs(&view.endpoints(&PortRef::Number(80))),
            ["10.0.0.1:9000"],
            "a slice without the port's name has no endpoint for it"
        );
    }

    #[test]
    fn a_numeric_target_port_serves_slices_that_lack_the_name() {
        let view = grpc_service(PortRef::Number(50051)).with_slice("cart-a", &[], [ready(1)]);
        assert_eq!(
            addrs(&view.endpoints(&PortRef::Number(80))),
            ["10.0.0.1:50051"]
        );
    }

    #[test]
    fn an_unnamed_service_port_matches_the_unnamed_slice_port() {
        let view = ServiceView::new(
            ServiceKey::new("shop", "cart"),
            BTreeMap::new(),
            vec![ServicePort::new(None, 80, PortRef::Number(8080))],
        )
        .with_slice("cart-a", &[("", 8081)], [ready(1)]);
        assert_eq!(
            addrs(&view.endpoints(&PortRef::Number(80))),
            ["10.0.0.1:8081"]
        );
    }

    #[test]
    fn a_name_no_slice_has_gives_nothing_and_states_are_kept() {
        let view = grpc_service(PortRef::Number(50051)).with_slice(
            "cart-a",
            &[("grpc", 50051)],
            [
                ready(1),
                (ip(2), EndpointState::NotReady, Topology::default()),
            ],
        );
        assert!(view.endpoints(&PortRef::Name("http".into())).is_empty());
        let all = view.endpoints(&PortRef::Number(80));
        assert_eq!(all[1].state, EndpointState::NotReady);
        assert_eq!(all[0].source.as_deref(), Some("cart-a"));
    }

    #[test]
    fn a_key_displays_as_a_target_names_it() {
        assert_eq!(ServiceKey::new("shop", "cart").to_string(), "cart.shop");
    }
}
