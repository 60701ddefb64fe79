//! A killed backend (a crash: every connection fails at once and its port
//! closes) leaves rotation as soon as the proxy sees its connection go:
//! every call started after that succeeds on the live backends, the only
//! calls that fail are the ones that were on the dead backend, and they fail
//! with UNAVAILABLE naming the endpoint. Restarted on the same address, the
//! backend gets calls again.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_proxy::EndpointState;
use podlb_testkit::{CallStats, EchoRequest, TestBackend, TestServiceClient};
use support::TestProxy;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// A small call that the backend answers at once.
fn small() -> EchoRequest {
    EchoRequest {
        payload: b"ping".to_vec(),
        ..Default::default()
    }
}

/// A call that stays in flight on its backend until the backend dies.
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

/// Waits until the proxy no longer counts the endpoint at `addr` as ready.
async fn wait_not_ready(proxy: &TestProxy, addr: SocketAddr) {
    proxy
        .wait_until(|eps| {
            eps.iter()
                .any(|e| e.addr.socket_addr() == addr && e.state != EndpointState::Ready)
        })
        .await;
}

/// Sends `n` small calls one after another; returns the replying backend of
/// each, or the statuses of those that failed.
async fn sequential_calls(
    client: &mut TestServiceClient<Channel>,
    n: usize,
) -> Result<Vec<String>, Vec<Status>> {
    let mut ids = Vec::new();
    let mut failed = Vec::new();
    for _ in 0..n {
        match client.unary(small()).await {
            Ok(reply) => ids.push(reply.into_inner().backend),
            Err(status) => failed.push(status),
        }
    }
    if failed.is_empty() {
        Ok(ids)
    } else {
        Err(failed)
    }
}

/// Asserts that `status` is the proxy's answer for a call lost with the
/// endpoint at `addr`: UNAVAILABLE, and a message that names the endpoint
/// (not, say, "no endpoint is ready", whose target list also holds the
/// address).
fn assert_lost_on(status: &Status, addr: SocketAddr) {
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let named = format!("endpoint {addr}");
    assert!(
        status.message().contains(&named),
        "the message should name {named}: {status:?}"
    );
}

#[tokio::test]
async fn calls_after_the_proxy_notices_a_kill_all_succeed_on_the_live_backends() {
    let [b1, b2, b3] = start_three().await;
    let dead = b2.addr();
    let proxy = TestProxy::start(&[b1.addr(), dead, b3.addr()], PolicyKind::default()).await;
    let mut client = proxy.client().await;

    let before = podlb_testkit::tally(
        sequential_calls(&mut client, 90)
            .await
            .unwrap()
            .iter()
            .map(String::as_str),
    );
    assert_eq!(
        before.len(),
        3,
        "calls should reach every backend: {before:?}"
    );

    b2.kill().await;
    wait_not_ready(&proxy, dead).await;

    let after = match sequential_calls(&mut client, 300).await {
        Ok(ids) => podlb_testkit::tally(ids.iter().map(String::as_str)),
        Err(failed) => panic!(
            "{} of 300 calls failed after the proxy noticed the kill, first: {:?}",
            failed.len(),
            failed[0]
        ),
    };
    assert_eq!(after.get("b2"), None, "{after:?}");
    assert_eq!(after.values().sum::<usize>(), 300, "{after:?}");
}

/// One call of a load task: whether it started after the proxy had noticed
/// the kill, and how it ended.
struct Outcome {
    after_notice: bool,
    result: Result<String, Status>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_only_calls_on_the_killed_backend_fail_and_they_name_it() {
    let [b1, b2, b3] = start_three().await;
    let dead = b2.addr();
    let stats = [b1.stats(), b2.stats(), b3.stats()];
    let proxy = TestProxy::start(&[b1.addr(), dead, b3.addr()], PolicyKind::default()).await;
    let client = proxy.client().await;

    // Pin one call on the backend to be killed: send endless calls one at a
    // time until one lands there; the others are cancelled.
    let mut elsewhere = Vec::new();
    let pinned = loop {
        let started = total_started(&stats);
        let mut c = client.clone();
        let call = tokio::spawn(async move { c.unary(endless()).await });
        while total_started(&stats) == started {
            if call.is_finished() {
                panic!("an endless call ended: {:?}", call.await);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if stats[1].calls_started() > 0 {
            break call;
        }
        elsewhere.push(call);
    };
    for call in elsewhere {
        call.abort();
    }

    // Eight tasks send small calls back to back, each noting whether the
    // proxy had noticed the kill before the call began.
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
                    // Long enough that calls are on the backend when it dies.
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
    // The load reaches the doomed backend before it dies.
    let busy = stats[1].calls_started() + 50;
    stats[1].wait_for_started(busy).await;

    b2.kill().await;
    wait_not_ready(&proxy, dead).await;
    noticed.store(true, Ordering::SeqCst);
    while done_after_notice.load(Ordering::SeqCst) < 1000 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.store(true, Ordering::SeqCst);

    let status = pinned.await.unwrap().unwrap_err();
    assert_lost_on(&status, dead);

    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.unwrap());
    }
    let mut after = Vec::new();
    let mut failed_before = 0;
    for outcome in &outcomes {
        match (&outcome.result, outcome.after_notice) {
            (Ok(id), true) => after.push(id.as_str()),
            (Ok(_), false) => {}
            (Err(status), true) => {
                panic!("a call started after the proxy noticed the kill failed: {status:?}")
            }
            (Err(status), false) => {
                assert_lost_on(status, dead);
                failed_before += 1;
            }
        }
    }
    let after = podlb_testkit::tally(after);
    assert_eq!(after.get("b2"), None, "{after:?}");
    assert!(after.values().sum::<usize>() >= 1000, "{after:?}");
    // How many of the load's own calls were caught on the dead backend
    // depends on timing; each was checked above.
    eprintln!("{failed_before} of the load's calls were lost with the backend");
}

fn total_started(stats: &[CallStats]) -> u64 {
    stats.iter().map(CallStats::calls_started).sum()
}

#[tokio::test]
async fn a_killed_backend_restarted_on_its_address_gets_calls_again() {
    let [b1, b2, b3] = start_three().await;
    let addr = b2.addr();
    let proxy = TestProxy::start(&[b1.addr(), addr, b3.addr()], PolicyKind::default()).await;
    let mut client = proxy.client().await;

    b2.kill().await;
    wait_not_ready(&proxy, addr).await;
    let ids = sequential_calls(&mut client, 30).await.unwrap();
    assert!(!ids.iter().any(|id| id == "b2"), "{ids:?}");

    let back = TestBackend::start_at("b2-again", addr)
        .await
        .expect("rebind the killed backend's address");
    proxy
        .wait_until(|_| proxy.state_of(addr) == Some(EndpointState::Ready))
        .await;

    let ids = sequential_calls(&mut client, 300).await.unwrap();
    let counts = podlb_testkit::tally(ids.iter().map(String::as_str));
    // Three ready backends share 300 calls; the returning one gets about a
    // third, far above this floor, and a proxy that never re-admits it gets 0.
    let returned = counts.get("b2-again").copied().unwrap_or(0);
    assert!(returned >= 50, "{counts:?}");
    assert_eq!(back.calls_finished(), returned as u64);
}
