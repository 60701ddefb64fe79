//! Target URIs, gRPC-style: `scheme://[authority]/endpoint`. Every scheme is
//! recognised here and nowhere else, so an unknown or not-yet-built scheme
//! gets one clear error wherever a target is typed (command line, config).
//!
//! | target | names |
//! |---|---|
//! | `static:///10.0.0.1:50051,10.0.0.2:50051` | a fixed list of addresses |
//! | `dns:///greeter.default.svc.cluster.local:50051` | every A and AAAA record of a name |
//! | `dns://10.96.0.10:53/greeter:50051` | the same, asking that DNS server |
//! | `kubernetes:///greeter.default:50051` | the ready pods of a Service, from its EndpointSlices |
//! | `kubernetes://default/greeter:grpc` | the same, namespace as authority, a named port |
//! | `xds:///greeter.default:50051` | the endpoints an xDS server gives for that Listener name |

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::{EndpointAddr, Error};

/// A parsed target URI, such as `static:///10.0.0.1:50051,10.0.0.2:50051`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    uri: String,
    kind: TargetKind,
}

/// What a target names, by scheme.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// `static:///a,b,c`: a fixed list of endpoint addresses.
    Static(Vec<EndpointAddr>),
    /// `dns://[server]/host:port`: the addresses a DNS name resolves to.
    Dns(DnsTarget),
    /// `kubernetes:///service[.namespace]:port`: a Service's endpoints.
    Kubernetes(KubernetesTarget),
    /// `xds://[authority]/name`: the endpoints an xDS server gives for the
    /// Listener `name`.
    Xds(XdsTarget),
}

/// An `xds:///` target, as gRPC names them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct XdsTarget {
    /// The authority (`xds://AUTHORITY/name`, gRFC A47 federation);
    /// `None` for the usual `xds:///name`.
    pub authority: Option<String>,
    /// The Listener name to ask the xDS server for: everything after the
    /// authority's slash, e.g. `greeter.default:50051`.
    pub name: String,
}

/// A `dns:///` target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DnsTarget {
    /// The DNS server to ask (`dns://IP[:PORT]/...`); `None`: the system's.
    pub server: Option<SocketAddr>,
    /// The name to resolve (or an IP literal).
    pub host: String,
    /// The port every resolved address gets.
    pub port: u16,
}

/// A `kubernetes:///` target, in any of the forms the Go kuberesolver takes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KubernetesTarget {
    /// The Service's name.
    pub service: String,
    /// Its namespace; `None`: the pod's own, or the kubeconfig context's.
    pub namespace: Option<String>,
    /// Which port of the endpoints to call.
    pub port: PortRef,
}

/// A port by number, or by the name the Service gives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortRef {
    /// The endpoints' port number itself.
    Number(u16),
    /// A named port (`grpc`), looked up in each EndpointSlice's ports.
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => n.fmt(f),
            PortRef::Name(name) => f.write_str(name),
        }
    }
}

/// The DNS port when `dns://SERVER/` gives none.
const DNS_PORT: u16 = 53;

impl Target {
    /// The URI as written by the user, for messages.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// What the target names.
    pub fn kind(&self) -> &TargetKind {
        &self.kind
    }
}

impl FromStr for Target {
    type Err = Error;

    fn from_str(uri: &str) -> Result<Self, Error> {
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Err(Error::MissingScheme { target: uri.into() });
        };
        if !["static", "dns", "kubernetes", "xds"].contains(&scheme) {
            return Err(Error::UnknownScheme {
                target: uri.into(),
                scheme: scheme.into(),
            });
        }
        let Some((authority, path)) = rest.split_once('/') else {
            return Err(Error::MissingPath { target: uri.into() });
        };
        let kind = match scheme {
            "static" => TargetKind::Static(parse_static(uri, authority, path)?),
            "dns" => TargetKind::Dns(parse_dns(uri, authority, path)?),
            "xds" => TargetKind::Xds(parse_xds(uri, authority, path)?),
            _ => TargetKind::Kubernetes(parse_kubernetes(uri, authority, path)?),
        };
        Ok(Target {
            uri: uri.to_string(),
            kind,
        })
    }
}

/// `static:///a,b`: an empty authority, then a comma-separated list of
/// `IP:PORT`.
fn parse_static(uri: &str, authority: &str, list: &str) -> Result<Vec<EndpointAddr>, Error> {
    if !authority.is_empty() {
        return Err(Error::UnexpectedAuthority { target: uri.into() });
    }
    let addrs = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<EndpointAddr>, Error>>()?;
    if addrs.is_empty() {
        return Err(Error::EmptyTarget { target: uri.into() });
    }
    Ok(addrs)
}

/// `dns://[IP[:PORT]]/host:port`.
fn parse_dns(uri: &str, authority: &str, path: &str) -> Result<DnsTarget, Error> {
    let server = match authority {
        "" => None,
        a => Some(parse_dns_server(a).ok_or_else(|| Error::BadDnsServer {
            target: uri.into(),
            server: a.into(),
        })?),
    };
    let (host, port) = split_host_port(uri, path)?;
    let port = port.parse::<u16>().map_err(|_| Error::BadPort {
        target: uri.into(),
        port: port.into(),
    })?;
    // The brackets of an IPv6 literal are not part of the host: `[]` and
    // `[` are empty hosts (found by the fuzz target `target_uri`).
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.is_empty() || host.contains(['/', ',', ' ']) {
        return Err(Error::BadHost {
            target: uri.into(),
            host: host.into(),
        });
    }
    Ok(DnsTarget {
        server,
        host: bare.into(),
        port,
    })
}

/// A DNS server as an IP with an optional port: `10.0.0.10`, `10.0.0.10:5353`,
/// `[::1]:53`.
fn parse_dns_server(authority: &str) -> Option<SocketAddr> {
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Some(addr);
    }
    let ip = authority.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
}

/// Splits `host:port` at the last colon, so `[::1]:50051` works.
fn split_host_port<'a>(uri: &str, s: &'a str) -> Result<(&'a str, &'a str), Error> {
    match s.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && !host.ends_with(':') => Ok((host, port)),
        _ => Err(Error::MissingPort { target: uri.into() }),
    }
}

/// `kubernetes:///svc[.ns[.svc.DOMAIN]]:port` or `kubernetes://ns/svc:port`.
fn parse_kubernetes(uri: &str, authority: &str, path: &str) -> Result<KubernetesTarget, Error> {
    let (host, port) = split_host_port(uri, path)?;
    let port = match port.parse::<u16>() {
        Ok(n) if n != 0 => PortRef::Number(n),
        Err(_) if is_port_name(port) => PortRef::Name(port.into()),
        _ => {
            return Err(Error::BadPort {
                target: uri.into(),
                port: port.into(),
            });
        }
    };
    let mut labels = host.split('.');
    let service = labels.next().unwrap_or_default();
    let namespace_in_host = labels.next();
    // Anything after the namespace must be the cluster-domain suffix
    // (`svc.cluster.local`), as in a Service's DNS name.
    let rest: Vec<&str> = labels.collect();
    if !rest.is_empty() && rest[0] != "svc" {
        return Err(Error::BadKubernetesName {
            target: uri.into(),
            name: host.into(),
        });
    }
    let namespace = match (authority, namespace_in_host) {
        ("", ns) => ns,
        (ns, None) => Some(ns),
        (a, Some(ns)) if a == ns => Some(ns),
        (_, Some(_)) => {
            return Err(Error::ConflictingNamespace { target: uri.into() });
        }
    };
    for name in std::iter::once(service).chain(namespace) {
        if !is_dns_label(name) {
            return Err(Error::BadKubernetesName {
                target: uri.into(),
                name: name.into(),
            });
        }
    }
    Ok(KubernetesTarget {
        service: service.into(),
        namespace: namespace.map(String::from),
        port,
    })
}

/// `xds://[authority]/name`: any non-empty name without whitespace; the
/// xDS server decides whether it exists.
fn parse_xds(uri: &str, authority: &str, name: &str) -> Result<XdsTarget, Error> {
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(Error::BadXdsName {
            target: uri.into(),
            name: name.into(),
        });
    }
    Ok(XdsTarget {
        authority: (!authority.is_empty()).then(|| authority.to_string()),
        name: name.into(),
    })
}

/// An RFC 1123 label, as Kubernetes names of Services and namespaces are.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A Kubernetes port name: an IANA service name (lowercase letters, digits
/// and dashes, at most 15, at least one letter).
fn is_port_name(s: &str) -> bool {
    is_dns_label(s) && s.len() <= 15 && s.bytes().any(|b| b.is_ascii_lowercase())
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_target_lists_every_address() {
        let t: Target = "static:///127.0.0.1:1,[::1]:2, 10.0.0.3:3".parse().unwrap();
        let TargetKind::Static(addrs) = t.kind() else {
            panic!("not static: {t:?}");
        };
        let shown: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        assert_eq!(shown, ["127.0.0.1:1", "[::1]:2", "10.0.0.3:3"]);
        assert_eq!(t.uri(), "static:///127.0.0.1:1,[::1]:2, 10.0.0.3:3");
    }

    #[test]
    fn xds_targets_keep_the_whole_name_and_the_authority() {
        let xds = |uri: &str| match uri.parse::<Target>().unwrap().kind {
            TargetKind::Xds(t) => t,
            other => panic!("{uri}: {other:?}"),
        };
        let t = xds("xds:///greeter.default:50051");
        assert_eq!(t.authority, None);
        assert_eq!(t.name, "greeter.default:50051");
        let t = xds("xds://control.example/greeter");
        assert_eq!(t.authority.as_deref(), Some("control.example"));
        assert_eq!(t.name, "greeter");
        for uri in ["xds:///", "xds:///a b", "xds://"] {
            let err = uri.parse::<Target>().unwrap_err().to_string();
            assert!(err.contains(uri), "{uri}: {err}");
        }
    }

    fn dns(uri: &str) -> DnsTarget {
        match uri.parse::<Target>().unwrap().kind {
            TargetKind::Dns(t) => t,
            other => panic!("{uri}: {other:?}"),
        }
    }

    #[test]
    fn dns_targets_with_and_without_a_server() {
        let t = dns("dns:///greeter.default.svc.cluster.local:50051");
        assert_eq!(t.server, None);
        assert_eq!(t.host, "greeter.default.svc.cluster.local");
        assert_eq!(t.port, 50051);
        let t = dns("dns://10.96.0.10/greeter:1");
        assert_eq!(t.server, Some("10.96.0.10:53".parse().unwrap()));
        let t = dns("dns://127.0.0.1:5353/greeter:1");
        assert_eq!(t.server, Some("127.0.0.1:5353".parse().unwrap()));
        let t = dns("dns://[::1]:5353/[::1]:7");
        assert_eq!(t.server, Some("[::1]:5353".parse().unwrap()));
        assert_eq!(t.host, "::1");
    }

    #[test]
    fn dns_targets_need_a_port_and_an_ip_server() {
        for (uri, want) in [
            ("dns:///greeter", "port"),
            ("dns:///greeter:http", "port"),
            ("dns://resolver.local/greeter:1", "DNS server"),
            ("dns:///:50051", "host"),
            // Only the brackets of an IPv6 literal: no host at all.
            ("dns:///[]:50051", "host"),
            ("dns://10.0.0.10:5353/[:443", "host"),
            ("dns:greeter:1", "no scheme"),
        ] {
            let err = uri.parse::<Target>().unwrap_err().to_string();
            assert!(err.contains(want), "{uri}: {err}");
        }
    }

    fn kube(uri: &str) -> KubernetesTarget {
        match uri.parse::<Target>().unwrap().kind {
            TargetKind::Kubernetes(t) => t,
            other => panic!("{uri}: {other:?}"),
        }
    }

    #[test]
    fn kubernetes_targets_take_every_kuberesolver_form() {
        let want = |ns: Option<&str>, port: PortRef| KubernetesTarget {
            service: "greeter".into(),
            namespace: ns.map(String::from),
            port,
        };
        assert_eq!(
            kube("kubernetes:///greeter:50051"),
            want(None, PortRef::Number(50051))
        );
        for uri in [
            "kubernetes:///greeter.prod:50051",
            "kubernetes:///greeter.prod.svc.cluster.local:50051",
            "kubernetes:///greeter.prod.svc:50051",
            "kubernetes://prod/greeter:50051",
            "kubernetes://prod/greeter.prod:50051",
        ] {
            assert_eq!(
                kube(uri),
                want(Some("prod"), PortRef::Number(50051)),
                "{uri}"
            );
        }
        assert_eq!(
            kube("kubernetes:///greeter.prod:grpc"),
            want(Some("prod"), PortRef::Name("grpc".into()))
        );
    }

    #[test]
    fn kubernetes_targets_reject_what_kubernetes_would() {
        for (uri, want) in [
            ("kubernetes:///greeter", "port"),
            ("kubernetes:///greeter:0", "port"),
            ("kubernetes:///greeter:Grpc", "port"),
            ("kubernetes:///Greeter:1", "name"),
            ("kubernetes:///greeter.prod.cluster.local:1", "name"),
            ("kubernetes://a/greeter.b:1", "namespace"),
            ("kubernetes:///:1", "name"),
        ] {
            let err = uri.parse::<Target>().unwrap_err().to_string();
            assert!(err.contains(want), "{uri}: {err}");
        }
    }

    #[test]
    fn unknown_and_missing_schemes_are_errors() {
        assert!(matches!(
            "http://x".parse::<Target>(),
            Err(Error::UnknownScheme { .. })
        ));
        assert!(matches!(
            "10.0.0.1:80".parse::<Target>(),
            Err(Error::MissingScheme { .. })
        ));
    }

    #[test]
    fn static_target_rejects_authority_empty_list_and_names() {
        assert!(matches!(
            "static://x/127.0.0.1:1".parse::<Target>(),
            Err(Error::UnexpectedAuthority { .. })
        ));
        assert!(matches!(
            "static:///".parse::<Target>(),
            Err(Error::EmptyTarget { .. })
        ));
        assert!(matches!(
            "static:///localhost:1".parse::<Target>(),
            Err(Error::BadAddress { .. })
        ));
    }
}
