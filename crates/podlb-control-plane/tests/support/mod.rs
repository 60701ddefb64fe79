//! The harness of the ADS protocol tests: a real [`AdsServer`] (and admin
//! endpoint) on 127.0.0.1, fed snapshots through its watch channel, and
//! [`Probe`], a stand-in for an xDS client (gRPC's or Envoy's).
//!
//! The probe is built from envoy-types' generated ADS client and speaks the
//! real wire protocol (HTTP/2, gRPC framing, `DiscoveryRequest` and
//! `DiscoveryResponse` as protobuf), but it decides nothing by itself: each
//! test says what it subscribes to, ACKs and NACKs, so the test can break
//! the protocol on purpose (stale nonces, NACKs) where a real client would
//! not. Like gRPC C-core, it sends its `node` in its first request only.
//!
//! Waits are bounded (30 s) only so a broken server fails a test instead of
//! hanging it; no test passes or fails on how long something took.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use envoy_types::util::pack_any;
use podlb_control_plane::admin::serve_admin;
use podlb_control_plane::ads::AdsServer;
use podlb_control_plane::snapshot::{CLUSTER, FixedSnapshot, LISTENER, SharedSnapshot};
use podlb_control_plane::status::{StatusRegistry, StatusReport};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

/// Bounds every wait, so a broken server fails a test rather than hanging it.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// An ADS server and its admin endpoint on 127.0.0.1, and the sender of
/// their snapshots.
pub struct Harness {
    /// Where the ADS server listens.
    pub addr: SocketAddr,
    /// Where the admin endpoint listens.
    pub admin_addr: SocketAddr,
    /// What the server reports about its clients.
    pub status: StatusRegistry,
    snapshots: watch::Sender<SharedSnapshot>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), podlb_control_plane::Error>>,
}

impl Harness {
    /// Starts a server serving `snapshot`.
    pub async fn start(snapshot: FixedSnapshot) -> Harness {
        let (snapshots, receiver) = watch::channel::<SharedSnapshot>(Arc::new(snapshot));
        let status = StatusRegistry::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let (stop_admin, admin_stopped) = oneshot::channel::<()>();
        let server = AdsServer::new(receiver, status.clone());
        let server = tokio::spawn(async move {
            let served = server
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await;
            let _ = stop_admin.send(());
            served
        });
        tokio::spawn(serve_admin(admin, status.clone(), async {
            let _ = admin_stopped.await;
        }));
        Harness {
            addr,
            admin_addr,
            status,
            snapshots,
            stop: Some(stop),
            server,
        }
    }

    /// Makes `snapshot` the server's latest.
    pub fn publish(&self, snapshot: FixedSnapshot) {
        self.snapshots.send_replace(Arc::new(snapshot));
    }

    /// A probe on a connection of its own.
    pub async fn probe(&self, node_id: &str) -> Probe {
        Probe::on(self.channel().await, node_id).await
    }

    /// A new HTTP/2 connection to the server, for probes to share.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Polls the status registry until `done` holds; panics after
    /// [`PATIENCE`] naming `what` and the last report.
    pub async fn wait_for_status(
        &self,
        what: &str,
        done: impl Fn(&StatusReport) -> bool,
    ) -> StatusReport {
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                let report = self.status.report();
                if done(&report) {
                    return report;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        match waited {
            Ok(report) => report,
            Err(_) => panic!("status never showed {what}: {:#?}", self.status.report()),
        }
    }

    /// Asks the server to shut down and returns what `serve` returned.
    pub async fn shutdown(mut self) -> Result<(), podlb_control_plane::Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(PATIENCE, self.server)
            .await
            .expect("the server did not stop")
            .unwrap()
    }
}

/// One ADS stream, driven by hand. See the module doc.
pub struct Probe {
    node: Option<Node>,
    requests: mpsc::UnboundedSender<DiscoveryRequest>,
    responses: Streaming<DiscoveryResponse>,
    names: HashMap<String, Vec<String>>,
}

impl Probe {
    /// Opens an ADS stream over `channel` as node `node_id`.
    pub async fn on(channel: Channel, node_id: &str) -> Probe {
        let (requests, outgoing) = mpsc::unbounded_channel();
        let mut client = AggregatedDiscoveryServiceClient::new(channel);
        let responses = client
            .stream_aggregated_resources(UnboundedReceiverStream::new(outgoing))
            .await
            .unwrap()
            .into_inner();
        Probe {
            node: Some(Node {
                id: node_id.to_string(),
                cluster: "probes".to_string(),
                user_agent_name: "podlb-probe".to_string(),
                ..Node::default()
            }),
            requests,
            responses,
            names: HashMap::new(),
        }
    }

    /// Subscribes to `names` of `type_url` as a first request does (no
    /// nonce, no version).
    pub fn subscribe(&mut self, type_url: &str, names: &[&str]) {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        self.names.insert(type_url.to_string(), names.clone());
        self.send(DiscoveryRequest {
            type_url: type_url.to_string(),
            resource_names: names,
            ..DiscoveryRequest::default()
        });
    }

    /// ACKs `response`, keeping the type's names.
    pub fn ack(&mut self, response: &DiscoveryResponse) {
        let names = self.names_of(&response.type_url);
        self.answer(response, names, &response.version_info, None);
    }

    /// ACKs `response` while changing the type's names to `names`.
    pub fn ack_with_names(&mut self, response: &DiscoveryResponse, names: &[&str]) {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        self.names.insert(response.type_url.clone(), names.clone());
        self.answer(response, names, &response.version_info, None);
    }

    /// NACKs `response` with `error`, saying the client still runs
    /// `accepted_version`.
    pub fn nack(&mut self, response: &DiscoveryResponse, accepted_version: &str, error: &str) {
        let names = self.names_of(&response.type_url);
        let detail = RpcStatus {
            code: tonic::Code::InvalidArgument as i32,
            message: error.to_string(),
            details: Vec::new(),
        };
        self.answer(response, names, accepted_version, Some(detail));
    }

    /// The next response; panics if none comes within [`PATIENCE`] or the
    /// stream ends.
    pub async fn next(&mut self) -> DiscoveryResponse {
        match self.next_within(PATIENCE).await {
            Some(response) => response,
            None => panic!("no response within {PATIENCE:?}"),
        }
    }

    /// The next response if one comes within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<DiscoveryResponse> {
        match tokio::time::timeout(wait, self.responses.message()).await {
            Ok(message) => Some(message.unwrap().expect("the server ended the stream")),
            Err(_) => None,
        }
    }

    /// How the stream ends: the next message must be an error status.
    pub async fn end_status(&mut self) -> tonic::Status {
        let message = tokio::time::timeout(PATIENCE, self.responses.message())
            .await
            .expect("the stream did not end");
        match message {
            Err(status) => status,
            Ok(other) => panic!("expected the stream to end with a status, got {other:?}"),
        }
    }

    fn names_of(&self, type_url: &str) -> Vec<String> {
        self.names.get(type_url).cloned().unwrap_or_default()
    }

    fn answer(
        &mut self,
        response: &DiscoveryResponse,
        names: Vec<String>,
        version: &str,
        error_detail: Option<RpcStatus>,
    ) {
        self.send(DiscoveryRequest {
            type_url: response.type_url.clone(),
            resource_names: names,
            version_info: version.to_string(),
            response_nonce: response.nonce.clone(),
            error_detail,
            ..DiscoveryRequest::default()
        });
    }

    /// Sends `request` as is (the node is added to the stream's first).
    pub fn send(&mut self, mut request: DiscoveryRequest) {
        request.node = self.node.take();
        self.requests.send(request).unwrap();
    }
}

/// GETs `path` from the admin endpoint over HTTP/1.1: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (http::StatusCode, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(PATIENCE, sender.send_request(request))
        .await
        .expect("the admin endpoint did not answer")
        .unwrap();
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// A Listener named `name`; `tag` (its stat prefix) tells versions apart.
pub fn listener(name: &str, tag: &str) -> Any {
    pack_any(Listener {
        name: name.to_string(),
        stat_prefix: tag.to_string(),
        ..Listener::default()
    })
}

/// A Cluster named `name`; `tag` (its alt stat name) tells versions apart.
pub fn cluster(name: &str, tag: &str) -> Any {
    pack_any(Cluster {
        name: name.to_string(),
        alt_stat_name: tag.to_string(),
        ..Cluster::default()
    })
}

/// A snapshot of the given listeners and clusters, as (name, tag).
pub fn snapshot(listeners: &[(&str, &str)], clusters: &[(&str, &str)]) -> FixedSnapshot {
    let mut snapshot = FixedSnapshot::default();
    for (name, tag) in listeners {
        snapshot.insert(*name, listener(name, tag));
    }
    for (name, tag) in clusters {
        snapshot.insert(*name, cluster(name, tag));
    }
    snapshot
}

/// The (name, tag) of every resource of a Listener or Cluster response,
/// sorted by name.
pub fn contents(response: &DiscoveryResponse) -> Vec<(String, String)> {
    let mut contents: Vec<(String, String)> = response
        .resources
        .iter()
        .map(|any| {
            assert_eq!(
                any.type_url, response.type_url,
                "a resource of another type"
            );
            match any.type_url.as_str() {
                LISTENER => {
                    let listener = Listener::decode(any.value.as_slice()).unwrap();
                    (listener.name, listener.stat_prefix)
                }
                CLUSTER => {
                    let cluster = Cluster::decode(any.value.as_slice()).unwrap();
                    (cluster.name, cluster.alt_stat_name)
                }
                other => panic!("unexpected type {other}"),
            }
        })
        .collect();
    contents.sort();
    contents
}

/// `[(name, tag)]` as owned strings, to compare with [`contents`].
pub fn named(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, tag)| (name.to_string(), tag.to_string()))
        .collect()
}
