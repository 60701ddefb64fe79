//! A backend's SETTINGS_MAX_CONCURRENT_STREAMS does not cap the calls the
//! proxy can have in flight on it: when every connection is at the limit,
//! the proxy opens more connections and the calls run at once, instead of
//! queueing behind the limit on one connection.

mod support;

use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_testkit::{EchoRequest, TestBackend};
use support::TestProxy;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

/// The limit the backend advertises.
const MAX_STREAMS: u32 = 4;
/// Calls held open at once: four times the limit.
const CALLS: u64 = 16;
/// How long the calls may take to all be running; only a proxy that
/// queues them behind the limit (where they would wait for ever, since
/// none ends before the test ends it) waits this long.
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_stream_limit_run_at_once_on_more_connections() {
    let backend = TestBackend::start_with_max_concurrent_streams("b1", MAX_STREAMS).await;
    let stats = backend.stats();
    let proxy = TestProxy::start(&[backend.addr()], PolicyKind::default()).await;
    let client = proxy.client().await;

    // Bidi calls the test holds open: each makes one exchange, then waits
    // for the test's word to end. None ends by itself, so a call queued
    // behind the limit would never start.
    let mut release = Vec::new();
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let mut c = client.clone();
            let (end, ended) = oneshot::channel::<()>();
            release.push(end);
            tokio::spawn(async move {
                let (requests, rx) = mpsc::channel(1);
                let mut replies = c.bidi(ReceiverStream::new(rx)).await?.into_inner();
                let ping = EchoRequest {
                    payload: vec![i as u8],
                    ..Default::default()
                };
                let _ = requests.send(ping).await;
                let reply = replies.message().await?;
                let _ = ended.await;
                drop(requests);
                let end = replies.message().await?;
                Ok::<_, tonic::Status>((reply, end))
            })
        })
        .collect();

    // All sixteen must be running on the backend together.
    let running = tokio::time::timeout(PATIENCE, stats.wait_for(|c| c.started >= CALLS)).await;
    assert!(
        running.is_ok(),
        "calls were queued behind the backend's stream limit: {:?} after {PATIENCE:?}, \
         on {} connection(s)",
        stats.counts(),
        backend.connections_accepted()
    );
    assert_eq!(stats.counts().in_flight(), CALLS);

    for end in release {
        let _ = end.send(());
    }
    for call in calls {
        let (reply, end) = call.await.unwrap().expect("every call succeeds");
        assert_eq!(reply.expect("a reply").backend, "b1");
        assert!(end.is_none(), "a reply after the end: {end:?}");
    }
    // Sixteen streams at four per connection take at least four connections.
    let connections = backend.connections_accepted();
    assert!(
        connections >= CALLS / u64::from(MAX_STREAMS),
        "{connections} connection(s)"
    );
    assert_eq!(stats.calls_finished(), CALLS);
}
