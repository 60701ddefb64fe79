//! A frozen server (SIGSTOP: its kernel still accepts connections and ACKs
//! what is sent, so nothing breaks) leaves the channel's rotation through
//! stall detection, which is on by default: under load (16 calls in
//! flight, 2 s deadlines) calls fail only in the first [`WINDOW`] after the
//! freeze, never later. The window: the connection is seen stalled 1 to
//! 1.5 s after its last read (`stall_after`, looked at every half of it),
//! its PING goes 1 s unanswered (`stall_ping_timeout`), then the channel
//! closes it and no call goes there, plus half a second of slack for a busy
//! machine. Calls begun after the window all succeed on the live servers,
//! so the frozen one took none; thawed, it gets calls again.
//!
//! The frozen server is Python grpcio (`tests/python/server.py`), the
//! others tonic test backends, all with the channel's defaults.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fault_support::{PATIENCE, small, static_channel, wait_for_endpoints, wait_not_ready};
use podlb_client::PolicyKind;
use podlb_testkit::python::PythonServer;
use podlb_testkit::{TestBackend, TestServiceClient};
use tokio::time::Instant;
use tonic::{Code, Status};

/// From the freeze, how long calls may still fail.
const WINDOW: Duration = Duration::from_secs(3);
/// Each call's deadline.
const DEADLINE: Duration = Duration::from_secs(2);
/// Calls in flight at all times.
const CONCURRENCY: usize = 16;

/// One call: when it began and how it ended (the answering server's id).
#[derive(Debug)]
struct Outcome {
    started: Instant,
    result: Result<String, Status>,
}

type Outcomes = Arc<Mutex<Vec<Outcome>>>;

fn answered_by(outcomes: &Outcomes, id: &str, since: Instant) -> usize {
    let outcomes = outcomes.lock().unwrap();
    outcomes
        .iter()
        .filter(|o| o.started >= since && o.result.as_deref().is_ok_and(|b| b == id))
        .count()
}

async fn wait_answered_by(outcomes: &Outcomes, id: &str, since: Instant, n: usize, what: &str) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while answered_by(outcomes, id, since) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: {id} answered fewer than {n} calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_leaves_rotation_within_seconds_and_returns_when_thawed() {
    let py = PythonServer::start("py").await;
    let b1 = TestBackend::start("b1").await;
    let b2 = TestBackend::start("b2").await;
    let addrs = [b1.addr(), py.addr(), b2.addr()];
    let channel = static_channel(&addrs, PolicyKind::default());
    wait_for_endpoints(&channel, &addrs, "a new channel").await;
    let client = TestServiceClient::new(channel.clone());

    let outcomes: Outcomes = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (mut client, outcomes, stop) = (client.clone(), outcomes.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let mut request = tonic::Request::new(small());
                request.set_timeout(DEADLINE);
                let started = Instant::now();
                let result = client
                    .unary(request)
                    .await
                    .map(|reply| reply.into_inner().backend);
                outcomes.lock().unwrap().push(Outcome { started, result });
            }
        }));
    }
    let start = Instant::now();
    wait_answered_by(&outcomes, "py", start, 50, "before the freeze").await;

    py.freeze();
    let frozen_at = Instant::now();
    wait_not_ready(&channel, py.addr()).await;
    let noticed = frozen_at.elapsed();
    // Load well past the window, with the server still frozen.
    tokio::time::sleep_until(frozen_at + WINDOW + Duration::from_secs(4)).await;
    py.thaw();
    let thawed_at = Instant::now();
    wait_answered_by(&outcomes, "py", thawed_at, 20, "after the thaw").await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }

    let outcomes = outcomes.lock().unwrap();
    let mut in_window = Vec::new();
    let mut late = Vec::new();
    for outcome in outcomes.iter() {
        if outcome.started >= frozen_at + WINDOW && outcome.started < thawed_at {
            late.push(outcome);
        } else if let Err(status) = &outcome.result {
            in_window.push(status);
        }
    }
    let late_failed: Vec<_> = late.iter().filter(|o| o.result.is_err()).collect();
    assert!(
        late_failed.is_empty(),
        "{} of {} calls begun {WINDOW:?} or more after the freeze failed, first: {:?}",
        late_failed.len(),
        late.len(),
        late_failed[0]
    );
    assert!(late.len() >= 50, "the load ran: {} calls", late.len());
    // The frozen server could answer none; none was sent there to wait for
    // its deadline either, or it would have failed above.
    assert!(
        late.iter()
            .all(|o| o.result.as_deref().is_ok_and(|b| b != "py"))
    );
    for status in &in_window {
        assert!(
            matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
            "{status:?}"
        );
    }
    eprintln!(
        "seen not ready {noticed:?} after the freeze; {} calls failed in the window, \
         {} succeeded after it; the thawed server answered again",
        in_window.len(),
        late.len()
    );
}
