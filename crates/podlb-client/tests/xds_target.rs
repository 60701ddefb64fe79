//! A channel to `xds:///NAME`, fed by podlb's control plane over ADS:
//! calls are spread over the endpoints the control plane gives for the
//! Listener NAME, and the same channel follows when they change (the
//! removed server gets no more calls, the added one its share). The
//! control plane shows the channel as a client that ACKed every type. A
//! channel whose control plane is down fails calls at once with
//! UNAVAILABLE naming the target and the xDS server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;
mod xds_support;

use std::net::SocketAddr;

use fault_support::{assert_unavailable_naming, counted_calls, small, wait_for_endpoints};
use podlb_client::{Channel, PolicyKind};
use podlb_control_plane::catalog::{CatalogChange, LbPolicy};
use podlb_control_plane::status::SyncState;
use podlb_testkit::{TestBackend, TestServiceClient};
use xds_support::{TARGET, bootstrap, control_plane, greeter};

/// Calls counted after each change; round robin gives each an equal share.
const CALLS: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xds_channel_balances_and_follows_the_control_plane() {
    let backends = [
        TestBackend::start("xds-c1").await,
        TestBackend::start("xds-c2").await,
        TestBackend::start("xds-c3").await,
        TestBackend::start("xds-c4").await,
    ];
    let addrs: Vec<SocketAddr> = backends.iter().map(TestBackend::addr).collect();
    let cp = control_plane(&addrs[..3], LbPolicy::RoundRobin).await;
    let channel = Channel::builder(TARGET)
        .unwrap()
        .policy(PolicyKind::RoundRobin)
        .xds_bootstrap_json(bootstrap(cp.xds_addr(), "podlb-client-test"))
        .build()
        .unwrap();
    let mut client = TestServiceClient::new(channel.clone());

    wait_for_endpoints(&channel, &addrs[..3], "the control plane's first answer").await;
    let counts = counted_calls(&mut client, CALLS, "at start").await;
    let ids: Vec<&str> = counts.keys().map(String::as_str).collect();
    assert_eq!(ids, ["xds-c1", "xds-c2", "xds-c3"], "{counts:?}");
    assert!(counts.values().all(|n| *n == CALLS / 3), "{counts:?}");

    cp.apply(CatalogChange::Upsert(greeter(
        &addrs[1..],
        LbPolicy::RoundRobin,
    )))
    .await;
    wait_for_endpoints(&channel, &addrs[1..], "the control plane's change").await;
    let removed = backends[0].calls_started();
    let counts = counted_calls(&mut client, CALLS, "after the change").await;
    let ids: Vec<&str> = counts.keys().map(String::as_str).collect();
    assert_eq!(ids, ["xds-c2", "xds-c3", "xds-c4"], "{counts:?}");
    assert!(counts.values().all(|n| *n == CALLS / 3), "{counts:?}");
    assert_eq!(
        backends[0].calls_started(),
        removed,
        "the removed server got calls"
    );

    let report = cp.status();
    let me = report
        .clients
        .iter()
        .find(|c| c.node_id == "podlb-client-test")
        .unwrap_or_else(|| panic!("the channel is not in the status: {report:#?}"));
    for kind in ["Listener", "Cluster", "ClusterLoadAssignment"] {
        assert!(
            me.types
                .iter()
                .any(|t| t.type_url.ends_with(&format!(".{kind}"))),
            "the channel should follow {kind}s: {me:#?}"
        );
    }
    // The channel has its endpoints, so it got EDS; an ACK may still be on
    // the wire for the other types, never a NACK.
    assert!(me.types.iter().all(|t| t.last_nack.is_none()), "{me:#?}");
    assert!(
        me.types.iter().any(|t| t.sync == SyncState::Acked),
        "{me:#?}"
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn calls_fail_fast_naming_the_target_and_the_server_when_the_control_plane_is_down() {
    // A port nobody listens on: connect is refused at once.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let channel = Channel::builder(TARGET)
        .unwrap()
        .xds_bootstrap_json(bootstrap(down, "podlb-client-down"))
        .build()
        .unwrap();
    let mut client = TestServiceClient::new(channel);
    let status = client.unary(small()).await.unwrap_err();
    assert_unavailable_naming(&status, &[TARGET, &down.to_string()]);
}
