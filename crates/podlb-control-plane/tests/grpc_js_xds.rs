//! Node @grpc/grpc-js-xds as a real proxyless client of the control plane:
//! it balances over the catalog's backends and its channel follows a
//! rewrite of the catalog file; a least request Service, a policy grpc-js
//! lacks, is taken as round robin (not NACKed), and ring hash is accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod peers_support;

use peers_support::{balance_then_follow_a_rewrite, policy_is_accepted_and_serves};
use podlb_testkit::xds_peers::XdsPeer;

#[tokio::test]
async fn grpc_js_balances_over_the_catalog_and_follows_a_rewrite_on_the_same_channel() {
    balance_then_follow_a_rewrite(XdsPeer::GrpcJs, "grpc-js-follow").await;
}

#[tokio::test]
async fn grpc_js_takes_a_least_request_cluster_as_round_robin_and_its_calls_succeed() {
    policy_is_accepted_and_serves(XdsPeer::GrpcJs, "least_request").await;
}

#[tokio::test]
async fn grpc_js_accepts_ring_hash_and_its_calls_succeed() {
    policy_is_accepted_and_serves(XdsPeer::GrpcJs, "ring_hash").await;
}
