//! The channel balances every call, not every connection: 3,000 unary
//! calls over one podlb-client Channel, 32 of them in flight at a time,
//! spread within 10% of even over three tonic servers under
//! `round_robin`, `least_request` and `random`; `peak_ewma` sends clearly
//! fewer of them to a server slower than its peers. tonic's own channel to
//! a Kubernetes Service (one connection) would send all 3,000 to one pod.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;

use std::collections::BTreeMap;
use std::time::Duration;

use fault_support::{small, spread, static_channel, wait_for_endpoints};
use podlb_client::{Channel, PolicyKind};
use podlb_testkit::{TestBackend, TestServiceClient};

const CALLS: usize = 3000;
const IN_FLIGHT: usize = 32;

/// Within 10% of an even split.
const EVEN: std::ops::RangeInclusive<usize> = 900..=1100;

/// Three servers named `ids`, and a connected channel over them with
/// `policy`: every endpoint is Ready before the first call, so the first
/// calls are not all on whichever connected first.
async fn three_behind(
    ids: [&str; 3],
    delays: [Duration; 3],
    policy: PolicyKind,
) -> ([TestBackend; 3], Channel) {
    let backends = [
        TestBackend::start_with_delay(ids[0], delays[0]).await,
        TestBackend::start_with_delay(ids[1], delays[1]).await,
        TestBackend::start_with_delay(ids[2], delays[2]).await,
    ];
    let addrs: Vec<_> = backends.iter().map(TestBackend::addr).collect();
    let channel = static_channel(&addrs, policy);
    wait_for_endpoints(&channel, &addrs, "a new channel").await;
    (backends, channel)
}

async fn three_plain(policy: PolicyKind) -> ([TestBackend; 3], Channel) {
    three_behind(["b1", "b2", "b3"], [Duration::ZERO; 3], policy).await
}

/// Asserts each of the three servers answered a share in `range`, and
/// that the servers' own counts agree with the replies.
fn assert_each_in(
    backends: &[TestBackend; 3],
    counts: &BTreeMap<String, usize>,
    range: std::ops::RangeInclusive<usize>,
) {
    assert_eq!(counts.len(), 3, "every server should answer: {counts:?}");
    assert_eq!(counts.values().sum::<usize>(), CALLS, "{counts:?}");
    assert!(
        counts.values().all(|n| range.contains(n)),
        "each server should answer {range:?} of {CALLS} calls: {counts:?}"
    );
    for b in backends {
        assert_eq!(
            b.calls_started(),
            counts[b.id()] as u64,
            "{}: calls started vs replies {counts:?}",
            b.id()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_the_calls_of_one_channel_evenly() {
    let (backends, channel) = three_plain(PolicyKind::RoundRobin).await;
    let client = TestServiceClient::new(channel);
    let counts = spread(&client, CALLS, IN_FLIGHT).await;
    assert_each_in(&backends, &counts, EVEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_spreads_the_calls_of_one_channel_evenly() {
    let (backends, channel) = three_plain(PolicyKind::LeastRequest).await;
    let client = TestServiceClient::new(channel);
    let counts = spread(&client, CALLS, IN_FLIGHT).await;
    assert_each_in(&backends, &counts, EVEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_spreads_the_calls_of_one_channel_evenly() {
    let (backends, channel) = three_plain(PolicyKind::Random).await;
    let client = TestServiceClient::new(channel);
    // Each server's share is Binomial(3000, 1/3): mean 1000, standard
    // deviation 26; ±100 is 3.9 of them, so a correct random policy fails
    // this about once in 3,000 runs.
    let counts = spread(&client, CALLS, IN_FLIGHT).await;
    assert_each_in(&backends, &counts, EVEN);
}

/// How many of `counts` the server "slow" answered, checking the total.
fn slow_share(counts: &BTreeMap<String, usize>, calls: usize) -> usize {
    assert_eq!(counts.values().sum::<usize>(), calls, "{counts:?}");
    counts.get("slow").copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_ewma_sends_fewer_concurrent_calls_to_a_slower_server() {
    let delays = [Duration::from_millis(200), Duration::ZERO, Duration::ZERO];
    let ([slow, _fast1, _fast2], channel) =
        three_behind(["slow", "fast1", "fast2"], delays, PolicyKind::PeakEwma).await;
    let client = TestServiceClient::new(channel);

    // A policy blind to latency gives the slow server a third. Peak-EWMA's
    // cost is the latency estimate times (calls in flight + 1): once the
    // slow server's estimate holds one 200 ms answer, it holds a call or
    // two of the 32 at a time while the fast ones (about 1 ms each) finish
    // hundreds a second: a few percent of the calls, far below 20%. The
    // delay is 200 ms, not 20, so that a scheduler stall on a busy 2-core
    // machine (tens of ms on a fast server's call) cannot make the fast
    // servers look as slow (it did, at 20 ms).
    let counts = spread(&client, CALLS, IN_FLIGHT).await;
    let to_slow = slow_share(&counts, CALLS);
    assert!(to_slow < CALLS / 5, "{counts:?}");
    assert_eq!(slow.calls_started(), to_slow as u64);
}

#[tokio::test]
async fn peak_ewma_sends_fewer_sequential_calls_to_a_much_slower_server() {
    let delays = [Duration::from_millis(200), Duration::ZERO, Duration::ZERO];
    let ([slow, _fast1, _fast2], channel) =
        three_behind(["slow", "fast1", "fast2"], delays, PolicyKind::PeakEwma).await;
    let mut client = TestServiceClient::new(channel);

    // One call at a time, so calls in flight are equal (zero) at every
    // pick and only latency tells the servers apart: least_request would
    // give the slow one a third. Its estimate keeps a 200 ms peak against
    // the fast ones' ~1 ms, so after its first answer it loses every pick
    // (a 200 ms delay, so that a scheduler stall on a fast server's call
    // cannot outweigh it). 20% is far above that and far below a third.
    let calls = 1000;
    let mut ids = Vec::with_capacity(calls);
    for _ in 0..calls {
        ids.push(client.unary(small()).await.unwrap().into_inner().backend);
    }
    let counts = podlb_testkit::tally(ids.iter().map(String::as_str));
    let to_slow = slow_share(&counts, calls);
    assert!(to_slow < calls / 5, "{counts:?}");
    assert_eq!(slow.calls_started(), to_slow as u64);
}
