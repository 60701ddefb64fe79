//! A channel to `xds:///NAME` given no policy balances with the one its
//! Cluster names, as gRPC's own xDS clients do, and switches when the
//! control plane names another (a Service's `podlb.io/lb-policy` changed);
//! a policy podlb does not have (ring_hash) leaves it on least_request. A
//! channel given a policy keeps it, whatever the Cluster says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;
mod xds_support;

use std::net::SocketAddr;
use std::time::Duration;

use fault_support::{counted_calls, wait_for_endpoints};
use podlb_client::{Channel, PolicyKind};
use podlb_control_plane::ControlPlane;
use podlb_control_plane::catalog::{CatalogChange, LbPolicy};
use podlb_testkit::{TestBackend, TestServiceClient};
use xds_support::{TARGET, bootstrap, control_plane, greeter};

/// How long a channel may take to follow a change the control plane pushed.
const PATIENCE: Duration = Duration::from_secs(10);

fn channel(cp: &ControlPlane, node_id: &str, policy: Option<PolicyKind>) -> Channel {
    let mut builder = Channel::builder(TARGET)
        .unwrap()
        .xds_bootstrap_json(bootstrap(cp.xds_addr(), node_id));
    if let Some(policy) = policy {
        builder = builder.policy(policy);
    }
    builder.build().unwrap()
}

/// Waits until `channel` balances with `policy`; panics after [`PATIENCE`].
async fn wait_for_policy(channel: &Channel, policy: PolicyKind, after: &str) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while channel.policy() != policy {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{after}: the channel should balance with {policy} within {PATIENCE:?}; it uses {}",
        channel.policy()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_without_a_policy_follows_the_clusters() {
    let backends = [
        TestBackend::start("pol-1").await,
        TestBackend::start("pol-2").await,
        TestBackend::start("pol-3").await,
    ];
    let addrs: Vec<SocketAddr> = backends.iter().map(TestBackend::addr).collect();
    let cp = control_plane(&addrs, LbPolicy::RoundRobin).await;
    let follower = channel(&cp, "policy-follower", None);
    let fixed = channel(&cp, "policy-fixed", Some(PolicyKind::Random));
    wait_for_endpoints(&follower, &addrs, "the first answer").await;
    wait_for_endpoints(&fixed, &addrs, "the first answer").await;
    wait_for_policy(&follower, PolicyKind::RoundRobin, "a round_robin Cluster").await;

    // Round robin, seen in the traffic: every backend exactly its share.
    let mut client = TestServiceClient::new(follower.clone());
    let counts = counted_calls(&mut client, 30, "round_robin").await;
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [10, 10, 10]);

    cp.apply(CatalogChange::Upsert(greeter(
        &addrs,
        LbPolicy::LeastRequest,
    )))
    .await;
    wait_for_policy(&follower, PolicyKind::LeastRequest, "least_request").await;
    cp.apply(CatalogChange::Upsert(greeter(&addrs, LbPolicy::RoundRobin)))
        .await;
    wait_for_policy(&follower, PolicyKind::RoundRobin, "back to round_robin").await;
    cp.apply(CatalogChange::Upsert(greeter(&addrs, LbPolicy::RingHash)))
        .await;
    wait_for_policy(
        &follower,
        PolicyKind::LeastRequest,
        "ring_hash, which podlb does not have: its default",
    )
    .await;
    let counts = counted_calls(&mut client, 30, "after the switches").await;
    assert_eq!(counts.values().sum::<usize>(), 30, "{counts:?}");

    // A later push on the same stream: once the fixed channel has it, it
    // has seen every policy above too.
    cp.apply(CatalogChange::Upsert(greeter(
        &addrs[..2],
        LbPolicy::RingHash,
    )))
    .await;
    wait_for_endpoints(&fixed, &addrs[..2], "the last push").await;
    assert_eq!(fixed.policy(), PolicyKind::Random, "a given policy stays");
    cp.shutdown().await;
}
