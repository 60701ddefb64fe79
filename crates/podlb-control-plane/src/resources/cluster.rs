//! Clusters: one per Service port, its endpoints by EDS over the same ADS
//! stream, its balancing policy from the catalog, and HTTP/2 to the
//! endpoints (Envoy would speak HTTP/1.1 to them otherwise; proxyless gRPC
//! ignores the option).

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, Http2ProtocolOptions, config_source,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::google::protobuf::Duration;
use envoy_types::util::pack_any;

use crate::catalog::LbPolicy;

/// The key Envoy reads upstream HTTP options under.
const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// The Cluster named `name`, balanced with `policy`, its endpoints from EDS
/// under the same name.
pub(crate) fn cluster(name: &str, policy: LbPolicy) -> Cluster {
    let lb_policy = match policy {
        LbPolicy::RoundRobin => cluster::LbPolicy::RoundRobin,
        LbPolicy::LeastRequest => cluster::LbPolicy::LeastRequest,
        LbPolicy::RingHash => cluster::LbPolicy::RingHash,
    };
    let http2 = HttpProtocolOptions {
        upstream_protocol_options: Some(
            http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(
                        http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                            Http2ProtocolOptions::default(),
                        ),
                    ),
                },
            ),
        ),
        ..Default::default()
    };
    Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ConfigSource {
                resource_api_version: ApiVersion::V3 as i32,
                config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource::default(),
                )),
                ..Default::default()
            }),
            service_name: name.to_string(),
        }),
        connect_timeout: Some(Duration {
            seconds: 2,
            nanos: 0,
        }),
        lb_policy: lb_policy as i32,
        typed_extension_protocol_options: HashMap::from([(
            HTTP_OPTIONS.to_string(),
            pack_any(http2),
        )]),
        ..Default::default()
    }
}
