//! [`TestBackend`]: the test service served by tonic on a local port, with a
//! graceful stop and a hard kill.
//!
//! ```text
//!   TcpListener ─► KillableIo per connection ─► tonic Server
//!                                                 └─ EchoMetadata layer ─► TestService handlers ─► CallStats
//!   shutdown_graceful(): tonic stops accepting, sends GOAWAY, lets calls finish
//!   kill():              every connection fails at once, the server task is
//!                        aborted and the listener closed
//! ```
//!
//! [`BackendOptions`] make a backend unlike the others: slower by a fixed
//! delay per call, or advertising a SETTINGS_MAX_CONCURRENT_STREAMS. Every
//! backend counts the TCP connections it accepted and those still open.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Server;

use crate::echo::EchoMetadataLayer;
use crate::killable::KillableIo;
use crate::pb::test_service_server::TestServiceServer;
use crate::service::TestService;
use crate::sickness::SicknessCell;
use crate::stats::{CallCounts, CallStats};

/// Largest message the backend accepts or sends, well above gRPC's 4 MiB
/// default so tests can push large payloads through the proxy.
const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// How a backend differs from a plain one; the default is a plain one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendOptions {
    /// Waited before every request message is handled (before `sleep_ms`),
    /// as by a pod that is slower than its peers. Default zero.
    pub added_delay: Duration,
    /// The SETTINGS_MAX_CONCURRENT_STREAMS the backend advertises on each
    /// connection; a client must open more connections (or queue) to have
    /// more calls in flight. Default `None`: tonic's default, no limit.
    pub max_concurrent_streams: Option<u32>,
}

/// A running `podlb.test.v1.TestService` backend on `127.0.0.1`.
///
/// Dropping it kills it (without waiting for the sockets to close); call
/// [`TestBackend::kill`] or [`TestBackend::shutdown_graceful`] to wait.
#[derive(Debug)]
pub struct TestBackend {
    id: String,
    addr: SocketAddr,
    stats: CallStats,
    graceful: CancellationToken,
    killed: CancellationToken,
    open_connections: TaskTracker,
    accepted_connections: Arc<AtomicU64>,
    server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    sickness: SicknessCell,
}

impl TestBackend {
    /// Starts a backend named `id` on `127.0.0.1:0` (a free port).
    pub async fn start(id: &str) -> TestBackend {
        Self::start_with(id, BackendOptions::default()).await
    }

    /// Starts a backend named `id` on a free port whose every call (every
    /// request message) takes `added_delay` longer than on a plain backend.
    pub async fn start_with_delay(id: &str, added_delay: Duration) -> TestBackend {
        let options = BackendOptions {
            added_delay,
            ..BackendOptions::default()
        };
        Self::start_with(id, options).await
    }

    /// Starts a backend named `id` on a free port that advertises
    /// SETTINGS_MAX_CONCURRENT_STREAMS = `max` on each connection.
    pub async fn start_with_max_concurrent_streams(id: &str, max: u32) -> TestBackend {
        let options = BackendOptions {
            max_concurrent_streams: Some(max),
            ..BackendOptions::default()
        };
        Self::start_with(id, options).await
    }

    /// Starts a backend named `id` with `options` on `127.0.0.1:0`.
    pub async fn start_with(id: &str, options: BackendOptions) -> TestBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a test backend on 127.0.0.1:0");
        Self::start_on_with(id, listener, options)
    }

    /// Starts a backend named `id` on `addr`, e.g. the address of a backend
    /// that was killed, to bring it back.
    pub async fn start_at(id: &str, addr: SocketAddr) -> io::Result<TestBackend> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self::start_on(id, listener))
    }

    /// Starts a backend named `id` serving on `listener`.
    pub fn start_on(id: &str, listener: TcpListener) -> TestBackend {
        Self::start_on_with(id, listener, BackendOptions::default())
    }

    /// Starts a backend named `id` with `options`, serving on `listener`.
    pub fn start_on_with(id: &str, listener: TcpListener, options: BackendOptions) -> TestBackend {
        let addr = listener
            .local_addr()
            .expect("a bound listener has a local address");
        let stats = CallStats::default();
        let graceful = CancellationToken::new();
        let killed = CancellationToken::new();
        let open_connections = TaskTracker::new();
        let accepted_connections = Arc::new(AtomicU64::new(0));

        let (kill, open) = (killed.clone(), open_connections.clone());
        let accepted_count = accepted_connections.clone();
        let incoming = TcpListenerStream::new(listener).map(move |accepted| {
            accepted.map(|stream| {
                accepted_count.fetch_add(1, Ordering::Relaxed);
                // Best effort: a test backend answers small calls promptly.
                let _ = stream.set_nodelay(true);
                KillableIo::new(stream, kill.clone(), open.token())
            })
        });
        let sickness = SicknessCell::default();
        let handlers = TestService::new(
            id.to_owned(),
            stats.clone(),
            options.added_delay,
            sickness.clone(),
        );
        let service = TestServiceServer::new(handlers)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        let server = Server::builder()
            .max_concurrent_streams(options.max_concurrent_streams)
            .layer(EchoMetadataLayer)
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, graceful.clone().cancelled_owned());

        TestBackend {
            id: id.to_owned(),
            addr,
            stats,
            graceful,
            killed,
            open_connections,
            accepted_connections,
            server: Some(tokio::spawn(server)),
            sickness,
        }
    }

    /// The switch [`TestBackend::set_sickness`] turns.
    pub(crate) fn sickness_cell(&self) -> &SicknessCell {
        &self.sickness
    }

    /// The backend's id, sent back in every reply's `backend` field.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The address the backend listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The backend's call counters; the handle stays valid after a stop.
    pub fn stats(&self) -> CallStats {
        self.stats.clone()
    }

    /// The call counters now.
    pub fn counts(&self) -> CallCounts {
        self.stats.counts()
    }

    /// Calls whose handler started.
    pub fn calls_started(&self) -> u64 {
        self.stats.calls_started()
    }

    /// Calls that ended with a status sent by the handler.
    pub fn calls_finished(&self) -> u64 {
        self.stats.calls_finished()
    }

    /// Calls the backend saw cancelled.
    pub fn calls_cancelled(&self) -> u64 {
        self.stats.calls_cancelled()
    }

    /// TCP connections the backend has accepted since it started.
    pub fn connections_accepted(&self) -> u64 {
        self.accepted_connections.load(Ordering::Relaxed)
    }

    /// TCP connections accepted and not closed yet (by either side).
    pub fn connections_open(&self) -> usize {
        self.open_connections.len()
    }

    /// Waits until at least `n` calls have started.
    pub async fn wait_for_started(&self, n: u64) -> CallCounts {
        self.stats.wait_for_started(n).await
    }

    /// Waits until the backend has seen at least `n` cancelled calls.
    pub async fn wait_for_cancelled(&self, n: u64) -> CallCounts {
        self.stats.wait_for_cancelled(n).await
    }

    /// Stops gracefully: stops accepting, sends GOAWAY on every connection,
    /// lets the calls in flight finish, and returns once every connection
    /// has closed.
    pub async fn shutdown_graceful(mut self) {
        self.graceful.cancel();
        if let Some(server) = self.server.take() {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("test backend {}: server failed: {e}", self.id),
                Err(e) => panic!("test backend {}: server task failed: {e}", self.id),
            }
        }
    }

    /// Kills the backend as a crash would: every accepted connection fails
    /// at once, the server task is aborted and the listener closed. Returns
    /// once every socket is closed; calls in flight fail on the client side
    /// and count as cancelled here.
    pub async fn kill(mut self) {
        self.killed.cancel();
        if let Some(server) = self.server.take() {
            server.abort();
            // The task's result is its abort; what matters is that it (and
            // with it the listener) is gone.
            let _ = server.await;
        }
        self.open_connections.close();
        self.open_connections.wait().await;
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.killed.cancel();
            server.abort();
        }
    }
}

/// `count` backends on pod-like addresses 127.0.0.11, .12, ... all on one
/// port, as the pods of a Deployment are, named `pod-11`, `pod-12`, ...;
/// returns them and the port.
pub async fn start_pods(count: u8) -> (Vec<TestBackend>, u16) {
    use tokio::net::TcpListener;
    'port: for _ in 0..20 {
        let first = TcpListener::bind("127.0.0.11:0").await.unwrap();
        let port = first.local_addr().unwrap().port();
        let mut listeners = vec![first];
        for i in 1..count {
            match TcpListener::bind((std::net::Ipv4Addr::new(127, 0, 0, 11 + i), port)).await {
                Ok(listener) => listeners.push(listener),
                Err(_) => continue 'port,
            }
        }
        let pods = listeners
            .into_iter()
            .map(|listener| {
                let ip = listener.local_addr().unwrap().ip().to_string();
                let last = ip.rsplit('.').next().unwrap_or_default().to_string();
                TestBackend::start_on(&format!("pod-{last}"), listener)
            })
            .collect();
        return (pods, port);
    }
    panic!(
        "found no port free on all of 127.0.0.11 to .{} in 20 tries",
        10 + count
    );
}
