//! The ADS server: xDS v3 state of the world over
//! `envoy.service.discovery.v3.AggregatedDiscoveryService`, for proxyless
//! gRPC clients and Envoy. It owns the gRPC service and its listener; it
//! reads snapshots from a `watch` channel and never builds resources (the
//! resource builder does, behind [`crate::snapshot::Snapshot`]).
//!
//! ```text
//!  watch::Receiver<SharedSnapshot> ─┐
//!  client ─ StreamAggregatedResources ─► spawn stream::run (one task per stream)
//!                                         ├─ subscription: which names, wildcard
//!                                         ├─ type_state: nonces, versions, ACK/NACK, what changed
//!                                         └─ status: the client's row in the StatusRegistry
//!  client ─ DeltaAggregatedResources ──► UNIMPLEMENTED (use state of the world)
//! ```
//!
//! Every snapshot change wakes every stream; each sends only the types
//! whose selected resources changed for it. Bursts of changes coalesce in
//! the watch channel.

mod stream;
mod subscription;
mod type_state;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::Error;
use crate::snapshot::SharedSnapshot;
use crate::status::StatusRegistry;
use stream::StreamContext;

/// Responses a stream may have queued for its client before its task
/// waits: enough for one push of all four types without waiting.
const RESPONSE_BUFFER: usize = 4;

/// HTTP/2 PING interval: finds clients that vanished without closing
/// (a node powered off), whose streams would otherwise live forever. gRPC
/// clients accept server PINGs at any rate; 30 s keeps idle traffic tiny.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// How long a PING may go unanswered before the connection is dropped.
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// TCP keepalive, a second line behind the HTTP/2 PINGs.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Streams one HTTP/2 connection may open at once. A gRPC channel opens one
/// ADS stream, but a test harness or a multiplexing proxy may carry
/// thousands over one connection; hyper's own default of 200 would make the
/// 201st wait.
const MAX_STREAMS_PER_CONNECTION: u32 = 100_000;

/// The ADS server. Cheap to clone: clones share the snapshot channel, the
/// status registry, the stream ids and the shutdown signal.
#[derive(Clone)]
pub struct AdsServer {
    snapshots: watch::Receiver<SharedSnapshot>,
    status: StatusRegistry,
    next_stream_id: Arc<AtomicU64>,
    shutdown: Arc<watch::Sender<bool>>,
}

impl AdsServer {
    /// A server that serves the latest snapshot of `snapshots` and records
    /// every client in `status`.
    pub fn new(snapshots: watch::Receiver<SharedSnapshot>, status: StatusRegistry) -> AdsServer {
        AdsServer {
            snapshots,
            status,
            next_stream_id: Arc::new(AtomicU64::new(1)),
            shutdown: Arc::new(watch::channel(false).0),
        }
    }

    /// The server as a tonic service, to add to a `tonic::transport::Server`
    /// of one's own. Whoever serves it so must call
    /// [`AdsServer::end_streams`] on shutdown, or a graceful shutdown waits
    /// for ADS streams that never end by themselves.
    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<AdsServer> {
        AggregatedDiscoveryServiceServer::new(self)
    }

    /// Ends every open stream with UNAVAILABLE (clients reconnect, to this
    /// server's successor); streams opened afterwards end at once.
    pub fn end_streams(&self) {
        self.shutdown.send_replace(true);
    }

    /// Serves ADS on `listener` until `shutdown` resolves, then ends every
    /// stream and closes the connections gracefully (HTTP/2 GOAWAY).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(TCP_KEEPALIVE));
        let streams = self.clone();
        let signal = async move {
            shutdown.await;
            streams.end_streams();
        };
        Server::builder()
            .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
            .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
            .add_service(self.into_service())
            .serve_with_incoming_shutdown(incoming, signal)
            .await
            .map_err(Error::AdsServe)
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream =
        tokio_stream::Empty<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let stream_id = self.next_stream_id.fetch_add(1, Ordering::Relaxed);
        let peer = request.remote_addr();
        let (responses, client) = mpsc::channel(RESPONSE_BUFFER);
        let context = StreamContext {
            stream_id,
            peer,
            snapshots: self.snapshots.clone(),
            shutdown: self.shutdown.subscribe(),
            status: self.status.connect(stream_id, peer),
        };
        tokio::spawn(stream::run(request.into_inner(), responses, context));
        Ok(Response::new(ReceiverStream::new(client)))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "podlb control plane serves state-of-the-world ADS only \
             (StreamAggregatedResources); configure the client for SotW xDS",
        ))
    }
}
