//! Every server down. Fail fast (gRPC's default) answers UNAVAILABLE naming
//! the target at once, whether the servers died under a connected channel
//! or never answered a new one. Wait-for-ready (`wait_for_ready(true)`)
//! waits instead: a call with a deadline ends only when its deadline
//! passes, and a call made while every server is down succeeds once one
//! comes back.
//!
//! Time is tokio's paused clock from the moment the servers are gone
//! (`tokio::time::pause`): it moves only when every task waits, and then
//! straight to the next timer. So "at once" is checkable exactly: a call
//! that fails at once ends with the clock not moved at all, while one that
//! waited for anything with a timer (a backoff, a connect timeout, its
//! deadline) moved it by that timer. The bound on a hang is virtual too:
//! a hung call fails the test at once, not after a wall-clock wait. Nothing
//! here measures the wall clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;

use std::net::SocketAddr;
use std::time::Duration;

use fault_support::{
    PATIENCE, assert_unavailable_naming, small, wait_for_endpoints, wait_none_ready,
};
use podlb_client::{Channel, PolicyKind};
use podlb_testkit::{TestBackend, TestServiceClient};
use tokio::time::Instant;
use tonic::{Code, Status};

/// Longer than any call here may take, on the paused clock: a call still
/// running when it passes hung.
const HANG: Duration = Duration::from_secs(3600);

/// The deadline of the wait-for-ready call that must wait for it.
const DEADLINE: Duration = Duration::from_millis(1500);

/// The connect timeout of the channels here (the default): a fail-fast
/// call made while the channel's first connect attempts are under way waits
/// for them, at most this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
/// by [`HANG`]; how it ended and how long it took, on tokio's clock (the
/// paused one, where a test paused it).
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
    tokio::time::pause();

    // No deadline: a call that waited for a server would wait until HANG.
    for _ in 0..5 {
        let (result, took) = call(&mut client, None).await;
        let status = result.expect_err("no server is up");
        assert_unavailable_naming(&status, &[&target]);
        assert_eq!(
            took,
            Duration::ZERO,
            "a fail-fast call waited on a timer (a backoff, a connect attempt) \
             before failing: {status:?}"
        );
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
    tokio::time::pause();
    let target = target_of(&addrs);
    let channel = Channel::from_target(&target).unwrap();
    let mut client = TestServiceClient::new(channel.clone());

    // The first call waits for the channel's first connect attempts
    // (refused), at most the connect timeout, then fails: with a deadline
    // far beyond it, a call that waited for a server would end
    // DEADLINE_EXCEEDED at the deadline instead.
    let (result, took) = call(&mut client, Some(HANG / 2)).await;
    let status = result.expect_err("nothing listens");
    assert_unavailable_naming(&status, &[&target]);
    assert!(
        took <= CONNECT_TIMEOUT,
        "the first fail-fast call waited {took:?}, beyond the first connect attempts: {status:?}"
    );
    // Every address has been tried now, and the next calls fail at once.
    for _ in 0..3 {
        let (result, took) = call(&mut client, None).await;
        let status = result.expect_err("nothing listens");
        assert_unavailable_naming(&status, &[&target]);
        assert_eq!(
            took,
            Duration::ZERO,
            "a fail-fast call waited on a timer before failing: {status:?} (endpoints: {:?})",
            fault_support::endpoint_states(&channel)
        );
    }
}

#[tokio::test]
async fn a_wait_for_ready_call_waits_for_its_deadline_while_every_server_is_down() {
    let (backends, channel, target) = two_connected(true).await;
    let stats = [backends[0].stats(), backends[1].stats()];
    let mut client = TestServiceClient::new(channel.clone());
    kill_both(backends, &channel).await;
    tokio::time::pause();

    let (result, took) = call(&mut client, Some(DEADLINE)).await;
    let status = result.expect_err("no server is up");
    // gRPC ends a wait-for-ready call whose deadline passes with
    // DEADLINE_EXCEEDED; UNAVAILABLE (the last reason no server was
    // ready) is accepted here, and checked strictly in the next test.
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Unavailable),
        "{status:?}"
    );
    // On the paused clock this is exact: the call ended on its deadline's
    // timer, not before.
    assert!(
        took >= DEADLINE,
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
    tokio::time::pause();

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

    tokio::time::pause();
    let waiting = tokio::spawn({
        let mut client = client.clone();
        async move { call(&mut client, Some(PATIENCE)).await }
    });
    // Longer than the channel's first backoffs, on the paused clock: the
    // call has waited through several refused reconnects, which a
    // fail-fast call would not have.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !waiting.is_finished(),
        "the wait-for-ready call ended while every server was down: {:?}",
        waiting.await
    );
    // The server comes back on the real clock: a connect and handshake are
    // real I/O, which the paused clock would race with its timers. The
    // call's deadline (PATIENCE, far beyond a reconnect) bounds the wait.
    tokio::time::resume();
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
