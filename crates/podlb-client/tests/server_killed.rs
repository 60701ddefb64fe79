//! A killed server (a crash: every connection fails at once and its port
//! closes) leaves the channel's rotation as soon as the channel sees its
//! connection go: calls not yet made go to the live servers, and once
//! `Channel::endpoints()` shows the endpoint not Ready no call fails; the
//! only calls lost are those that were on the dead server, and they fail
//! with UNAVAILABLE naming the endpoint. Restarted on the same address, the
//! server gets calls again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use fault_support::{
    PATIENCE, counted_calls, small, static_channel, wait_for_endpoints, wait_not_ready, wait_until,
};
use podlb_client::{EndpointState, PolicyKind};
use podlb_testkit::tally;
use podlb_testkit::{CallStats, EchoRequest, TestBackend, TestServiceClient};
use tonic::{Code, Status};

/// A call that stays in flight on its server until the server dies.
fn endless() -> EchoRequest {
    EchoRequest {
        sleep_ms: 600_000,
        ..Default::default()
    }
}

async fn start_three() -> [TestBackend; 3] {
    [
        TestBackend::start("b1").await,
        TestBackend::start("b2").await,
        TestBackend::start("b3").await,
    ]
}

/// Asserts that `status` is the channel's answer for a call lost with the
/// endpoint at `addr`: UNAVAILABLE, with a message naming the endpoint (not
/// "no endpoint is ready", whose target also holds the address).
fn assert_lost_on(status: &Status, addr: SocketAddr) {
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let named = format!("endpoint {addr}");
    assert!(
        status.message().contains(&named),
        "the message should name {named}: {status:?}"
    );
}

#[tokio::test]
async fn calls_after_the_channel_notices_a_kill_all_succeed_on_the_live_servers() {
    let [b1, b2, b3] = start_three().await;
    let dead = b2.addr();
    let addrs = [b1.addr(), dead, b3.addr()];
    let channel = static_channel(&addrs, PolicyKind::RoundRobin);
    wait_for_endpoints(&channel, &addrs, "a new channel").await;
    let mut client = TestServiceClient::new(channel.clone());

    let before = counted_calls(&mut client, 90, "before the kill").await;
    assert_eq!(before, tally(["b1", "b2", "b3"].repeat(30)));

    b2.kill().await;
    wait_not_ready(&channel, dead).await;

    let after = counted_calls(&mut client, 300, "after the channel noticed the kill").await;
    assert_eq!(after.get("b2"), None, "{after:?}");
    assert_eq!(after.values().sum::<usize>(), 300, "{after:?}");
}

/// One call of a load task: whether it began after the channel had noticed
/// the kill, and how it ended.
struct Outcome {
    after_notice: bool,
    result: Result<String, Status>,
}

fn total_started(stats: &[CallStats]) -> u64 {
    stats.iter().map(CallStats::calls_started).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_only_calls_on_the_killed_server_fail_and_they_name_it() {
    let [b1, b2, b3] = start_three().await;
    let dead = b2.addr();
    let stats = [b1.stats(), b2.stats(), b3.stats()];
    let addrs = [b1.addr(), dead, b3.addr()];
    let channel = static_channel(&addrs, PolicyKind::LeastRequest);
    wait_for_endpoints(&channel, &addrs, "a new channel").await;
    let client = TestServiceClient::new(channel.clone());

    // Pin one call on the server to be killed: send endless calls one at a
    // time until one lands there; the others are cancelled.
    let mut elsewhere = Vec::new();
    let pinned = loop {
        let before = total_started(&stats);
        let mut c = client.clone();
        let call = tokio::spawn(async move { c.unary(endless()).await });
        let landed = tokio::time::timeout(PATIENCE, async {
            while total_started(&stats) == before {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        assert!(landed.is_ok(), "an endless call reached no server");
        if stats[1].calls_started() > 0 {
            break call;
        }
        elsewhere.push(call);
    };
    for call in elsewhere {
        call.abort();
    }

    // Eight tasks make calls back to back (eight in flight), each noting
    // whether the channel had noticed the kill before the call began.
    let noticed = Arc::new(AtomicBool::new(false));
    let done_after_notice = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (mut c, noticed, done, stop) = (
            client.clone(),
            noticed.clone(),
            done_after_notice.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let after_notice = noticed.load(Ordering::SeqCst);
                let request = EchoRequest {
                    // Long enough that calls are on the server when it dies.
                    sleep_ms: 2,
                    ..small()
                };
                let result = c
                    .unary(request)
                    .await
                    .map(|reply| reply.into_inner().backend);
                if after_notice {
                    done.fetch_add(1, Ordering::SeqCst);
                }
                outcomes.push(Outcome {
                    after_notice,
                    result,
                });
            }
            outcomes
        }));
    }
    // The load reaches the doomed server before it dies.
    let busy = stats[1].calls_started() + 50;
    tokio::time::timeout(PATIENCE, stats[1].wait_for_started(busy))
        .await
        .expect("the load should reach b2 before the kill");

    b2.kill().await;
    wait_not_ready(&channel, dead).await;
    noticed.store(true, Ordering::SeqCst);
    let enough = tokio::time::timeout(PATIENCE, async {
        while done_after_notice.load(Ordering::SeqCst) < 1000 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    assert!(
        enough.is_ok(),
        "1000 calls after the kill should finish within {PATIENCE:?}: {}",
        done_after_notice.load(Ordering::SeqCst)
    );

    let status = tokio::time::timeout(PATIENCE, pinned)
        .await
        .expect("the call pinned on the killed server should end")
        .unwrap()
        .expect_err("the call pinned on the killed server should fail");
    assert_lost_on(&status, dead);

    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.unwrap());
    }
    let mut after = Vec::new();
    let mut lost = 0;
    for outcome in &outcomes {
        match (&outcome.result, outcome.after_notice) {
            (Ok(id), true) => after.push(id.as_str()),
            (Ok(_), false) => {}
            (Err(status), true) => {
                panic!("a call begun after the channel noticed the kill failed: {status:?}")
            }
            (Err(status), false) => {
                assert_lost_on(status, dead);
                lost += 1;
            }
        }
    }
    let after = tally(after);
    assert_eq!(after.get("b2"), None, "{after:?}");
    assert!(after.values().sum::<usize>() >= 1000, "{after:?}");
    // Every call lost was one the server had started (and saw cancelled by
    // the kill), plus at most the few written to the socket as it closed;
    // how many depends on timing.
    eprintln!(
        "{lost} of the load's calls were lost with the server; it saw {} cancelled",
        stats[1].calls_cancelled()
    );
}

#[tokio::test]
async fn a_killed_server_restarted_on_its_address_gets_calls_again() {
    let [b1, b2, b3] = start_three().await;
    let addr = b2.addr();
    let addrs = [b1.addr(), addr, b3.addr()];
    let channel = static_channel(&addrs, PolicyKind::RoundRobin);
    wait_for_endpoints(&channel, &addrs, "a new channel").await;
    let mut client = TestServiceClient::new(channel.clone());

    b2.kill().await;
    wait_not_ready(&channel, addr).await;
    let down = counted_calls(&mut client, 30, "b2 down").await;
    assert_eq!(down.get("b2"), None, "{down:?}");
    assert_eq!(down.len(), 2, "both live servers take calls: {down:?}");

    let back = TestBackend::start_at("b2-again", addr)
        .await
        .expect("rebind the killed server's address");
    wait_until(&channel, &format!("{addr} Ready again"), |eps| {
        eps.iter()
            .any(|e| e.addr.socket_addr() == addr && e.state == EndpointState::Ready)
    })
    .await;

    let counts = counted_calls(&mut client, 300, "b2 back").await;
    // Three Ready servers share 300 calls in turn: 100 each.
    assert_eq!(
        counts,
        tally(["b1", "b2-again", "b3"].repeat(100)),
        "round robin over the three, the restarted one included"
    );
    assert_eq!(back.calls_finished(), 100);
}
