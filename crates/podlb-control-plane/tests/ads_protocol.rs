//! The ADS server speaks xDS v3 state of the world as Envoy and gRPC's xDS
//! clients expect: subscriptions (explicit and wildcard), ACKs and NACKs
//! recorded per client, no resend loop after a NACK, stale nonces ignored,
//! absent names answered at once and pushed when they appear, deletions
//! pushed as absence, bursts coalesced, reconnects served the current
//! state, hundreds of streams pushed to, delta ADS refused, a clean
//! shutdown, and the admin endpoint reporting all of it.
//!
//! Every test runs a real server on 127.0.0.1 and talks to it with
//! `support::Probe`, a stand-in client that speaks the real wire protocol.
//! Waits are bounded only to turn a hang into a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryResponse};
use podlb_control_plane::snapshot::{CLUSTER, LISTENER};
use podlb_control_plane::status::{
    ClientStatus, StatusReport, SyncState, TypeStatus, render_table,
};
use support::{Harness, PATIENCE, Probe, contents, http_get, named, snapshot};

/// How long a test waits to be convinced the server sends nothing. Only a
/// broken server is caught by it; a slow one cannot fail the test.
const QUIET: Duration = Duration::from_millis(500);

fn client<'a>(report: &'a StatusReport, node_id: &str) -> Option<&'a ClientStatus> {
    report
        .clients
        .iter()
        .find(|client| client.node_id == node_id)
}

fn type_status<'a>(
    report: &'a StatusReport,
    node_id: &str,
    type_url: &str,
) -> Option<&'a TypeStatus> {
    client(report, node_id)?
        .types
        .iter()
        .find(|status| status.type_url == type_url)
}

fn acked(
    report: &StatusReport,
    node_id: &str,
    type_url: &str,
    response: &DiscoveryResponse,
) -> bool {
    type_status(report, node_id, type_url)
        .and_then(|status| status.acked.as_ref())
        .is_some_and(|ack| ack.version == response.version_info && ack.nonce == response.nonce)
}

#[tokio::test]
async fn the_first_request_gets_the_subscribed_resources_and_the_ack_is_recorded() {
    let harness = Harness::start(snapshot(
        &[("a", "a1"), ("b", "b1")],
        &[("x", "x1"), ("y", "y1")],
    ))
    .await;
    let mut probe = harness.probe("probe-1").await;

    probe.subscribe(LISTENER, &["a"]);
    let listeners = probe.next().await;
    assert_eq!(listeners.type_url, LISTENER);
    assert_eq!(contents(&listeners), named(&[("a", "a1")]));
    assert!(!listeners.version_info.is_empty() && !listeners.nonce.is_empty());
    probe.ack(&listeners);

    let report = harness
        .wait_for_status("probe-1's LDS ACK", |report| {
            acked(report, "probe-1", LISTENER, &listeners)
        })
        .await;
    let status = type_status(&report, "probe-1", LISTENER).unwrap();
    assert_eq!(status.sync, SyncState::Acked);
    assert_eq!(status.subscribed, ["a"]);
    assert_eq!(status.last_sent.as_ref().unwrap().resources, 1);
    let probe_client = client(&report, "probe-1").unwrap();
    assert_eq!(probe_client.node_cluster, "probes");
    assert_eq!(probe_client.user_agent, "podlb-probe");
    assert!(
        probe_client
            .peer
            .as_deref()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
}

#[tokio::test]
async fn wildcard_gets_every_resource_of_the_type_and_explicit_names_only_those() {
    let harness = Harness::start(snapshot(
        &[("a", "a1"), ("b", "b1")],
        &[("x", "x1"), ("y", "y1"), ("z", "z1")],
    ))
    .await;
    let mut probe = harness.probe("envoy-like").await;

    // Envoy's way: an empty first request for LDS and CDS is wildcard.
    probe.subscribe(CLUSTER, &[]);
    assert_eq!(
        contents(&probe.next().await),
        named(&[("x", "x1"), ("y", "y1"), ("z", "z1")])
    );
    probe.subscribe(LISTENER, &["*"]);
    assert_eq!(
        contents(&probe.next().await),
        named(&[("a", "a1"), ("b", "b1")])
    );

    let mut explicit = harness.probe("grpc-like").await;
    explicit.subscribe(CLUSTER, &["y", "z"]);
    assert_eq!(
        contents(&explicit.next().await),
        named(&[("y", "y1"), ("z", "z1")])
    );
    let report = harness
        .wait_for_status("both probes", |report| report.clients.len() == 2)
        .await;
    assert_eq!(
        type_status(&report, "envoy-like", CLUSTER)
            .unwrap()
            .subscribed,
        ["*"]
    );
}

#[tokio::test]
async fn a_nack_is_recorded_and_nothing_is_resent_until_the_snapshot_changes() {
    let harness = Harness::start(snapshot(&[("a", "a1")], &[("x", "bad"), ("y", "y1")])).await;
    let mut probe = harness.probe("nacker").await;

    probe.subscribe(CLUSTER, &["x"]);
    let first = probe.next().await;
    assert_eq!(contents(&first), named(&[("x", "bad")]));
    probe.nack(&first, "", "cluster x: no endpoints policy");

    let report = harness
        .wait_for_status("the NACK", |report| {
            type_status(report, "nacker", CLUSTER).is_some_and(|status| status.last_nack.is_some())
        })
        .await;
    let status = type_status(&report, "nacker", CLUSTER).unwrap();
    let nack = status.last_nack.as_ref().unwrap();
    assert_eq!(nack.version, first.version_info);
    assert_eq!(nack.nonce, first.nonce);
    assert_eq!(nack.error, "cluster x: no endpoints policy");
    assert_eq!(status.sync, SyncState::Nacked);
    assert!(status.acked.is_none());

    // No resend loop: nothing comes for a while, and the next response on
    // the stream is the one to a later request, not the rejected clusters.
    assert!(probe.next_within(QUIET).await.is_none());
    probe.subscribe(LISTENER, &["a"]);
    assert_eq!(probe.next().await.type_url, LISTENER);

    // A change the stream does not subscribe to sends nothing either; one
    // to the subscribed listener is the only push.
    harness.publish(snapshot(&[("a", "a2")], &[("x", "bad"), ("y", "y2")]));
    let pushed = probe.next().await;
    assert_eq!(contents(&pushed), named(&[("a", "a2")]));
    assert!(probe.next_within(QUIET).await.is_none());

    // The snapshot fixes the cluster: a new version arrives.
    harness.publish(snapshot(&[("a", "a2")], &[("x", "good"), ("y", "y2")]));
    let fixed = probe.next().await;
    assert_eq!(fixed.type_url, CLUSTER);
    assert_eq!(contents(&fixed), named(&[("x", "good")]));
    assert_ne!(fixed.version_info, first.version_info);
    probe.ack(&fixed);
    harness
        .wait_for_status("the ACK after the fix", |report| {
            acked(report, "nacker", CLUSTER, &fixed)
        })
        .await;
}

#[tokio::test]
async fn a_request_with_a_stale_nonce_is_ignored() {
    let harness = Harness::start(snapshot(&[("a", "a1")], &[("x", "x1"), ("y", "y1")])).await;
    let mut probe = harness.probe("stale").await;

    probe.subscribe(CLUSTER, &["x"]);
    let first = probe.next().await;
    harness.publish(snapshot(&[("a", "a1")], &[("x", "x2"), ("y", "y1")]));
    let second = probe.next().await;
    assert_eq!(contents(&second), named(&[("x", "x2")]));

    // An answer to the first response, sent after the second: stale, so
    // neither its ACK nor its new names count.
    probe.ack_with_names(&first, &["x", "y"]);
    // Requests are handled in order: once this is answered, so was that.
    probe.subscribe(LISTENER, &["a"]);
    assert_eq!(probe.next().await.type_url, LISTENER);
    let report = harness.status.report();
    let status = type_status(&report, "stale", CLUSTER).unwrap();
    assert!(
        status.acked.is_none(),
        "a stale ACK was recorded: {status:?}"
    );
    assert_eq!(status.subscribed, ["x"]);

    // The answer to the latest response counts, names and all.
    probe.ack_with_names(&second, &["x", "y"]);
    let third = probe.next().await;
    assert_eq!(contents(&third), named(&[("x", "x2"), ("y", "y1")]));
    harness
        .wait_for_status("the ACK of the second response", |report| {
            type_status(report, "stale", CLUSTER)
                .and_then(|status| status.acked.as_ref())
                .is_some_and(|ack| ack.nonce == second.nonce)
        })
        .await;
}

#[tokio::test]
async fn a_name_nobody_serves_is_answered_at_once_and_pushed_when_it_appears() {
    let harness = Harness::start(snapshot(&[("a", "a1")], &[])).await;
    let mut probe = harness.probe("waiting").await;

    probe.subscribe(LISTENER, &["not-yet"]);
    let empty = probe.next().await;
    assert_eq!(empty.type_url, LISTENER);
    assert!(empty.resources.is_empty(), "{empty:?}");
    probe.ack(&empty);

    harness.publish(snapshot(&[("a", "a1"), ("not-yet", "n1")], &[]));
    let pushed = probe.next().await;
    assert_eq!(contents(&pushed), named(&[("not-yet", "n1")]));
}

#[tokio::test]
async fn a_removed_listener_or_cluster_is_pushed_as_a_response_without_it() {
    let harness = Harness::start(snapshot(
        &[("a", "a1"), ("b", "b1")],
        &[("x", "x1"), ("y", "y1")],
    ))
    .await;
    let mut probe = harness.probe("deletions").await;
    probe.subscribe(LISTENER, &[]);
    let listeners = probe.next().await;
    probe.ack(&listeners);
    probe.subscribe(CLUSTER, &["x", "y"]);
    let clusters = probe.next().await;
    probe.ack(&clusters);
    assert_eq!(contents(&listeners).len(), 2);
    assert_eq!(contents(&clusters).len(), 2);

    harness.publish(snapshot(&[("a", "a1")], &[("x", "x1")]));
    let mut pushed = BTreeMap::new();
    for _ in 0..2 {
        let response = probe.next().await;
        pushed.insert(response.type_url.clone(), contents(&response));
    }
    assert_eq!(pushed[LISTENER], named(&[("a", "a1")]));
    assert_eq!(pushed[CLUSTER], named(&[("x", "x1")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_changes_is_coalesced_and_ends_on_the_latest_state() {
    const CHANGES: usize = 50;
    let harness = Harness::start(snapshot(&[], &[("x", "start")])).await;
    let mut probe = harness.probe("burst").await;
    probe.subscribe(CLUSTER, &["x"]);
    let first = probe.next().await;
    probe.ack(&first);
    harness
        .wait_for_status("the first ACK", |report| {
            acked(report, "burst", CLUSTER, &first)
        })
        .await;

    for change in 1..=CHANGES {
        harness.publish(snapshot(&[], &[("x", &format!("change-{change}"))]));
    }

    let latest = named(&[("x", &format!("change-{CHANGES}"))]);
    let mut responses = 0;
    loop {
        let response = probe.next().await;
        responses += 1;
        if contents(&response) == latest {
            break;
        }
        probe.ack(&response);
    }
    assert!(
        responses < CHANGES / 2,
        "{responses} responses for {CHANGES} changes: not coalesced"
    );
    // And nothing after the latest state.
    assert!(probe.next_within(QUIET).await.is_none());
}

#[tokio::test]
async fn a_reconnecting_client_gets_the_current_state_on_a_fresh_stream() {
    let harness = Harness::start(snapshot(&[], &[("x", "x1")])).await;
    let mut probe = harness.probe("comes-back").await;
    probe.subscribe(CLUSTER, &["x"]);
    let before = probe.next().await;
    probe.ack(&before);
    let report = harness
        .wait_for_status("the first stream", |report| {
            acked(report, "comes-back", CLUSTER, &before)
        })
        .await;
    let first_stream = client(&report, "comes-back").unwrap().stream_id;
    drop(probe);
    harness
        .wait_for_status("the first stream gone", |report| report.clients.is_empty())
        .await;

    harness.publish(snapshot(&[], &[("x", "x2")]));
    let mut probe = harness.probe("comes-back").await;
    probe.subscribe(CLUSTER, &["x"]);
    let after = probe.next().await;
    assert_eq!(contents(&after), named(&[("x", "x2")]));
    let report = harness
        .wait_for_status("the second stream", |report| report.clients.len() == 1)
        .await;
    assert_ne!(
        client(&report, "comes-back").unwrap().stream_id,
        first_stream
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_one_of_hundreds_of_streams_gets_a_pushed_change() {
    // More streams on one connection than hyper's default stream limit
    // (200), and more streams on connections of their own.
    const SHARED: usize = 220;
    const OWN: usize = 40;
    let harness = Harness::start(snapshot(&[], &[("x", "x1")])).await;
    let shared = harness.channel().await;
    let mut probes = Vec::new();
    for n in 0..SHARED + OWN {
        let channel = if n < SHARED {
            shared.clone()
        } else {
            harness.channel().await
        };
        let mut probe = Probe::on(channel, &format!("many-{n}")).await;
        probe.subscribe(CLUSTER, &["x"]);
        probes.push(probe);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for mut probe in probes {
        tasks.spawn(async move {
            let first = probe.next().await;
            assert_eq!(contents(&first), named(&[("x", "x1")]));
            probe.ack(&first);
            probe
        });
    }
    let mut probes = Vec::new();
    while let Some(probe) = tasks.join_next().await {
        probes.push(probe.unwrap());
    }
    harness
        .wait_for_status("every stream's ACK", |report| {
            report.clients.len() == SHARED + OWN
                && report
                    .clients
                    .iter()
                    .all(|client| client.types.iter().all(|t| t.sync == SyncState::Acked))
        })
        .await;

    harness.publish(snapshot(&[], &[("x", "x2")]));
    let mut tasks = tokio::task::JoinSet::new();
    for mut probe in probes {
        tasks.spawn(async move { contents(&probe.next().await) });
    }
    let mut pushed = 0;
    while let Some(got) = tasks.join_next().await {
        assert_eq!(got.unwrap(), named(&[("x", "x2")]));
        pushed += 1;
    }
    assert_eq!(pushed, SHARED + OWN);
}

#[tokio::test]
async fn the_node_of_the_first_request_names_the_client() {
    let harness = Harness::start(snapshot(&[("a", "a1")], &[("x", "x1")])).await;
    let mut probe = harness.probe("first-node").await;
    probe.subscribe(LISTENER, &["a"]);
    probe.next().await;
    // Later requests carry no node (as C-core's): the name stays.
    probe.subscribe(CLUSTER, &["x"]);
    probe.next().await;
    let report = harness
        .wait_for_status("two types", |report| {
            report
                .clients
                .first()
                .is_some_and(|client| client.types.len() == 2)
        })
        .await;
    assert_eq!(report.clients[0].node_id, "first-node");
}

#[tokio::test]
async fn delta_ads_is_refused_with_unimplemented() {
    let harness = Harness::start(snapshot(&[], &[])).await;
    let mut client = AggregatedDiscoveryServiceClient::new(harness.channel().await);
    let requests = tokio_stream::iter(vec![DeltaDiscoveryRequest {
        type_url: CLUSTER.to_string(),
        ..DeltaDiscoveryRequest::default()
    }]);
    let status = client
        .delta_aggregated_resources(requests)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert!(
        status.message().contains("state-of-the-world"),
        "{status:?}"
    );
}

#[tokio::test]
async fn shutdown_ends_the_streams_with_unavailable_and_returns() {
    let harness = Harness::start(snapshot(&[], &[("x", "x1")])).await;
    let mut probe = harness.probe("at-shutdown").await;
    probe.subscribe(CLUSTER, &["x"]);
    probe.next().await;

    let stop = tokio::spawn(harness.shutdown());
    let status = probe.end_status().await;
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    tokio::time::timeout(PATIENCE, stop)
        .await
        .expect("serve did not return")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_admin_endpoint_reports_the_probes_acks_and_nacks() {
    let harness = Harness::start(snapshot(&[("a", "a1")], &[("x", "x1")])).await;
    let mut good = harness.probe("probe-acks").await;
    good.subscribe(LISTENER, &["a"]);
    let listeners = good.next().await;
    good.ack(&listeners);
    let mut bad = harness.probe("probe-nacks").await;
    bad.subscribe(CLUSTER, &["x"]);
    let clusters = bad.next().await;
    bad.nack(&clusters, "", "cluster x rejected: bad lb policy");
    harness
        .wait_for_status("the ACK and the NACK", |report| {
            acked(report, "probe-acks", LISTENER, &listeners)
                && type_status(report, "probe-nacks", CLUSTER)
                    .is_some_and(|status| status.sync == SyncState::Nacked)
        })
        .await;

    let (code, body) = http_get(harness.admin_addr, "/status").await;
    assert_eq!(code, http::StatusCode::OK);
    let report: StatusReport = serde_json::from_str(&body).unwrap();
    let ack = type_status(&report, "probe-acks", LISTENER)
        .and_then(|status| status.acked.clone())
        .unwrap();
    assert_eq!(
        (ack.version.as_str(), ack.nonce.as_str()),
        (listeners.version_info.as_str(), listeners.nonce.as_str())
    );
    let nack = type_status(&report, "probe-nacks", CLUSTER)
        .and_then(|status| status.last_nack.clone())
        .unwrap();
    assert_eq!(nack.version, clusters.version_info);
    assert_eq!(nack.error, "cluster x rejected: bad lb policy");

    for path in ["/status?format=text", "/status.txt"] {
        let (code, table) = http_get(harness.admin_addr, path).await;
        assert_eq!(code, http::StatusCode::OK);
        assert!(table.starts_with("NODE"), "{path}: {table}");
        let row = |node: &str| {
            table
                .lines()
                .find(|line| line.starts_with(node))
                .unwrap_or_default()
        };
        assert!(
            row("probe-acks").contains("LDS") && row("probe-acks").contains("acked"),
            "{table}"
        );
        assert!(row("probe-nacks").contains("NACKED"), "{table}");
        assert!(row("probe-nacks").contains("bad lb policy"), "{table}");
    }
    assert_eq!(render_table(&report).lines().count(), 3);

    assert_eq!(
        http_get(harness.admin_addr, "/healthz").await,
        (http::StatusCode::OK, "ok".to_string())
    );
    assert_eq!(
        http_get(harness.admin_addr, "/metrics").await.0,
        http::StatusCode::NOT_FOUND
    );
}
