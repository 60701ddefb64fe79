//! A channel to a `dns://SERVER/NAME:PORT` target follows the name's A
//! records on a real DNS server (dnsmasq, `podlb_testkit::dns_server`): an
//! endpoint the records gain takes calls as soon as the channel has
//! connected to it, one they lose takes none, and once the name is gone
//! (NXDOMAIN) every call fails at once with UNAVAILABLE naming the target,
//! and none reaches the servers that are still running at the old
//! addresses. A wait-for-ready call made while the name is gone waits for
//! it to come back.
//!
//! The servers listen on 127.0.0.11 to .13 (one port), the addresses the
//! name resolves to. Every wait is for a state (30 s at most), never a
//! sleep. Without dnsmasq the tests fail, saying how to install it
//! (`bash scripts/test.sh` does).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;

use std::net::IpAddr;
use std::time::Duration;

use fault_support::{counted_calls, started, wait_for_endpoints};
use podlb_client::{Channel, PolicyKind};
use podlb_testkit::TestServiceClient;
use podlb_testkit::dns_server::DnsServer;
use podlb_testkit::{start_pods, tally};

const NAME: &str = "greeter.podlb.test";

/// Calls counted after each change; round robin gives each endpoint an
/// equal share.
const CALLS: usize = 60;

#[tokio::test]
async fn calls_follow_the_records_and_fail_naming_the_target_once_the_name_is_gone() {
    let dns = DnsServer::start(1);
    let (pods, port) = start_pods(3).await;
    let [a11, a12, a13] = [0, 1, 2].map(|i| pods[i].addr());
    let ip = |addr: std::net::SocketAddr| -> IpAddr { addr.ip() };

    dns.set(NAME, &[ip(a11), ip(a12)]);
    let target = format!("dns://{}/{NAME}:{port}", dns.addr());
    let channel = Channel::builder(&target)
        .unwrap()
        .policy(PolicyKind::RoundRobin)
        .dns_intervals(Duration::from_secs(1), Duration::from_secs(1))
        .build()
        .unwrap();
    let mut client = TestServiceClient::new(channel.clone());

    wait_for_endpoints(&channel, &[a11, a12], ".11 and .12 published").await;
    let counts = counted_calls(&mut client, CALLS, ".11 and .12").await;
    assert_eq!(
        counts,
        tally(
            ["pod-11"; CALLS / 2]
                .into_iter()
                .chain(["pod-12"; CALLS / 2])
        ),
        "round robin over .11 and .12"
    );

    // A new endpoint: it takes its share of the very next calls.
    dns.set(NAME, &[ip(a11), ip(a12), ip(a13)]);
    wait_for_endpoints(&channel, &[a11, a12, a13], ".13 added").await;
    let counts = counted_calls(&mut client, CALLS, ".13 added").await;
    assert_eq!(
        counts.get("pod-13").copied(),
        Some(CALLS / 3),
        "the new endpoint takes a third once connected: {counts:?}"
    );
    assert_eq!(counts.len(), 3, "{counts:?}");

    // A removed endpoint: its server still runs, but no call reaches it.
    dns.set(NAME, &[ip(a12), ip(a13)]);
    wait_for_endpoints(&channel, &[a12, a13], ".11 removed").await;
    let before = started(&pods);
    let counts = counted_calls(&mut client, CALLS, ".11 removed").await;
    assert_eq!(
        counts,
        tally(
            ["pod-12"; CALLS / 2]
                .into_iter()
                .chain(["pod-13"; CALLS / 2])
        ),
        "calls after .11 was removed"
    );
    assert_eq!(
        pods[0].calls_started(),
        before[0],
        "the removed server got calls"
    );

    // The name is gone: nothing to call, and the channel says so at once.
    dns.remove(NAME);
    wait_for_endpoints(&channel, &[], "the name removed (NXDOMAIN)").await;
    let before = started(&pods);
    for _ in 0..10 {
        let status = tokio::time::timeout(
            Duration::from_secs(20),
            fault_support::call_backends(&mut client, 1),
        )
        .await
        .expect("a fail-fast call with no endpoint should end at once, not wait")
        .expect_err("a call with no endpoint should fail");
        fault_support::assert_unavailable_naming(&status, &[&target]);
    }
    assert_eq!(
        started(&pods),
        before,
        "no call may reach the servers of a name that is gone"
    );

    // The name comes back: calls flow again.
    dns.set(NAME, &[ip(a13)]);
    wait_for_endpoints(&channel, &[a13], "the name back with .13").await;
    let counts = counted_calls(&mut client, CALLS, "the name back with .13").await;
    assert_eq!(counts, tally(["pod-13"; CALLS]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_ready_call_waits_for_a_missing_name_to_appear() {
    let dns = DnsServer::start(1);
    let (pods, port) = start_pods(1).await;
    let target = format!("dns://{}/{NAME}:{port}", dns.addr());
    // The name answers NXDOMAIN: discovery resolves it, to nothing.
    let channel = Channel::builder(&target)
        .unwrap()
        .wait_for_ready(true)
        .dns_intervals(Duration::from_secs(1), Duration::from_secs(1))
        .build()
        .unwrap();
    let waiting = tokio::spawn({
        let mut client = TestServiceClient::new(channel.clone());
        async move {
            let mut request = tonic::Request::new(fault_support::small());
            request.set_timeout(Duration::from_secs(15));
            tokio::time::timeout(Duration::from_secs(20), client.unary(request))
                .await
                .map(|r| r.map(|reply| reply.into_inner().backend))
        }
    });
    // Discovery asks again a second after each answer: a second query
    // means the channel has had the first NXDOMAIN, and the call waits on.
    tokio::task::block_in_place(|| dns.wait_for_a_queries(NAME, 2));
    assert!(
        !waiting.is_finished(),
        "the wait-for-ready call ended while the name was missing: {:?}",
        waiting.await
    );
    assert!(channel.endpoints().is_empty(), "{:?}", channel.endpoints());

    dns.set(NAME, &[pods[0].addr().ip()]);
    let id = waiting
        .await
        .unwrap()
        .expect("the call hung")
        .expect("the waiting call should succeed once the name has a record");
    assert_eq!(id, "pod-11");
}
