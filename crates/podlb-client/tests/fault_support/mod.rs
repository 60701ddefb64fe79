//! What the fault and discovery tests of podlb-client share: a channel
//! over test backends, waits on the channel's own view of its endpoints
//! (`Channel::endpoints()`, polled, never a fixed sleep), calls that count
//! which backend answered, and pods on 127.0.0.11, .12, ... for DNS and
//! Kubernetes targets. Copied in spirit from the proxy's
//! `crates/podlb/tests/support/mod.rs`, which this crate cannot import.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use podlb_client::{Channel, EndpointState, EndpointStatus, PolicyKind};
use podlb_testkit::{EchoRequest, TestBackend, TestServiceClient, tally};
use tonic::Status;

/// How long the channel may take to see a change (a connect, a lost
/// connection, a reconnect after backoff, a discovery update). Far longer
/// than any of them takes; only a broken channel waits this long.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A channel to `static:///` `backends` with `policy`, not yet connected.
pub fn static_channel(backends: &[SocketAddr], policy: PolicyKind) -> Channel {
    let list: Vec<String> = backends.iter().map(SocketAddr::to_string).collect();
    Channel::builder(&format!("static:///{}", list.join(",")))
        .unwrap()
        .policy(policy)
        .build()
        .unwrap()
}

/// A small call that the backend answers at once.
pub fn small() -> EchoRequest {
    EchoRequest {
        payload: b"ping".to_vec(),
        ..Default::default()
    }
}

/// The channel's endpoints as (address, state), sorted by address.
pub fn endpoint_states(channel: &Channel) -> Vec<(SocketAddr, EndpointState)> {
    let mut seen: Vec<_> = channel
        .endpoints()
        .iter()
        .map(|e| (e.addr.socket_addr(), e.state))
        .collect();
    seen.sort_by_key(|(addr, _)| *addr);
    seen
}

/// Waits until the channel's endpoints satisfy `pred`, for at most
/// [`PATIENCE`]; panics saying what was `expected` and what it holds.
pub async fn wait_until(
    channel: &Channel,
    expected: &str,
    pred: impl Fn(&[EndpointStatus]) -> bool,
) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !pred(&channel.endpoints()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    if waited.is_err() {
        panic!(
            "the channel should hold {expected} within {PATIENCE:?}; it holds {:?}",
            endpoint_states(channel)
        );
    }
}

/// Waits until the channel's endpoints are exactly `expected`, every one
/// connected (Ready); `after` says what changed, for the panic message.
pub async fn wait_for_endpoints(channel: &Channel, expected: &[SocketAddr], after: &str) {
    let want: BTreeSet<SocketAddr> = expected.iter().copied().collect();
    wait_until(
        channel,
        &format!("exactly {want:?}, all Ready ({after})"),
        |eps| {
            let addrs: BTreeSet<SocketAddr> = eps.iter().map(|e| e.addr.socket_addr()).collect();
            addrs == want && eps.iter().all(|e| e.state == EndpointState::Ready)
        },
    )
    .await;
}

/// Waits until the channel no longer counts the endpoint at `addr` as
/// Ready (it saw the connection go).
pub async fn wait_not_ready(channel: &Channel, addr: SocketAddr) {
    wait_until(channel, &format!("{addr} not Ready"), |eps| {
        eps.iter()
            .any(|e| e.addr.socket_addr() == addr && e.state != EndpointState::Ready)
    })
    .await;
}

/// Waits until no endpoint of the channel is Ready.
pub async fn wait_none_ready(channel: &Channel) {
    wait_until(channel, "no Ready endpoint", |eps| {
        !eps.is_empty() && eps.iter().all(|e| e.state != EndpointState::Ready)
    })
    .await;
}

/// Sends `n` small unary calls one after another, each with a 20 s
/// deadline; returns the backend that answered each, or the first failure.
pub async fn call_backends(
    client: &mut TestServiceClient<Channel>,
    n: usize,
) -> Result<Vec<String>, Status> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let mut request = tonic::Request::new(small());
        request.set_timeout(Duration::from_secs(20));
        ids.push(client.unary(request).await?.into_inner().backend);
    }
    Ok(ids)
}

/// [`call_backends`], panicking on a failure, counted per backend.
pub async fn counted_calls(
    client: &mut TestServiceClient<Channel>,
    n: usize,
    after: &str,
) -> BTreeMap<String, usize> {
    let ids = call_backends(client, n)
        .await
        .unwrap_or_else(|status| panic!("{after}: a call failed: {status:?}"));
    tally(ids.iter().map(String::as_str))
}

/// Sends `calls` small unary calls with `in_flight` of them at a time, all
/// over `client`'s one channel; returns how many each backend answered.
pub async fn spread(
    client: &TestServiceClient<Channel>,
    calls: usize,
    in_flight: usize,
) -> BTreeMap<String, usize> {
    let ids: Vec<String> = futures_util::stream::iter(0..calls)
        .map(|_| {
            let mut c = client.clone();
            async move {
                match c.unary(small()).await {
                    Ok(reply) => reply.into_inner().backend,
                    Err(status) => panic!("a call failed: {status:?}"),
                }
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    tally(ids.iter().map(String::as_str))
}

/// Asserts `status` is UNAVAILABLE and its message contains each of
/// `named`.
pub fn assert_unavailable_naming(status: &Status, named: &[&str]) {
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    for name in named {
        assert!(
            status.message().contains(name),
            "the message should name {name}: {status:?}"
        );
    }
}

/// Calls started on each of `backends`, in order.
pub fn started(backends: &[TestBackend]) -> Vec<u64> {
    backends.iter().map(TestBackend::calls_started).collect()
}
