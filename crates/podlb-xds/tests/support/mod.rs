//! Test support: a scripted ADS server and the xDS resources the tests
//! send through it.
//!
//! [`ScriptedAds`] is a stand-in for an xDS control plane. It speaks the
//! real wire protocol (envoy-types' generated
//! `AggregatedDiscoveryService` over tonic, HTTP/2 on 127.0.0.1), but
//! every response is written by the test, which also sees every request
//! the client sends. A real server cannot be scripted to send a bad
//! resource or to leave one out, nor asked which nonce a NACK carried;
//! this one can.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig,
};
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::{AggregatedConfigSource, ConfigSource};
use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Listener};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use futures_util::{Stream, StreamExt};
use podlb_core::{Endpoint, Update};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{TcpListenerStream, UnboundedReceiverStream};
use tonic::{Request, Response, Status, Streaming};

/// How long a test waits for anything before failing instead of hanging.
/// Generous: the machine is small and shared.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A scripted ADS server on 127.0.0.1; stops when dropped.
pub struct ScriptedAds {
    pub addr: SocketAddr,
    streams: mpsc::UnboundedReceiver<Peer>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedAds {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The server's side of one ADS stream.
pub struct Peer {
    requests: Streaming<DiscoveryRequest>,
    responses: mpsc::UnboundedSender<Result<DiscoveryResponse, Status>>,
}

struct Service {
    streams: mpsc::UnboundedSender<Peer>,
}

type ResponseStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send + 'static>>;
type DeltaStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Service {
    type StreamAggregatedResourcesStream = ResponseStream;
    type DeltaAggregatedResourcesStream = DeltaStream;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let (responses, rx) = mpsc::unbounded_channel();
        let peer = Peer {
            requests: request.into_inner(),
            responses,
        };
        self.streams
            .send(peer)
            .map_err(|_| Status::unavailable("no script"))?;
        Ok(Response::new(UnboundedReceiverStream::new(rx).boxed()))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<DeltaStream>, Status> {
        Err(Status::unimplemented(
            "the scripted server speaks state of the world only",
        ))
    }
}

impl ScriptedAds {
    /// A server on a free port.
    pub async fn start() -> ScriptedAds {
        ScriptedAds::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// A server on `addr`.
    pub async fn start_on(addr: SocketAddr) -> ScriptedAds {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, streams) = mpsc::unbounded_channel();
        let service = AggregatedDiscoveryServiceServer::new(Service { streams: tx });
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        ScriptedAds {
            addr,
            streams,
            task,
        }
    }

    /// The next stream a client opens.
    pub async fn next_stream(&mut self) -> Peer {
        tokio::time::timeout(PATIENCE, self.streams.recv())
            .await
            .expect("no ADS stream opened")
            .expect("server gone")
    }
}

impl Peer {
    /// The client's next request.
    pub async fn request(&mut self) -> DiscoveryRequest {
        tokio::time::timeout(PATIENCE, self.requests.message())
            .await
            .expect("no request from the client")
            .expect("stream failed")
            .expect("stream ended")
    }

    /// Sends a response of `type_url`.
    pub fn respond(&self, type_url: &str, version: &str, nonce: &str, resources: Vec<Any>) {
        let response = DiscoveryResponse {
            version_info: version.into(),
            resources,
            type_url: type_url.into(),
            nonce: nonce.into(),
            ..Default::default()
        };
        self.responses.send(Ok(response)).unwrap();
    }

    /// Ends the stream with `status`.
    pub fn fail(&self, status: Status) {
        self.responses.send(Err(status)).unwrap();
    }
}

/// The next item of a client's update stream.
pub async fn next_item<S>(updates: &mut S) -> Result<Update, podlb_xds::Error>
where
    S: Stream<Item = Result<Update, podlb_xds::Error>> + Unpin,
{
    tokio::time::timeout(PATIENCE, updates.next())
        .await
        .expect("no update from the client")
        .expect("the update stream ended")
}

/// The addresses of a Reset, or panics.
pub fn reset_addrs(item: &Result<Update, podlb_xds::Error>) -> Vec<String> {
    match item {
        Ok(Update::Reset(set)) => set.iter().map(|e| e.addr.to_string()).collect(),
        other => panic!("not a reset: {other:?}"),
    }
}

fn ads() -> Option<ConfigSource> {
    Some(ConfigSource {
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    })
}

/// A Listener for proxyless gRPC whose routes are in RDS `route`.
pub fn listener(name: &str, route: &str) -> Any {
    let hcm = HttpConnectionManager {
        http_filters: vec![HttpFilter {
            name: "router".into(),
            config_type: Some(ConfigType::TypedConfig(pack_any(Router::default()))),
            ..Default::default()
        }],
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: ads(),
            route_config_name: route.into(),
        })),
        ..Default::default()
    };
    pack_any(Listener {
        name: name.into(),
        api_listener: Some(ApiListener {
            api_listener: Some(pack_any(hcm)),
        }),
        ..Default::default()
    })
}

/// A RouteConfiguration sending every call for `domain` to `cluster`.
pub fn route(name: &str, domain: &str, cluster: &str) -> Any {
    let default_route = Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
            ..Default::default()
        })),
        ..Default::default()
    };
    pack_any(RouteConfiguration {
        name: name.into(),
        virtual_hosts: vec![VirtualHost {
            name: "vh".into(),
            domains: vec![domain.into()],
            routes: vec![default_route],
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// A Cluster of type `kind`, with its endpoints from EDS as `service`.
pub fn cluster(name: &str, kind: DiscoveryType, service: &str) -> Any {
    pack_any(Cluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(kind as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: ads(),
            service_name: service.into(),
        }),
        ..Default::default()
    })
}

/// The EDS resource `name` with ready endpoints at `addrs`, built as the
/// control plane builds its own.
pub fn endpoints(name: &str, addrs: &[SocketAddr]) -> Any {
    let set: Vec<Endpoint> = addrs.iter().map(|a| Endpoint::new((*a).into())).collect();
    pack_any(podlb_xds::cluster_load_assignment(name, &set))
}
