//! `dns://` targets through the proxy, against a real DNS server (dnsmasq,
//! `podlb_testkit::dns_server`): calls follow the name's A records as they
//! are added and removed; and when an endpoint's connection fails the proxy
//! looks the name up again at once, long before the next scheduled lookup.
//!
//! The backends listen on 127.0.0.11 and 127.0.0.12 (one port), the
//! addresses the name resolves to. Every wait is for a state (20 s at
//! most), never a sleep; nothing is asserted about elapsed time. Without
//! dnsmasq the tests fail, saying how to install it (`bash scripts/test.sh`
//! does).
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_proxy::{DnsOptions, EndpointState, ProxyConfig};
use podlb_testkit::dns_server::DnsServer;
use podlb_testkit::{EchoRequest, TestBackend, TestServiceClient};
use support::TestProxy;
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// Longer than any lookup schedule in these tests by far.
const PATIENCE: Duration = Duration::from_secs(20);

const NAME: &str = "greeter.podlb.test";

/// Listeners on 127.0.0.11 and 127.0.0.12 with the same free port.
async fn two_listeners() -> (TcpListener, TcpListener) {
    loop {
        let first = TcpListener::bind("127.0.0.11:0").await.unwrap();
        let port = first.local_addr().unwrap().port();
        if let Ok(second) = TcpListener::bind(("127.0.0.12", port)).await {
            return (first, second);
        }
    }
}

fn ip(addr: SocketAddr) -> IpAddr {
    addr.ip()
}

/// A proxy sending every call to `dns://<dns>/greeter.podlb.test:<port>`,
/// looking the name up on `dns_options`' schedule.
async fn proxy(dns: &DnsServer, port: u16, dns_options: DnsOptions) -> TestProxy {
    let target = format!("dns://{}/{NAME}:{port}", dns.addr())
        .parse()
        .unwrap();
    let mut config = ProxyConfig::single(
        "127.0.0.1:0".parse().unwrap(),
        target,
        PolicyKind::RoundRobin,
    );
    config.upstreams[0].discovery.dns = dns_options;
    TestProxy::start_config(config).await
}

fn every_secs(min: u64, max: u64) -> DnsOptions {
    DnsOptions {
        min_interval: Duration::from_secs(min),
        max_interval: Duration::from_secs(max),
    }
}

/// Waits until the proxy's live endpoints (not removed) are exactly
/// `want`, all ready.
async fn wait_for_endpoints(proxy: &TestProxy, want: &[SocketAddr]) {
    let mut want = want.to_vec();
    want.sort();
    let ready = proxy.wait_until(|eps| {
        let mut live: Vec<(SocketAddr, EndpointState)> = eps
            .iter()
            .filter(|e| e.state != EndpointState::Removed)
            .map(|e| (e.addr.socket_addr(), e.state))
            .collect();
        live.sort_by_key(|(addr, _)| *addr);
        live.iter().map(|(addr, _)| *addr).eq(want.iter().copied())
            && live.iter().all(|(_, state)| *state == EndpointState::Ready)
    });
    if tokio::time::timeout(PATIENCE, ready).await.is_err() {
        panic!(
            "the proxy's endpoints did not become {want:?} within {PATIENCE:?}: {:?}",
            proxy.handle.endpoints()
        );
    }
}

/// Sends `n` unary calls one after another; returns how many each backend
/// answered.
async fn calls(client: &mut TestServiceClient<Channel>, n: usize) -> BTreeMap<String, usize> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let reply = client
            .unary(EchoRequest::default())
            .await
            .unwrap_or_else(|status| panic!("a call failed: {status:?}"));
        ids.push(reply.into_inner().backend);
    }
    podlb_testkit::tally(ids.iter().map(String::as_str))
}

#[tokio::test]
async fn calls_follow_the_names_records_as_they_are_added_and_removed() {
    let dns = DnsServer::start(1);
    let (l11, l12) = two_listeners().await;
    let port = l11.local_addr().unwrap().port();
    let b11 = TestBackend::start_on("b11", l11);
    let b12 = TestBackend::start_on("b12", l12);

    dns.set(NAME, &[ip(b11.addr())]);
    let proxy = proxy(&dns, port, every_secs(1, 1)).await;
    wait_for_endpoints(&proxy, &[b11.addr()]).await;
    let mut client = proxy.client().await;
    assert_eq!(
        calls(&mut client, 10).await,
        podlb_testkit::tally(["b11"; 10])
    );

    dns.set(NAME, &[ip(b11.addr()), ip(b12.addr())]);
    wait_for_endpoints(&proxy, &[b11.addr(), b12.addr()]).await;
    let spread = calls(&mut client, 20).await;
    assert_eq!(spread.len(), 2, "calls reach both backends: {spread:?}");

    dns.set(NAME, &[ip(b12.addr())]);
    wait_for_endpoints(&proxy, &[b12.addr()]).await;
    assert_eq!(
        calls(&mut client, 10).await,
        podlb_testkit::tally(["b12"; 10])
    );
}

#[tokio::test]
async fn a_failed_connection_makes_the_proxy_look_the_name_up_at_once() {
    // TTL one hour and max_interval a minute: within PATIENCE only the
    // refresh that a failed connection asks for can find the new record.
    let dns = DnsServer::start(3600);
    let (l11, l12) = two_listeners().await;
    let port = l11.local_addr().unwrap().port();
    let b11 = TestBackend::start_on("b11", l11);

    dns.set(NAME, &[ip(b11.addr())]);
    let proxy = proxy(&dns, port, every_secs(1, 60)).await;
    wait_for_endpoints(&proxy, &[b11.addr()]).await;
    let mut client = proxy.client().await;
    assert_eq!(
        calls(&mut client, 3).await,
        podlb_testkit::tally(["b11"; 3])
    );

    // The pod moves: a new record, a new backend, the old one gone.
    let b11_addr = b11.addr();
    dns.set(NAME, &[ip(l12.local_addr().unwrap())]);
    let b12 = TestBackend::start_on("b12", l12);
    b11.kill().await;

    wait_for_endpoints(&proxy, &[b12.addr()]).await;
    assert_eq!(
        calls(&mut client, 5).await,
        podlb_testkit::tally(["b12"; 5])
    );
    assert!(
        proxy
            .state_of(b11_addr)
            .is_none_or(|s| s == EndpointState::Removed)
    );
}
