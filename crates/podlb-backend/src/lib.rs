//! The greeter backend: `helloworld.Greeter/SayHello` answering with its own
//! id, plus the standard `grpc.health.v1.Health` service reporting SERVING.
//!
//! It is what `podlb backend`, `podlb demo` and the benchmark put behind the
//! proxy, so a reply shows which backend served each call. It knows nothing
//! of podlb's proxy.

use std::future::Future;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
pub use tonic_health::server::HealthReporter;
use tonic_health::server::HealthService;

/// Code generated from `proto/helloworld.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    tonic::include_proto!("helloworld");
}

pub use pb::greeter_client::GreeterClient;

/// A greeter that answers `Hello NAME from ID`.
#[derive(Debug, Clone)]
pub struct Greeter {
    id: String,
}

impl Greeter {
    /// A greeter that names itself `id` in its replies.
    pub fn new(id: impl Into<String>) -> Self {
        Greeter { id: id.into() }
    }
}

#[tonic::async_trait]
impl pb::greeter_server::Greeter for Greeter {
    async fn say_hello(
        &self,
        request: Request<pb::HelloRequest>,
    ) -> Result<Response<pb::HelloReply>, Status> {
        let name = request.into_inner().name;
        Ok(Response::new(pb::HelloReply {
            message: format!("Hello {name} from {}", self.id),
        }))
    }
}

/// The backend id inside a greeter reply (`Hello NAME from ID`).
pub fn backend_of(reply: &pb::HelloReply) -> &str {
    reply.message.rsplit_once(" from ").map_or("", |(_, id)| id)
}

/// Serves the greeter and health services on `listener` until `shutdown`
/// resolves, then drains calls in flight (tonic's graceful shutdown).
pub async fn serve(
    listener: TcpListener,
    id: impl Into<String>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_with_health(listener, id, HealthReporter::new(), shutdown).await
}

/// [`serve`], with the health service reporting through `health`: the
/// caller can say NOT_SERVING (for the whole server, `""`, or the greeter
/// service) and SERVING again. Both start SERVING.
pub async fn serve_with_health(
    listener: TcpListener,
    id: impl Into<String>,
    health: HealthReporter,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    health
        .set_serving::<pb::greeter_server::GreeterServer<Greeter>>()
        .await;
    health.set_service_status("", ServingStatus::Serving).await;
    let health_service = HealthServer::new(HealthService::from_health_reporter(health));
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(health_service)
        .add_service(pb::greeter_server::GreeterServer::new(Greeter::new(id)))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}

/// Serves only the greeter, with no health service (a backend that does
/// not implement `grpc.health.v1`), until `shutdown` resolves.
pub async fn serve_without_health(
    listener: TcpListener,
    id: impl Into<String>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(pb::greeter_server::GreeterServer::new(Greeter::new(id)))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_of_reads_the_id_after_from() {
        let reply = pb::HelloReply {
            message: "Hello x from backend-2".into(),
        };
        assert_eq!(backend_of(&reply), "backend-2");
    }
}
