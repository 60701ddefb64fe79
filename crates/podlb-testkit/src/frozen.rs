//! The frozen-backend scenario (issue 13), written once and run through the
//! proxy (`crates/podlb/tests/frozen_backend.rs`) and the client library
//! (`crates/podlb-client/tests/frozen_backend.rs`): 16 calls in flight with
//! 2 s deadlines, a Python grpcio backend frozen by SIGSTOP (its kernel
//! still accepts connections and ACKs what is sent, so nothing breaks),
//! then thawed.
//!
//! Calls may fail only in the first [`WINDOW`] after the freeze: the
//! connection is seen stalled 1 to 1.5 s after its last read (stall
//! detection's `after`, looked at every half of it), its PING goes 1 s
//! unanswered (`ping_timeout`), then the connection is closed and the
//! backend takes no call; plus half a second of slack for a busy machine.
//! Calls begun after the window all succeed on the live backends (so the
//! frozen one took none), and the thawed backend answers again. No upper
//! bound on wall-clock time is asserted beyond the window itself, whose
//! point is the defaults' promise.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tonic::client::GrpcService;
use tonic::codegen::{Body, Bytes, StdError};
use tonic::{Code, Status};

use crate::python::PythonServer;
use crate::{EchoRequest, TestServiceClient};

/// From the freeze, how long calls may still fail.
pub const WINDOW: Duration = Duration::from_secs(3);
/// Each call's deadline.
const DEADLINE: Duration = Duration::from_secs(2);
/// Calls in flight at all times.
const CONCURRENCY: usize = 16;
/// How long the balancer may take to see a change; only a broken one waits
/// this long.
const PATIENCE: Duration = Duration::from_secs(30);

/// One call: when it began and how it ended (the answering server's id).
#[derive(Debug)]
struct Outcome {
    started: Instant,
    result: Result<String, Status>,
}

type Outcomes = Arc<Mutex<Vec<Outcome>>>;

fn answered_by(outcomes: &Outcomes, id: &str, since: Instant) -> usize {
    let outcomes = outcomes.lock().unwrap_or_else(PoisonError::into_inner);
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

/// Runs the scenario: `client` reaches `frozen` (whose id answers its
/// calls) and other backends through the balancer under test;
/// `left_rotation` resolves once the balancer no longer counts `frozen`'s
/// endpoint as ready. Panics on a broken promise; returns a line to print.
pub async fn frozen_backend_leaves_rotation<T, F>(
    client: TestServiceClient<T>,
    frozen: &PythonServer,
    left_rotation: F,
) -> String
where
    T: GrpcService<tonic::body::Body> + Clone + Send + 'static,
    T::Future: Send,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
    F: Future<Output = ()>,
{
    let id = frozen.id().to_string();
    let outcomes: Outcomes = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| tokio::spawn(keep_calling(client.clone(), outcomes.clone(), stop.clone())))
        .collect();
    let start = Instant::now();
    wait_answered_by(&outcomes, &id, start, 50, "before the freeze").await;

    frozen.freeze();
    let frozen_at = Instant::now();
    assert!(
        tokio::time::timeout(PATIENCE, left_rotation).await.is_ok(),
        "the frozen backend never left rotation"
    );
    let noticed = frozen_at.elapsed();
    // Load well past the window, with the server still frozen.
    tokio::time::sleep_until(frozen_at + WINDOW + Duration::from_secs(4)).await;
    frozen.thaw();
    let thawed_at = Instant::now();
    wait_answered_by(&outcomes, &id, thawed_at, 20, "after the thaw").await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        let _ = task.await;
    }

    let outcomes = outcomes.lock().unwrap_or_else(PoisonError::into_inner);
    let (late, in_window): (Vec<&Outcome>, Vec<&Outcome>) = outcomes
        .iter()
        .partition(|o| o.started >= frozen_at + WINDOW && o.started < thawed_at);
    let failed_in_window: Vec<&Status> = in_window
        .iter()
        .filter_map(|o| o.result.as_ref().err())
        .collect();
    let late_failed: Vec<_> = late.iter().filter(|o| o.result.is_err()).collect();
    assert!(
        late_failed.is_empty(),
        "{} of {} calls begun {WINDOW:?} or more after the freeze failed, first: {:?}",
        late_failed.len(),
        late.len(),
        late_failed.first()
    );
    assert!(late.len() >= 50, "the load ran: {} calls", late.len());
    // The frozen server could answer none; none was sent there to wait for
    // its deadline either, or it would have failed above.
    assert!(
        late.iter()
            .all(|o| o.result.as_deref().is_ok_and(|b| b != id))
    );
    for status in &failed_in_window {
        // tonic's own client-side timer ends a call with CANCELLED
        // "Timeout expired" when it fires before the balancer's
        // DEADLINE_EXCEEDED arrives.
        assert!(
            matches!(
                status.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
            ),
            "{status:?}"
        );
    }
    format!(
        "seen not ready {noticed:?} after the freeze; {} calls failed in the window, \
         {} succeeded after it; the thawed backend answered again",
        failed_in_window.len(),
        late.len()
    )
}

/// One worker: unary calls one after another until `stop`.
async fn keep_calling<T>(
    mut client: TestServiceClient<T>,
    outcomes: Outcomes,
    stop: Arc<AtomicBool>,
) where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    while !stop.load(Ordering::SeqCst) {
        let mut request = tonic::Request::new(EchoRequest {
            payload: b"ping".to_vec(),
            ..Default::default()
        });
        request.set_timeout(DEADLINE);
        let started = Instant::now();
        let result = client
            .unary(request)
            .await
            .map(|reply| reply.into_inner().backend);
        outcomes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Outcome { started, result });
    }
}
