//! The ADS client: one state-of-the-world `StreamAggregatedResources`
//! stream per target to the bootstrap's server, driving the target's
//! [`Chain`] and handing its endpoint updates to whoever polls
//! [`discover`]'s stream. It owns the connection, the stream, the timers
//! and the reconnect backoff; what to ask and what a response means is the
//! chain's.
//!
//! ```text
//!   connect (plaintext h2) ──► open stream: LDS, RDS, CDS, EDS as known (node in the first)
//!      ▲                           │ each response ─► chain ─► ACK/NACK, subscriptions ─► server
//!      │                           │                       └─► Reset / errors ─► update stream
//!      │                           │ does-not-exist timer ─► chain
//!      └── backoff (100 ms doubling to 30 s, jittered; reset after a response)
//!              ◄── connect failed / stream broken: error yielded, last endpoints kept
//! ```
//!
//! The task starts with [`discover`] and stops when its stream is dropped.

use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use futures_util::Stream;
use podlb_core::Update;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tonic::transport::{Channel, Endpoint};

use crate::chain::{Chain, Step};
use crate::{Bootstrap, Error};

/// How the client waits: timeouts and backoff. The defaults are gRPC's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientOptions {
    /// How long a subscribed resource may go unsent before it is taken not
    /// to exist (gRFC A27's does-not-exist timer). Default: 15 s.
    pub resource_timeout: Duration,
    /// The first wait before reconnecting to a failed server; it doubles
    /// on each failure in a row. Default: 100 ms.
    pub backoff_first: Duration,
    /// The longest wait before reconnecting. Default: 30 s.
    pub backoff_max: Duration,
    /// How long connecting to the server may take. Default: 10 s.
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            resource_timeout: Duration::from_secs(15),
            backoff_first: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The endpoints of `xds:///NAME`: the Listener `name` followed down to its
/// clusters' endpoints, from the server in `bootstrap`. Each item is a
/// `Reset` with every endpoint (merged over weighted clusters), or an
/// error that explains the current set (a NACKed resource, a missing one,
/// a broken stream); the stream goes on through errors and ends only when
/// dropped.
///
/// The client starts at once, on the current tokio runtime.
///
/// # Panics
/// Outside a tokio runtime.
pub fn discover(
    name: &str,
    bootstrap: Bootstrap,
) -> impl Stream<Item = Result<Update, Error>> + Send + Unpin + 'static {
    discover_with(name, bootstrap, ClientOptions::default())
}

/// [`discover`] with its timeouts and backoff chosen.
///
/// # Panics
/// Outside a tokio runtime.
pub fn discover_with(
    name: &str,
    bootstrap: Bootstrap,
    options: ClientOptions,
) -> impl Stream<Item = Result<Update, Error>> + Send + Unpin + 'static {
    let (tx, rx) = mpsc::channel(16);
    let name = name.to_string();
    tokio::spawn(async move {
        tokio::select! {
            () = run(&name, &bootstrap, &options, &tx) => {}
            () = tx.closed() => {}
        }
    });
    ReceiverStream::new(rx)
}

type Sender = mpsc::Sender<Result<Update, Error>>;

/// How a stream ended.
enum Ended {
    /// Nobody listens any more.
    Unheard,
    /// The connection or the stream failed; `heard` says whether the server
    /// answered at all (which resets the backoff).
    Failed { error: Error, heard: bool },
}

async fn run(name: &str, bootstrap: &Bootstrap, options: &ClientOptions, tx: &Sender) {
    let server = &bootstrap.server;
    let mut chain = Chain::new(
        name,
        &server.uri,
        server.ignores_resource_deletion(),
        options.resource_timeout,
    );
    let mut backoff = Backoff::new(options);
    loop {
        let (error, heard) = match session(bootstrap, options, &mut chain, tx).await {
            Ended::Unheard => return,
            Ended::Failed { error, heard } => (error, heard),
        };
        tracing::warn!(target = name, %error, "xDS stream failed");
        if heard {
            backoff.reset();
        }
        if !send_all(tx, chain.stream_lost(error)).await {
            return;
        }
        sleep(backoff.next(fastrand::f64())).await;
    }
}

/// One connection and one ADS stream, until either fails.
async fn session(
    bootstrap: &Bootstrap,
    options: &ClientOptions,
    chain: &mut Chain,
    tx: &Sender,
) -> Ended {
    let server = &bootstrap.server;
    let failed = |error, heard| Ended::Failed { error, heard };
    let channel = match connect(&server.endpoint, options.connect_timeout).await {
        Ok(channel) => channel,
        Err(reason) => {
            let server = server.uri.clone();
            return failed(Error::Connect { server, reason }, false);
        }
    };
    let broken = |reason: String| Error::StreamBroken {
        server: server.uri.clone(),
        reason,
    };
    let (requests, outbound) = mpsc::unbounded_channel();
    let mut first = chain.start_stream(Instant::now());
    if let Some(request) = first.first_mut() {
        request.node = Some(bootstrap.node_proto());
    }
    // Queued before the stream opens: the server may wait for them.
    send_requests(&requests, first);
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let mut inbound = match client
        .stream_aggregated_resources(UnboundedReceiverStream::new(outbound))
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => return failed(broken(describe_status(&status)), false),
    };
    tracing::info!(server = %server.uri, "xDS stream open");
    if !send_all(tx, chain.stream_established()).await {
        return Ended::Unheard;
    }
    let mut heard = false;
    loop {
        let deadline = chain.next_deadline();
        let step = tokio::select! {
            message = inbound.message() => match message {
                Ok(Some(response)) => {
                    heard = true;
                    tracing::debug!(
                        type_url = %response.type_url,
                        version = %response.version_info,
                        resources = response.resources.len(),
                        "xDS response"
                    );
                    chain.on_response(response, Instant::now())
                }
                Ok(None) => return failed(broken("the server ended the stream".into()), heard),
                Err(status) => return failed(broken(describe_status(&status)), heard),
            },
            () = sleep_until_deadline(deadline) => chain.on_deadline(Instant::now()),
        };
        let Step {
            requests: next,
            mut items,
        } = step;
        send_requests(&requests, next);
        // Ahead of the endpoints, so the first calls use them.
        let asks = chain.take_cluster_changes();
        items.splice(0..0, asks.into_iter().map(Ok));
        if !send_all(tx, items).await {
            return Ended::Unheard;
        }
    }
}

async fn connect(endpoint: &str, timeout: Duration) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| describe(&e))?
        .connect_timeout(timeout);
    endpoint.connect().await.map_err(|e| describe(&e))
}

async fn sleep_until_deadline(deadline: Option<Instant>) {
    match deadline {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn send_requests(requests: &mpsc::UnboundedSender<DiscoveryRequest>, batch: Vec<DiscoveryRequest>) {
    for request in batch {
        // The stream is gone if this fails; reading it says so next.
        let _ = requests.send(request);
    }
}

/// Hands items to the stream; `false` if nobody listens.
async fn send_all(tx: &Sender, items: Vec<Result<Update, Error>>) -> bool {
    for item in items {
        if tx.send(item).await.is_err() {
            return false;
        }
    }
    true
}

/// An error and its sources, as one line: tonic's transport error says
/// only "transport error" at the top.
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

fn describe_status(status: &tonic::Status) -> String {
    match status.message() {
        "" => format!("{:?}", status.code()),
        message => format!("{:?}: {message}", status.code()),
    }
}

/// The waits between reconnects: doubling from the first to the max, each
/// up to a fifth shorter at random, so that many clients of a restarted
/// server do not come back in step.
#[derive(Debug)]
struct Backoff {
    first: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    fn new(options: &ClientOptions) -> Backoff {
        Backoff {
            first: options.backoff_first,
            max: options.backoff_max.max(options.backoff_first),
            failures: 0,
        }
    }

    /// The wait after one more failure; `jitter` is in `[0, 1)`.
    fn next(&mut self, jitter: f64) -> Duration {
        let doublings = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let base = self.first.saturating_mul(1 << doublings).min(self.max);
        base.mul_f64(1.0 - jitter.clamp(0.0, 1.0) / 5.0)
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_max_with_jitter_and_resets() {
        let mut backoff = Backoff::new(&ClientOptions::default());
        let waits: Vec<u128> = (0..12).map(|_| backoff.next(0.0).as_millis()).collect();
        assert_eq!(
            waits,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000
            ]
        );
        let jittered = backoff.next(0.99);
        assert!(jittered < Duration::from_secs(30) && jittered > Duration::from_secs(24));
        backoff.reset();
        assert_eq!(backoff.next(0.0), Duration::from_millis(100));
    }

    #[test]
    fn errors_are_described_with_their_sources() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = Error::BootstrapRead {
            path: "p".into(),
            reason: "r".into(),
        };
        assert_eq!(describe(&io), "refused");
        assert!(describe(&outer).starts_with("reading the xDS bootstrap file p"));
        let status = tonic::Status::unavailable("gone");
        assert_eq!(describe_status(&status), "Unavailable: gone");
    }
}
