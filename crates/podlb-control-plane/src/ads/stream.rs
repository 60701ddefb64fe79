//! One client's ADS stream, run as its own tokio task: reads the client's
//! requests and the snapshot channel, hands each to the type's
//! [`TypeState`], sends what that returns, logs, and keeps the client's
//! status row. Owns nothing shared but its status row; never builds
//! resources.
//!
//! ```text
//!  client requests ──┐
//!  snapshot changes ─┼─► select ─► TypeState (per type URL) ─► bounded channel ─► client
//!  server shutdown ──┘                 └─► ClientEntry (status)
//! ```
//!
//! Back-pressure: responses go through a small bounded channel. A slow
//! client makes only its own task wait; while it waits, snapshot changes
//! coalesce in the watch channel, so the client later gets the latest state
//! once rather than one response per change.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};
use tracing::{debug, info, warn};

use super::type_state::{Handled, Nonces, RequestKind, TypeState};
use crate::snapshot::SharedSnapshot;
use crate::status::{ClientEntry, unix_ms};

/// What a stream sends to its client.
pub(crate) type ResponseSender = mpsc::Sender<Result<DiscoveryResponse, Status>>;

/// Everything one stream task needs from the server.
pub(crate) struct StreamContext {
    pub(crate) stream_id: u64,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) snapshots: watch::Receiver<SharedSnapshot>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) status: ClientEntry,
}

/// Why a stream ended, for the disconnect log line.
#[derive(Debug)]
enum End {
    /// The client closed its side of the stream.
    ClientClosed,
    /// The client's request stream failed (reset, connection lost).
    ClientError(Status),
    /// The client stopped reading responses (its stream is gone).
    ClientGone,
    /// The client broke the protocol; the stream ends with this status.
    Protocol(Status),
    /// The server is shutting down.
    Shutdown,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::ClientClosed => f.write_str("the client closed the stream"),
            End::ClientError(status) => {
                write!(
                    f,
                    "the stream broke ({}): the client went away or reset it",
                    status.message()
                )
            }
            End::ClientGone => f.write_str("the client stopped reading"),
            End::Protocol(status) => write!(f, "protocol error: {}", status.message()),
            End::Shutdown => f.write_str("the server is shutting down"),
        }
    }
}

/// Runs one stream until the client leaves or the server shuts down.
pub(crate) async fn run(
    requests: Streaming<DiscoveryRequest>,
    responses: ResponseSender,
    context: StreamContext,
) {
    let StreamContext {
        stream_id,
        peer,
        mut snapshots,
        mut shutdown,
        status,
    } = context;
    let snapshot = snapshots.borrow_and_update().clone();
    let mut stream = AdsStream {
        stream_id,
        peer,
        node: None,
        types: BTreeMap::new(),
        nonces: Nonces::default(),
        snapshot,
        status,
        responses,
    };
    debug!(stream_id, ?peer, "ADS stream opened");
    let end = stream.serve(requests, &mut snapshots, &mut shutdown).await;
    let end_status = match &end {
        End::Protocol(status) => Some(status.clone()),
        End::Shutdown => Some(Status::unavailable("podlb control plane is shutting down")),
        End::ClientClosed | End::ClientError(_) | End::ClientGone => None,
    };
    if let Some(end_status) = end_status {
        // The client may be gone already; nothing more to do then.
        let _ = stream.responses.try_send(Err(end_status));
    }
    info!(
        stream_id,
        node_id = stream.node_id(),
        ?peer,
        reason = %end,
        "ADS client disconnected"
    );
}

struct AdsStream {
    stream_id: u64,
    peer: Option<SocketAddr>,
    node: Option<Node>,
    types: BTreeMap<String, TypeState>,
    nonces: Nonces,
    snapshot: SharedSnapshot,
    status: ClientEntry,
    responses: ResponseSender,
}

impl AdsStream {
    async fn serve(
        &mut self,
        mut requests: Streaming<DiscoveryRequest>,
        snapshots: &mut watch::Receiver<SharedSnapshot>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> End {
        // Once the snapshot sender is gone the last snapshot stays served.
        let mut snapshots_open = true;
        loop {
            let step = tokio::select! {
                () = shutdown_requested(shutdown) => Err(End::Shutdown),
                message = requests.message() => match message {
                    Ok(Some(request)) => self.on_request(request, shutdown).await,
                    Ok(None) => Err(End::ClientClosed),
                    Err(status) => Err(End::ClientError(status)),
                },
                changed = snapshots.changed(), if snapshots_open => match changed {
                    Ok(()) => {
                        self.snapshot = snapshots.borrow_and_update().clone();
                        self.on_snapshot(shutdown).await
                    }
                    Err(_) => {
                        snapshots_open = false;
                        Ok(())
                    }
                },
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    async fn on_request(
        &mut self,
        request: DiscoveryRequest,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), End> {
        if request.type_url.is_empty() {
            return Err(End::Protocol(Status::invalid_argument(
                "an ADS DiscoveryRequest must carry a type_url",
            )));
        }
        self.remember_node(&request);
        let now = unix_ms(SystemTime::now());
        let state = self
            .types
            .entry(request.type_url.clone())
            .or_insert_with(|| TypeState::new(&request.type_url));
        let handled = state.on_request(&request, &*self.snapshot, &mut self.nonces, now);
        self.status.set_type(state.status());
        self.log_request(&request, &handled);
        match handled.response {
            Some(response) => self.send(response, shutdown).await,
            None => Ok(()),
        }
    }

    async fn on_snapshot(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), End> {
        let now = unix_ms(SystemTime::now());
        let mut pushes = Vec::new();
        for state in self.types.values_mut() {
            if let Some(response) = state.on_snapshot(&*self.snapshot, &mut self.nonces, now) {
                self.status.set_type(state.status());
                pushes.push(response);
            }
        }
        for response in pushes {
            debug!(
                stream_id = self.stream_id,
                node_id = self.node_id(),
                type_url = response.type_url,
                version = response.version_info,
                resources = response.resources.len(),
                "pushing a changed snapshot"
            );
            self.send(response, shutdown).await?;
        }
        Ok(())
    }

    // C-core sends the node only in a stream's first request, tonic-xds in
    // every one: the first seen is the client's identity for the stream.
    fn remember_node(&mut self, request: &DiscoveryRequest) {
        if self.node.is_some() {
            return;
        }
        let Some(node) = &request.node else {
            return;
        };
        self.status.set_node(node);
        self.node = Some(node.clone());
        info!(
            stream_id = self.stream_id,
            node_id = node.id,
            node_cluster = node.cluster,
            user_agent = node.user_agent_name,
            peer = ?self.peer,
            "ADS client connected"
        );
    }

    fn log_request(&self, request: &DiscoveryRequest, handled: &Handled) {
        let node_id = self.node_id();
        let type_url = request.type_url.as_str();
        match &handled.kind {
            RequestKind::Nack {
                rejected_version,
                accepted_version,
                error,
            } => warn!(
                stream_id = self.stream_id,
                node_id,
                type_url,
                rejected_version,
                accepted_version,
                error,
                "client rejected (NACKed) a response; not resending it until the snapshot changes"
            ),
            RequestKind::Stale { nonce } => debug!(
                stream_id = self.stream_id,
                node_id, type_url, nonce, "ignoring a request that answers an older response"
            ),
            RequestKind::Ack { version } => debug!(
                stream_id = self.stream_id,
                node_id, type_url, version, "client ACKed"
            ),
            RequestKind::Initial => debug!(
                stream_id = self.stream_id,
                node_id,
                type_url,
                names = ?request.resource_names,
                "client subscribed"
            ),
        }
    }

    async fn send(
        &self,
        response: DiscoveryResponse,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), End> {
        tokio::select! {
            sent = self.responses.send(Ok(response)) => sent.map_err(|_| End::ClientGone),
            () = shutdown_requested(shutdown) => Err(End::Shutdown),
        }
    }

    fn node_id(&self) -> &str {
        self.node.as_ref().map_or("", |node| node.id.as_str())
    }
}

/// Resolves once shutdown is requested; never if the server is dropped
/// without asking (its streams then end with their clients).
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    let asked = shutdown.wait_for(|stop| *stop).await.is_ok();
    if !asked {
        std::future::pending::<()>().await;
    }
}
