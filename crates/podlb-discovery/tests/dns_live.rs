//! The `dns://` source against a real DNS server (dnsmasq, from
//! `podlb_testkit::dns_server`): records added, changed and removed show up
//! on the TTL schedule or at once on a refresh request; NXDOMAIN empties the
//! set; a server that stops answering is an error that keeps the set.
//!
//! Each test waits (20 s at most) for the set it expects, never on a sleep,
//! and asserts nothing about elapsed time. Without dnsmasq the tests fail,
//! saying how to install it (`bash scripts/test.sh` does).
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::Duration;

use podlb_core::Target;
use podlb_discovery::{Discovery, DiscoveryOptions, DnsOptions, Error, Resolution};
use podlb_testkit::dns_server::DnsServer;

/// Longer than any lookup schedule in these tests by far.
const PATIENCE: Duration = Duration::from_secs(20);

const NAME: &str = "greeter.podlb.test";
const PORT: u16 = 50051;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn options(min_secs: u64, max_secs: u64) -> DiscoveryOptions {
    let mut options = DiscoveryOptions::default();
    options.dns = DnsOptions {
        min_interval: Duration::from_secs(min_secs),
        max_interval: Duration::from_secs(max_secs),
    };
    options
}

fn discover(dns: &DnsServer, options: &DiscoveryOptions) -> Discovery {
    let target: Target = format!("dns://{}/{NAME}:{PORT}", dns.addr())
        .parse()
        .unwrap();
    Discovery::start(&target, options)
}

fn addrs(res: &Resolution) -> Vec<String> {
    res.endpoints.iter().map(|e| e.addr.to_string()).collect()
}

/// Waits until `ok` holds of the resolution; panics with the last one
/// after [`PATIENCE`].
async fn wait_until(discovery: &Discovery, what: &str, ok: impl Fn(&Resolution) -> bool) {
    let mut sub = discovery.subscribe();
    let waited = tokio::time::timeout(PATIENCE, sub.wait_for(|res| ok(res))).await;
    if waited.is_err() {
        panic!(
            "no {what} within {PATIENCE:?}; last resolution: {:?}",
            discovery.current()
        );
    }
}

/// Waits until the endpoint set is exactly `want` (sorted, as the source
/// sorts it) and the source reports no error.
async fn wait_for_set(discovery: &Discovery, want: &[&str]) {
    wait_until(discovery, &format!("endpoint set {want:?}"), |res| {
        res.resolved && res.error.is_none() && addrs(res) == want
    })
    .await;
}

#[tokio::test]
async fn records_added_changed_and_removed_show_up_on_the_ttl_schedule() {
    let dns = DnsServer::start(1);
    dns.set(NAME, &[ip("127.0.0.11")]);
    let discovery = discover(&dns, &options(1, 1));
    wait_for_set(&discovery, &["127.0.0.11:50051"]).await;

    dns.set(NAME, &[ip("127.0.0.11"), ip("127.0.0.12")]);
    wait_for_set(&discovery, &["127.0.0.11:50051", "127.0.0.12:50051"]).await;

    dns.set(NAME, &[ip("127.0.0.12")]);
    wait_for_set(&discovery, &["127.0.0.12:50051"]).await;

    let res = discovery.current();
    assert_eq!(res.endpoints[0].source.as_deref(), Some(NAME));
}

#[tokio::test]
async fn aaaa_records_join_the_a_records() {
    let dns = DnsServer::start(1);
    dns.set(NAME, &[ip("::1"), ip("127.0.0.11")]);
    let discovery = discover(&dns, &options(1, 1));
    wait_for_set(&discovery, &["127.0.0.11:50051", "[::1]:50051"]).await;
}

#[tokio::test]
async fn nxdomain_empties_the_set_without_an_error() {
    let dns = DnsServer::start(1);
    dns.set(NAME, &[ip("127.0.0.11")]);
    let discovery = discover(&dns, &options(1, 1));
    wait_for_set(&discovery, &["127.0.0.11:50051"]).await;

    dns.remove(NAME);
    wait_for_set(&discovery, &[]).await;

    dns.set(NAME, &[ip("127.0.0.13")]);
    wait_for_set(&discovery, &["127.0.0.13:50051"]).await;
}

#[tokio::test]
async fn a_silent_server_keeps_the_last_set_and_reports_an_error_until_it_answers() {
    let dns = DnsServer::start(1);
    dns.set(NAME, &[ip("127.0.0.11")]);
    let discovery = discover(&dns, &options(1, 1));
    wait_for_set(&discovery, &["127.0.0.11:50051"]).await;

    dns.pause();
    wait_until(
        &discovery,
        "DNS error",
        |res| matches!(res.error.as_deref(), Some(Error::Dns { host, .. }) if host == NAME),
    )
    .await;
    let res = discovery.current();
    assert_eq!(addrs(&res), ["127.0.0.11:50051"], "the last good set stays");
    let message = res.error.unwrap().to_string();
    assert!(message.contains("keeping the last endpoints"), "{message}");

    dns.resume();
    dns.set(NAME, &[ip("127.0.0.12")]);
    wait_for_set(&discovery, &["127.0.0.12:50051"]).await;
}

#[tokio::test]
async fn a_server_that_is_not_there_is_an_error_not_an_empty_set() {
    // A UDP port nobody listens on: queries are refused at once.
    let closed = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    let target: Target = format!("dns://{closed}/{NAME}:{PORT}").parse().unwrap();
    let discovery = Discovery::start(&target, &options(1, 1));
    wait_until(&discovery, "DNS error", |res| res.error.is_some()).await;
    let res = discovery.current();
    assert!(!res.resolved, "a failure is not an answer: {res:?}");
    assert!(matches!(res.error.as_deref(), Some(Error::Dns { .. })));
}

#[tokio::test]
async fn a_refresh_request_looks_up_at_once_not_at_the_next_ttl() {
    // TTL one hour, max_interval a minute: only the refresh can find the
    // change within PATIENCE.
    let dns = DnsServer::start(3600);
    dns.set(NAME, &[ip("127.0.0.11")]);
    let discovery = discover(&dns, &options(1, 60));
    wait_for_set(&discovery, &["127.0.0.11:50051"]).await;

    dns.set(NAME, &[ip("127.0.0.12")]);
    discovery.refresh().request();
    wait_for_set(&discovery, &["127.0.0.12:50051"]).await;

    // Again: a refresh is not a one-off.
    dns.set(NAME, &[ip("127.0.0.13")]);
    discovery.refresh().request();
    wait_for_set(&discovery, &["127.0.0.13:50051"]).await;
}
