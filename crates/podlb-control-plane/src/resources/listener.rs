//! Listeners and their routes: the API listener a proxyless gRPC client asks
//! for by name, and the socket listener Envoy binds as a gateway.
//!
//! Both carry their RouteConfiguration inline (no RDS round trip) and the
//! router filter, without which gRPC NACKs the Listener ("expected at least
//! one HTTP filter").

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::listener::v3::{
    ApiListener, Filter, FilterChain, Listener, filter,
};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route, route_action,
    route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager, http_filter,
};
use envoy_types::pb::google::protobuf::Duration;
use envoy_types::util::pack_any;
use podlb_core::RouteRetry;

/// The name of the gateway's socket Listener.
pub const GATEWAY_LISTENER: &str = "podlb-gateway";

/// Where a route sends calls: a Cluster, and the header `ring_hash` hashes.
#[derive(Debug, Clone)]
pub(crate) struct RouteTarget {
    /// The canonical Cluster name.
    pub(crate) cluster: String,
    /// For `ring_hash` Services: the header whose value picks the endpoint.
    pub(crate) hash_header: Option<String>,
    /// The route's retry policy, if the Service has one.
    pub(crate) retry: Option<RouteRetry>,
}

/// The API listener named `name` (as the client asked), routing every call
/// to `target`.
pub(crate) fn api_listener(name: &str, target: &RouteTarget) -> Listener {
    let routes = RouteConfiguration {
        name: format!("{name}/routes"),
        virtual_hosts: vec![virtual_host(name, vec!["*".into()], target)],
        ..Default::default()
    };
    Listener {
        name: name.to_string(),
        api_listener: Some(ApiListener {
            api_listener: Some(pack_any(connection_manager(name, routes))),
        }),
        ..Default::default()
    }
}

/// The gateway's socket Listener on `addr`: one virtual host per Service
/// port, matched by `:authority`.
pub(crate) fn gateway_listener(
    addr: SocketAddr,
    hosts: Vec<(Vec<String>, RouteTarget)>,
) -> Listener {
    let routes = RouteConfiguration {
        name: format!("{GATEWAY_LISTENER}/routes"),
        virtual_hosts: hosts
            .into_iter()
            .map(|(domains, target)| virtual_host(&target.cluster, domains, &target))
            .collect(),
        ..Default::default()
    };
    let manager = Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(
            connection_manager(GATEWAY_LISTENER, routes),
        ))),
    };
    Listener {
        name: GATEWAY_LISTENER.to_string(),
        address: Some(socket_address(addr)),
        filter_chains: vec![FilterChain {
            filters: vec![manager],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn connection_manager(name: &str, routes: RouteConfiguration) -> HttpConnectionManager {
    HttpConnectionManager {
        codec_type: http_connection_manager::CodecType::Auto as i32,
        stat_prefix: name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        route_specifier: Some(http_connection_manager::RouteSpecifier::RouteConfig(routes)),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                Router::default(),
            ))),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn virtual_host(name: &str, domains: Vec<String>, target: &RouteTarget) -> VirtualHost {
    let hash_policy = target
        .hash_header
        .iter()
        .map(|header| route_action::HashPolicy {
            policy_specifier: Some(route_action::hash_policy::PolicySpecifier::Header(
                route_action::hash_policy::Header {
                    header_name: header.clone(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        })
        .collect();
    let action = RouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
            target.cluster.clone(),
        )),
        hash_policy,
        retry_policy: target.retry.as_ref().map(podlb_xds::retry_policy),
        // Envoy ends a route's calls after 15 s by default, which would cut
        // every long-lived stream: no route timeout, and the call's own
        // grpc-timeout honoured instead.
        timeout: Some(Duration::default()),
        max_stream_duration: Some(route_action::MaxStreamDuration {
            grpc_timeout_header_max: Some(Duration::default()),
            ..Default::default()
        }),
        ..Default::default()
    };
    VirtualHost {
        name: name.to_string(),
        domains,
        routes: vec![Route {
            r#match: Some(RouteMatch {
                path_specifier: Some(route_match::PathSpecifier::Prefix(String::new())),
                ..Default::default()
            }),
            action: Some(route::Action::Route(action)),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A TCP socket address, as Envoy's Listener and endpoints take it.
pub(crate) fn socket_address(addr: SocketAddr) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: addr.ip().to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                addr.port(),
            ))),
            ..Default::default()
        })),
    }
}
