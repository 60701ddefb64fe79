//! An ADS stream that behaves as a proxyless gRPC client's does: it
//! subscribes to the Listener, the Cluster and the ClusterLoadAssignment of
//! one name, sends its node in its first request only (as gRPC C-core
//! does), and ACKs every response at once with the response's version and
//! nonce. It is a probe built from envoy-types' generated ADS client and
//! speaks the real protocol (HTTP/2, gRPC framing, protobuf), but it is not
//! a real client: it applies nothing and never NACKs.
//!
//! It stamps each response when it is read and its ACK when it is queued,
//! which is what the benchmarks time.

use std::net::SocketAddr;
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use podlb_control_plane::snapshot::{CLUSTER, ENDPOINTS, LISTENER};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

/// The three types a proxyless client subscribes to for one target (its
/// route is inline in the Listener).
pub(crate) const TYPES: [&str; 3] = [LISTENER, CLUSTER, ENDPOINTS];

/// A new HTTP/2 connection to the ADS server at `addr`, for streams to
/// share.
pub(crate) async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .connect()
        .await
        .expect("connect to the ADS server")
}

/// [`connect`], with the failure as text rather than a panic: the streams
/// benchmark stops at the first connection the machine refuses.
pub(crate) async fn try_connect(addr: SocketAddr) -> Result<Channel, String> {
    Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connect to {addr}: {e:?}"))
}

/// One response as the stream saw it.
#[derive(Debug)]
pub(crate) struct Received {
    /// The response.
    pub(crate) response: DiscoveryResponse,
    /// When it was read off the stream.
    pub(crate) at: Instant,
    /// When its ACK was queued for sending.
    pub(crate) acked_at: Instant,
}

/// One ADS stream subscribed to one name; see the module doc.
pub(crate) struct AckingStream {
    name: String,
    requests: mpsc::UnboundedSender<DiscoveryRequest>,
    responses: Streaming<DiscoveryResponse>,
}

impl AckingStream {
    /// Opens a stream on `channel` as node `node_id` and subscribes to
    /// `name` for every type of [`TYPES`].
    pub(crate) async fn open(
        channel: Channel,
        node_id: &str,
        name: &str,
    ) -> Result<AckingStream, tonic::Status> {
        let (requests, outgoing) = mpsc::unbounded_channel();
        let mut node = Some(Node {
            id: node_id.to_string(),
            cluster: "podlb-bench".to_string(),
            user_agent_name: "podlb-bench-probe".to_string(),
            ..Node::default()
        });
        for type_url in TYPES {
            let _ = requests.send(DiscoveryRequest {
                node: node.take(),
                type_url: type_url.to_string(),
                resource_names: vec![name.to_string()],
                ..DiscoveryRequest::default()
            });
        }
        let responses = AggregatedDiscoveryServiceClient::new(channel)
            .stream_aggregated_resources(UnboundedReceiverStream::new(outgoing))
            .await?
            .into_inner();
        Ok(AckingStream {
            name: name.to_string(),
            requests,
            responses,
        })
    }

    /// The next response, ACKed; `None` when the server ended the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<Received>, tonic::Status> {
        let Some(response) = self.responses.message().await? else {
            return Ok(None);
        };
        let at = Instant::now();
        let _ = self.requests.send(DiscoveryRequest {
            type_url: response.type_url.clone(),
            resource_names: vec![self.name.clone()],
            version_info: response.version_info.clone(),
            response_nonce: response.nonce.clone(),
            ..DiscoveryRequest::default()
        });
        Ok(Some(Received {
            response,
            at,
            acked_at: Instant::now(),
        }))
    }
}

/// The endpoints of a ClusterLoadAssignment response, as socket addresses
/// (every priority and state); empty for any other response.
pub(crate) fn endpoints(response: &DiscoveryResponse) -> Vec<SocketAddr> {
    if response.type_url != ENDPOINTS {
        return Vec::new();
    }
    response
        .resources
        .iter()
        .filter_map(|any| ClusterLoadAssignment::decode(any.value.as_slice()).ok())
        .flat_map(|cla| podlb_xds::endpoints_from_cla(&cla).unwrap_or_default())
        .map(|endpoint| endpoint.addr.socket_addr())
        .collect()
}
