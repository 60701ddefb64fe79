//! A server that shuts down gracefully (GOAWAY, then lets its calls
//! finish) costs no call under load: the channel stops sending to it as
//! soon as GOAWAY arrives, sends again elsewhere every call the server
//! provably never processed, and lets the others finish there; the other
//! servers take the rest of the load.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fault_support::{PATIENCE, small, static_channel, wait_for_endpoints, wait_not_ready};
use podlb_client::PolicyKind;
use podlb_testkit::tally;
use podlb_testkit::{EchoRequest, HeldCall, TestBackend, TestServiceClient};
use tonic::Status;

/// Client tasks, each with one call in flight at a time.
const TASKS: usize = 16;
/// Calls made in all.
const CALLS: usize = 3000;
/// Completed calls after which one server shuts down.
const SHUTDOWN_AFTER: usize = 1000;

/// One call of the load: its result and whether it began after the
/// shutdown had ended (the server gone).
struct Outcome {
    after_shutdown: bool,
    result: Result<String, Status>,
}

async fn graceful_shutdown_under_load_loses_no_call(policy: PolicyKind) {
    let b1 = TestBackend::start("b1").await;
    let b2 = TestBackend::start("b2").await;
    let b3 = TestBackend::start("b3").await;
    let draining = b2.stats();
    let addrs = [b1.addr(), b2.addr(), b3.addr()];
    let channel = static_channel(&addrs, policy);
    wait_for_endpoints(&channel, &addrs, "a new channel").await;
    let client = TestServiceClient::new(channel.clone());

    let issued = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let shut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (mut c, issued, completed, shut) = (
                client.clone(),
                issued.clone(),
                completed.clone(),
                shut.clone(),
            );
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                while issued.fetch_add(1, Ordering::SeqCst) < CALLS {
                    let after_shutdown = shut.load(Ordering::SeqCst);
                    let request = EchoRequest {
                        // Keeps calls in flight on the server when its
                        // GOAWAY goes out, so the drain has calls to finish.
                        sleep_ms: 1,
                        ..small()
                    };
                    let result = c.unary(request).await.map(|r| r.into_inner().backend);
                    outcomes.push(Outcome {
                        after_shutdown,
                        result,
                    });
                    completed.fetch_add(1, Ordering::SeqCst);
                }
                outcomes
            })
        })
        .collect();

    let reached = tokio::time::timeout(PATIENCE, async {
        while completed.load(Ordering::SeqCst) < SHUTDOWN_AFTER {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(reached.is_ok(), "the load stalled before the shutdown");
    assert!(
        draining.calls_started() > 0,
        "b2 should have had calls before it shut down"
    );
    // Calls held open until the test ends them, so that some are provably
    // in flight on b2 when its GOAWAY goes out (the load's 1 ms calls may
    // or may not be).
    let mut held_client = client.clone();
    let mut held: Vec<HeldCall> = Vec::new();
    while !held.iter().any(|c| c.backend() == "b2") {
        assert!(held.len() < 30, "no held call reached b2");
        held.push(HeldCall::open(&mut held_client).await);
    }
    let held_on_b2 = held.iter().filter(|c| c.backend() == "b2").count() as u64;
    let b2_addr = b2.addr();
    let shutdown = tokio::spawn(b2.shutdown_graceful());
    wait_not_ready(&channel, b2_addr).await;
    // b2 has said GOAWAY, and its held calls are still in flight: the
    // shutdown waits for them.
    assert!(
        draining.counts().in_flight() >= held_on_b2,
        "b2's held calls ended with its GOAWAY: {:?}",
        draining.counts()
    );
    assert!(!shutdown.is_finished(), "b2 shut down under its held calls");
    for call in held {
        call.finish()
            .await
            .unwrap_or_else(|e| panic!("a call in flight when b2 said GOAWAY: {e}"));
    }
    tokio::time::timeout(PATIENCE, shutdown)
        .await
        .expect("b2's graceful shutdown should end once its calls finished")
        .unwrap();
    shut.store(true, Ordering::SeqCst);
    let served_by_b2 = draining.calls_started();
    let completed_at_shutdown = completed.load(Ordering::SeqCst);

    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(
            tokio::time::timeout(PATIENCE, task)
                .await
                .expect("the load should finish")
                .unwrap(),
        );
    }
    let failed: Vec<&Status> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {CALLS} calls failed; the first ones: {:#?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(outcomes.len(), CALLS);
    assert!(
        completed_at_shutdown < CALLS,
        "the load should outlast the shutdown"
    );
    // Every call b2 started, it finished: the drain cancelled nothing.
    let counts = draining.counts();
    assert_eq!((counts.started, counts.cancelled), (served_by_b2, 0));
    assert_eq!(counts.finished, served_by_b2);
    let all = tally(outcomes.iter().map(|o| o.result.as_deref().unwrap()));
    assert_eq!(
        all.get("b2").copied(),
        Some((served_by_b2 - held_on_b2) as usize),
        "{all:?}"
    );
    // The others took over: every call begun after the shutdown went to
    // b1 and b3, and both took some.
    let after = tally(
        outcomes
            .iter()
            .filter(|o| o.after_shutdown)
            .map(|o| o.result.as_deref().unwrap()),
    );
    assert_eq!(
        after.keys().map(String::as_str).collect::<Vec<_>>(),
        ["b1", "b3"],
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_under_load_loses_no_call_with_least_request() {
    graceful_shutdown_under_load_loses_no_call(PolicyKind::LeastRequest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_under_load_loses_no_call_with_round_robin() {
    graceful_shutdown_under_load_loses_no_call(PolicyKind::RoundRobin).await;
}
