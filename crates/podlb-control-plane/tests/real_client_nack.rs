//! A real client's NACK shows in the control plane's status view, with the
//! client's own error, and the rejected version is not sent again in a
//! loop: only a new version of the catalog is sent (and, still unusable,
//! rejected again).
//!
//! The client is Envoy 1.40, and what it rejects is real: the gateway
//! Listener asks it to bind an address the test already holds, so Envoy
//! refuses the whole LDS update ("cannot bind ... Address already in
//! use") while it takes the Clusters and their endpoints. No stand-in is
//! involved; the NACK, its text and its versions are Envoy's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod peers_support;

use peers_support::{
    CatalogFile, greeter_yaml, start_backends, start_control_plane, wait_for_client,
};
use podlb_control_plane::snapshot::{CLUSTER, ENDPOINTS, LISTENER};
use podlb_control_plane::status::{ClientStatus, SyncState, TypeStatus};
use podlb_testkit::xds_peers::Envoy;

fn of_type<'a>(client: &'a ClientStatus, type_url: &str) -> Option<&'a TypeStatus> {
    client.types.iter().find(|t| t.type_url == type_url)
}

/// Envoy has answered the latest Listener response with a NACK and ACKed
/// the latest Cluster and ClusterLoadAssignment responses.
fn listener_nacked_rest_acked(client: &ClientStatus) -> bool {
    let nacked = of_type(client, LISTENER).is_some_and(|t| t.sync == SyncState::Nacked);
    let acked = [CLUSTER, ENDPOINTS]
        .iter()
        .all(|type_url| of_type(client, type_url).is_some_and(|t| t.sync == SyncState::Acked));
    nacked && acked
}

#[tokio::test]
async fn envoy_nack_of_a_listener_it_cannot_bind_is_reported_and_not_resent() {
    let backends = start_backends(&["nack-1", "nack-2"]).await;
    let all: Vec<_> = backends.iter().collect();
    let catalog = CatalogFile::new();
    catalog.write_greeter("round_robin", &all);
    // Held for the whole test: Envoy can never bind it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gateway = taken.local_addr().unwrap();
    let cp = start_control_plane(&catalog, Some(gateway)).await;
    let node_id = "envoy-nacks";
    let envoy = Envoy::start(cp.xds_addr(), node_id).await;

    let status = wait_for_client(
        &cp,
        node_id,
        "a NACK of its Listeners and ACKs of the rest",
        listener_nacked_rest_acked,
    )
    .await;
    let listeners = of_type(&status, LISTENER).unwrap();
    let nack = listeners.last_nack.as_ref().unwrap();
    let sent = listeners.last_sent.as_ref().unwrap();
    assert!(
        nack.error.contains(&gateway.to_string()),
        "the NACK should carry Envoy's reason, naming the address: {nack:#?}\n{}",
        envoy.log_tail()
    );
    assert_eq!(
        (nack.version.as_str(), nack.nonce.as_str()),
        (sent.version.as_str(), sent.nonce.as_str()),
        "the NACK names the response it rejects"
    );
    assert_eq!(nack.accepted_version, "", "Envoy never accepted a Listener");
    assert_eq!(listeners.responses_sent, 1, "{listeners:#?}");
    assert!(listeners.acked.is_none(), "{listeners:#?}");

    // A second Service adds a Cluster and a route to the gateway: Envoy
    // ACKs the Clusters and endpoints, and the Listener is sent once more,
    // as a new version, not as the old one again.
    let second = format!(
        "  - name: echo\n    namespace: default\n    port: 50052\n    endpoints:\n      \
         - address: {}\n",
        backends[1].addr()
    );
    catalog.write(&(greeter_yaml("round_robin", &all) + &second));
    let status = wait_for_client(&cp, node_id, "the new Listener version NACKed", |c| {
        listener_nacked_rest_acked(c)
            && of_type(c, LISTENER)
                .and_then(|t| t.last_nack.as_ref())
                .is_some_and(|n| n.version != nack.version)
    })
    .await;
    let listeners = of_type(&status, LISTENER).unwrap();
    assert_eq!(
        listeners.responses_sent, 2,
        "one response per catalog version: {listeners:#?}"
    );
    let clusters = of_type(&status, CLUSTER).unwrap();
    assert_eq!(
        clusters.acked.as_ref().map(|a| a.version.as_str()),
        clusters.last_sent.as_ref().map(|s| s.version.as_str()),
        "the new Clusters were not ACKed: {clusters:#?}"
    );

    drop(envoy);
    cp.shutdown().await;
    drop(taken);
}
