//! Every server down. Fail fast (gRPC's default) answers UNAVAILABLE naming
//! the target at once, whether the servers died under a connected channel
//! or never answered a new one. Wait-for-ready (`wait_for_ready(true)`)
//! waits instead: a call with a deadline ends only when its deadline
//! passes, and a call made while every server is down succeeds once one
//! comes back.
//!
//! "At once" is bounded by a 20 s timeout that only a hanging call
//! reaches; the only time measured is a lower bound (the wait-for-ready
//! call really waited).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;

use std::net::SocketAddr;
use std::time::Duration;

use fault_support::{assert_unavailable_naming, small, wait_for_endpoints, wait_none_ready};
use podlb_client::{Channel, PolicyKind};
use podlb_testkit::{TestBackend, TestServiceClient};
use tokio::time::Instant;
use tonic::{Code, Status};

/// Longer than any fail-fast answer takes by far.
const HANG: Duration = Duration::from_secs(20);

/// The deadline of the wait-for-ready call that must wait for it.
const DEADLINE: Duration = Duration::from_millis(1500);

fn target_of(addrs: &[SocketAddr]) -> String {
    let list: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    format!("static:///{}", list.join(","))
}

/// Two servers, and a connected channel over them; `wait_for_ready` as
/// given.
async fn two_connected(wait_for_ready: bool) -> ([TestBackend; 2], Channel, String) {
    let backends = [
        TestBackend::start("b1").await,
        TestBackend::start("b2").await,
    ];
    let addrs: Vec<_> = backends.iter().map(TestBackend::addr).collect();
    let target = target_of(&addrs);
    let channel = Channel::builder(&target)
        .unwrap()
        .policy(PolicyKind::RoundRobin)
        .wait_for_ready(wait_for_ready)
        .build()
        .unwrap();
    wait_for_endpoints(&channel, &addrs, "a new channel").await;
    (backends, channel, target)
}

/// Kills both servers and waits until the channel has seen them go.
async fn kill_both(backends: [TestBackend; 2], channel: &Channel) {
    for b in backends {
        b.kill().await;
    }
    wait_none_ready(channel).await;
}

/// One small call with `deadline` (none: no grpc-timeout at all), bounded
/// by [`HANG`]; how it ended and how long it took.
async fn call(
    client: &mut TestServiceClient<Channel>,
    deadline: Option<Duration>,
) -> (Result<String, Status>, Duration) {
    let mut request = tonic::Request::new(small());
    if let Some(deadline) = deadline {
        request.set_timeout(deadline);
    }
    let began = Instant::now();
    let result = tokio::time::timeout(HANG, client.unary(request))
        .await
        .unwrap_or_else(|_| panic!("the call hung for {HANG:?}"));
    (result.map(|r| r.into_inner().backend), began.elapsed())
}

#[tokio::test]
async fn fail_fast_calls_fail_at_once_naming_the_target_once_every_server_died() {
    let (backends, channel, target) = two_connected(false).await;
    let mut client = TestServiceClient::new(channel.clone());
    kill_both(backends, &channel).await;

    // No deadline: a call that waited for a server would wait forever.
    for _ in 0..5 {
        let (result, _) = call(&mut client, None).await;
        let status = result.expect_err("no server is up");
        assert_unavailable_naming(&status, &[&target]);
    }
}

#[tokio::test]
async fn fail_fast_calls_fail_at_once_when_no_server_ever_answered() {
    // Addresses that were just freed: nothing listens there.
    let backends = [
        TestBackend::start("b1").await,
        TestBackend::start("b2").await,
    ];
    let addrs: Vec<_> = backends.iter().map(TestBackend::addr).collect();
    for b in backends {
        b.kill().await;
    }
    let target = target_of(&addrs);
    let channel = Channel::from_target(&target).unwrap();
    let mut client = TestServiceClient::new(channel);

    // The first call waits for the first connect attempts (refused at
    // once), then fails.
    let (result, _) = call(&mut client, None).await;
    let status = result.expect_err("nothing listens");
    assert_unavailable_naming(&status, &[&target]);
}

#[tokio::test]
async fn a_wait_for_ready_call_waits_for_its_deadline_while_every_server_is_down() {
    let (backends, channel, target) = two_connected(true).await;
    let stats = [backends[0].stats(), backends[1].stats()];
    let mut client = TestServiceClient::new(channel.clone());
    kill_both(backends, &channel).await;

    let (result, took) = call(&mut client, Some(DEADLINE)).await;
    let status = result.expect_err("no server is up");
    // gRPC ends a wait-for-ready call whose deadline passes with
    // DEADLINE_EXCEEDED; UNAVAILABLE (the last reason no server was
    // ready) is accepted here, and checked strictly in the next test.
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Unavailable),
        "{status:?}"
    );
    // A lower bound only: a fail-fast answer takes milliseconds.
    assert!(
        took >= Duration::from_secs(1),
        "a wait-for-ready call should wait for its {DEADLINE:?} deadline, \
         it ended after {took:?}: {status:?}"
    );
    assert!(
        status.message().contains(&target) || status.code() == Code::DeadlineExceeded,
        "{status:?}"
    );
    // The servers stayed down the whole time: nothing was called.
    assert_eq!(
        stats.iter().map(|s| s.calls_started()).sum::<u64>(),
        0,
        "no call should reach a server"
    );
}

#[tokio::test]
async fn a_wait_for_ready_call_whose_deadline_passes_ends_deadline_exceeded() {
    let (backends, channel, _target) = two_connected(true).await;
    let mut client = TestServiceClient::new(channel.clone());
    kill_both(backends, &channel).await;

    let (result, _) = call(&mut client, Some(DEADLINE)).await;
    let status = result.expect_err("no server is up");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
}

#[tokio::test]
async fn a_wait_for_ready_call_made_while_every_server_is_down_succeeds_once_one_comes_back() {
    let (backends, channel, _target) = two_connected(true).await;
    let addr = backends[0].addr();
    let client = TestServiceClient::new(channel.clone());
    kill_both(backends, &channel).await;

    let waiting = tokio::spawn({
        let mut client = client.clone();
        async move { call(&mut client, Some(Duration::from_secs(15))).await }
    });
    // The scenario's delay, not a wait for a state: the server comes back
    // while the call waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "the wait-for-ready call ended while every server was down: {:?}",
        waiting.await
    );
    let back = TestBackend::start_at("b1-again", addr)
        .await
        .expect("rebind the killed server's address");

    let (result, _) = waiting.await.unwrap();
    assert_eq!(
        result.expect("the waiting call should succeed once a server is back"),
        "b1-again"
    );
    assert_eq!(back.calls_finished(), 1);
}
