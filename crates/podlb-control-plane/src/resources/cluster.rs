//! Clusters: one per Service port, its endpoints by EDS over the same ADS
//! stream, its balancing policy and outlier detection from the catalog,
//! and HTTP/2 to the endpoints (Envoy would speak HTTP/1.1 to them
//! otherwise; proxyless gRPC ignores the option).
//!
//! Every Cluster carries `outlier_detection`, podlb's defaults unless the
//! catalog says otherwise, mapped as `podlb_xds::outlier_detection`
//! documents: Envoy and proxyless gRPC (gRFC A50) eject a failing pod with
//! nothing set, and podlb's own xDS client reads back the same settings.
//!
//! Least request is also offered as a list of policies (gRFC A52's
//! `load_balancing_policy`): `[least_request, round_robin]`. Each client
//! takes the first it supports, so Envoy, grpc-go and grpc-java balance by
//! least request while gRPC C-core (Python, C++, Ruby...) and grpc-js,
//! which have no least request policy and NACK the `LEAST_REQUEST` enum
//! alone, fall back to round robin instead of rejecting the Cluster.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::{
    Cluster, LoadBalancingPolicy, cluster, load_balancing_policy,
};
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, Http2ProtocolOptions, TypedExtensionConfig,
    config_source,
};
use envoy_types::pb::envoy::extensions::load_balancing_policies::least_request::v3::LeastRequest;
use envoy_types::pb::envoy::extensions::load_balancing_policies::round_robin::v3::RoundRobin;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::google::protobuf::Duration;
use envoy_types::util::pack_any;

use podlb_core::OutlierSettings;

use crate::catalog::LbPolicy;

/// The key Envoy reads upstream HTTP options under.
const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// The Cluster named `name`, balanced with `policy`, its endpoints from EDS
/// under the same name.
pub(crate) fn cluster(name: &str, policy: LbPolicy, outlier: &OutlierSettings) -> Cluster {
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
        outlier_detection: Some(podlb_xds::outlier_detection(outlier)),
        load_balancing_policy: match policy {
            LbPolicy::LeastRequest => Some(least_request_else_round_robin()),
            LbPolicy::RoundRobin | LbPolicy::RingHash => None,
        },
        typed_extension_protocol_options: HashMap::from([(
            HTTP_OPTIONS.to_string(),
            pack_any(http2),
        )]),
        ..Default::default()
    }
}

/// Least request for the clients that have it, round robin for the others
/// (see the module doc).
fn least_request_else_round_robin() -> LoadBalancingPolicy {
    let policy = |name: &str, typed_config| load_balancing_policy::Policy {
        typed_extension_config: Some(TypedExtensionConfig {
            name: name.to_string(),
            typed_config: Some(typed_config),
        }),
    };
    LoadBalancingPolicy {
        policies: vec![
            policy(
                "envoy.load_balancing_policies.least_request",
                pack_any(LeastRequest::default()),
            ),
            policy(
                "envoy.load_balancing_policies.round_robin",
                pack_any(RoundRobin::default()),
            ),
        ],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy_urls(cluster: &Cluster) -> Vec<String> {
        cluster
            .load_balancing_policy
            .iter()
            .flat_map(|p| &p.policies)
            .map(|p| {
                let config = p.typed_extension_config.as_ref().unwrap();
                config.typed_config.as_ref().unwrap().type_url.clone()
            })
            .collect()
    }

    #[test]
    fn least_request_falls_back_to_round_robin_for_clients_without_it() {
        let least = cluster(
            "greeter.default:50051",
            LbPolicy::LeastRequest,
            &OutlierSettings::default(),
        );
        assert_eq!(least.lb_policy, cluster::LbPolicy::LeastRequest as i32);
        assert_eq!(
            policy_urls(&least),
            [
                "type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
                "type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin",
            ]
        );
        for policy in [LbPolicy::RoundRobin, LbPolicy::RingHash] {
            let c = cluster("greeter.default:50051", policy, &OutlierSettings::default());
            assert!(c.load_balancing_policy.is_none(), "{policy:?}");
        }
    }
}
