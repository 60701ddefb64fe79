//! Envoy 1.40 as a real xDS client of the control plane: it takes the
//! gateway Listener (LDS, wildcard), the Service's cluster (CDS) and its
//! endpoints (EDS), all over one ADS stream. A plain grpcio client calling
//! Envoy's gateway port with `:authority` `greeter.default:50051` is spread
//! over the catalog's backends, and the same connection through Envoy
//! follows a rewrite of the catalog file. A least request Service is taken
//! (Envoy has that policy) and served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod peers_support;

use std::net::SocketAddr;

use peers_support::{
    BALANCE_CALLS, CatalogFile, GREETER, assert_no_nack, in_sync, start_backends,
    start_control_plane, wait_for_client,
};
use podlb_testkit::xds_peers::{Envoy, XdsClient, free_port};

#[tokio::test]
async fn envoy_gateway_balances_by_authority_and_follows_a_rewrite() {
    let backends = start_backends(&["envoy-1", "envoy-2", "envoy-3", "envoy-4"]).await;
    let [b1, b2, b3, b4] = [&backends[0], &backends[1], &backends[2], &backends[3]];
    let catalog = CatalogFile::new();
    catalog.write_greeter("round_robin", &[b1, b2, b3]);
    let gateway = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let cp = start_control_plane(&catalog, Some(gateway)).await;
    let node_id = "envoy-gateway";
    let envoy = Envoy::start(cp.xds_addr(), node_id).await;

    let mut client = XdsClient::plain(gateway, GREETER).await;
    let first = [b1.id(), b2.id(), b3.id()];
    // Until Envoy has the Listener and the cluster's endpoints, calls are
    // refused or find no healthy upstream.
    if let Err(e) = client.try_calls_until_backends(&first).await {
        panic!(
            "{e}\n--- Envoy /clusters ---\n{}\n--- envoy.log ---\n{}",
            envoy.clusters().await,
            envoy.log_tail()
        );
    }
    client
        .calls(BALANCE_CALLS)
        .await
        .assert_balanced_over(&first);
    let status = wait_for_client(&cp, node_id, "in sync (every type ACKed)", in_sync).await;
    assert_no_nack(&status);

    catalog.write_greeter("round_robin", &[b2, b3, b4]);
    let second = [b2.id(), b3.id(), b4.id()];
    if let Err(e) = client.try_calls_until_backends(&second).await {
        panic!("{e}\n--- Envoy /clusters ---\n{}", envoy.clusters().await);
    }
    let removed_before = b1.calls_started();
    let tally = client.calls(BALANCE_CALLS).await;
    tally.assert_balanced_over(&second);
    assert_eq!(
        b1.calls_started(),
        removed_before,
        "Envoy still sent calls to the removed backend: {tally}"
    );
    let status = wait_for_client(&cp, node_id, "in sync after the rewrite", in_sync).await;
    assert_no_nack(&status);

    client.quit().await;
    drop(envoy);
    cp.shutdown().await;
}

#[tokio::test]
async fn envoy_gateway_takes_a_least_request_service_and_serves_it() {
    let backends = start_backends(&["envoy-lr-1", "envoy-lr-2", "envoy-lr-3"]).await;
    let all: Vec<_> = backends.iter().collect();
    let catalog = CatalogFile::new();
    catalog.write_greeter("least_request", &all);
    let gateway = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let cp = start_control_plane(&catalog, Some(gateway)).await;
    let node_id = "envoy-least-request";
    let envoy = Envoy::start(cp.xds_addr(), node_id).await;

    let mut client = XdsClient::plain(gateway, GREETER).await;
    let ids: Vec<&str> = backends.iter().map(|b| b.id()).collect();
    if let Err(e) = client.try_calls_until_backends(&ids).await {
        panic!(
            "{e}\n--- Envoy /clusters ---\n{}\n--- envoy.log ---\n{}",
            envoy.clusters().await,
            envoy.log_tail()
        );
    }
    let status = wait_for_client(&cp, node_id, "in sync (every type ACKed)", in_sync).await;
    assert_no_nack(&status);
    let clusters = envoy.clusters().await;
    assert!(
        clusters.contains("greeter.default:50051"),
        "Envoy has no cluster for the Service: {clusters}"
    );

    client.quit().await;
    drop(envoy);
    cp.shutdown().await;
}
