//! The naming scheme: which xDS resource names mean which Service port.
//!
//! A client names a Service as it would in a `kubernetes:///` target, so
//! `xds:///greeter.default:50051`, `xds:///greeter.default.svc.cluster.local:50051`,
//! `xds:///greeter.default:grpc` (a named port) and, in the control plane's
//! default namespace, `xds:///greeter:50051` all work. Every form is parsed
//! by podlb-core's `kubernetes:///` parser, so the forms never drift apart.
//!
//! Clusters (and their ClusterLoadAssignments) have one canonical name per
//! Service port, `NAME.NAMESPACE:PORT`, whichever form the Listener was
//! asked for by.

use podlb_core::{PortRef, Target, TargetKind};

use crate::catalog::{ServiceName, ServicePort};

/// A Service port, as a resource name names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortName {
    /// The Service.
    pub service: ServiceName,
    /// The port, by number or name.
    pub port: PortRef,
}

impl ServicePortName {
    /// Parses any accepted form; `None` when `name` is not one (such a
    /// resource does not exist).
    pub fn parse(name: &str, default_namespace: &str) -> Option<ServicePortName> {
        let target: Target = format!("kubernetes:///{name}").parse().ok()?;
        let TargetKind::Kubernetes(kube) = target.kind() else {
            return None;
        };
        Some(ServicePortName {
            service: ServiceName {
                namespace: kube
                    .namespace
                    .clone()
                    .unwrap_or_else(|| default_namespace.to_string()),
                name: kube.service.clone(),
            },
            port: kube.port.clone(),
        })
    }

    /// The canonical name of the Cluster (and ClusterLoadAssignment) of
    /// this port: `greeter.default:50051`.
    pub fn cluster_name(&self) -> String {
        format!("{}:{}", self.service, self.port)
    }
}

/// The `:authority` values a gateway routes to `port` of `service`: every
/// form of its name, with the port; and, for its first port, without.
pub fn authorities(service: &ServiceName, port: &ServicePort, first: bool) -> Vec<String> {
    let hosts = [
        format!("{}.{}", service.name, service.namespace),
        format!("{}.{}.svc", service.name, service.namespace),
        format!("{}.{}.svc.cluster.local", service.name, service.namespace),
    ];
    let mut out = Vec::with_capacity(hosts.len() * 3);
    for host in &hosts {
        out.push(format!("{host}:{}", port.number));
        if let Some(name) = &port.name {
            out.push(format!("{host}:{name}"));
        }
        if first {
            out.push(host.clone());
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_kubernetes_form_names_the_same_service_port() {
        let canonical = ServicePortName::parse("greeter.default:50051", "default").unwrap();
        for form in [
            "greeter.default.svc:50051",
            "greeter.default.svc.cluster.local:50051",
            "greeter:50051",
        ] {
            let parsed = ServicePortName::parse(form, "default").unwrap();
            assert_eq!(parsed, canonical, "{form}");
            assert_eq!(parsed.cluster_name(), "greeter.default:50051");
        }
        let named = ServicePortName::parse("greeter.shop:grpc", "default").unwrap();
        assert_eq!(named.port, PortRef::Name("grpc".into()));
        assert_eq!(named.cluster_name(), "greeter.shop:grpc");
    }

    #[test]
    fn other_names_name_nothing() {
        for name in [
            "greeter",
            "Greeter.default:50051",
            "a.b.c:1",
            "",
            "podlb-gateway",
        ] {
            assert!(ServicePortName::parse(name, "default").is_none(), "{name}");
        }
    }

    #[test]
    fn the_gateway_routes_every_form_and_the_bare_host_only_for_the_first_port() {
        let service = ServiceName {
            namespace: "default".into(),
            name: "greeter".into(),
        };
        let port = ServicePort {
            number: 50051,
            name: Some("grpc".into()),
        };
        let first = authorities(&service, &port, true);
        assert!(first.contains(&"greeter.default:50051".to_string()));
        assert!(first.contains(&"greeter.default.svc.cluster.local:grpc".to_string()));
        assert!(first.contains(&"greeter.default".to_string()));
        let second = authorities(&service, &port, false);
        assert!(!second.contains(&"greeter.default".to_string()));
    }
}
