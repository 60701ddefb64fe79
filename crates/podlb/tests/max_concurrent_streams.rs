//! A backend's SETTINGS_MAX_CONCURRENT_STREAMS does not cap the calls the
//! proxy can have in flight on it: when every connection is at the limit,
//! the proxy opens more connections and the calls run at once, instead of
//! queueing behind the limit on one connection.

mod support;

use podlb_balance::PolicyKind;
use podlb_testkit::{EchoRequest, TestBackend};
use support::TestProxy;

/// The limit the backend advertises.
const MAX_STREAMS: u32 = 4;
/// Calls sent at once: four times the limit.
const CALLS: u64 = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_stream_limit_run_at_once_on_more_connections() {
    let backend = TestBackend::start_with_max_concurrent_streams("b1", MAX_STREAMS).await;
    let stats = backend.stats();
    let proxy = TestProxy::start(&[backend.addr()], PolicyKind::default()).await;
    let client = proxy.client().await;

    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            let mut c = client.clone();
            tokio::spawn(async move {
                c.unary(EchoRequest {
                    sleep_ms: 300,
                    ..Default::default()
                })
                .await
            })
        })
        .collect();

    // All sixteen must be running on the backend together: the first to
    // finish would free a stream for a queued one, so if any finishes
    // before all have started, calls were queued behind the limit.
    let counts = stats
        .wait_for(|c| c.started >= CALLS || c.finished > 0)
        .await;
    assert_eq!(
        (counts.started, counts.finished),
        (CALLS, 0),
        "calls were queued behind the backend's stream limit; it accepted {} connection(s)",
        backend.connections_accepted()
    );

    for call in calls {
        let reply = call.await.unwrap().expect("every call succeeds");
        assert_eq!(reply.into_inner().backend, "b1");
    }
    // Sixteen streams at four per connection take at least four connections.
    let connections = backend.connections_accepted();
    assert!(
        connections >= CALLS / u64::from(MAX_STREAMS),
        "{connections} connection(s)"
    );
    assert_eq!(stats.calls_finished(), CALLS);
}
