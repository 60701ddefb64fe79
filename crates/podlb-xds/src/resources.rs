//! Reading and validating the resources of one xDS response: each becomes
//! what the client needs of it, or the reason to NACK it. Pure: it knows
//! the resolution chain's rules (gRFC A27, A28, A39), not subscriptions,
//! versions or streams.
//!
//! ```text
//!  Listener NAME ─ api_listener: HttpConnectionManager (router filter last)
//!     ├─ rds.route_config_name ──► RouteConfiguration ─┐
//!     └─ route_config (inline) ────────────────────────┤
//!                 virtual host matching NAME, its default route
//!                 └─► cluster (or every weighted cluster) ─► Cluster (type EDS)
//!                          └─► eds_cluster_config.service_name, else the cluster name
//!                                  ─► ClusterLoadAssignment ─► endpoints
//! ```
//!
//! Weighted clusters: every cluster with a weight above 0 is taken, and
//! their endpoints are merged. podlb balances over endpoints, not clusters,
//! so the split follows the clusters' sizes rather than their weights; but
//! no cluster a route sends calls to is left without any, as taking only
//! the heaviest would do to a canary.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::LbPolicy;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::ConfigSource;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use envoy_types::pb::envoy::service::discovery::v3::Resource as ResourceWrapper;
use envoy_types::pb::google::protobuf::Any;
use podlb_core::Endpoint;
use prost::{Message, Name};

use crate::ResourceType;
use crate::endpoints::endpoints_from_cla;

pub(crate) mod outlier;
pub(crate) mod retry;

/// Where a Listener's routes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListenerRoutes {
    /// In the RouteConfiguration of this name (RDS).
    Rds(String),
    /// Inline, already resolved to where the target's calls go.
    Inline(Routed),
}

/// Where the target's calls go, as the route it resolves to says: the
/// clusters, and the retry policy (the route's, else its virtual host's;
/// `None`: neither has one that A44 honours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Routed {
    pub(crate) clusters: Vec<String>,
    pub(crate) retry: Option<podlb_core::RouteRetry>,
}

/// What the client keeps of one valid resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resource {
    /// A Listener: where its routes are.
    Listener(ListenerRoutes),
    /// A RouteConfiguration: where the target's calls go.
    Route(Routed),
    /// A Cluster: the name of its EDS resource, and the policies it names.
    Cluster(ClusterLink),
    /// A ClusterLoadAssignment: its endpoints.
    Endpoints(Vec<Endpoint>),
}

/// What the client keeps of a Cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterLink {
    /// The ClusterLoadAssignment to ask for.
    pub(crate) eds: String,
    /// The balancing policies it names, the preferred first (see
    /// [`cluster_policies`]).
    pub(crate) policies: Vec<String>,
    /// What its `outlier_detection` asks for; `None`: it has none.
    pub(crate) outlier: Option<podlb_core::OutlierSettings>,
}

/// One resource of a response: its name, and what it means or why it
/// cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) name: String,
    pub(crate) resource: Result<Resource, String>,
}

/// Reads one resource of a `kind` response. `target` is the name the
/// client resolves (virtual hosts are matched against it). The outer `Err`
/// is a resource whose name cannot be read at all.
pub(crate) fn decode(kind: ResourceType, any: &Any, target: &str) -> Result<Decoded, String> {
    let any = unwrap_resource(any)?;
    if any.type_url != kind.type_url() {
        return Err(format!("a {} in a {kind} response", any.type_url));
    }
    let bytes = any.value.as_slice();
    let undecodable = |e: prost::DecodeError| format!("cannot decode a {kind}: {e}");
    let (name, resource) = match kind {
        ResourceType::Listener => {
            let listener = Listener::decode(bytes).map_err(undecodable)?;
            let routes = listener_routes(&listener, target).map(Resource::Listener);
            (listener.name, routes)
        }
        ResourceType::Route => {
            let config = RouteConfiguration::decode(bytes).map_err(undecodable)?;
            let clusters = route_clusters(&config, target).map(Resource::Route);
            (config.name, clusters)
        }
        ResourceType::Cluster => {
            let cluster = Cluster::decode(bytes).map_err(undecodable)?;
            let link = cluster_link(&cluster).map(Resource::Cluster);
            (cluster.name, link)
        }
        ResourceType::Endpoints => {
            let cla = ClusterLoadAssignment::decode(bytes).map_err(undecodable)?;
            let endpoints = endpoints_from_cla(&cla).map(Resource::Endpoints);
            (cla.cluster_name, endpoints)
        }
    };
    Ok(Decoded { name, resource })
}

/// A resource as sent, or the one inside a `discovery.v3.Resource`
/// wrapper (which servers may use in state-of-the-world responses).
fn unwrap_resource(any: &Any) -> Result<std::borrow::Cow<'_, Any>, String> {
    if any.type_url != ResourceWrapper::type_url() {
        return Ok(std::borrow::Cow::Borrowed(any));
    }
    let wrapper = ResourceWrapper::decode(any.value.as_slice())
        .map_err(|e| format!("cannot decode a discovery.v3.Resource wrapper: {e}"))?;
    wrapper
        .resource
        .map(std::borrow::Cow::Owned)
        .ok_or_else(|| {
            format!(
                "the Resource wrapper of {:?} holds no resource",
                wrapper.name
            )
        })
}

fn listener_routes(listener: &Listener, target: &str) -> Result<ListenerRoutes, String> {
    let api = listener
        .api_listener
        .as_ref()
        .and_then(|a| a.api_listener.as_ref())
        .ok_or(
            "no api_listener (a client reads API listeners; a socket listener with filter chains is for Envoy)",
        )?;
    if api.type_url != HttpConnectionManager::type_url() {
        return Err(format!(
            "api_listener is a {}, not an HttpConnectionManager",
            api.type_url
        ));
    }
    let hcm = HttpConnectionManager::decode(api.value.as_slice())
        .map_err(|e| format!("cannot decode api_listener's HttpConnectionManager: {e}"))?;
    check_router_last(&hcm)?;
    match hcm.route_specifier {
        Some(RouteSpecifier::Rds(rds)) => {
            check_ads(rds.config_source.as_ref(), "rds.config_source")?;
            if rds.route_config_name.is_empty() {
                return Err("rds.route_config_name is empty".into());
            }
            Ok(ListenerRoutes::Rds(rds.route_config_name))
        }
        Some(RouteSpecifier::RouteConfig(config)) => route_clusters(&config, target)
            .map(ListenerRoutes::Inline)
            .map_err(|e| format!("route_config: {e}")),
        Some(RouteSpecifier::ScopedRoutes(_)) => Err("scoped_routes are not supported".into()),
        None => Err("the HttpConnectionManager has neither rds nor route_config".into()),
    }
}

/// gRFC A39: the router filter is required, and last.
fn check_router_last(hcm: &HttpConnectionManager) -> Result<(), String> {
    let last_type = hcm.http_filters.last().map(|f| match &f.config_type {
        Some(ConfigType::TypedConfig(any)) => any.type_url.as_str(),
        _ => "",
    });
    match last_type {
        Some(t) if t == Router::type_url() => Ok(()),
        _ => Err(format!(
            "the HttpConnectionManager's last http_filter must be the router ({}), as gRFC A39 requires",
            Router::type_url()
        )),
    }
}

/// gRPC follows references only on the same ADS stream.
fn check_ads(source: Option<&ConfigSource>, field: &str) -> Result<(), String> {
    match source.and_then(|s| s.config_source_specifier.as_ref()) {
        Some(ConfigSourceSpecifier::Ads(_) | ConfigSourceSpecifier::Self_(_)) => Ok(()),
        _ => Err(format!("{field} must be ads {{}} or self {{}}")),
    }
}

/// Where the target's calls go: the default route of the virtual host
/// that matches `target`, its clusters and retry policy.
fn route_clusters(config: &RouteConfiguration, target: &str) -> Result<Routed, String> {
    let host = matching_virtual_host(&config.virtual_hosts, target)
        .ok_or_else(|| format!("no virtual host matches {target:?}"))?;
    let route = host
        .routes
        .iter()
        .find(|r| is_default_route(r))
        .ok_or_else(|| {
            format!(
                "virtual host {:?} has no default route (prefix \"\" or \"/\", no header matchers)",
                host.name
            )
        })?;
    let what = |problem: &str| format!("virtual host {:?}: the default route {problem}", host.name);
    let Some(Action::Route(action)) = &route.action else {
        return Err(what("does not route to a cluster"));
    };
    let retry = match (&action.retry_policy, &host.retry_policy) {
        (Some(policy), _) => retry::retry_from_xds(policy).map_err(|e| what(&e))?,
        (None, Some(policy)) => retry::retry_from_xds(policy)
            .map_err(|e| format!("virtual host {:?}: {e}", host.name))?,
        (None, None) => None,
    };
    let clusters = match &action.cluster_specifier {
        Some(ClusterSpecifier::Cluster(name)) if !name.is_empty() => vec![name.clone()],
        Some(ClusterSpecifier::WeightedClusters(weighted)) => {
            let mut names: Vec<String> = weighted
                .clusters
                .iter()
                .filter(|c| c.weight.is_some_and(|w| w.value > 0) && !c.name.is_empty())
                .map(|c| c.name.clone())
                .collect();
            names.sort();
            names.dedup();
            if names.is_empty() {
                return Err(what("has no weighted cluster with a weight above 0"));
            }
            names
        }
        Some(ClusterSpecifier::Cluster(_)) => return Err(what("names an empty cluster")),
        Some(_) => {
            return Err(what(
                "picks its cluster by header or plugin, which podlb does not support",
            ));
        }
        None => return Err(what("names no cluster")),
    };
    Ok(Routed { clusters, retry })
}

/// A route every call matches: prefix `""` or `/`, and nothing else to
/// match on.
fn is_default_route(route: &Route) -> bool {
    let Some(m) = &route.r#match else {
        return false;
    };
    let default_prefix =
        matches!(&m.path_specifier, Some(PathSpecifier::Prefix(p)) if p.is_empty() || p == "/");
    default_prefix && m.headers.is_empty() && m.runtime_fraction.is_none()
}

/// How well a domain pattern matches; more is better (exact, then
/// `*.suffix`, then `prefix.*`, then `*`; a longer pattern wins within a
/// kind), as Envoy and gRFC A28 order them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum DomainMatch {
    Any,
    Prefix(usize),
    Suffix(usize),
    Exact,
}

fn domain_match(pattern: &str, host: &str) -> Option<DomainMatch> {
    let (pattern, host) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    if pattern == "*" {
        return Some(DomainMatch::Any);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        // The wildcard matches at least one character.
        return (host.len() > suffix.len() && host.ends_with(suffix))
            .then_some(DomainMatch::Suffix(pattern.len()));
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return (host.len() > prefix.len() && host.starts_with(prefix))
            .then_some(DomainMatch::Prefix(pattern.len()));
    }
    (!pattern.contains('*') && pattern == host).then_some(DomainMatch::Exact)
}

fn matching_virtual_host<'a>(hosts: &'a [VirtualHost], target: &str) -> Option<&'a VirtualHost> {
    let mut best: Option<(DomainMatch, &VirtualHost)> = None;
    for host in hosts {
        for domain in &host.domains {
            if let Some(m) = domain_match(domain, target) {
                // The first virtual host wins a tie.
                if best.is_none_or(|(b, _)| m > b) {
                    best = Some((m, host));
                }
            }
        }
    }
    best.map(|(_, host)| host)
}

fn cluster_link(cluster: &Cluster) -> Result<ClusterLink, String> {
    let eds = eds_name(cluster)?;
    let outlier = cluster
        .outlier_detection
        .as_ref()
        .map(outlier::settings_from_xds)
        .transpose()?;
    Ok(ClusterLink {
        eds,
        policies: cluster_policies(cluster),
        outlier,
    })
}

fn eds_name(cluster: &Cluster) -> Result<String, String> {
    let eds = Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
    if cluster.cluster_discovery_type != eds {
        let found = match &cluster.cluster_discovery_type {
            Some(ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(*t)
                .map(|t| t.as_str_name().to_string())
                .unwrap_or_else(|_| format!("type {t}")),
            Some(ClusterDiscoveryType::ClusterType(custom)) => {
                format!("cluster_type {:?}", custom.name)
            }
            None => "STATIC".into(),
        };
        return Err(format!(
            "it is {found}; podlb reads only clusters of type EDS"
        ));
    }
    let config = cluster
        .eds_cluster_config
        .as_ref()
        .ok_or("an EDS cluster needs eds_cluster_config")?;
    check_ads(config.eds_config.as_ref(), "eds_cluster_config.eds_config")?;
    Ok(match config.service_name.as_str() {
        "" => cluster.name.clone(),
        service => service.to_string(),
    })
}

/// The prefix of the type URLs of Envoy's load balancing policy extensions.
const LB_POLICY_PREFIX: &str = "type.googleapis.com/envoy.extensions.load_balancing_policies.";

/// The balancing policies a Cluster names, by the names podlb and gRPC give
/// them (`round_robin`, `least_request`, `ring_hash`, ...), the preferred
/// first. As gRFC A52 says, `load_balancing_policy` (a list: take the first
/// you have) wins over the `lb_policy` enum, whose default is round robin.
/// podlb keeps the policy a user chose; these only replace its default.
pub(crate) fn cluster_policies(cluster: &Cluster) -> Vec<String> {
    if let Some(list) = &cluster.load_balancing_policy {
        let names: Vec<String> = list
            .policies
            .iter()
            .filter_map(|p| p.typed_extension_config.as_ref()?.typed_config.as_ref())
            .filter_map(|config| {
                let rest = config.type_url.strip_prefix(LB_POLICY_PREFIX)?;
                Some(
                    rest.split_once('.')
                        .map_or(rest, |(name, _)| name)
                        .to_string(),
                )
            })
            .collect();
        if !names.is_empty() {
            return names;
        }
    }
    let name = LbPolicy::try_from(cluster.lb_policy)
        .map(|policy| policy.as_str_name().to_ascii_lowercase())
        .unwrap_or_else(|_| format!("lb_policy {}", cluster.lb_policy));
    vec![name]
}

/// A protobuf `Duration` as a std one; `field` (its path in the resource)
/// names it when it is negative, malformed or past protobuf's range.
pub(crate) fn std_duration(
    d: &envoy_types::pb::google::protobuf::Duration,
    field: &str,
) -> Result<std::time::Duration, String> {
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 || d.seconds > 315_576_000_000 {
        return Err(format!(
            "{field} is not a valid duration ({}s {}ns)",
            d.seconds, d.nanos
        ));
    }
    Ok(std::time::Duration::new(d.seconds as u64, d.nanos as u32))
}

/// A std `Duration` as protobuf's, for the resources podlb writes.
pub(crate) fn proto_duration(
    d: std::time::Duration,
) -> envoy_types::pb::google::protobuf::Duration {
    envoy_types::pb::google::protobuf::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests;
