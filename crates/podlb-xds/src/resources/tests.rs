//! Unit tests of resource validation, and the resource builders the
//! client's chain tests share.

use super::*;
use envoy_types::pb::envoy::config::cluster::v3::cluster::EdsClusterConfig;
use envoy_types::pb::envoy::config::core::v3::AggregatedConfigSource;
use envoy_types::pb::envoy::config::listener::v3::ApiListener;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, RouteAction, RouteMatch, WeightedCluster,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;

pub(crate) fn ads() -> Option<ConfigSource> {
    Some(ConfigSource {
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    })
}

fn router() -> HttpFilter {
    HttpFilter {
        name: "router".into(),
        config_type: Some(ConfigType::TypedConfig(pack_any(Router::default()))),
        ..Default::default()
    }
}

fn hcm_listener(name: &str, routes: RouteSpecifier) -> Listener {
    let hcm = HttpConnectionManager {
        http_filters: vec![router()],
        route_specifier: Some(routes),
        ..Default::default()
    };
    Listener {
        name: name.into(),
        api_listener: Some(ApiListener {
            api_listener: Some(pack_any(hcm)),
        }),
        ..Default::default()
    }
}

/// A Listener whose routes are the RouteConfiguration `route`.
pub(crate) fn listener_rds(name: &str, route: &str) -> Any {
    pack_any(hcm_listener(
        name,
        RouteSpecifier::Rds(Rds {
            config_source: ads(),
            route_config_name: route.into(),
        }),
    ))
}

/// A Listener with an inline route to `cluster` for every domain.
pub(crate) fn listener_inline(name: &str, cluster: &str) -> Any {
    pack_any(hcm_listener(
        name,
        RouteSpecifier::RouteConfig(route_config_message(name, &[(&["*"], cluster)])),
    ))
}

fn default_route(action: ClusterSpecifier) -> Route {
    Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix(String::new())),
            ..Default::default()
        }),
        action: Some(Action::Route(RouteAction {
            cluster_specifier: Some(action),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn virtual_host(domains: &[&str], routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: domains.join(","),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        routes,
        ..Default::default()
    }
}

pub(crate) fn route_config_message(name: &str, hosts: &[(&[&str], &str)]) -> RouteConfiguration {
    RouteConfiguration {
        name: name.into(),
        virtual_hosts: hosts
            .iter()
            .map(|(domains, cluster)| {
                let route = default_route(ClusterSpecifier::Cluster(cluster.to_string()));
                virtual_host(domains, vec![route])
            })
            .collect(),
        ..Default::default()
    }
}

/// A RouteConfiguration with one virtual host per (domains, cluster).
pub(crate) fn route_config(name: &str, hosts: &[(&[&str], &str)]) -> Any {
    pack_any(route_config_message(name, hosts))
}

/// A RouteConfiguration splitting every call over weighted clusters.
pub(crate) fn route_config_weighted(name: &str, clusters: &[(&str, u32)]) -> Any {
    let weighted = WeightedCluster {
        clusters: clusters
            .iter()
            .map(|(name, weight)| ClusterWeight {
                name: name.to_string(),
                weight: Some(UInt32Value { value: *weight }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let route = default_route(ClusterSpecifier::WeightedClusters(weighted));
    pack_any(RouteConfiguration {
        name: name.into(),
        virtual_hosts: vec![virtual_host(&["*"], vec![route])],
        ..Default::default()
    })
}

pub(crate) fn eds_cluster_message(name: &str, service_name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: ads(),
            service_name: service_name.into(),
        }),
        ..Default::default()
    }
}

/// An EDS Cluster; its EDS resource is `service_name`, or `name` if empty.
pub(crate) fn eds_cluster(name: &str, service_name: &str) -> Any {
    pack_any(eds_cluster_message(name, service_name))
}

/// A STRICT_DNS Cluster, which podlb cannot use.
pub(crate) fn dns_cluster(name: &str) -> Any {
    let mut cluster = eds_cluster_message(name, "");
    cluster.cluster_discovery_type =
        Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32));
    pack_any(cluster)
}

/// The EDS resource `name` with ready endpoints at `addrs`.
pub(crate) fn cla(name: &str, addrs: &[&str]) -> Any {
    let endpoints: Vec<Endpoint> = addrs
        .iter()
        .map(|a| Endpoint::new(a.parse().unwrap()))
        .collect();
    pack_any(crate::cluster_load_assignment(name, &endpoints))
}

fn clusters_of(kind: ResourceType, any: &Any, target: &str) -> Result<Vec<String>, String> {
    match decode(kind, any, target).unwrap().resource? {
        Resource::Route(routed) => Ok(routed.clusters),
        Resource::Listener(ListenerRoutes::Inline(routed)) => Ok(routed.clusters),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_listener_names_its_route_configuration_or_carries_it_inline() {
    let d = decode(
        ResourceType::Listener,
        &listener_rds("greeter", "r1"),
        "greeter",
    )
    .unwrap();
    assert_eq!(d.name, "greeter");
    assert_eq!(
        d.resource,
        Ok(Resource::Listener(ListenerRoutes::Rds("r1".into())))
    );
    let clusters = clusters_of(
        ResourceType::Listener,
        &listener_inline("greeter", "c1"),
        "greeter",
    );
    assert_eq!(clusters, Ok(vec!["c1".to_string()]));
}

#[test]
fn a_listener_without_api_listener_or_router_is_rejected() {
    let socket_listener = pack_any(Listener {
        name: "greeter".into(),
        ..Default::default()
    });
    let d = decode(ResourceType::Listener, &socket_listener, "greeter").unwrap();
    assert!(d.resource.unwrap_err().contains("no api_listener"));

    let mut no_router = hcm_listener(
        "greeter",
        RouteSpecifier::Rds(Rds {
            config_source: ads(),
            route_config_name: "r".into(),
        }),
    );
    let hcm = HttpConnectionManager {
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: ads(),
            route_config_name: "r".into(),
        })),
        ..Default::default()
    };
    no_router.api_listener = Some(ApiListener {
        api_listener: Some(pack_any(hcm)),
    });
    let d = decode(ResourceType::Listener, &pack_any(no_router), "greeter").unwrap();
    assert!(d.resource.unwrap_err().contains("router"));

    let non_ads = pack_any(hcm_listener(
        "greeter",
        RouteSpecifier::Rds(Rds {
            config_source: None,
            route_config_name: "r".into(),
        }),
    ));
    let d = decode(ResourceType::Listener, &non_ads, "greeter").unwrap();
    assert!(d.resource.unwrap_err().contains("rds.config_source"));
}

#[test]
fn virtual_hosts_match_exact_then_suffix_then_prefix_then_any() {
    let hosts: &[(&[&str], &str)] = &[
        (&["*"], "any"),
        (&["greeter.*"], "prefix"),
        (&["*.default:50051"], "suffix"),
        (&["*t:50051"], "short-suffix"),
        (&["GREETER.default:50051"], "exact"),
    ];
    let config = route_config("r", hosts);
    let pick = |target: &str| clusters_of(ResourceType::Route, &config, target).unwrap()[0].clone();
    assert_eq!(pick("greeter.default:50051"), "exact");
    assert_eq!(pick("hello.default:50051"), "suffix");
    assert_eq!(pick("hello.test:50051"), "short-suffix");
    assert_eq!(pick("greeter.prod:1"), "prefix");
    assert_eq!(pick("other"), "any");
    // A wildcard matches at least one character.
    let config = route_config("r", &[(&["*.default"], "suffix")]);
    assert!(
        clusters_of(ResourceType::Route, &config, ".default")
            .unwrap_err()
            .contains("no virtual host matches \".default\"")
    );
}

#[test]
fn the_first_default_route_is_taken_and_others_are_skipped() {
    let mut header_route = default_route(ClusterSpecifier::Cluster("by-header".into()));
    if let Some(m) = &mut header_route.r#match {
        m.headers.push(HeaderMatcher::default());
    }
    let mut method_route = default_route(ClusterSpecifier::Cluster("one-method".into()));
    if let Some(m) = &mut method_route.r#match {
        m.path_specifier = Some(PathSpecifier::Prefix("/pkg.Svc/".into()));
    }
    let mut slash = default_route(ClusterSpecifier::Cluster("slash".into()));
    if let Some(m) = &mut slash.r#match {
        m.path_specifier = Some(PathSpecifier::Prefix("/".into()));
    }
    let last = default_route(ClusterSpecifier::Cluster("last".into()));
    let config = pack_any(RouteConfiguration {
        name: "r".into(),
        virtual_hosts: vec![virtual_host(
            &["*"],
            vec![header_route, method_route, slash, last],
        )],
        ..Default::default()
    });
    assert_eq!(
        clusters_of(ResourceType::Route, &config, "greeter"),
        Ok(vec!["slash".to_string()])
    );

    let none = pack_any(RouteConfiguration {
        name: "r".into(),
        virtual_hosts: vec![virtual_host(&["*"], vec![])],
        ..Default::default()
    });
    let err = clusters_of(ResourceType::Route, &none, "greeter").unwrap_err();
    assert!(err.contains("no default route"), "{err}");
}

#[test]
fn weighted_clusters_give_every_cluster_with_weight() {
    let config = route_config_weighted("r", &[("v2", 10), ("v1", 90), ("off", 0)]);
    assert_eq!(
        clusters_of(ResourceType::Route, &config, "greeter"),
        Ok(vec!["v1".to_string(), "v2".to_string()])
    );
    let config = route_config_weighted("r", &[("off", 0)]);
    let err = clusters_of(ResourceType::Route, &config, "greeter").unwrap_err();
    assert!(err.contains("weight above 0"), "{err}");
}

#[test]
fn a_cluster_must_be_eds_and_names_its_eds_resource() {
    let name_of = |any: &Any| {
        decode(ResourceType::Cluster, any, "greeter")
            .unwrap()
            .resource
    };
    assert_eq!(
        name_of(&eds_cluster("c1", "")),
        Ok(Resource::Cluster(ClusterLink {
            eds: "c1".into(),
            policies: vec!["round_robin".into()],
            outlier: None,
        }))
    );
    assert_eq!(
        name_of(&eds_cluster("c1", "svc")),
        Ok(Resource::Cluster(ClusterLink {
            eds: "svc".into(),
            policies: vec!["round_robin".into()],
            outlier: None,
        }))
    );
    let err = name_of(&dns_cluster("c1")).unwrap_err();
    assert!(err.contains("STRICT_DNS") && err.contains("EDS"), "{err}");
    let mut no_ads = eds_cluster_message("c1", "");
    no_ads.eds_cluster_config = Some(EdsClusterConfig::default());
    let err = name_of(&pack_any(no_ads)).unwrap_err();
    assert!(err.contains("eds_config"), "{err}");
}

#[test]
fn wrapped_mistyped_and_undecodable_resources() {
    let wrapped = pack_any(ResourceWrapper {
        name: "c1".into(),
        resource: Some(cla("c1", &["10.0.0.1:80"])),
        ..Default::default()
    });
    let d = decode(ResourceType::Endpoints, &wrapped, "greeter").unwrap();
    assert_eq!(d.name, "c1");
    assert!(matches!(d.resource, Ok(Resource::Endpoints(ref e)) if e.len() == 1));

    let err = decode(ResourceType::Cluster, &cla("c1", &[]), "greeter").unwrap_err();
    assert!(
        err.contains("ClusterLoadAssignment in a Cluster response"),
        "{err}"
    );

    let garbage = Any {
        type_url: crate::LISTENER.into(),
        value: vec![0xff, 0xff, 0xff],
    };
    let err = decode(ResourceType::Listener, &garbage, "greeter").unwrap_err();
    assert!(err.contains("cannot decode a Listener"), "{err}");
}

#[test]
fn a_cluster_names_its_policies_as_grpc_reads_them() {
    use envoy_types::pb::envoy::config::cluster::v3::{LoadBalancingPolicy, load_balancing_policy};
    use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
    let mut cluster = eds_cluster_message("c1", "");
    assert_eq!(
        cluster_policies(&cluster),
        ["round_robin"],
        "the enum's default"
    );
    cluster.lb_policy = LbPolicy::LeastRequest as i32;
    assert_eq!(cluster_policies(&cluster), ["least_request"]);
    cluster.lb_policy = LbPolicy::RingHash as i32;
    assert_eq!(cluster_policies(&cluster), ["ring_hash"]);
    let entry = |type_url: &str| load_balancing_policy::Policy {
        typed_extension_config: Some(TypedExtensionConfig {
            name: "any".into(),
            typed_config: Some(Any {
                type_url: type_url.into(),
                value: Vec::new(),
            }),
        }),
    };
    let ext = "type.googleapis.com/envoy.extensions.load_balancing_policies.";
    cluster.load_balancing_policy = Some(LoadBalancingPolicy {
        policies: vec![
            entry("type.googleapis.com/example.CustomPolicy"),
            entry(&format!("{ext}least_request.v3.LeastRequest")),
            entry(&format!("{ext}round_robin.v3.RoundRobin")),
        ],
    });
    assert_eq!(
        cluster_policies(&cluster),
        ["least_request", "round_robin"],
        "the list wins over the enum; policies that are not Envoy's are skipped"
    );
    cluster.load_balancing_policy = Some(LoadBalancingPolicy {
        policies: vec![entry("type.googleapis.com/example.CustomPolicy")],
    });
    assert_eq!(
        cluster_policies(&cluster),
        ["ring_hash"],
        "no known entry: the enum"
    );
}

#[test]
fn the_routes_retry_policy_wins_over_the_virtual_hosts() {
    use envoy_types::pb::envoy::config::route::v3::RetryPolicy;
    let retry_on = |on: &str| RetryPolicy {
        retry_on: on.into(),
        ..Default::default()
    };
    let routed = |config: &RouteConfiguration| match decode(
        ResourceType::Route,
        &pack_any(config.clone()),
        "greeter",
    )
    .unwrap()
    .resource
    {
        Ok(Resource::Route(routed)) => Ok(routed.retry.map(|r| r.codes)),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e),
    };
    let mut config = route_config_message("r1", &[(&["*"], "c1")]);
    assert_eq!(routed(&config), Ok(None), "none from xDS without one");

    config.virtual_hosts[0].retry_policy = Some(retry_on("cancelled"));
    assert_eq!(routed(&config), Ok(Some(vec![1])), "the virtual host's");

    let set_route_retry = |config: &mut RouteConfiguration, policy: RetryPolicy| {
        if let Some(Action::Route(action)) = &mut config.virtual_hosts[0].routes[0].action {
            action.retry_policy = Some(policy);
        }
    };
    set_route_retry(&mut config, retry_on("unavailable"));
    assert_eq!(routed(&config), Ok(Some(vec![14])), "the route's wins");

    set_route_retry(
        &mut config,
        RetryPolicy {
            num_retries: Some(UInt32Value { value: 0 }),
            ..retry_on("unavailable")
        },
    );
    let nack = routed(&config).unwrap_err();
    assert!(
        nack.contains("the default route retry_policy.num_retries is 0"),
        "{nack}"
    );
}
