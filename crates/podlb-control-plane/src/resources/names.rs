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

use std::cmp::Ordering;

use equivalent::{Comparable, Equivalent};
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

/// The Service of a canonical Cluster name (`greeter.default:50051`),
/// borrowed from it: a lookup on every push needs no allocation. `None`
/// for any other form, which [`ServicePortName::parse`] then reads.
pub(crate) fn canonical_service(cluster_name: &str) -> Option<ServiceNameRef<'_>> {
    let (host, _port) = cluster_name.rsplit_once(':')?;
    let (name, namespace) = host.split_once('.')?;
    (!namespace.contains('.')).then_some(ServiceNameRef { namespace, name })
}

/// A [`ServiceName`] made of borrowed parts, to look one up by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServiceNameRef<'a> {
    namespace: &'a str,
    name: &'a str,
}

impl Equivalent<ServiceName> for ServiceNameRef<'_> {
    fn equivalent(&self, key: &ServiceName) -> bool {
        self.namespace == key.namespace && self.name == key.name
    }
}

impl Comparable<ServiceName> for ServiceNameRef<'_> {
    /// In [`ServiceName`]'s own (derived) order: namespace, then name.
    fn compare(&self, key: &ServiceName) -> Ordering {
        (self.namespace, self.name).cmp(&(key.namespace.as_str(), key.name.as_str()))
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
    fn a_canonical_cluster_name_finds_its_service_without_parsing() {
        let service = |namespace: &str, name: &str| ServiceName {
            namespace: namespace.into(),
            name: name.into(),
        };
        let all = [
            service("default", "greeter"),
            service("default", "z"),
            service("a", "zz"),
            service("shop", "cart"),
            service("shop", "a"),
        ];
        let map: imbl::OrdMap<ServiceName, usize> = all
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, s)| (s, i))
            .collect();
        for (i, s) in all.iter().enumerate() {
            let cluster = format!("{}.{}:50051", s.name, s.namespace);
            let borrowed = canonical_service(&cluster).unwrap();
            assert_eq!(map.get(&borrowed), Some(&i), "{cluster}");
            for other in &all {
                assert_eq!(
                    borrowed.compare(other),
                    s.cmp(other),
                    "{cluster} vs {other}"
                );
            }
        }
        for other_form in [
            "greeter.default.svc:50051",
            "greeter:50051",
            "greeter.default",
        ] {
            assert!(canonical_service(other_form).is_none(), "{other_form}");
        }
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
