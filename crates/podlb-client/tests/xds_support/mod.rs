//! What the `xds:///` tests share: podlb's control plane serving one
//! Service, `greeter.default` port 50051, and a bootstrap naming it.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;

use podlb_control_plane::catalog::{CatalogService, LbPolicy, ServiceName, ServicePort};
use podlb_control_plane::{ControlPlane, ControlPlaneConfig, Source};
use podlb_core::Endpoint;

/// The target every test dials.
pub const TARGET: &str = "xds:///greeter.default:50051";

/// The Service `greeter.default`, port 50051, at `addrs`, balanced by `policy`.
pub fn greeter(addrs: &[SocketAddr], policy: LbPolicy) -> CatalogService {
    let endpoints: Vec<Endpoint> = addrs.iter().map(|a| Endpoint::new((*a).into())).collect();
    CatalogService::fixed(
        ServiceName {
            namespace: "default".into(),
            name: "greeter".into(),
        },
        ServicePort {
            number: 50051,
            name: None,
        },
        policy,
        endpoints,
    )
}

/// A control plane on a free loopback port serving `greeter(addrs, policy)`.
pub async fn control_plane(addrs: &[SocketAddr], policy: LbPolicy) -> ControlPlane {
    ControlPlane::start(ControlPlaneConfig {
        xds_listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: None,
        source: Source::Fixed(vec![greeter(addrs, policy)]),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// A bootstrap naming the xDS server at `server`, with node id `node_id`.
pub fn bootstrap(server: SocketAddr, node_id: &str) -> String {
    format!(
        r#"{{"xds_servers": [{{"server_uri": "{server}", "channel_creds": [{{"type": "insecure"}}]}}],
            "node": {{"id": "{node_id}"}}}}"#
    )
}
