//! Python grpcio (gRPC C-core, `xds:///`) as a real proxyless client of the
//! control plane: it balances over the catalog's backends and its channel
//! follows a rewrite of the catalog file; a name nobody serves fails the
//! calls and shows as a subscription in the status view; the other
//! policies of the catalog are accepted (ACKed) and serve calls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod peers_support;

use std::time::Duration;

use peers_support::{
    CatalogFile, assert_no_nack, balance_then_follow_a_rewrite, policy_is_accepted_and_serves,
    start_backends, start_control_plane, subscribed_to_listener, wait_for_client,
};
use podlb_testkit::xds_peers::{XdsClient, XdsPeer};

#[tokio::test]
async fn grpcio_balances_over_the_catalog_and_follows_a_rewrite_on_the_same_channel() {
    balance_then_follow_a_rewrite(XdsPeer::Grpcio, "grpcio-follow").await;
}

#[tokio::test]
async fn grpcio_calls_to_a_name_nobody_serves_fail_and_the_status_shows_the_subscription() {
    let backends = start_backends(&["grpcio-unknown-1"]).await;
    let catalog = CatalogFile::new();
    catalog.write_greeter("round_robin", &[&backends[0]]);
    let cp = start_control_plane(&catalog, None).await;
    let nobody = "nobody.default:50051";
    let node_id = "grpcio-unknown-name";

    // Short deadlines: the client learns that the name does not exist only
    // from its 15 s does-not-exist timer; until then calls wait.
    let mut client = XdsClient::proxyless_with_deadline(
        XdsPeer::Grpcio,
        nobody,
        cp.xds_addr(),
        node_id,
        Duration::from_secs(1),
    )
    .await;
    let tally = client.calls(3).await;
    assert_eq!(
        tally.ok, 0,
        "a call to a name nobody serves succeeded: {tally}"
    );
    assert_eq!(tally.failed(), 3, "{tally}");
    for code in tally.errors.keys() {
        assert!(
            code == "UNAVAILABLE" || code == "DEADLINE_EXCEEDED",
            "unexpected status {code}: {tally}"
        );
    }
    let status = wait_for_client(&cp, node_id, &format!("subscribed to {nobody}"), |c| {
        subscribed_to_listener(c, nobody)
    })
    .await;
    assert_no_nack(&status);
    assert_eq!(
        backends[0].calls_started(),
        0,
        "a backend of another name was called"
    );

    client.quit().await;
    cp.shutdown().await;
}

#[tokio::test]
async fn grpcio_accepts_ring_hash_and_its_calls_succeed() {
    policy_is_accepted_and_serves(XdsPeer::Grpcio, "ring_hash").await;
}

#[tokio::test]
async fn grpcio_accepts_least_request_and_its_calls_succeed() {
    policy_is_accepted_and_serves(XdsPeer::Grpcio, "least_request").await;
}
