//! A backend that shuts down gracefully (GOAWAY, then lets its calls
//! finish) costs no call under load: the proxy stops sending to it as soon
//! as GOAWAY arrives, sends again elsewhere every call the backend provably
//! never processed, and lets the others finish there. Once it is gone, no
//! call reaches it.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_proxy::EndpointState;
use podlb_testkit::{EchoRequest, HeldCall, TestBackend};
use support::TestProxy;
use tonic::Status;

/// Client tasks, each with one call in flight at a time.
const TASKS: usize = 16;
/// Calls sent in all.
const CALLS: usize = 3000;
/// Completed calls after which one backend shuts down.
const SHUTDOWN_AFTER: usize = 1000;
/// How long the proxy may take to see the GOAWAY, or the drain to end;
/// only a broken proxy or backend waits this long.
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_under_load_loses_no_call() {
    let b1 = TestBackend::start("b1").await;
    let b2 = TestBackend::start("b2").await;
    let b3 = TestBackend::start("b3").await;
    let draining = b2.stats();
    let proxy = TestProxy::start(&[b1.addr(), b2.addr(), b3.addr()], PolicyKind::default()).await;
    let client = proxy.client().await;

    let issued = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (mut c, issued, completed) = (client.clone(), issued.clone(), completed.clone());
            tokio::spawn(async move {
                let mut replies: Vec<Result<String, Status>> = Vec::new();
                while issued.fetch_add(1, Ordering::SeqCst) < CALLS {
                    let request = EchoRequest {
                        payload: b"ping".to_vec(),
                        // Keeps calls in flight on the backend when its
                        // GOAWAY goes out, so the drain has calls to finish.
                        sleep_ms: 1,
                        ..Default::default()
                    };
                    let reply = c.unary(request).await;
                    replies.push(reply.map(|r| r.into_inner().backend));
                    completed.fetch_add(1, Ordering::SeqCst);
                }
                replies
            })
        })
        .collect();

    while completed.load(Ordering::SeqCst) < SHUTDOWN_AFTER {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        draining.calls_started() > 0,
        "b2 should have had calls before it shut down"
    );
    // Calls held open until the test ends them, so that some are provably
    // in flight on b2 when its GOAWAY goes out (the load's 1 ms calls may
    // or may not be).
    let mut held_client = proxy.client().await;
    let mut held: Vec<HeldCall> = Vec::new();
    while !held.iter().any(|c| c.backend() == "b2") {
        assert!(held.len() < 30, "no held call reached b2");
        held.push(HeldCall::open(&mut held_client).await);
    }
    let held_on_b2 = held.iter().filter(|c| c.backend() == "b2").count() as u64;
    let b2_addr = b2.addr();
    let shutdown = tokio::spawn(b2.shutdown_graceful());
    let saw_goaway = tokio::time::timeout(
        PATIENCE,
        proxy.wait_until(|eps| {
            eps.iter()
                .any(|e| e.addr.socket_addr() == b2_addr && e.state != EndpointState::Ready)
        }),
    )
    .await;
    assert!(saw_goaway.is_ok(), "the proxy never saw b2's GOAWAY");
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
    let served_by_b2 = draining.calls_started();
    let completed_at_shutdown = completed.load(Ordering::SeqCst);

    let mut ids = Vec::new();
    let mut failed = Vec::new();
    for task in tasks {
        for reply in task.await.unwrap() {
            match reply {
                Ok(id) => ids.push(id),
                Err(status) => failed.push(status),
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {CALLS} calls failed; the first ones: {:#?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(ids.len(), CALLS);
    assert!(
        completed_at_shutdown < CALLS,
        "the load should outlast the shutdown"
    );
    // Every call b2 started, it finished: the drain cancelled nothing.
    let counts = draining.counts();
    assert_eq!((counts.started, counts.cancelled), (served_by_b2, 0));
    assert_eq!(counts.finished, served_by_b2);
    let tally = podlb_testkit::tally(ids.iter().map(String::as_str));
    assert_eq!(
        tally.get("b2").copied(),
        Some((served_by_b2 - held_on_b2) as usize)
    );
}
